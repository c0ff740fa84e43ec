"""The one definition of the edge function's CloudWatch Embedded Metric Format output.

The handler writes its per-request document with `document()`; infra (alarms, dashboards and the plan-time
consistency check) imports `METRICS` and `DIMENSION_SETS` from here, so a metric or dimension can only be
renamed in one place. Standard library only: infra imports this without onnxruntime.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

DEFAULT_NAMESPACE = "AkiDB/Edge"

# Dimension keys. EdgeRegion is the region the replica executes in (AWS_REGION), never the distribution id.
EDGE_REGION = "EdgeRegion"
MODEL = "Model"

# Metric name -> EMF unit. Counters are emitted as 0/1 on every request they apply to, so Sum counts events and
# Average is a rate (CacheHit average = share of requests served by an already-warm container).
METRICS: dict[str, str] = {
    "InferenceLatency": "Milliseconds",  # tokenise + ONNX run + pooling (only when inference ran)
    "TotalLatency": "Milliseconds",  # whole handler invocation, every request
    "TokenCount": "Count",  # tokens after the 128-token truncation (only when the text was tokenised)
    "RequestCount": "Count",  # 1 on every request
    "CacheHit": "Count",  # 1 when the model was already loaded in this container, else 0
    "ModelLoadTime": "Milliseconds",  # only in the document of the request that loaded the model (cold start)
    "ErrorCount": "Count",  # 1 on a 5xx answer, else 0
    "ClientErrorCount": "Count",  # 1 on a 4xx answer, else 0
}

# A dimensionless aggregate plus one breakdown per dimension: every set publishes a separate metric, and an alarm
# or widget must name exactly one of these sets (CloudWatch "Embedded metric format specification",
# https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html).
DIMENSION_SETS: list[list[str]] = [[], [EDGE_REGION], [MODEL]]

# Metrics present in every document (0/1 counters and the totals); the others appear only when they apply.
ALWAYS_EMITTED: tuple[str, ...] = ("TotalLatency", "RequestCount", "CacheHit", "ErrorCount", "ClientErrorCount")


def dimension_values(region: str, model: str) -> dict[str, str]:
    return {EDGE_REGION: region, MODEL: model}


def document(namespace: str, timestamp_ms: int, dimensions: Mapping[str, str],
             values: Mapping[str, float]) -> dict[str, object]:
    """One EMF document: the directive names only the metrics present in `values`, in METRICS order."""
    unknown = [name for name in values if name not in METRICS]
    if unknown:
        raise ValueError(f"not an EMF metric of the edge function: {unknown}; allowed: {sorted(METRICS)}")
    metrics = [{"Name": name, "Unit": unit} for name, unit in METRICS.items() if name in values]
    doc: dict[str, object] = {
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{"Namespace": namespace, "Dimensions": DIMENSION_SETS, "Metrics": metrics}],
        },
    }
    doc.update(dimensions)
    doc.update(values)
    return doc


def serialise(doc: Mapping[str, object]) -> str:
    """One line of JSON, as CloudWatch Logs expects an EMF record."""
    return json.dumps(doc, separators=(",", ":"))


def published_metrics(doc: Mapping[str, object]) -> set[tuple[str, str, tuple[tuple[str, str], ...]]]:
    """(namespace, metric, ((dim, value), ...)) for every metric an EMF document publishes.

    This is what CloudWatch extracts from a record: one metric per (directive metric x dimension set), with the
    dimension values read from the document's root. Used by the plan-time alarm check and the tests.
    """
    out: set[tuple[str, str, tuple[tuple[str, str], ...]]] = set()
    meta = doc.get("_aws")
    if not isinstance(meta, dict) or "CloudWatchMetrics" not in meta:
        raise ValueError("not an EMF document: no _aws.CloudWatchMetrics directive")
    for directive in meta["CloudWatchMetrics"]:
        for dims in directive["Dimensions"]:
            key = tuple(sorted((d, str(doc[d])) for d in dims))
            for metric in directive["Metrics"]:
                out.add((directive["Namespace"], metric["Name"], key))
    return out


def problems(doc: Mapping[str, object]) -> list[str]:
    """What makes a document invalid EMF (CloudWatch would drop the metrics silently); empty when valid."""
    out: list[str] = []
    meta = doc.get("_aws")
    if not isinstance(meta, dict) or not isinstance(meta.get("Timestamp"), int):
        return ["_aws.Timestamp (epoch milliseconds) is missing"]
    directives = meta.get("CloudWatchMetrics")
    if not isinstance(directives, list) or not directives:
        return ["_aws.CloudWatchMetrics is missing or empty"]
    for directive in directives:
        if not isinstance(directive.get("Namespace"), str) or not directive["Namespace"]:
            out.append("a directive has no Namespace")
        metrics = directive.get("Metrics") or []
        if not 1 <= len(metrics) <= 100:
            out.append(f"{len(metrics)} metrics in a directive (1..100 allowed)")
        for dims in directive.get("Dimensions") or []:
            if len(dims) > 30:
                out.append(f"dimension set {dims} has more than 30 keys")
            out.extend(f"dimension {d} has no string value at the root" for d in dims
                       if not isinstance(doc.get(d), str))
        for metric in metrics:
            value = doc.get(metric.get("Name"))
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                out.append(f"metric {metric.get('Name')} has no numeric value at the root")
            if metric.get("Unit") != METRICS.get(metric.get("Name")):
                out.append(f"metric {metric.get('Name')} has unit {metric.get('Unit')}, "
                           f"expected {METRICS.get(metric.get('Name'))}")
    return out
