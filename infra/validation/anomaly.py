"""Plan-time rules of the anomaly component: the metric contract, its Lambdas and its bucket."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from infra.components import anomaly
from infra.validation import Plan, PlannedResource, Violation, rule
from lambdas.anomaly_core import metrics as contract

COMPONENT_TYPE = anomaly.TOKEN


def _members(plan: Plan) -> list[PlannedResource]:
    components = {r.name for r in plan.of_type(COMPONENT_TYPE)}
    return [r for r in plan.resources if r.parent in components]


@rule
def anomaly_alarms_follow_the_contract(plan: Plan) -> Iterator[Violation]:
    """Alarms on AkiDB/AnomalyDetection name a metric the detector publishes, with exactly its dimensions."""
    for a in plan.of_type("aws:cloudwatch/metricAlarm:MetricAlarm"):
        # The alarm's own metric and those of its metric-math queries (the episode pages).
        metrics = [a.inputs, *((q.get("metric") or {}) for q in a.inputs.get("metricQueries") or [])]
        for m in metrics:
            if m.get("namespace") == contract.NAMESPACE:
                yield from _contract_problems(a.label, m.get("metricName"), m.get("dimensions"))


def _contract_problems(label: str, name: Any, dimensions: Any) -> Iterator[Violation]:
    dims = sorted((dimensions if isinstance(dimensions, dict) else {}).keys())
    if name in contract.PER_METRIC:
        expected = [contract.METRIC_DIMENSION]
    elif name in contract.HEALTH:
        expected = sorted(contract.HEALTH[name][1])
    else:
        yield Violation("anomaly_alarms_follow_the_contract", label,
                        f"{name!r} is not published by the detector; allowed: {list(contract.ALL_METRICS)}")
        return
    if dims != expected:
        yield Violation("anomaly_alarms_follow_the_contract", label,
                        f"{name} is published with dimensions {expected}, the alarm uses {dims}")


@rule
def anomaly_functions_traced_and_bounded(plan: Plan) -> Iterator[Violation]:
    """Both functions: active X-Ray tracing, one concurrent run (the detector's state is read-modify-write)."""
    for fn in (r for r in _members(plan) if r.type == "aws:lambda/function:Function"):
        if (fn.inputs.get("tracingConfig") or {}).get("mode") != "Active":
            yield Violation("anomaly_functions_traced_and_bounded", fn.label, "tracingConfig.mode must be Active")
        if fn.inputs.get("reservedConcurrentExecutions") != 1:
            yield Violation("anomaly_functions_traced_and_bounded", fn.label,
                            "reservedConcurrentExecutions must be 1 (no overlapping runs on the same state)")


@rule
def anomaly_bucket_keeps_bounded_history(plan: Plan) -> Iterator[Violation]:
    """The model bucket is versioned and old versions expire (models are rewritten every week)."""
    members = _members(plan)
    for b in (r for r in members if r.type == "aws:s3/bucket:Bucket"):
        name = b.outputs.get("bucket") or b.inputs.get("bucket")
        versioned = [r for r in members if r.type == "aws:s3/bucketVersioning:BucketVersioning"
                     and r.inputs.get("bucket") == name
                     and (r.inputs.get("versioningConfiguration") or {}).get("status") == "Enabled"]
        lifecycle = [r for r in members if r.type == "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
                     and r.inputs.get("bucket") == name
                     and any(rule_.get("status") == "Enabled" and rule_.get("noncurrentVersionExpiration")
                             for rule_ in r.inputs.get("rules") or [])]
        if not versioned:
            yield Violation("anomaly_bucket_keeps_bounded_history", b.label, "versioning is not enabled")
        if not lifecycle:
            yield Violation("anomaly_bucket_keeps_bounded_history", b.label,
                            "no enabled lifecycle rule expiring noncurrent versions")
