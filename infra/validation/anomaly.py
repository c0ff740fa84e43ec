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
    """Every function traced, with a reserved concurrency: 1 for a scheduled one (the dispatcher), at least the
    maximum concurrency of the event source mapping that feeds a queue consumer (issue 28)."""
    members = _members(plan)
    fns = {str(fn.inputs.get("name")): fn for fn in members if fn.type == "aws:lambda/function:Function"}
    fed = {_function_name(e.inputs.get("functionName")): e for e in members
           if e.type == "aws:lambda/eventSourceMapping:EventSourceMapping"}
    for fn_name, fn in fns.items():
        if (fn.inputs.get("tracingConfig") or {}).get("mode") != "Active":
            yield Violation("anomaly_functions_traced_and_bounded", fn.label, "tracingConfig.mode must be Active")
        reserved = fn.inputs.get("reservedConcurrentExecutions")
        esm = fed.get(fn_name)
        if esm is None:
            if reserved != 1:
                yield Violation("anomaly_functions_traced_and_bounded", fn.label,
                                "reservedConcurrentExecutions must be 1 for a scheduled function (one run at a time)")
            continue
        most = (esm.inputs.get("scalingConfig") or {}).get("maximumConcurrency")
        if not isinstance(most, int) or not isinstance(reserved, int) or reserved < most:
            yield Violation("anomaly_functions_traced_and_bounded", fn.label,
                            f"reservedConcurrentExecutions {reserved!r} must be set and at least the event source "
                            f"mapping's maximumConcurrency {most!r} (else SQS batches are throttled back)")


def _function_name(value: Any) -> str:
    return str(value or "").rsplit(":function:", 1)[-1].split(":")[0]


@rule
def anomaly_queues_fit_their_consumers(plan: Plan) -> Iterator[Violation]:
    """Each batch queue: KMS-encrypted, a dead-letter queue, a visibility timeout of at least six times its
    consumer's timeout (Lambda developer guide, "Configuring a queue to use with Lambda"), and a mapping that
    reports failed batches one by one (ReportBatchItemFailures) under a maximum concurrency."""
    members = _members(plan)
    fns = {str(fn.inputs.get("name")): fn for fn in members if fn.type == "aws:lambda/function:Function"}
    queues = {str(q.inputs.get("name")): q for q in members if q.type == "aws:sqs/queue:Queue"}
    for esm in (e for e in members if e.type == "aws:lambda/eventSourceMapping:EventSourceMapping"):
        q = queues.get(str(esm.inputs.get("eventSourceArn") or "").rsplit(":", 1)[-1])
        fn = fns.get(_function_name(esm.inputs.get("functionName")))
        if q is None or fn is None:
            yield Violation("anomaly_queues_fit_their_consumers", esm.label,
                            "the mapping must join a queue and a function of the anomaly component")
            continue
        if "ReportBatchItemFailures" not in (esm.inputs.get("functionResponseTypes") or []):
            yield Violation("anomaly_queues_fit_their_consumers", esm.label,
                            "functionResponseTypes must hold ReportBatchItemFailures (a failed batch alone returns)")
        if not (esm.inputs.get("scalingConfig") or {}).get("maximumConcurrency"):
            yield Violation("anomaly_queues_fit_their_consumers", esm.label,
                            "scalingConfig.maximumConcurrency is unset")
        timeout = int(fn.inputs.get("timeout") or 3)
        visibility = q.inputs.get("visibilityTimeoutSeconds")
        if not isinstance(visibility, int) or visibility < 6 * timeout:
            yield Violation("anomaly_queues_fit_their_consumers", q.label,
                            f"visibilityTimeoutSeconds {visibility!r} must be at least 6 x {timeout} s (the "
                            f"consumer's timeout)")
        if not q.inputs.get("kmsMasterKeyId"):
            yield Violation("anomaly_queues_fit_their_consumers", q.label, "kmsMasterKeyId is unset (KMS encryption)")
        if not q.inputs.get("redrivePolicy"):
            yield Violation("anomaly_queues_fit_their_consumers", q.label, "no redrivePolicy (dead-letter queue)")


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
