"""Anomaly detection settings: Prophet training, the scheduled detector and the metrics they watch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from infra.config.schema import LOG_RETENTION_DAYS, setting


@dataclass(frozen=True)
class AnomalyMetricSettings:
    name: str = setting(doc="metric id (used in S3 keys and the CloudWatch dimension)", pattern=r"^[a-z0-9_]{1,64}$")
    source: Literal["cloudwatch", "prometheus"] = setting(doc="where the history and the live value come from",
                                                          choices=("cloudwatch", "prometheus"))
    query: str = setting(doc="PromQL expression, or CloudWatch 'Namespace|MetricName|Stat|Dim=Value,...'",
                         format="query")
    seasonality_mode: Literal["additive", "multiplicative"] = setting(
        "additive", doc="Prophet seasonality mode", choices=("additive", "multiplicative"))
    hourly_seasonality: bool = setting(False, doc="add an hourly term (period=1/24 day)")
    mape_limit: float = setting(0.15, doc="validation error above which the model is flagged",
                                exclusive_minimum=0.0, maximum=10.0)


def _default_anomaly_metrics() -> list[AnomalyMetricSettings]:
    prom: Literal["prometheus"] = "prometheus"
    return [
        AnomalyMetricSettings(name="request_latency_p95", source=prom,
                              query='histogram_quantile(0.95, sum by (le) (rate('
                                    'akidb_request_duration_seconds_bucket{job="akidb-rest"}[5m])))'),
        AnomalyMetricSettings(name="request_rate", source=prom,
                              query='sum(rate(akidb_requests_total{job="akidb-rest"}[5m]))',
                              seasonality_mode="multiplicative"),
        AnomalyMetricSettings(name="active_connections", source=prom,
                              query='sum(akidb_active_connections{job="akidb-rest"})'),
        AnomalyMetricSettings(name="cpu_usage_percent", source=prom,
                              query='avg(akidb_cpu_usage_percent{job="akidb-rest"})'),
        AnomalyMetricSettings(name="memory_usage_bytes", source=prom,
                              query='sum(akidb_memory_usage_bytes{job="akidb-rest"})'),
    ]


@dataclass(frozen=True)
class AnomalyConfig:
    enabled: bool = setting(True, doc="deploy the Prophet trainer and the anomaly detector")
    metrics: list[AnomalyMetricSettings] = setting(default_factory=_default_anomaly_metrics, min_items=1,
                                                   doc="metrics forecast and watched")
    prometheus_url: str | None = setting(None, doc="Prometheus HTTP API reachable from the Lambdas (AMP or VPC)",
                                         format="prometheus_url")
    confidence_threshold: float = setting(0.545, doc="confidence above which an anomaly is notified (chosen "
                                          "by leave-one-family-out on nab-dev: CloudWatch 4% false episodes, 12 of "
                                          "16 windows; `make bench-anomaly`)",
                                          minimum=0.0, maximum=1.0)
    # Every episode (start and end) is a ticket: the anomaly topic's subscription to sloAlerting.ticketWebhookUrl.
    page_confidence: float = setting(0.9, doc="confidence at or above which a lasting anomaly pages (P1); at or "
                                     "above confidenceThreshold (every episode is a ticket)", minimum=0.0,
                                     maximum=1.0)
    page_after_minutes: int = setting(30, doc="minutes an anomaly must stay at pageConfidence before it pages "
                                      "(a multiple of the detector's 5-minute period)", minimum=5, maximum=1440)
    detect_schedule: str = setting("rate(5 minutes)", doc="detector schedule expression (every 5 minutes)",
                                   format="schedule")
    train_schedule: str = setting("cron(0 3 ? * SUN *)", doc="trainer schedule expression", format="schedule")
    history_days: int = setting(90, doc="days of 5-minute history fetched for training", minimum=14, maximum=365)
    forecast_max_age_hours: int = setting(192, doc="forecast age beyond which the detector stops scoring "
                                          "(the band covers 8 days: the weekly run plus a day of slack)",
                                          minimum=1, maximum=192)
    trainer_memory_mb: int = setting(3008, doc="trainer memory (Prophet fits on 90 days)", minimum=1024,
                                     maximum=10240)
    # Fan-out (issue 28): the dispatcher queues the metrics in batches; one batch is one detector (or trainer)
    # invocation. The detector's batch is sized to finish far inside its 60 s timeout on Lambda's CPU: Lambda gives
    # a function CPU in proportion to its memory (one vCPU at 1,769 MB: "Configuring Lambda function memory",
    # https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html), so the detector's 256 MB have ~0.14
    # vCPU; `make bench-detector` measured ~38 ms of detector CPU a metric, so 50 metrics are ~1.9 s of CPU, ~13 s
    # at 256 MB, a quarter of the timeout (room for slow S3 or source answers). 10,000 metrics are 200 batches:
    # 20 at once are 10 waves of ~13 s, well inside the 5-minute cycle.
    detect_batch_metrics: int = setting(50, doc="metrics per detection batch (one SQS message, one detector "
                                        "invocation; ~13 s at 256 MB, a quarter of the 60 s timeout)",
                                        minimum=1, maximum=2000)
    detect_max_concurrency: int = setting(20, doc="detector invocations at once (the event source mapping's "
                                          "maximum concurrency, also the function's reserved concurrency)",
                                          minimum=2, maximum=1000)
    # A Prophet fit on 90 days takes ~20-60 s with validation (benchmarks/fit_report.py): 5 metrics stay well
    # inside the trainer's 900 s timeout.
    train_batch_metrics: int = setting(5, doc="metrics per training batch (one trainer invocation; Prophet fits "
                                       "of up to a minute each, inside the 900 s timeout)", minimum=1, maximum=50)
    train_max_concurrency: int = setting(5, doc="trainer invocations at once (maximum concurrency of its event "
                                         "source mapping, and its reserved concurrency)", minimum=2, maximum=100)
    log_retention_days: int = setting(30, doc="retention of the trainer and detector log groups",
                                      choices=LOG_RETENTION_DAYS)
    noncurrent_version_days: int = setting(30, doc="days old model/band/state versions are kept",
                                           minimum=1, maximum=3650)
