"""CloudWatch SLO dashboard: the edge's availability against the availability SLO of `rules/slos.yaml`.

What CloudWatch can show: the REST SLOs are computed from Prometheus series CloudWatch never sees (they are on
the Grafana "SLO & error budget" board). CloudWatch has the edge function's EMF counters, and ErrorCount is 0/1
per request, so its Average over a period IS the 5xx ratio of that period, and Sum(ErrorCount)/Sum(RequestCount)
over the shown range is the ratio of the whole range. So this board applies the availability objective to the
edge, per region (metric math cannot combine regions), with the SLO's burn-rate tiers as threshold lines.
CloudWatch has no sliding windows: each window is drawn as a period of that length (tumbling buckets), and at the
30-day default range the console coarsens windows shorter than about 30 minutes (zoom in to see them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from infra.config import StackConfig
from infra.dashboard_defs.cloudwatch import (
    GREEN,
    ORANGE,
    PALETTE,
    RED,
    AlarmRef,
    Alarms,
    Dashboard,
    Expression,
    Graph,
    HLine,
    Metric,
    Text,
    Widget,
    section,
)
from infra.slo.spec import BURN_RATE_TIERS, SLO_DASHBOARD_UID, Slo, duration_seconds
from lambdas.edge_inference import emf

PAGING = ("P0", "P1")


def _windows(severities: Sequence[str]) -> list[str]:
    found = {w for t in BURN_RATE_TIERS if t.severity in severities for w in (t.long_window, t.short_window)}
    return sorted(found, key=duration_seconds)


def _edge(cfg: StackConfig, name: str, region: str, stat: str, mid: str, period: int | None = None) -> Metric:
    return Metric(cfg.emf_edge.namespace, name, region, dimensions=((emf.EDGE_REGION, region),), stat=stat,
                  id=mid, period=period, visible=False)


def _mid(window: str) -> str:
    return f"ratio_{window}"


def _burn_graph(cfg: StackConfig, slo: Slo, region: str, severities: Sequence[str], title: str) -> Graph:
    windows = _windows(severities)
    budget = f"{slo.error_budget:.10g}"
    lines: list[Metric | Expression] = []
    for i, w in enumerate(windows):
        lines.append(_edge(cfg, "ErrorCount", region, "Average", _mid(w), duration_seconds(w)))
        lines.append(Expression(f"{_mid(w)} / {budget}", f"burn_{w}", f"{w} window",
                                color=PALETTE[i % len(PALETTE)]))
    tiers = [t for t in BURN_RATE_TIERS if t.severity in severities]
    hlines = [HLine(t.burn_rate, f"{t.name} {t.severity} {t.burn_rate:g}x ({t.long_window} & {t.short_window})",
                    RED if t.severity == "P0" else ORANGE)
              for t in sorted(tiers, key=lambda t: -t.burn_rate)]
    # Two tiers may share a burn rate (14.4x): one line per distinct value keeps the graph readable.
    distinct: dict[float, HLine] = {}
    for h in hlines:
        distinct.setdefault(h.value, h)
    return Graph(width=8, height=6, title=title, region=region, lines=lines, hlines=list(distinct.values()),
                 period=60, y_min=0, y_label="burn rate (x budget)")


def _budget(cfg: StackConfig, slo: Slo, region: str) -> Graph:
    budget = f"{slo.error_budget:.10g}"
    return Graph(width=4, height=6, title=f"Budget left ({region})", region=region, view="singleValue",
                 whole_range=True, period=3600,
                 lines=[_edge(cfg, "ErrorCount", region, "Sum", "errors"),
                        _edge(cfg, "RequestCount", region, "Sum", "requests"),
                        Expression(f"100 * (1 - (errors / requests) / {budget})", "budget_left",
                                   "% of budget left over the shown range", color=GREEN)])


def slo_dashboard(cfg: StackConfig, edge_alarms: Mapping[str, Sequence[str]],
                  slo_alarms: Sequence[AlarmRef]) -> Dashboard:
    slo = next(s for s in cfg.slo_alerting.slos if s.kind == "availability")
    grafana = f"{cfg.slo_alerting.grafana_base_url.rstrip('/')}/d/{SLO_DASHBOARD_UID}/"
    widgets: list[Widget] = [Text(width=24, height=3, markdown=(
        f"## Edge availability against the `{slo.name}` SLO ({slo.objective:.10g} over {slo.window})\n"
        f"5xx ratio of the edge function (ErrorCount / RequestCount) per region, as burn rate "
        f"(ratio / {slo.error_budget:.10g}); lines are the SLO's burn-rate tiers. The REST SLOs "
        f"(availability, latency) are computed by Prometheus: [Grafana SLO & error budget]({grafana}). "
        f"Open the last {slo.window} for the budget; zoom in for the short windows."))]
    for region in cfg.emf_edge.edge_regions:
        widgets.append(section(f"Edge region {region}"))
        widgets.append(_budget(cfg, slo, region))
        widgets.append(_burn_graph(cfg, slo, region, PAGING, f"Burn rate, paging windows ({region})"))
        widgets.append(_burn_graph(cfg, slo, region, ("P2",), f"Burn rate, ticket windows ({region})"))
        if edge_alarms.get(region):
            widgets.append(Alarms(width=4, height=6, title=f"Edge alarms ({region})",
                                  alarms=[AlarmRef(region, n) for n in edge_alarms[region]]))
    by_region: dict[str, list[AlarmRef]] = {}
    for ref in slo_alarms:
        by_region.setdefault(ref.region, []).append(ref)
    for region, refs in sorted(by_region.items()):
        widgets.append(Alarms(width=12, height=4, title=f"SLO alarms ({region})", alarms=refs))
    return Dashboard(key="slo", title="AkiDB SLO (edge availability)", widgets=widgets, start=f"-P{slo.window_days}D")
