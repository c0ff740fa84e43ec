"""Plan-time rules for dashboards: what PutDashboard and Grafana accept, and whether the graphs can show data.

CloudWatch accepts a widget naming a metric nobody publishes, or an alarm in another region, and draws an empty
graph forever; Grafana accepts a query that does not parse and shows "parse error" in the panel. Both are found
here, before deploy: layout (24 columns, no overlap), a region on every metric widget, every metric emitted by
this stack (or published by AWS) in the region the widget reads it from, math within one region, alarms that
exist where the widget looks, PromQL that promtool parses and names only recorded or contract metrics.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

from infra.components.dashboards import DASHBOARD_KEY_ANNOTATION
from infra.config import AWS_REGION_PATTERN, StackConfig
from infra.dashboard_defs import catalog, promql
from infra.dashboard_defs.grafana import expressions
from infra.dashboard_defs.grafana_boards import input_contract_metrics
from infra.validation import Plan, PlannedResource, Violation, rule

DASHBOARD = "aws:cloudwatch/dashboard:Dashboard"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
PROMETHEUS_RULE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
ALARM_TYPES = ("aws:cloudwatch/metricAlarm:MetricAlarm", "aws:cloudwatch/compositeAlarm:CompositeAlarm")
WIDGET_TYPES = ("metric", "alarm", "text", "log", "explorer", "custom")
MAX_CONFIG_MAP_BYTES = 1024 * 1024
# CloudWatch quotas: widgets per dashboard, metrics per widget, metrics per dashboard.
MAX_WIDGETS, MAX_WIDGET_METRICS, MAX_DASHBOARD_METRICS = 500, 500, 2500
_MATH_ID = re.compile(r"(?<![\w.])([a-z][A-Za-z0-9_]*)\b(?!\s*\()")
_ALARM_ARN = re.compile(r"^arn:aws:cloudwatch:([a-z0-9-]+):(\d{12}):alarm:(.+)$")


# ---------------------------------------------------------------------------------------------- grid geometry


def grid_problems(boxes: Iterable[tuple[str, int, int, int, int]], max_height: int = 1000) -> list[str]:
    """Layout errors of (title, x, y, width, height) boxes on a 24-column grid: bounds and overlaps."""
    problems: list[str] = []
    placed: list[tuple[str, int, int, int, int]] = []
    for title, x, y, w, h in boxes:
        if not 1 <= w <= 24:
            problems.append(f"'{title}': width {w} (allowed 1-24)")
        if not 1 <= h <= max_height:
            problems.append(f"'{title}': height {h} (allowed 1-{max_height})")
        if x < 0 or y < 0:
            problems.append(f"'{title}': negative position ({x}, {y})")
        if x + w > 24:
            problems.append(f"'{title}': x {x} + width {w} exceeds the 24-column grid")
        for other, ox, oy, ow, oh in placed:
            if x < ox + ow and ox < x + w and y < oy + oh and oy < y + h:
                problems.append(f"'{title}' overlaps '{other}'")
        placed.append((title, x, y, w, h))
    return problems


def _int(value: Any) -> int:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else -1


# ---------------------------------------------------------------------------------------------- CloudWatch


def _bodies(plan: Plan) -> Iterator[tuple[PlannedResource, dict[str, Any] | str]]:
    """(dashboard, parsed body) or (dashboard, error text) when the body is not a JSON object."""
    for dash in plan.of_type(DASHBOARD):
        raw = dash.inputs.get("dashboardBody")
        try:
            body = json.loads(raw) if isinstance(raw, str) else None
        except json.JSONDecodeError as err:
            yield dash, f"dashboardBody is not JSON: {err}"
            continue
        if not isinstance(body, dict) or not isinstance(body.get("widgets"), list):
            yield dash, "dashboardBody must be an object with a 'widgets' list"
            continue
        yield dash, body


def _title(widget: dict[str, Any]) -> str:
    props = widget.get("properties") or {}
    return str(props.get("title") or props.get("markdown", "")[:40] or widget.get("type"))


@rule
def cloudwatch_dashboard_layout(plan: Plan) -> Iterator[Violation]:
    """Widget types, a 24-column layout without overlaps, and a region on every metric widget."""
    for dash, body in _bodies(plan):
        if isinstance(body, str):
            yield Violation("cloudwatch_dashboard_layout", dash.label, body)
            continue
        boxes = []
        for w in body["widgets"]:
            kind = w.get("type")
            if kind not in WIDGET_TYPES:
                yield Violation("cloudwatch_dashboard_layout", dash.label,
                                f"'{_title(w)}': widget type {kind!r}; allowed: {', '.join(WIDGET_TYPES)}")
            boxes.append((_title(w), _int(w.get("x")), _int(w.get("y")), _int(w.get("width")),
                          _int(w.get("height"))))
            region = (w.get("properties") or {}).get("region")
            if kind in ("metric", "log") and not (isinstance(region, str) and re.match(AWS_REGION_PATTERN, region)):
                yield Violation("cloudwatch_dashboard_layout", dash.label,
                                f"'{_title(w)}': metric widget without a valid region ({region!r})")
        for msg in grid_problems(boxes):
            yield Violation("cloudwatch_dashboard_layout", dash.label, msg)
        counts = [len((w.get("properties") or {}).get("metrics") or []) for w in body["widgets"]]
        if len(body["widgets"]) > MAX_WIDGETS or sum(counts) > MAX_DASHBOARD_METRICS:
            yield Violation("cloudwatch_dashboard_layout", dash.label,
                            f"{len(body['widgets'])} widgets / {sum(counts)} metrics; CloudWatch allows "
                            f"{MAX_WIDGETS} widgets and {MAX_DASHBOARD_METRICS} metrics per dashboard")
        for w, n in zip(body["widgets"], counts, strict=True):
            if n > MAX_WIDGET_METRICS:
                yield Violation("cloudwatch_dashboard_layout", dash.label,
                                f"'{_title(w)}': {n} metrics; CloudWatch allows {MAX_WIDGET_METRICS} per widget")


def _metric_line(line: list[Any]) -> tuple[dict[str, Any], list[Any]]:
    if line and isinstance(line[-1], dict):
        return line[-1], line[:-1]
    return {}, line


def metric_widget_problems(cfg: StackConfig, widget: dict[str, Any], emitted: set[catalog.Emitted]) -> list[str]:
    """Every metric a metric widget names exists in the region it reads it from; math stays in one region."""
    props = widget.get("properties") or {}
    title = _title(widget)
    widget_region = str(props.get("region"))
    problems: list[str] = []
    has_math = False
    regions: set[str] = set()
    ids = {str(line[-1]["id"]) for line in props.get("metrics") or []
           if isinstance(line, list) and line and isinstance(line[-1], dict) and line[-1].get("id")}
    for line in props.get("metrics") or []:
        if not isinstance(line, list) or not line:
            problems.append(f"'{title}': metric entry {line!r} is not a list")
            continue
        opts, flat = _metric_line(line)
        if "expression" in opts:
            has_math = True
            # Metric math ids start lower-case; functions (SUM, METRICS, ...) are upper-case.
            # Quoted text (a SEARCH query, a stat such as 'p50') holds no ids.
            bare = re.sub(r"'[^']*'|\"[^\"]*\"", "", str(opts["expression"]))
            unknown = sorted(set(_MATH_ID.findall(bare)) - ids)
            if unknown:
                problems.append(f"'{title}': expression {opts['expression']!r} refers to {', '.join(unknown)}, "
                                f"not an id of this widget ({', '.join(sorted(ids)) or 'none'})")
            continue
        if len(flat) < 2 or len(flat) % 2 or not all(isinstance(p, str) for p in flat):
            problems.append(f"'{title}': metric {flat!r} must be [namespace, name, dim, value, ...]")
            continue
        region = str(opts.get("region") or widget_region)
        regions.add(region)
        dims = tuple((flat[i], flat[i + 1]) for i in range(2, len(flat), 2))
        msg = catalog.check_metric(cfg, flat[0], flat[1], dims, region, emitted)
        if msg:
            problems.append(f"'{title}': {msg}")
    if has_math and regions - {widget_region}:
        problems.append(f"'{title}': metric math over metrics of {', '.join(sorted(regions))}; math runs in the "
                        f"widget's region {widget_region} and cannot read other regions")
    return problems


@rule
def cloudwatch_dashboard_metrics(plan: Plan) -> Iterator[Violation]:
    """Metrics exist (stack contracts or AWS) in the widget's region; alarm widgets show existing alarms."""
    cfg = plan.config
    emitted = catalog.stack_metrics(cfg)
    alarms = {(a.region, a.inputs.get("name") or a.inputs.get("alarmName")) for a in plan.of_type(*ALARM_TYPES)}
    for dash, body in _bodies(plan):
        if isinstance(body, str):
            continue
        for w in body["widgets"]:
            if w.get("type") == "metric":
                for msg in metric_widget_problems(cfg, w, emitted):
                    yield Violation("cloudwatch_dashboard_metrics", dash.label, msg)
            elif w.get("type") == "alarm":
                for msg in alarm_widget_problems(w, alarms):
                    yield Violation("cloudwatch_dashboard_metrics", dash.label, msg)


def alarm_widget_problems(widget: dict[str, Any], alarms: set[tuple[str | None, Any]]) -> list[str]:
    arns = (widget.get("properties") or {}).get("alarms") or []
    title = _title(widget)
    if not arns or len(arns) > 100:
        return [f"'{title}': an alarm widget shows 1-100 alarms, not {len(arns)}"]
    problems = []
    regions = set()
    for arn in arns:
        m = _ALARM_ARN.match(str(arn))
        if not m:
            problems.append(f"'{title}': {arn!r} is not a CloudWatch alarm ARN")
            continue
        regions.add(m.group(1))
        if (m.group(1), m.group(3)) not in alarms:
            problems.append(f"'{title}': alarm {m.group(3)} does not exist in {m.group(1)} in this stack")
    if len(regions) > 1:
        problems.append(f"'{title}': alarms of several regions ({', '.join(sorted(regions))}); one widget per region")
    return problems


# ---------------------------------------------------------------------------------------------- Grafana


def grafana_config_maps(plan: Plan) -> list[PlannedResource]:
    return [cm for cm in plan.of_type(CONFIG_MAP)
            if DASHBOARD_KEY_ANNOTATION in ((cm.inputs.get("metadata") or {}).get("annotations") or {})]


def _boards(cm: PlannedResource) -> Iterator[tuple[str, dict[str, Any] | str]]:
    for key, text in (cm.inputs.get("data") or {}).items():
        try:
            board = json.loads(text)
        except (TypeError, json.JSONDecodeError) as err:
            yield key, f"{key} is not JSON: {err}"
            continue
        yield key, board if isinstance(board, dict) else f"{key} is not a JSON object"


def prometheus_metrics(plan: Plan) -> set[str]:
    """Metrics a Grafana panel may read: recorded by the stack's rules, or in an input contract."""
    known = set(_input_contract(plan.config))
    for pr in plan.of_type(PROMETHEUS_RULE):
        for group in (pr.inputs.get("spec") or {}).get("groups") or []:
            for r in group.get("rules") or []:
                if r.get("record"):
                    known.add(str(r["record"]))
                if r.get("alert"):
                    known.add("ALERTS")  # Prometheus' series of alert states, present once alert rules exist
    return known


def _input_contract(cfg: StackConfig) -> set[str]:
    return input_contract_metrics(cfg)


@rule
def grafana_dashboards_valid(plan: Plan) -> Iterator[Violation]:
    """Sidecar label and folder, JSON, grid layout, PromQL that parses and names only known metrics."""
    cfg = plan.config
    dcfg = cfg.dashboards
    known = prometheus_metrics(plan)
    queries: list[tuple[str, str, str]] = []
    for cm in grafana_config_maps(plan):
        meta = cm.inputs.get("metadata") or {}
        if (meta.get("labels") or {}).get(dcfg.grafana_dashboard_label) != "1":
            yield Violation("grafana_dashboards_valid", cm.label,
                            f"label {dcfg.grafana_dashboard_label}=\"1\" missing: the sidecar will not load it")
        if (meta.get("annotations") or {}).get(dcfg.grafana_folder_annotation) != dcfg.grafana_folder:
            yield Violation("grafana_dashboards_valid", cm.label,
                            f"annotation {dcfg.grafana_folder_annotation}={dcfg.grafana_folder!r} missing")
        if meta.get("namespace") != cfg.kubernetes.namespace:
            yield Violation("grafana_dashboards_valid", cm.label,
                            f"namespace {meta.get('namespace')!r}; expected {cfg.kubernetes.namespace!r}")
        size = sum(len(str(v).encode()) for v in (cm.inputs.get("data") or {}).values())
        if size > MAX_CONFIG_MAP_BYTES:
            yield Violation("grafana_dashboards_valid", cm.label, f"{size} bytes exceeds the 1 MiB ConfigMap limit")
        for key, board in _boards(cm):
            if isinstance(board, str):
                yield Violation("grafana_dashboards_valid", cm.label, board)
                continue
            boxes = [(str(p.get("title")), _int((p.get("gridPos") or {}).get("x")),
                      _int((p.get("gridPos") or {}).get("y")), _int((p.get("gridPos") or {}).get("w")),
                      _int((p.get("gridPos") or {}).get("h"))) for p in board.get("panels", [])]
            for msg in grid_problems(boxes):
                yield Violation("grafana_dashboards_valid", cm.label, f"{key}: {msg}")
            for title, expr in expressions(board):
                queries.append((cm.label, f"{key} '{title}'", expr))
                unknown = sorted(promql.metric_names(expr) - known)
                if unknown:
                    yield Violation("grafana_dashboards_valid", cm.label,
                                    f"{key} '{title}': {', '.join(unknown)} is neither recorded by the stack's "
                                    f"rules nor in an input contract ({expr})")
    errors = promql.check_expressions([q for _, _, q in queries])
    for label, where, expr in queries:
        if expr in errors:
            yield Violation("grafana_dashboards_valid", label, f"{where}: PromQL does not parse: {errors[expr]}")
