"""Which CloudWatch metrics exist, where: the stack's own (from the emitters' contracts) and AWS's.

A dashboard widget that names a metric nobody publishes draws an empty graph forever, silently (the seed's
dimensionless `ErrorCount` widgets did exactly that). Every metric line is checked against this catalog at plan
time: namespace, name, exactly one emitted dimension set with valid values, and the region it is emitted in.
"""

from __future__ import annotations

from dataclasses import dataclass

from infra.config import StackConfig
from infra.config.coverage import load_coverage_map
from infra.dashboard_defs import outcomes
from infra.dashboard_defs.probes import probe_checks
from lambdas.anomaly_core import metrics as anomaly_metrics_contract
from lambdas.canary import probes
from lambdas.edge_inference import emf

# Anomaly detector output contract (lambdas/anomaly_core/metrics.py): per forecast metric with dimension
# Metric=<name>, and health metrics with their own dimension sets.
ANOMALY_NAMESPACE = anomaly_metrics_contract.NAMESPACE
ANOMALY_DIMENSION = anomaly_metrics_contract.METRIC_DIMENSION

# AWS namespaces a dashboard may name, the metrics we use of them, and where they exist (None: any region).
# CloudFront publishes only in us-east-1 (CloudFront Developer Guide, "Monitoring CloudFront metrics with
# Amazon CloudWatch").
AWS_METRICS: dict[str, tuple[frozenset[str], frozenset[str] | None]] = {
    "AWS/Lambda": (frozenset({"Invocations", "Errors", "Throttles", "Duration", "ConcurrentExecutions"}), None),
    "AWS/CloudFront": (frozenset({"Requests", "4xxErrorRate", "5xxErrorRate", "TotalErrorRate",
                                  "LambdaExecutionError", "LambdaValidationError"}), frozenset({"us-east-1"})),
    "AWS/SNS": (frozenset({"NumberOfMessagesPublished", "NumberOfNotificationsFailed"}), None),
    "AWS/Events": (frozenset({"Invocations", "FailedInvocations"}), None),
    # Synthetics' own metrics (per canary, in the canary's region).
    "CloudWatchSynthetics": (frozenset({"SuccessPercent", "Duration", "Failed"}), None),
}
# ... and every AWS metric the coverage map (rules/coverage.yaml) requires alarmed or drawn.
for _tc in load_coverage_map().types.values():
    for _req in (*_tc.alarms, *_tc.widgets, *_tc.edge_alarms, *_tc.edge_widgets, *_tc.dead_letter_alarms):
        if _req.namespace.startswith("AWS/") or _req.namespace == "CloudWatchSynthetics":
            _names, _regions = AWS_METRICS.get(_req.namespace,
                                               (frozenset(), frozenset({_tc.region}) if _tc.region else None))
            AWS_METRICS[_req.namespace] = (_names | set(_req.metrics), _regions)

Dims = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Emitted:
    namespace: str
    name: str
    dimensions: Dims
    region: str


def dims(**values: str) -> Dims:
    """Dimensions in a canonical (sorted) order, so lookups do not depend on the order a widget lists them."""
    return tuple(sorted(values.items()))


def edge_metrics(cfg: StackConfig) -> set[Emitted]:
    """Every (metric x dimension set) the edge replicas publish, in each region a replica runs in."""
    if not cfg.emf_edge.enabled:
        return set()
    out: set[Emitted] = set()
    ns = cfg.emf_edge.namespace
    for region in cfg.emf_edge.edge_regions:
        values = emf.dimension_values(region, cfg.emf_edge.model_name)
        for name in emf.METRICS:
            for dim_set in emf.DIMENSION_SETS:
                out.add(Emitted(ns, name, tuple(sorted((d, values[d]) for d in dim_set)), region))
    return out


def anomaly_metrics(cfg: StackConfig) -> set[Emitted]:
    if not cfg.anomaly.enabled:
        return set()
    home = cfg.aws.region
    out: set[Emitted] = set()
    for metric in cfg.anomaly.metrics:
        values = {ANOMALY_DIMENSION: metric.name}
        for name in anomaly_metrics_contract.PER_METRIC:
            out.add(Emitted(ANOMALY_NAMESPACE, name, dims(**values), home))
        for name, (_, dim_names) in anomaly_metrics_contract.HEALTH.items():
            out.add(Emitted(ANOMALY_NAMESPACE, name, tuple(sorted((d, values[d]) for d in dim_names)), home))
    return out


def probe_metrics(cfg: StackConfig) -> set[Emitted]:
    """The synthetic probes' EMF (lambdas/canary/probes.py): per check, in each probe region."""
    s = cfg.synthetics
    if not (cfg.dashboards.enabled and s.enabled):
        return set()
    return {Emitted(probes.NAMESPACE, name, dims(**{probes.DIMENSION: check}), region)
            for region in s.probe_regions for check in probe_checks(cfg) for name, _ in probes.METRICS}


def outcome_metrics(cfg: StackConfig) -> set[Emitted]:
    """The incident timeline's figures (lambdas/runbook_automation/timeline.py), stack-wide series in the home
    region (the per-service ones are read through SEARCH)."""
    if not (cfg.slo_alerting.enabled and cfg.slo_alerting.runbooks.enabled):
        return set()
    return {Emitted(outcomes.OUTCOME_NAMESPACE, t.metric, (), cfg.aws.region) for t in outcomes.TARGETS}


def deploy_metrics(cfg: StackConfig) -> set[Emitted]:
    """The deploy and rollback markers the workflows put for this stack (infra/tools/deploy_marker.py), in the
    home region, whatever the components: the deploy itself is what they mark."""
    return {Emitted(outcomes.DEPLOY_NAMESPACE, outcomes.DEPLOY_METRIC, dims(Stack=cfg.environment, Phase=phase),
                    cfg.aws.region) for phase in outcomes.DEPLOY_PHASES}


WILDCARD = "*"


def searchable_metrics(cfg: StackConfig) -> set[Emitted]:
    """Dimension sets published with values nobody can list in advance (a value of WILDCARD): readable only by
    a search over the dimension keys (CloudWatch SEARCH, Grafana's wildcard dimension). The timeline's
    per-service series: Service and Severity come from the alert that opened each incident; the deploy markers of
    every stack (Stack)."""
    deploys = {Emitted(outcomes.DEPLOY_NAMESPACE, outcomes.DEPLOY_METRIC, dims(Stack=WILDCARD, Phase=phase),
                       cfg.aws.region) for phase in outcomes.DEPLOY_PHASES}  # every stack's markers (Grafana)
    if not (cfg.slo_alerting.enabled and cfg.slo_alerting.runbooks.enabled):
        return deploys
    keys = dims(**{d: WILDCARD for d in outcomes.DIMENSIONS})
    return deploys | {Emitted(outcomes.OUTCOME_NAMESPACE, t.metric, keys, cfg.aws.region) for t in outcomes.TARGETS}


def stack_metrics(cfg: StackConfig) -> set[Emitted]:
    return edge_metrics(cfg) | anomaly_metrics(cfg) | probe_metrics(cfg) | outcome_metrics(cfg) | deploy_metrics(cfg)


def check_metric(cfg: StackConfig, namespace: str, name: str, dimensions: Dims, region: str,
                 emitted: set[Emitted] | None = None) -> str | None:
    """None when the metric exists in `region`; otherwise what is wrong and what would exist."""
    if namespace in AWS_METRICS:
        names, regions = AWS_METRICS[namespace]
        if name not in names:
            return f"{namespace} {name} is not a metric this project uses; known: {', '.join(sorted(names))}"
        if regions is not None and region not in regions:
            return f"{namespace} metrics exist only in {', '.join(sorted(regions))}, not {region}"
        return None
    catalog = stack_metrics(cfg) if emitted is None else emitted
    key = Emitted(namespace, name, tuple(sorted(dimensions)), region)
    if key in catalog:
        return None
    same_name = sorted({(e.dimensions, e.region) for e in catalog if (e.namespace, e.name) == (namespace, name)})
    if not same_name:
        return f"{namespace} {name} is emitted by nothing in this stack"
    emitting_regions = sorted({r for _, r in same_name})
    if region not in emitting_regions:
        return f"{namespace} {name} is emitted in {', '.join(emitting_regions)}, not {region}"
    sets = sorted({str(dict(d)) for d, r in same_name if r == region})
    return (f"{namespace} {name} with dimensions {dict(dimensions)} is not emitted in {region}; "
            f"emitted dimension sets: {', '.join(sets)}")
