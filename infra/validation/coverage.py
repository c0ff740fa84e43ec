"""No blind spots: every AWS and Kubernetes resource of the plan has the alarms and widgets rules/coverage.yaml
requires for its type, or says why not (the map's `waived`, a `waivers` entry, or the resource's own
`coverage-waived` tag / `akidb.io/coverage-waived` annotation).

An alarm covers a requirement when it reads (directly or in a metric-math query) the required metric with the
resource's identifying dimensions, in the Region where the metric lives; a widget when a CloudWatch dashboard
draws it the same way. A value unknown at preview (an API id, a dashboard body built from one) is not judged:
unknown is not absent.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from infra.config.coverage import WAIVER_ANNOTATION, WAIVER_TAG, Required, TypeCoverage, load_coverage_map
from infra.plan.model import UNKNOWN
from infra.plan.types import DASHBOARD, PROMETHEUS_RULE
from infra.plan.types import METRIC_ALARM as ALARM
from infra.validation import Plan, PlannedResource, Violation, rule
from infra.validation.edge import EDGE_REGION, edge_functions

WATCHED_PREFIXES = ("aws:", "kubernetes:")
# The alerting path holds the alarms on the stack's own parts and the dashboards component draws them: a stack
# that switches one off says, in its config, that it does without those alarms (or widgets), not the others.
WATCHERS_OFF = "alertingPath.enabled and dashboards.enabled are false: the stack's own watchers are off by its config"

# The Prometheus alerts a workload needs are deployed by slo-alerting (its PrometheusRule): a stack that switches it
# off says, in its config, that it does without them.
RULES_OFF = "sloAlerting.enabled is false: the stack deploys no Prometheus rules by its config"

Dims = frozenset[tuple[str, str]]
Seen = tuple[str | None, str, str, Dims]  # (region, namespace, metric, dimensions)


@dataclass(frozen=True)
class Need:
    kind: str  # "alarm" | "widget" | "alert"
    region: str | None
    required: Required
    dims: Dims

    def describe(self) -> str:
        shown = ", ".join(f"{k}={v}" for k, v in sorted(self.dims))
        return f"{self.kind} on {self.required.label} {{{shown}}} in {self.region}"


def _path(res: PlannedResource, source: str) -> Any:
    if source.startswith("="):
        return source[1:]
    where, _, path = source.partition(".")
    node: Any = res.inputs if where == "inputs" else res.outputs
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def identity(res: PlannedResource, tc: TypeCoverage) -> dict[str, str] | None:
    """The dimensions naming the resource in its metrics; None when one is unknown (at a preview)."""
    out = {}
    for dim, source in tc.identity.items():
        value = _path(res, source)
        if value is None or value == UNKNOWN or not isinstance(value, str):
            return None
        out[dim] = value
    return out


def waiver(res: PlannedResource) -> str | None:
    """Why this resource needs no coverage, as its own definition says (tag or annotation)."""
    tags = res.inputs.get("tags") or {}
    annotations = res.get("metadata.annotations") or {}
    reason = (tags.get(WAIVER_TAG) if isinstance(tags, dict) else None) or \
        (annotations.get(WAIVER_ANNOTATION) if isinstance(annotations, dict) else None)
    return str(reason) if reason and str(reason).strip() else None


def _dims(raw: Any) -> Dims:
    return frozenset((str(k), str(v)) for k, v in (raw or {}).items()) if isinstance(raw, dict) else frozenset()


def alarmed(plan: Plan) -> set[Seen]:
    """Every (region, namespace, metric, dimensions) some metric alarm of the plan reads."""
    seen: set[Seen] = set()
    for alarm in plan.of_type(ALARM):
        i = alarm.inputs
        if i.get("metricName"):
            seen.add((alarm.region, str(i.get("namespace")), str(i["metricName"]), _dims(i.get("dimensions"))))
        for q in i.get("metricQueries") or []:
            m = q.get("metric") if isinstance(q, dict) else None
            if isinstance(m, dict):
                seen.add((alarm.region, str(m.get("namespace")), str(m.get("metricName")), _dims(m.get("dimensions"))))
    return seen


def _widget_rows(metrics: list[Any], region: str | None) -> Iterator[Seen]:
    previous: list[Any] = []
    for row in metrics:
        if not isinstance(row, list):
            continue
        opts = row[-1] if row and isinstance(row[-1], dict) else {}
        values = row[:-1] if opts else row
        # CloudWatch's shorthand: "." repeats the value at the same position of the previous row.
        values = [previous[i] if v == "." and i < len(previous) else v for i, v in enumerate(values)]
        previous = values
        if len(values) < 2 or any(not isinstance(v, str) for v in values):
            continue
        pairs = values[2:]
        dims = frozenset((pairs[i], pairs[i + 1]) for i in range(0, len(pairs) - 1, 2))
        yield (opts.get("region", region), values[0], values[1], dims)


def drawn(plan: Plan) -> set[Seen] | None:
    """Every metric a CloudWatch dashboard of the plan draws; None when a body is unknown (a preview)."""
    seen: set[Seen] = set()
    for board in plan.of_type(DASHBOARD):
        body = board.inputs.get("dashboardBody")
        if not isinstance(body, str) or UNKNOWN in body:
            return None
        for widget in json.loads(body).get("widgets", []):
            props = widget.get("properties") or {}
            seen |= set(_widget_rows(props.get("metrics") or [], props.get("region", board.region)))
    return seen


def _dead_letter_names(plan: Plan) -> set[str]:
    """Queues (by name) that are a redrive target or an on-failure destination: messages there are failures."""
    arns: set[str] = set()
    for q in plan.of_type("aws:sqs/queue:Queue"):
        policy = q.inputs.get("redrivePolicy")
        if isinstance(policy, str) and policy != UNKNOWN:
            arns.add(str(json.loads(policy).get("deadLetterTargetArn", "")))
    for cfg in plan.of_type("aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig"):
        dest = ((cfg.inputs.get("destinationConfig") or {}).get("onFailure") or {}).get("destination")
        if isinstance(dest, str):
            arns.add(dest)
    return {a.rsplit(":", 1)[-1] for a in arns if a.startswith("arn:aws:sqs:")}


def needs(plan: Plan, res: PlannedResource, tc: TypeCoverage) -> list[Need] | None:
    """What the map requires of this resource; None when its identity is unknown (not judged)."""
    ident = identity(res, tc)
    if ident is None:
        return None
    region = tc.region or res.region
    out = [Need("alarm", region, r, frozenset(ident.items())) for r in tc.alarms]
    out += [Need("widget", region, r, frozenset(ident.items())) for r in tc.widgets]
    if tc.dead_letter_alarms and ident.get("QueueName") in _dead_letter_names(plan):
        out += [Need("alarm", region, r, frozenset(ident.items())) for r in tc.dead_letter_alarms]
    if (tc.edge_alarms or tc.edge_widgets) and plan.config.emf_edge.enabled and \
            res.urn in {fn.urn for fn in edge_functions(plan)}:
        # Replicas report as `us-east-1.<name>` in the Region where they ran.
        replica = {**ident, "FunctionName": f"{EDGE_REGION}.{ident['FunctionName']}"}
        for edge_region in plan.config.emf_edge.edge_regions:
            out += [Need("alarm", edge_region, r, frozenset(replica.items())) for r in tc.edge_alarms]
            out += [Need("widget", edge_region, r, frozenset(replica.items())) for r in tc.edge_widgets]
        # The function itself is never invoked (CloudFront invokes the replicas): its own name is not required.
        out = [n for n in out if n.region in plan.config.emf_edge.edge_regions and
               dict(n.dims).get("FunctionName", "").startswith(f"{EDGE_REGION}.")]
    return out


def _met(need: Need, seen: set[Seen]) -> bool:
    return any(region == need.region and ns == need.required.namespace and metric in need.required.metrics
               and need.dims <= dims for region, ns, metric, dims in seen)


def _alert_exprs(plan: Plan) -> list[str]:
    exprs = []
    for pr in plan.of_type(PROMETHEUS_RULE):
        for group in pr.get("spec.groups") or []:
            exprs += [str(r.get("expr", "")) for r in group.get("rules") or [] if r.get("alert")]
    return exprs


@dataclass
class Judged:
    resource: PlannedResource
    waived: str | None = None
    unknown: bool = False
    met: tuple[Need, ...] = ()
    missing: tuple[Need, ...] = ()


def judge(plan: Plan) -> Iterator[Judged | str]:
    """Each watched resource judged against the map; a string for a type the map lacks."""
    cmap = load_coverage_map()
    seen_alarms = alarmed(plan)
    seen_widgets = drawn(plan)
    exprs: list[str] | None = None
    unmapped: set[str] = set()
    for res in plan.resources:
        if not res.type.startswith(WATCHED_PREFIXES) or not res.custom:
            continue
        tc = cmap.types.get(res.type)
        if tc is None:
            unmapped.add(res.type)
            continue
        alarms_on, widgets_on = plan.config.alerting_path.enabled, plan.config.dashboards.enabled
        why = tc.waived or cmap.waivers.get((res.type, res.name)) or waiver(res) or \
            (None if alarms_on or widgets_on else WATCHERS_OFF)
        if why:
            yield Judged(res, waived=why)
            continue
        if tc.alerts and not plan.config.slo_alerting.enabled:
            yield Judged(res, waived=RULES_OFF)
            continue
        if tc.alerts:
            exprs = _alert_exprs(plan) if exprs is None else exprs
            name = str(res.get("metadata.name", ""))
            alert_needs = [Need("alert", None, Required("prometheus", (series,)), frozenset({("name", name)}))
                           for series in tc.alerts]
            ok = [n for n in alert_needs if any(n.required.metrics[0] in e and name in e for e in exprs)]
            yield Judged(res, met=tuple(ok), missing=tuple(n for n in alert_needs if n not in ok))
            continue
        wanted = needs(plan, res, tc)
        if wanted is None:
            yield Judged(res, unknown=True)
            continue
        met: list[Need] = []
        missing: list[Need] = []
        for n in wanted:
            if not (alarms_on if n.kind == "alarm" else widgets_on):
                continue  # that half of the watchers is switched off by the stack's config
            seen = seen_alarms if n.kind == "alarm" else seen_widgets
            if seen is None:  # dashboards unknown at preview: widgets not judged
                continue
            (met if _met(n, seen) else missing).append(n)
        yield Judged(res, met=tuple(met), missing=tuple(missing))
    yield from sorted(unmapped)


def _violations(plan: Plan) -> Iterable[Violation]:
    for j in judge(plan):
        if isinstance(j, str):
            yield Violation("every_resource_is_covered", j,
                            "this resource type has no entry in rules/coverage.yaml: add the alarms and widgets it "
                            "needs (or `waived: <reason>` if it has no runtime signal of its own)")
            continue
        for n in j.missing:
            yield Violation("every_resource_is_covered", j.resource.label,
                            f"no {n.describe()} (rules/coverage.yaml, {j.resource.type}); add it, or say why not "
                            f"with tag {WAIVER_TAG} / annotation {WAIVER_ANNOTATION} = <reason>")


@rule
def every_resource_is_covered(plan: Plan) -> Iterator[Violation]:
    """Every AWS and Kubernetes resource has the alarms and widgets rules/coverage.yaml requires, or says why not."""
    yield from _violations(plan)


@dataclass
class MatrixRow:
    type: str
    resources: int = 0
    waived: int = 0
    alarms_met: int = 0
    alarms_required: int = 0
    widgets_met: int = 0
    widgets_required: int = 0


def coverage_matrix(plan: Plan) -> list[MatrixRow]:
    """Per watched type (waived types left out): resources, alarms and widgets required and present."""
    rows: dict[str, MatrixRow] = {}
    cmap = load_coverage_map()
    for j in judge(plan):
        if isinstance(j, str) or cmap.types[j.resource.type].waived:
            continue
        row = rows.setdefault(j.resource.type, MatrixRow(j.resource.type))
        row.resources += 1
        row.waived += j.waived is not None
        for n in j.met + j.missing:
            kind = "widgets" if n.kind == "widget" else "alarms"
            setattr(row, f"{kind}_required", getattr(row, f"{kind}_required") + 1)
            if n in j.met:
                setattr(row, f"{kind}_met", getattr(row, f"{kind}_met") + 1)
    return sorted(rows.values(), key=lambda r: r.type)
