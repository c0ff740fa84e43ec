"""The one definition of what the anomaly detector publishes to CloudWatch (contract with the dashboards).

The detector builds its PutMetricData calls from these names; infra (alarms, IAM condition, dashboards) imports
them as `lambdas.anomaly_core.metrics`, so a metric, unit or dimension can only be renamed here. Standard library
only. Everything is published in the home region.
"""

from __future__ import annotations

NAMESPACE = "AkiDB/AnomalyDetection"

# The single dimension of every per-metric series: the configured metric name (anomaly.metrics[].name).
METRIC_DIMENSION = "Metric"

# Per-metric series (dimension Metric=<name>), published on every successful detection.
IS_ANOMALY = "IsAnomaly"  # 1 when the actual value is outside the forecast band, else 0
SCORE = "Score"  # anomaly score in [0, 1]: how far outside the band, scaled by the band width
CONFIDENCE = "Confidence"  # confidence in [0, 1] that this is a real anomaly (notifies above the threshold)
ACTUAL = "Actual"  # latest value read from the source
PREDICTED = "Predicted"  # Prophet yhat at that timestamp
UPPER_BOUND = "UpperBound"  # yhat_upper (95% interval)
LOWER_BOUND = "LowerBound"  # yhat_lower (95% interval)

# Detector health.
DETECTOR_ERRORS = "DetectorErrors"  # Count, no dimensions: missing data, NaN, source errors, stale/absent forecast
FORECAST_AGE = "ForecastAge"  # Seconds, dimension Metric: age of the forecast band used for that metric
# Count, dimension Reason, only when a run drops data: datums PutMetricData would refuse (see the detector).
DROPPED_POINTS = "DroppedPoints"
DROP_REASON_DIMENSION = "Reason"
DROP_REASONS = ("timestamp-future", "timestamp-past", "value-range", "refused")

MAX_ABS_VALUE = 2.0 ** 360  # PutMetricData rejects values beyond +-2^360 (and NaN, +-Infinity)

# Metric name -> CloudWatch unit, per-metric series in dashboard order.
PER_METRIC: dict[str, str] = {
    IS_ANOMALY: "None",
    SCORE: "None",
    CONFIDENCE: "None",
    ACTUAL: "None",
    PREDICTED: "None",
    UPPER_BOUND: "None",
    LOWER_BOUND: "None",
}

# Health metric -> (unit, dimension names).
HEALTH: dict[str, tuple[str, tuple[str, ...]]] = {
    DETECTOR_ERRORS: ("Count", ()),
    FORECAST_AGE: ("Seconds", (METRIC_DIMENSION,)),
}

# Every metric name the detector may publish (the IAM condition is on the namespace, this is for checks).
ALL_METRICS: tuple[str, ...] = (*PER_METRIC, *HEALTH)


def unit_of(metric: str) -> str:
    if metric in PER_METRIC:
        return PER_METRIC[metric]
    if metric in HEALTH:
        return HEALTH[metric][0]
    raise ValueError(f"not a metric of {NAMESPACE}: {metric!r}; allowed: {list(ALL_METRICS)}")


def dimensions(metric: str, metric_name: str | None) -> list[dict[str, str]]:
    """CloudWatch Dimensions for one datum: [{Name: Metric, Value: name}] or [] for DetectorErrors."""
    if metric == DETECTOR_ERRORS:
        return []
    if metric_name is None:
        raise ValueError(f"{metric} needs the dimension {METRIC_DIMENSION}")
    unit_of(metric)
    return [{"Name": METRIC_DIMENSION, "Value": metric_name}]
