"""CloudWatch dashboard of the synthetic probes: the edge as users see it from each probe region.

Per probe region: the embed check's success (the user-perspective availability SLI) and latency, the REST
health checks, whether the canary runs at all (CloudWatchSynthetics SuccessPercent), and the region's probe and
alerting-path alarms. Every metric is the canary's EMF contract (`lambdas/canary/probes.py`), checked at plan
time by `catalog.probe_metrics`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from infra.config import StackConfig
from infra.config.synthetics import schedule_minutes
from infra.core.naming import Naming
from infra.dashboard_defs.cloudwatch import (
    PALETTE,
    RED,
    AlarmRef,
    Alarms,
    Dashboard,
    Graph,
    HLine,
    Metric,
    Widget,
    section,
)
from lambdas.canary import probes

SYNTHETICS_NAMESPACE = "CloudWatchSynthetics"
MAX_CANARY_NAME = 255


def probe_checks(cfg: StackConfig) -> list[str]:
    """The `Check` values every canary of this stack publishes (edge check when there is an edge URL)."""
    s = cfg.synthetics
    edge = bool(s.edge_url) or (cfg.emf_edge.enabled and cfg.emf_edge.create_distribution)
    return ([probes.EMBED_CHECK] if edge else []) + ([probes.health_check_name(p) for p in s.health_paths]
                                                     if s.rest_url else [])


def canary_name(cfg: StackConfig, region: str) -> str:
    """The canary's name (Synthetics: 1-255 characters of [0-9a-z_-]); also its CanaryName dimension."""
    return Naming(cfg.service, cfg.environment).physical("probe", region, max_len=MAX_CANARY_NAME).lower()


def _check(region: str, check: str, name: str, stat: str, label: str, color: str) -> Metric:
    return Metric(probes.NAMESPACE, name, region, dimensions=((probes.DIMENSION, check),), stat=stat, label=label,
                  color=color)


def probes_dashboard(cfg: StackConfig, alarms: Mapping[str, Sequence[str]]) -> Dashboard:
    s = cfg.synthetics
    period = schedule_minutes(s.schedule) * 60
    regions = list(s.probe_regions)
    colors = {r: PALETTE[i % len(PALETTE)] for i, r in enumerate(regions)}
    checks = probe_checks(cfg)
    home = cfg.aws.region
    widgets: list[Widget] = [section("Synthetic probes",
                       f"One canary per probe region, {s.schedule}: POST /embed through CloudFront (384 floats, "
                       "trace header kept) and the REST health endpoints. Success is the share of passing runs.")]
    if probes.EMBED_CHECK in checks:
        widgets.append(Graph(width=12, height=6, title="Edge availability seen by users (embed check success)",
                             region=home, period=period, y_min=0, y_max=1,
                             lines=[_check(r, probes.EMBED_CHECK, "Success", "Average", r, colors[r])
                                    for r in regions], hlines=[HLine(1.0, "every run passes")]))
        widgets.append(Graph(width=12, height=6, title="POST /embed latency from each region (ms)", region=home,
                             period=period, y_min=0,
                             lines=[_check(r, probes.EMBED_CHECK, "Latency", "Average", r, colors[r])
                                    for r in regions],
                             hlines=[HLine(s.max_latency_ms * 0.5, "latency alarm"),
                                     HLine(float(s.max_latency_ms), "check fails", color=RED)]))
    health = [c for c in checks if c != probes.EMBED_CHECK]
    if health:
        widgets.append(Graph(width=12, height=6, title="REST health checks (success)", region=home, period=period,
                             y_min=0, y_max=1,
                             lines=[_check(r, c, "Success", "Average", f"{r} {c}", PALETTE[(i * len(health) + j)
                                                                                     % len(PALETTE)])
                                    for i, r in enumerate(regions) for j, c in enumerate(health)]))
    widgets.append(Graph(width=12, height=6, title="Canary runs passing (CloudWatchSynthetics SuccessPercent)",
                         region=home, period=period, y_min=0, y_max=100,
                         lines=[Metric(SYNTHETICS_NAMESPACE, "SuccessPercent", r,
                                       dimensions=(("CanaryName", canary_name(cfg, r)),), stat="Average", label=r,
                                       color=colors[r]) for r in regions]))
    for region in sorted(alarms):
        names = sorted(alarms[region])
        for i in range(0, len(names), 100):
            widgets.append(Alarms(width=12, height=6, title=f"Probe and alerting-path alarms ({region})",
                                  alarms=[AlarmRef(region, n) for n in names[i:i + 100]]))
    return Dashboard(key="probes", title="AkiDB synthetic probes and alerting path", widgets=widgets, start="-P1D")
