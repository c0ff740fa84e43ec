"""Edge settings: the Lambda@Edge embedding function, its EMF metrics and alarms."""

from __future__ import annotations

from dataclasses import dataclass

from infra.config.schema import LOG_RETENTION_DAYS, setting


@dataclass(frozen=True)
class EdgeAlarmSettings:
    # CloudWatch takes 10, 20, 30 or multiples of 60; rules.py narrows that to what the metrics' resolution allows.
    period_s: int = setting(60, doc="alarm period (a multiple of 60: the edge metrics are standard resolution)",
                            minimum=10, maximum=86400)
    evaluation_periods: int = setting(3, doc="N of the M-of-N rule", minimum=1, maximum=1440)
    datapoints_to_alarm: int = setting(2, doc="M of the M-of-N rule", minimum=1, maximum=1440)
    # A latency threshold beyond the origin-request timeout (30 s) could never be crossed.
    inference_latency_avg_ms: float = setting(50.0, doc="average inference latency threshold", exclusive_minimum=0,
                                              maximum=30_000)
    inference_latency_p95_ms: float = setting(100.0, doc="p95 inference latency threshold", exclusive_minimum=0,
                                              maximum=30_000)
    error_count: float = setting(10.0, doc="errors per period threshold", minimum=0, maximum=1_000_000)
    cache_hit_rate_min: float = setting(0.8, doc="warm-container share below which the alarm fires",
                                        minimum=0.0, maximum=1.0)
    cache_hit_min_requests: int = setting(20, doc="requests per period below which the cache-hit rate is not judged "
                                                  "(a few cold starts at low traffic are normal)",
                                          minimum=1, maximum=1000000)


@dataclass(frozen=True)
class EmfEdgeConfig:
    enabled: bool = setting(True, doc="deploy the Lambda@Edge embedding function and its alarms")
    function_name: str = setting("edge-inference", doc="Lambda@Edge function name, after the <service>-<environment>- "
                                                       "prefix", pattern=r"^[A-Za-z0-9_-]{1,40}$")
    edge_regions: list[str] = setting(default_factory=lambda: ["us-east-1"], min_items=1, format="aws_region",
                                      doc="regions where replicas run and alarms are created")
    namespace: str = setting("AkiDB/Edge", doc="EMF namespace", pattern=r"^[\w./#:-]{1,255}$",
                             format="cloudwatch_namespace")
    model_name: str = setting("all-MiniLM-L6-v2-INT8", doc="model dimension value", format="emf_dimension_value")
    memory_mb: int = setting(1024, doc="function memory (origin-request max 10240)", minimum=128, maximum=10240)
    timeout_s: int = setting(10, doc="function timeout (origin-request max 30)", minimum=1, maximum=30)
    log_retention_days: int = setting(14, doc="retention of the replica log groups", choices=LOG_RETENTION_DAYS)
    alarms: EdgeAlarmSettings = setting(default_factory=EdgeAlarmSettings, doc="edge alarm thresholds")
    create_distribution: bool = setting(False, doc="create a CloudFront distribution for POST /embed")
    origin_domain: str | None = setting(None, doc="origin of that distribution (required when created)",
                                        format="dns_name")
