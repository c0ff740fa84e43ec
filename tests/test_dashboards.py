"""Dashboards: what each stack deploys, the checked-in JSON, and the definitions' link to the alert sources."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from infra.dashboard_defs.catalog import ANOMALY_NAMESPACE
from infra.dashboard_defs.grafana import expressions
from infra.dashboard_defs.grafana_boards import golden_signals, slo_board
from infra.offline.dashboard_files import drift, expected_files, on_disk
from infra.plan.types import DASHBOARD
from infra.slo.spec import BURN_RATE_TIERS, SLO_DASHBOARD_UID, load_slos
from infra.validation.dashboards import grafana_config_maps
from lambdas.edge_inference import emf

MY_RULES = {"cloudwatch_dashboard_layout", "cloudwatch_dashboard_metrics", "grafana_dashboards_valid",
            "grafana_datasources_exist"}


def _mine(result: Any) -> list[str]:
    """Violations of the dashboard rules (other components' rules are test_plan's business)."""
    return [str(v) for v in result.violations if v.rule in MY_RULES]


def _bodies(result: Any) -> dict[str, dict[str, Any]]:
    env = result.plan.config.environment
    return {d.inputs["dashboardName"].removeprefix(f"akidb-{env}-"): json.loads(d.inputs["dashboardBody"])
            for d in result.plan.of_type(DASHBOARD)}


def _metric_lines(widget: dict[str, Any]) -> list[tuple[list[Any], dict[str, Any]]]:
    out = []
    for line in widget["properties"].get("metrics", []):
        opts = line[-1] if isinstance(line[-1], dict) else {}
        if "expression" not in opts:
            out.append((line[:-1], opts))
    return out


def test_checked_in_dashboards_match_the_plan(planned):
    expected = expected_files({stack: r.plan for stack, r in planned.items()})
    assert drift(expected, on_disk()) == [], "run `make dashboards`"
    assert any(name.startswith("prod/cloudwatch/") for name in expected)


def test_drift_is_reported():
    assert drift({"a.json": "1"}, {"a.json": "2", "b.json": "x"}) == [
        "stale (no longer generated): dashboards/b.json", "differs: dashboards/a.json"]
    assert drift({"a.json": "1"}, {}) == ["missing: dashboards/a.json"]


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_every_stack_gets_its_dashboards(planned, stack):
    result = planned[stack]
    assert set(_bodies(result)) == {"edge", "anomaly", "slo", "probes", "outcomes", "coverage"}
    keys = {k for cm in grafana_config_maps(result.plan) for k in cm.inputs["data"]}
    assert keys == {"golden-signals.json", "slo.json", "outcomes.json"}
    assert _mine(result) == []


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_edge_widgets_read_each_metric_where_it_is_emitted(planned, stack):
    result = planned[stack]
    cfg = result.plan.config
    regions = cfg.emf_edge.edge_regions
    edge = _bodies(result)["edge"]
    per_region_titles = 0
    for w in edge["widgets"]:
        if w["type"] != "metric":
            continue
        lines = _metric_lines(w)
        for flat, opts in lines:
            assert opts["region"] in regions
            dims = dict(zip(flat[2::2], flat[3::2], strict=True))
            if flat[0] == cfg.emf_edge.namespace:
                assert flat[1] in emf.METRICS
                assert sorted(dims) in [sorted(s) for s in emf.DIMENSION_SETS], (w["properties"]["title"], dims)
                if emf.EDGE_REGION in dims:
                    assert dims[emf.EDGE_REGION] == opts["region"]  # a replica only publishes its own region
        title = w["properties"]["title"]
        if "by region" in title or "stacked by region" in title:
            assert sorted(o["region"] for _, o in lines) == sorted(regions), title
        for region in regions:
            if title.endswith(f"({region})"):
                per_region_titles += 1
                assert {o["region"] for _, o in lines} == {region} and w["properties"]["region"] == region
    assert per_region_titles >= 5 * len(regions)
    titles = " ".join(w["properties"].get("title", "") for w in edge["widgets"])
    for stat in ("avg", "p95", "p99"):
        assert f"Inference latency {stat} by region" in titles and f"Total latency {stat} by region" in titles


def test_edge_thresholds_and_alarms_come_from_the_alarm_definitions(planned):
    result = planned["prod"]
    a = result.plan.config.emf_edge.alarms
    edge = _bodies(result)["edge"]
    drawn = {h["value"] for w in edge["widgets"] if w["type"] == "metric"
             for h in w["properties"].get("annotations", {}).get("horizontal", [])}
    assert {a.inference_latency_avg_ms, a.inference_latency_p95_ms, a.error_count, a.cache_hit_rate_min} <= drawn
    alarms = {al.region: set() for al in result.plan.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")}
    for al in result.plan.of_type("aws:cloudwatch/metricAlarm:MetricAlarm"):
        if al.parent and al.parent.startswith("emf-edge"):
            alarms[al.region].add(al.inputs["name"])
    shown: dict[str, set[str]] = {}
    for w in edge["widgets"]:
        if w["type"] == "alarm":
            for arn in w["properties"]["alarms"]:
                region, name = arn.split(":")[3], arn.split(":alarm:")[1]
                assert ":222222222222:" in arn  # the prod account, from the stack's provider
                shown.setdefault(region, set()).add(name)
    assert shown == {r: n for r, n in alarms.items() if n}


def test_anomaly_dashboard_covers_every_configured_metric(planned):
    result = planned["staging"]
    cfg = result.plan.config
    body = _bodies(result)["anomaly"]
    per_metric: dict[str, set[str]] = {}
    functions = set()
    for w in body["widgets"]:
        for flat, opts in (_metric_lines(w) if w["type"] == "metric" else []):
            assert opts["region"] == cfg.aws.region
            if flat[0] == "AWS/Lambda":
                functions.add(flat[3])
                continue
            assert flat[0] == ANOMALY_NAMESPACE
            if len(flat) == 4:
                per_metric.setdefault(flat[3], set()).add(flat[1])
            else:
                assert flat[1] == "DetectorErrors"
    wanted = {"Actual", "Predicted", "UpperBound", "LowerBound", "Score", "Confidence", "IsAnomaly", "ForecastAge"}
    assert per_metric == {m.name: wanted for m in cfg.anomaly.metrics}
    assert functions == {"akidb-staging-anomaly-detector", "akidb-staging-anomaly-trainer"}
    alarms = {a.inputs["name"] for a in result.plan.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
              if a.parent and a.parent.startswith("anomaly")}
    shown = {arn.split(":alarm:")[1] for w in body["widgets"] if w["type"] == "alarm"
             for arn in w["properties"]["alarms"]}
    assert alarms and shown == alarms


def test_cloudwatch_slo_board_uses_the_availability_objective_and_tiers(planned):
    slo = next(s for s in load_slos() if s.kind == "availability")
    body = _bodies(planned["staging"])["slo"]
    exprs = [o["expression"] for w in body["widgets"] if w["type"] == "metric"
             for *_, o in w["properties"]["metrics"] if "expression" in o]
    assert any(f"/ {slo.error_budget:.10g}" in e for e in exprs)
    drawn = {h["value"] for w in body["widgets"] if w["type"] == "metric"
             for h in w["properties"].get("annotations", {}).get("horizontal", [])}
    assert drawn == {t.burn_rate for t in BURN_RATE_TIERS}
    assert body["start"] == f"-P{slo.window_days}D"


def test_grafana_config_maps_are_labelled_for_the_sidecar(planned):
    for result in planned.values():
        cfg = result.plan.config
        cms = grafana_config_maps(result.plan)
        assert cms
        for cm in cms:
            meta = cm.inputs["metadata"]
            assert meta["labels"][cfg.dashboards.grafana_dashboard_label] == "1"
            assert meta["annotations"][cfg.dashboards.grafana_folder_annotation] == cfg.dashboards.grafana_folder
            assert meta["namespace"] == cfg.kubernetes.namespace


def test_golden_signals_queries_follow_the_slo_definitions():
    slos = load_slos()
    board = golden_signals(slos).to_json()
    text = json.dumps(board)
    for s in slos:
        assert str(s.total_selector).replace('"', '\\"') in text
    lat = next(s for s in slos if s.kind == "latency")
    thresholds = [st["value"] for p in board["panels"] if p["title"].startswith("Latency p50")
                  for st in p["fieldConfig"]["defaults"]["thresholds"]["steps"]]
    assert lat.threshold_seconds in thresholds
    # A changed SLO changes the dashboard: move the latency threshold and the objective.
    moved = [dataclasses.replace(s, threshold_seconds=0.05, objective=0.99) if s.kind == "latency" else s
             for s in slos]
    moved_text = json.dumps(golden_signals(moved).to_json())
    assert moved_text != text and '"value": 0.05' in moved_text and '"value": 0.99' in moved_text
    titles = {p["title"] for p in board["panels"]}
    assert {"Latency p50 / p95 / p99", "Requests per second", "5xx error ratio", "CPU", "Memory"} <= titles


def test_slo_board_draws_every_tier_and_is_the_one_alerts_link_to():
    slos = load_slos()
    board = slo_board(slos).to_json()
    assert board["uid"] == SLO_DASHBOARD_UID
    assert [v["name"] for v in board["templating"]["list"]] == ["datasource", "service", "slo"]
    burn_panels = [p for p in board["panels"] if p["title"].startswith("Burn rate")]
    assert len(burn_panels) == len(BURN_RATE_TIERS)
    for panel, tier in zip(burn_panels, BURN_RATE_TIERS, strict=True):
        steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
        assert steps[-1]["value"] == tier.burn_rate
        assert panel["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] != "off"
        exprs = [t["expr"] for t in panel["targets"]]
        assert any(f"ratio_rate{tier.long_window}" in e for e in exprs)
        assert any(f"ratio_rate{tier.short_window}" in e for e in exprs)
    titles = {p["title"] for p in board["panels"]}
    assert "Error budget remaining" in titles and any("exhaustion" in t for t in titles)
    assert all(e for _, e in expressions(board))


def test_disabled_components_get_no_widgets(run_stack):
    # The probes board reads only the probes, the outcomes board the runbook webhook's incident timeline: switch
    # them off too to see no CloudWatch dashboard at all.
    result = run_stack("staging", overrides={"emfEdge": {"enabled": False}, "anomaly": {"enabled": False},
                                             "synthetics": {"enabled": False},
                                             "sloAlerting": {"runbooks": {"enabled": False}}})
    assert _mine(result) == []
    # edge, anomaly and the edge SLO board all read disabled parts; the coverage board draws the severity topics
    assert set(_bodies(result)) == {"coverage"}
    assert grafana_config_maps(result.plan)


def test_without_slo_alerting_there_is_no_slo_board(run_stack):
    result = run_stack("staging", overrides={"sloAlerting": {"enabled": False}})
    assert result.config_problems == [] and _mine(result) == []
    assert set(_bodies(result)) == {"edge", "anomaly", "probes", "coverage"}
    assert {k for cm in grafana_config_maps(result.plan) for k in cm.inputs["data"]} == {"golden-signals.json"}


def test_without_kubernetes_only_cloudwatch_is_deployed(run_stack):
    result = run_stack("staging", overrides={"kubernetes": {"enabled": False}, "xray": {"enabled": False}})
    assert result.config_problems == [] and _mine(result) == []
    assert grafana_config_maps(result.plan) == []
    assert len(result.plan.of_type(DASHBOARD)) == 6  # edge, anomaly, slo, probes, outcomes, coverage


def test_bad_dashboard_settings_are_config_errors(run_stack):
    result = run_stack("staging", overrides={"dashboards": {"grafanaDashboardLabel": "not a label!",
                                                             "grafanaFolder": ""}})
    assert result.exit_code == 2
    text = "\n".join(result.config_problems)
    assert "dashboards.grafanaDashboardLabel" in text and "dashboards.grafanaFolder" in text
