"""Plan-time rules for dashboards: what PutDashboard and Grafana accept, and whether the graphs can show data.

CloudWatch accepts a widget naming a metric nobody publishes, or an alarm in another region, and draws an empty
graph forever; Grafana accepts a query that does not parse and shows "parse error" in the panel. Both are found
here, before deploy: layout (24 columns, no overlap), a region on every metric widget, every metric emitted by
this stack (or published by AWS) in the region the widget reads it from, math within one region, alarms that
exist where the widget looks, PromQL that promtool parses and names only recorded or contract metrics; in
Grafana, every panel's datasource is a template variable of the board or a datasource the stack provisions,
and the CloudWatch datasource authenticates without keys through a read-only role of Grafana's service account.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

import yaml

from infra.components.dashboards import (
    DASHBOARD_KEY_ANNOTATION,
    DATASOURCE_KEY_ANNOTATION,
    GRAFANA_CLOUDWATCH_ACTIONS,
    GRAFANA_CLOUDWATCH_ROLE,
)
from infra.config import AWS_REGION_PATTERN, StackConfig
from infra.core import promql, yamldoc
from infra.core.naming import MAX_IAM_ROLE_NAME, Naming
from infra.dashboard_defs import catalog
from infra.dashboard_defs.grafana import cloudwatch_targets, expressions
from infra.dashboard_defs.grafana_boards import input_contract_metrics
from infra.plan.types import DASHBOARD, PROMETHEUS_RULE
from infra.validation import Plan, PlannedResource, Violation, rule
from infra.validation.xray import irsa_problems

CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
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


# ---------------------------------------------------------------------------------------------- Grafana datasources

# What Grafana's CloudWatch datasource may authenticate with: the SDK's default chain (IRSA in the pod). `keys`
# puts an access key in the provisioning file; `credentials` reads a profile file nobody mounts.
KEYLESS_AUTH = ("default",)
_VARIABLE = re.compile(r"^\$(?:\{(\w+)\}|(\w+))$")


def datasource_config_maps(plan: Plan) -> list[PlannedResource]:
    return [cm for cm in plan.of_type(CONFIG_MAP)
            if DATASOURCE_KEY_ANNOTATION in ((cm.inputs.get("metadata") or {}).get("annotations") or {})]


def datasource_problems(doc: Any, home: str) -> tuple[dict[str, str], list[str]]:
    """(uid -> type, problems) of one provisioning file (Grafana's `apiVersion: 1` datasources format)."""
    if not isinstance(doc, dict) or doc.get("apiVersion") != 1 or not isinstance(doc.get("datasources"), list):
        return {}, ["not a Grafana provisioning file (apiVersion: 1 with a datasources list)"]
    found: dict[str, str] = {}
    problems: list[str] = []
    for ds in doc["datasources"]:
        if not isinstance(ds, dict) or not all(isinstance(ds.get(k), str) and ds.get(k) for k in ("name", "type",
                                                                                                     "uid")):
            problems.append(f"datasource {ds!r} needs a name, a type and a fixed uid (the panels name the uid)")
            continue
        found[ds["uid"]] = ds["type"]
        if ds["type"] != "cloudwatch":
            continue
        json_data = ds.get("jsonData") or {}
        if json_data.get("authType") not in KEYLESS_AUTH:
            problems.append(f"{ds['uid']}: authType {json_data.get('authType')!r}; allowed {', '.join(KEYLESS_AUTH)} "
                            "(the SDK chain: IRSA of Grafana's service account, no keys in a ConfigMap)")
        secrets = sorted(set(ds.get("secureJsonData") or {}) | {k for k in json_data if k in ("accessKey",
                                                                                             "secretKey")})
        if secrets:
            problems.append(f"{ds['uid']}: static credentials {', '.join(secrets)} in the provisioning file")
        region = json_data.get("defaultRegion")
        if not (isinstance(region, str) and re.match(AWS_REGION_PATTERN, region)):
            problems.append(f"{ds['uid']}: defaultRegion {region!r} is not an AWS region")
        elif region != home:
            problems.append(f"{ds['uid']}: defaultRegion {region} is not the stack's home region {home}")
    return found, problems


def panel_datasource_problems(board: dict[str, Any], provisioned: dict[str, str]) -> list[str]:
    """Every panel's and target's datasource exists: a datasource variable of this board (of the same plugin
    type), or a uid provisioned by the stack (of the same type). Grafana shows "datasource not found" otherwise."""
    variables = {str(v.get("name")): str(v.get("query")) for v in (board.get("templating") or {}).get("list", [])
                 if v.get("type") == "datasource"}
    problems: list[str] = []
    for panel in board.get("panels", []):
        if panel.get("type") == "row":
            continue
        title = str(panel.get("title"))
        refs = [("panel", panel.get("datasource"))]
        refs += [(f"target {t.get('refId')}", t.get("datasource") or panel.get("datasource"))
                 for t in panel.get("targets", [])]
        for where, ds in refs:
            if not isinstance(ds, dict) or not ds.get("uid") or not ds.get("type"):
                problems.append(f"'{title}' {where}: datasource {ds!r} needs a type and a uid")
                continue
            uid, kind = str(ds["uid"]), str(ds["type"])
            var = _VARIABLE.match(uid)
            if var:
                name = var.group(1) or var.group(2)
                if name not in variables:
                    problems.append(f"'{title}' {where}: datasource variable ${name} is not defined on the board "
                                    f"(defined: {', '.join(sorted(variables)) or 'none'})")
                elif variables[name] != kind:
                    problems.append(f"'{title}' {where}: variable ${name} lists {variables[name]} datasources, "
                                    f"the query is {kind}")
            elif uid not in provisioned:
                problems.append(f"'{title}' {where}: datasource uid {uid!r} is not provisioned by the stack "
                                f"(provisioned: {', '.join(sorted(provisioned)) or 'none'})")
            elif provisioned[uid] != kind:
                problems.append(f"'{title}' {where}: uid {uid} is a {provisioned[uid]} datasource, not {kind}")
        if panel.get("targets") and {json.dumps(d, sort_keys=True) for _, d in refs[1:]} != {
                json.dumps(panel.get("datasource"), sort_keys=True)}:
            problems.append(f"'{title}': targets use another datasource than the panel")
    return problems


def cloudwatch_target_problems(cfg: StackConfig, board: dict[str, Any], emitted: set[catalog.Emitted],
                               searchable: set[catalog.Emitted]) -> list[str]:
    """Each CloudWatch target reads a metric the stack publishes, in the region it is published in; a wildcard
    dimension only over a dimension set whose values are open (the timeline's Service/Severity)."""
    problems: list[str] = []
    for title, t in cloudwatch_targets(board):
        dims = t.get("dimensions") or {}
        if not isinstance(dims, dict) or not all(isinstance(v, str) for v in dims.values()):
            problems.append(f"'{title}' {t.get('refId')}: dimensions must map names to one value each")
            continue
        region = str(t.get("region"))
        if not re.match(AWS_REGION_PATTERN, region):
            problems.append(f"'{title}' {t.get('refId')}: region {region!r}")
            continue
        key = catalog.Emitted(str(t.get("namespace")), str(t.get("metricName")), catalog.dims(**dims), region)
        if catalog.WILDCARD in dims.values():
            if key not in searchable:
                problems.append(f"'{title}' {t.get('refId')}: a wildcard over {dict(dims)} of {key.namespace} "
                                f"{key.name} in {region} matches no series the stack publishes")
            continue
        msg = catalog.check_metric(cfg, key.namespace, key.name, key.dimensions, region, emitted)
        if msg:
            problems.append(f"'{title}' {t.get('refId')}: {msg}")
    return problems


def grafana_cloudwatch_role_problems(plan: Plan) -> list[tuple[str, str]]:
    """(resource, problem): the role Grafana reads CloudWatch with trusts only Grafana's service account and may
    only read metrics, only in the stack's regions."""
    cfg = plan.config
    role_name = Naming(cfg.service, cfg.environment).physical(GRAFANA_CLOUDWATCH_ROLE, max_len=MAX_IAM_ROLE_NAME)
    role = next((r for r in plan.of_type("aws:iam/role:Role") if r.inputs.get("name") == role_name), None)
    if role is None:
        return [("stack", f"no IAM role {role_name}: the CloudWatch datasource has no credentials")]
    out: list[tuple[str, str]] = []
    trust = json.loads(role.inputs.get("assumeRolePolicy") or "{}")
    for msg in irsa_problems(trust, cfg.kubernetes.oidc_provider_arn, cfg.kubernetes.namespace,
                             cfg.dashboards.grafana_cloudwatch.service_account):
        out.append((role.label, msg))
    policies = [r for r in plan.of_type("aws:iam/rolePolicy:RolePolicy") if r.inputs.get("role") == role_name]
    if not policies:
        out.append((role.label, "no policy: Grafana could read nothing"))
    for pol in policies:
        doc = json.loads(str(pol.inputs.get("policy") or "{}"))
        for stmt in doc.get("Statement", []):
            actions = stmt.get("Action")
            actions = actions if isinstance(actions, list) else [actions]
            extra = sorted(set(actions) - set(GRAFANA_CLOUDWATCH_ACTIONS))
            if stmt.get("Effect") == "Allow" and extra:
                out.append((pol.label, f"Grafana's datasource may only read metrics; also allows {', '.join(extra)}"))
            regions = ((stmt.get("Condition") or {}).get("StringEquals") or {}).get("aws:RequestedRegion")
            if sorted(regions or []) != sorted(cfg.alarm_regions):
                out.append((pol.label, f"aws:RequestedRegion {regions!r}; expected the stack's regions "
                                       f"{cfg.alarm_regions}"))
    return out


@rule
def grafana_datasources_exist(plan: Plan) -> Iterator[Violation]:
    """Every Grafana panel's datasource exists (a board variable or a datasource the stack provisions, of the
    panel's type); the provisioned CloudWatch datasource carries no keys, its role only reads metrics, and its
    panels read metrics the stack publishes."""
    name = "grafana_datasources_exist"
    cfg = plan.config
    provisioned: dict[str, str] = {}
    for cm in datasource_config_maps(plan):
        meta = cm.inputs.get("metadata") or {}
        label = cfg.dashboards.grafana_cloudwatch.datasource_label
        if (meta.get("labels") or {}).get(label) != "1":
            yield Violation(name, cm.label, f"label {label}=\"1\" missing: the datasource sidecar will not load it")
        if meta.get("namespace") != cfg.kubernetes.namespace:
            yield Violation(name, cm.label, f"namespace {meta.get('namespace')!r}; expected "
                                            f"{cfg.kubernetes.namespace!r} (Grafana's)")
        for key, text in (cm.inputs.get("data") or {}).items():
            try:
                doc = yamldoc.safe_load(str(text))
            except yaml.YAMLError as err:
                yield Violation(name, cm.label, f"{key} is not YAML: {err}")
                continue
            found, problems = datasource_problems(doc, cfg.aws.region)
            provisioned.update(found)
            for msg in problems:
                yield Violation(name, cm.label, f"{key}: {msg}")
    if "cloudwatch" in provisioned.values():
        for resource, msg in grafana_cloudwatch_role_problems(plan):
            yield Violation(name, resource, msg)
    emitted, searchable = catalog.stack_metrics(cfg), catalog.searchable_metrics(cfg)
    for cm in grafana_config_maps(plan):
        for key, board in _boards(cm):
            if isinstance(board, str):
                continue  # grafana_dashboards_valid reports it
            for msg in panel_datasource_problems(board, provisioned):
                yield Violation(name, cm.label, f"{key}: {msg}")
            for msg in cloudwatch_target_problems(cfg, board, emitted, searchable):
                yield Violation(name, cm.label, f"{key}: {msg}")
