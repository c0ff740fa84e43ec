"""Which dashboards a stack gets, from its config and the alarms the other components created.

A disabled component gets no widgets: its metrics would never exist, and the plan-time rules would (rightly)
refuse widgets naming them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from infra.config import StackConfig
from infra.dashboard_defs.anomaly import anomaly_dashboard
from infra.dashboard_defs.cloudwatch import AlarmRef, Dashboard
from infra.dashboard_defs.edge import edge_dashboard
from infra.dashboard_defs.grafana import GrafanaDashboard
from infra.dashboard_defs.grafana_boards import grafana_boards
from infra.dashboard_defs.log_queries import Placement
from infra.dashboard_defs.outcomes import outcomes_dashboard, outcomes_grafana_board
from infra.dashboard_defs.probes import probes_dashboard
from infra.dashboard_defs.slo import slo_dashboard


@dataclass(frozen=True)
class AlarmInputs:
    """Alarm names per region, as the emf-edge / anomaly / slo-alerting components expose them."""

    edge: Mapping[str, Sequence[str]] = field(default_factory=dict)
    anomaly: Mapping[str, Sequence[str]] = field(default_factory=dict)
    slo: Mapping[str, Sequence[str]] = field(default_factory=dict)
    edge_function_name: str | None = None  # physical name of the Lambda@Edge function (its replicas' metrics)
    anomaly_functions: Sequence[str] = ()  # physical names of the detector and trainer functions
    probes: Mapping[str, Sequence[str]] = field(default_factory=dict)  # probe + alerting-path alarms
    logs: Sequence[Placement] = ()  # the saved queries where they run (log widgets); none with logs off


def refs(by_region: Mapping[str, Sequence[str]]) -> list[AlarmRef]:
    return [AlarmRef(region, name) for region, names in by_region.items() for name in names]


def by_region(names: Mapping[str, Sequence[str]] | Sequence[str] | None, home: str) -> dict[str, list[str]]:
    """Normalise a component's `alarm_names`: a region map, or a plain list meaning the home region."""
    if names is None:
        return {}
    if isinstance(names, Mapping):
        return {str(r): sorted(str(n) for n in ns) for r, ns in names.items()}
    return {home: sorted(str(n) for n in names)}


def cloudwatch_dashboards(cfg: StackConfig, alarms: AlarmInputs) -> list[Dashboard]:
    out: list[Dashboard] = []
    if cfg.emf_edge.enabled:
        out.append(edge_dashboard(cfg, alarms.edge, alarms.edge_function_name, alarms.logs))
    if cfg.anomaly.enabled:
        out.append(anomaly_dashboard(cfg, refs(alarms.anomaly), alarms.anomaly_functions, alarms.logs))
    if cfg.slo_alerting.enabled and cfg.emf_edge.enabled:
        out.append(slo_dashboard(cfg, alarms.edge, refs(alarms.slo)))
    if cfg.synthetics.enabled and alarms.probes:
        out.append(probes_dashboard(cfg, alarms.probes))
    if timeline_deployed(cfg):  # the incident timeline's figures
        out.append(outcomes_dashboard(cfg, alarms.logs))
    return out


def timeline_deployed(cfg: StackConfig) -> bool:
    """The incident timeline (inside the runbook automation) publishes the outcome metrics."""
    return cfg.slo_alerting.enabled and cfg.slo_alerting.runbooks.enabled


def grafana_cloudwatch_enabled(cfg: StackConfig) -> bool:
    """Grafana gets the stack's CloudWatch datasource (and its read-only role)."""
    return cfg.kubernetes.enabled and cfg.dashboards.grafana_cloudwatch.enabled


def grafana_dashboards(cfg: StackConfig, slo_rules_deployed: bool) -> list[GrafanaDashboard]:
    """The Prometheus boards, and the outcomes board where Grafana can read CloudWatch and the timeline runs."""
    boards = grafana_boards(cfg, slo_rules_deployed)
    if grafana_cloudwatch_enabled(cfg) and timeline_deployed(cfg):
        boards.append(outcomes_grafana_board(cfg))
    return boards
