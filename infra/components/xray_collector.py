"""ADOT collector configurations (agent and tail-sampling gateway) as Python data.

Generated from the stack config, never from string templates: `render()` turns a dict into the YAML the
collector reads (yaml.safe_dump, sorted keys, so the text and its checksum are deterministic), and the
validation rules of `infra/validation/xray.py` parse the same YAML back from the planned ConfigMaps.

Why two tiers: the tail sampler decides per trace, so every span of a trace must reach the same gateway
replica. The agent (one per node, where the services send) load-balances on trace ID to the gateway's
headless Service; the gateway keeps errors, slow traces and a fraction of the rest, then exports to X-Ray.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import yaml

from infra.config import XrayConfig

# Ports (the X-Ray daemon's contract, OTLP, and the health_check extension).
XRAY_UDP_PORT = 2000  # segments, the daemon protocol
XRAY_PROXY_PORT = 2000  # TCP: SDKs fetch sampling rules/targets here (awsxray receiver's proxy_server)
OTLP_GRPC_PORT = 4317
OTLP_HTTP_PORT = 4318
HEALTH_PORT = 13133
# The collector's own telemetry (otelcol_receiver_*, otelcol_exporter_*), scraped by Prometheus through a
# PodMonitor (https://opentelemetry.io/docs/collector/internal-telemetry/). 8888 is the collector's usual port;
# recent collectors bind it to localhost unless told otherwise, so the address is explicit.
METRICS_PORT = 8888
CONFIG_KEY = "collector.yaml"
CONFIG_DIR = "/conf"

# Tail-sampler memory: traces held while waiting `decision_wait`. 50k traces of ~20 spans fit in the
# gateway's memory limit with room for the memory_limiter's soft limit.
NUM_TRACES = 50_000
EXPECTED_NEW_TRACES_PER_SEC = 200


@dataclass(frozen=True)
class Endpoints:
    """Where the tiers find each other inside the cluster."""

    namespace: str
    gateway_headless_service: str

    @property
    def gateway_dns(self) -> str:
        return f"{self.gateway_headless_service}.{self.namespace}.svc.cluster.local"


def _health_check() -> dict[str, Any]:
    return {"health_check": {"endpoint": f"0.0.0.0:{HEALTH_PORT}"}}


def _telemetry() -> dict[str, Any]:
    """`service.telemetry`: internal metrics on 0.0.0.0:METRICS_PORT through a Prometheus pull reader (the
    `readers` form; the older `address` key is deprecated since collector v0.111)."""
    prometheus = {"host": "0.0.0.0", "port": METRICS_PORT}
    return {"metrics": {"level": "normal", "readers": [{"pull": {"exporter": {"prometheus": prometheus}}}]}}


def _memory_limiter() -> dict[str, Any]:
    # Percentages of the container's memory limit (cgroup): refuse data before the kernel OOM-kills the pod.
    return {"check_interval": "1s", "limit_percentage": 80, "spike_limit_percentage": 20}


def agent_config(cfg: XrayConfig, region: str, endpoints: Endpoints) -> dict[str, Any]:
    """The per-node agent: X-Ray daemon protocol + OTLP in, trace-ID-keyed load balancing out."""
    return {
        "extensions": _health_check(),
        "receivers": {
            "awsxray": {
                "endpoint": f"0.0.0.0:{XRAY_UDP_PORT}",
                "transport": "udp",
                # The daemon also served sampling rules to SDKs on TCP 2000; keep that contract too.
                "proxy_server": {"endpoint": f"0.0.0.0:{XRAY_PROXY_PORT}", "region": region},
            },
            "otlp": {"protocols": {
                "grpc": {"endpoint": f"0.0.0.0:{OTLP_GRPC_PORT}"},
                "http": {"endpoint": f"0.0.0.0:{OTLP_HTTP_PORT}"},
            }},
        },
        "processors": {
            "memory_limiter": _memory_limiter(),
            "batch": {"send_batch_size": 512, "timeout": "1s"},
        },
        "exporters": {
            "loadbalancing": {
                "routing_key": "traceID",
                # Plaintext OTLP inside the namespace; mTLS between the tiers is left to a service mesh.
                "protocol": {"otlp": {"timeout": "5s", "tls": {"insecure": True}}},
                "resolver": {"dns": {"hostname": endpoints.gateway_dns, "port": OTLP_GRPC_PORT}},
            },
        },
        "service": {
            "extensions": ["health_check"],
            "telemetry": _telemetry(),
            "pipelines": {"traces": {
                "receivers": ["awsxray", "otlp"],
                "processors": ["memory_limiter", "batch"],
                "exporters": ["loadbalancing"],
            }},
        },
    }


def sampling_percentage(cfg: XrayConfig) -> float:
    return round(cfg.sampling_fraction * 100, 6)


def tail_sampling_policies(cfg: XrayConfig) -> list[dict[str, Any]]:
    """Keep a trace if ANY policy keeps it: errors/faults, slow, then a fraction of the rest.

    The awsxray receiver sets span status ERROR for segments with a `cause` or an HTTP status >= 400, so the
    status_code policy sees X-Ray errors (4xx) and faults (5xx) as well as OTLP error spans."""
    return [
        {"name": "errors", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}},
        {"name": "slow", "type": "latency", "latency": {"threshold_ms": cfg.latency_threshold_ms}},
        {"name": "baseline", "type": "probabilistic",
         "probabilistic": {"sampling_percentage": sampling_percentage(cfg)}},
    ]


def gateway_config(cfg: XrayConfig, region: str) -> dict[str, Any]:
    """The gateway: OTLP in (from the agents' load balancer), tail sampling, X-Ray out."""
    return {
        "extensions": _health_check(),
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": f"0.0.0.0:{OTLP_GRPC_PORT}"}}}},
        "processors": {
            "memory_limiter": _memory_limiter(),
            "tail_sampling": {
                "decision_wait": f"{cfg.decision_wait_s}s",
                "num_traces": NUM_TRACES,
                "expected_new_traces_per_sec": EXPECTED_NEW_TRACES_PER_SEC,
                "policies": tail_sampling_policies(cfg),
            },
            "batch": {"send_batch_size": 256, "timeout": "1s"},
        },
        "exporters": {
            # Credentials come from IRSA (web identity token injected by EKS); region pinned to the stack's.
            "awsxray": {"region": region},
        },
        "service": {
            "extensions": ["health_check"],
            "telemetry": _telemetry(),
            "pipelines": {"traces": {
                "receivers": ["otlp"],
                "processors": ["memory_limiter", "tail_sampling", "batch"],
                "exporters": ["awsxray"],
            }},
        },
    }


def render(config: dict[str, Any]) -> str:
    return yaml.safe_dump(config, sort_keys=True, default_flow_style=False)


def checksum(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
