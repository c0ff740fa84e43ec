"""Every dashboard rule fails on the input it exists for (a rule that cannot fail is worthless)."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from infra.components.dashboards import DASHBOARD_KEY_ANNOTATION
from infra.core import promql
from infra.validation import Plan, PlannedResource
from infra.validation.dashboards import (
    CONFIG_MAP,
    DASHBOARD,
    PROMETHEUS_RULE,
    cloudwatch_dashboard_layout,
    cloudwatch_dashboard_metrics,
    grafana_dashboards_valid,
    grid_problems,
)


def _res(type_: str, inputs: dict[str, Any], region: str | None = "us-east-1", name: str = "x") -> PlannedResource:
    return PlannedResource(urn=f"urn:{type_}:{name}", type=type_, name=name, parent=None, region=region,
                           inputs=inputs, custom=True, provider="p")


def _dash(*widgets: dict[str, Any]) -> PlannedResource:
    return _res(DASHBOARD, {"dashboardName": "d", "dashboardBody": json.dumps({"widgets": list(widgets)})})


def _metric(title: str, lines: list[list[Any]], region: str = "us-east-1", x: int = 0, y: int = 0,
            width: int = 6) -> dict[str, Any]:
    return {"type": "metric", "x": x, "y": y, "width": width, "height": 6,
            "properties": {"title": title, "region": region, "metrics": lines}}


def _messages(rule: Any, cfg: Any, *resources: PlannedResource) -> list[str]:
    return [v.message for v in rule(Plan(list(resources), cfg))]


def test_grid_geometry():
    assert grid_problems([("a", 0, 0, 12, 6), ("b", 12, 0, 12, 6), ("c", 0, 6, 24, 1)]) == []
    msgs = grid_problems([("a", 0, 0, 12, 6), ("b", 6, 3, 12, 6), ("c", 20, 0, 6, 2), ("d", 0, 20, 0, 2)])
    assert "'b' overlaps 'a'" in msgs
    assert any("x 20 + width 6 exceeds" in m for m in msgs)
    assert any("'d': width 0" in m for m in msgs)
    assert any("'c' overlaps" in m for m in msgs) is False


def test_layout_rule_catches_overlap_width_and_missing_region(planned):
    cfg = planned["staging"].plan.config
    ok = ["AkiDB/Edge", "RequestCount", {"region": "us-east-1", "stat": "Sum"}]
    dash = _dash(_metric("a", [ok]), _metric("b", [ok], x=3), _metric("c", [ok], region="", y=6),
                 _metric("d", [ok], y=12, width=25), {"type": "chart", "x": 0, "y": 30, "width": 2, "height": 2,
                                                      "properties": {}})
    msgs = _messages(cloudwatch_dashboard_layout, cfg, dash)
    assert "'b' overlaps 'a'" in msgs
    assert any("'c': metric widget without a valid region" in m for m in msgs)
    assert any("'d': width 25" in m for m in msgs)
    assert any("widget type 'chart'" in m for m in msgs)
    crowded = _dash(_metric("crowded", [ok] * 501))
    assert any("'crowded': 501 metrics" in m for m in _messages(cloudwatch_dashboard_layout, cfg, crowded))
    bad_json = _res(DASHBOARD, {"dashboardBody": "{nope"})
    assert any("not JSON" in m for m in _messages(cloudwatch_dashboard_layout, cfg, bad_json))


def test_metric_rule_catches_metrics_nobody_emits(planned):
    cfg = planned["staging"].plan.config  # edge regions us-east-1, eu-west-1
    dash = _dash(
        # The seed's defect: eu-west-1's replica metric read in us-east-1.
        _metric("wrong region", [["AkiDB/Edge", "ErrorCount", "EdgeRegion", "eu-west-1", {"region": "us-east-1"}]]),
        _metric("no such set", [["AkiDB/Edge", "ErrorCount", "FunctionName", "f", {}]], x=6),
        _metric("typo", [["AkiDB/Edge", "Errorcount", {}]], x=12),
        _metric("not an edge region", [["AkiDB/Edge", "RequestCount", {"region": "ap-south-1"}]], x=18),
        _metric("cloudfront", [["AWS/CloudFront", "Requests", "DistributionId", "E1", {}]], region="eu-west-1", y=6),
        _metric("math", [["AkiDB/Edge", "ErrorCount", {"region": "eu-west-1", "id": "e"}],
                         ["AkiDB/Edge", "RequestCount", {"id": "r"}], [{"expression": "e/r", "id": "x"}]], y=12),
        _metric("anomaly", [["AkiDB/AnomalyDetection", "Score", "Metric", "no_such_metric", {}]], y=18),
        _metric("typo in math", [["AkiDB/Edge", "ErrorCount", {"id": "errors"}],
                                 [{"expression": "100 * SUM([errors]) / requests", "id": "e1"}]], y=24),
    )
    msgs = _messages(cloudwatch_dashboard_metrics, cfg, dash)
    text = "\n".join(msgs)
    assert "'wrong region': AkiDB/Edge ErrorCount with dimensions {'EdgeRegion': 'eu-west-1'} is not emitted" in text
    assert "'no such set'" in text and "emitted dimension sets" in text
    assert "'typo': AkiDB/Edge Errorcount is emitted by nothing" in text
    assert "'not an edge region': AkiDB/Edge RequestCount is emitted in eu-west-1, us-east-1, not ap-south-1" in text
    assert "'cloudfront': AWS/CloudFront metrics exist only in us-east-1" in text
    assert "'math': metric math over metrics of eu-west-1, us-east-1" in text
    assert "'anomaly'" in text
    assert "'typo in math': expression '100 * SUM([errors]) / requests' refers to requests" in text
    good = _dash(_metric("fine", [["AkiDB/Edge", "ErrorCount", "EdgeRegion", "eu-west-1", {"region": "eu-west-1"}],
                                  ["AWS/Lambda", "Errors", "FunctionName", "us-east-1.f", {"region": "eu-west-1"}]]))
    assert _messages(cloudwatch_dashboard_metrics, cfg, good) == []


def test_alarm_widget_must_show_existing_alarms_of_one_region(planned):
    cfg = planned["staging"].plan.config
    alarm = _res("aws:cloudwatch/metricAlarm:MetricAlarm", {"name": "real"}, region="eu-west-1")
    arn = "arn:aws:cloudwatch:{}:111111111111:alarm:{}"
    widget = {"type": "alarm", "x": 0, "y": 0, "width": 6, "height": 6, "properties": {
        "title": "alarms", "alarms": [arn.format("eu-west-1", "real"), arn.format("us-east-1", "real"),
                                      arn.format("eu-west-1", "ghost")]}}
    msgs = _messages(cloudwatch_dashboard_metrics, cfg, _dash(widget), alarm)
    assert any("alarm real does not exist in us-east-1" in m for m in msgs)
    assert any("alarm ghost does not exist in eu-west-1" in m for m in msgs)
    assert any("alarms of several regions" in m for m in msgs)
    empty = dict(widget, properties={"title": "none", "alarms": []})
    assert any("1-100 alarms" in m for m in _messages(cloudwatch_dashboard_metrics, cfg, _dash(empty)))


def _config_map(board: dict[str, Any], labels: dict[str, str] | None = None, namespace: str = "observability",
                annotations: dict[str, str] | None = None) -> PlannedResource:
    meta = {"name": "cm", "namespace": namespace,
            "labels": {"grafana_dashboard": "1"} if labels is None else labels,
            "annotations": {"grafana_folder": "AkiDB", DASHBOARD_KEY_ANNOTATION: "b", **(annotations or {})}}
    return _res(CONFIG_MAP, {"metadata": meta, "data": {"b.json": json.dumps(board)}}, region=None)


def _board(*exprs: str, w: int = 12) -> dict[str, Any]:
    return {"panels": [{"title": f"p{i}", "gridPos": {"x": (i % 2) * 12, "y": (i // 2) * 8, "w": w, "h": 8},
                        "targets": [{"expr": e}]} for i, e in enumerate(exprs)]}


def test_grafana_rule_catches_parse_errors_unknown_metrics_and_sidecar_mistakes(planned):
    cfg = planned["staging"].plan.config
    rules = _res(PROMETHEUS_RULE, {"spec": {"groups": [{"rules": [{"record": "slo:sli_error:ratio_rate5m"}]}]}},
                 region=None)
    good = _config_map(_board("slo:sli_error:ratio_rate5m{slo=\"x\"} / 0.001",
                              'sum(rate(akidb_requests_total{job="akidb-rest"}[5m]))'))
    assert _messages(grafana_dashboards_valid, cfg, good, rules) == []
    msgs = _messages(grafana_dashboards_valid, cfg, good)  # the rules are not deployed: unknown recording
    assert any("slo:sli_error:ratio_rate5m is neither recorded" in m for m in msgs)
    broken = _config_map(_board("sum(rate(akidb_requests_total[5m])", "akidb_made_up_total", w=13),
                         labels={}, namespace="default")
    msgs = _messages(grafana_dashboards_valid, cfg, broken, rules)
    text = "\n".join(msgs)
    assert "PromQL does not parse" in text and "unclosed left parenthesis" in text
    assert "akidb_made_up_total is neither recorded" in text
    assert "label grafana_dashboard=\"1\" missing" in text
    assert "namespace 'default'" in text
    assert "'p1' overlaps 'p0'" in text


def test_metric_names_of_promql():
    names = promql.metric_names(
        'histogram_quantile(0.99, sum by (le) (rate(a_bucket{job="x",le=~"0.1"}[5m]))) '
        '/ on(service) group_left(slo) slo:ratio_rate1h{slo="$slo"} > bool 2 offset 1h '
        'unless absent(b_total{status=~"5.."}) * 1e-9')
    assert names == {"a_bucket", "slo:ratio_rate1h", "b_total"}


def test_promtool_verdicts_are_cached_per_content(tmp_path, monkeypatch):
    monkeypatch.setattr(promql, "CACHE_DIR", tmp_path)
    exprs = ['sum(rate(x_total[5m]))', 'vector(1)']
    assert promql.check_expressions(exprs) == {}
    assert len(list(tmp_path.iterdir())) == 1

    def no_promtool(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("promtool ran although the verdict was cached")

    monkeypatch.setattr(subprocess, "run", no_promtool)
    assert promql.check_expressions(list(reversed(exprs))) == {}
    with pytest.raises(AssertionError):
        promql.check_expressions(["sum(x_total"])  # new content: promtool must run
