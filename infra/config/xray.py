"""Tracing settings (ADOT collector tiers, tail sampling, X-Ray rules and groups)."""

from __future__ import annotations

from dataclasses import dataclass

from infra.config.schema import PINNED_IMAGE_PATTERN, setting

_SERVICE_CHAR = r"[A-Za-z0-9_.:/%&#=+\\@*?-]"  # X-Ray segment-name characters and the * ? wildcards


@dataclass(frozen=True)
class SamplingRuleSettings:
    # X-Ray CreateSamplingRule: ServiceName at most 64 characters; segment-name characters plus the * ? wildcards.
    service_name: str = setting(doc="X-Ray service name the rule matches ('*' for any)",
                                pattern=rf"{_SERVICE_CHAR}(?:[ {_SERVICE_CHAR[1:-1]}]{{0,62}}{_SERVICE_CHAR})?")
    fixed_rate: float = setting(doc="head-sampling fraction after the reservoir", minimum=0.0, maximum=1.0)
    reservoir_size: int = setting(1, doc="traces per second always sampled", minimum=0, maximum=100000)
    priority: int = setting(100, doc="lower wins", minimum=1, maximum=9999)
    url_path: str = setting("*", doc="URL path the rule matches", pattern=r"[!-~]{1,128}")
    http_method: str = setting("*", doc="HTTP method the rule matches",
                               choices=("*", "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"))


@dataclass(frozen=True)
class XrayConfig:
    enabled: bool = setting(True, doc="deploy the tracing pipeline")
    # v0.43.3 (the multi-arch index digest; the tag is kept here because a digest names no version)
    collector_image: str = setting("public.ecr.aws/aws-observability/aws-otel-collector@sha256:"
                                   "8aa9ea5f67b8d318f7d6af24677e3c70f7098bc0631147cb5fa91addbe980b06",
                                   doc="ADOT collector image, pinned by digest (name[:tag]@sha256:<64 hex>)",
                                   pattern=PINNED_IMAGE_PATTERN)
    gateway_replicas: int = setting(2, doc="tail-sampling gateway replicas", minimum=2, maximum=20)
    latency_threshold_ms: int = setting(100, doc="traces slower than this are always kept", minimum=1, maximum=60000)
    sampling_fraction: float = setting(0.10, doc="fraction of healthy, fast traces kept",
                                       exclusive_minimum=0.0, maximum=1.0)
    decision_wait_s: int = setting(10, doc="how long the tail sampler waits for a trace's spans",
                                   minimum=1, maximum=120)
    default_fixed_rate: float = setting(1.0, doc="head-sampling rate of the default X-Ray rule",
                                        minimum=0.0, maximum=1.0)
    sampling_rules: list[SamplingRuleSettings] = setting(
        default_factory=lambda: [
            SamplingRuleSettings(service_name="akidb-rest", fixed_rate=1.0, reservoir_size=50, priority=100),
        ],
        doc="per-service head-sampling rules")
    insights_enabled: bool = setting(True, doc="X-Ray Insights on the error and slow groups")
