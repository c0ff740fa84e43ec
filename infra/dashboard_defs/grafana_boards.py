"""The Grafana dashboards for the in-cluster Prometheus: Golden Signals, and SLO & error budget.

Every query is built from `infra/slo/spec.py`: the SLIs' selectors (Golden Signals read the same series the SLOs
count), the recorded series names (the SLO board plots exactly what `infra/slo/rules.py` records, checked at plan
time against the deployed PrometheusRules), the burn-rate tiers (thresholds drawn on each panel) and the objective
(read from the recorded `slo:objective:ratio` series, so a changed SLO changes rules and dashboards together).

The SLO board is one board for every SLO, selected with the `service` and `slo` variables: the burn-rate alerts
link to `/d/akidb-slo/?var-service=...&var-slo=...` (slo_spec.SLO_DASHBOARD_UID).
"""

from __future__ import annotations

from infra.config import StackConfig
from infra.core.promql import metric_names
from infra.dashboard_defs.grafana import GrafanaDashboard, Panel, Target, Threshold, row
from infra.slo.spec import (
    BURN_ALERT,
    BURN_RATE_TIERS,
    GOLDEN_SIGNALS_UID,
    SLO_DASHBOARD_UID,
    Slo,
    error_budget_remaining_metric,
    objective_metric,
    sli_error_ratio_metric,
)

RATE_WINDOW = "5m"  # Golden Signals resolution: the shortest window the SLO rules themselves use
# Saturation gauges akidb-rest exports besides the SLI series (the anomaly detector's default inputs read them
# too): (title, aggregation, metric, unit).
SATURATION = (
    ("CPU", "avg", "akidb_cpu_usage_percent", "percent"),
    ("Memory", "sum", "akidb_memory_usage_bytes", "bytes"),
    ("Active connections", "sum", "akidb_active_connections", "short"),
)
SEL = '{service="$service",slo="$slo"}'


def _availability(slos: list[Slo]) -> Slo:
    found = [s for s in slos if s.kind == "availability"]
    if not found:
        raise ValueError("Golden Signals need an availability SLO in rules/slos.yaml (its selectors are the traffic)")
    return found[0]


def _latency(slos: list[Slo]) -> list[Slo]:
    return [s for s in slos if s.kind == "latency" and s.good_selector is not None]


def input_contract_metrics(cfg: StackConfig) -> set[str]:
    """Metrics the stack reads from the cluster: SLI selectors, saturation gauges, anomaly inputs, and the inputs
    of the symptom alerts (up, working set, memory limits, requests in progress)."""
    names: set[str] = {m for _, _, m, _ in SATURATION}
    if cfg.slo_alerting.symptoms is not None:
        names |= cfg.slo_alerting.symptoms.input_metrics()
    for slo in cfg.slo_alerting.slos:
        for sel in (slo.total_selector, slo.bad_selector, slo.good_selector):
            if sel is not None:
                names.add(sel.metric)
                if sel.metric.endswith("_bucket"):
                    names.add(sel.metric[: -len("_bucket")] + "_count")
    for m in cfg.anomaly.metrics:
        if m.source == "prometheus":
            names |= metric_names(m.query)
    return names


def golden_signals(slos: list[Slo]) -> GrafanaDashboard:
    avail = _availability(slos)
    lats = _latency(slos)
    total = avail.total_selector
    job_matchers = ",".join(f'{n}{op}"{v}"' for n, op, v in total.matchers)
    w = RATE_WINDOW
    panels: list[Panel] = [row("Latency")]
    # One quantile panel per histogram, with the threshold of every latency SLO on it; one SLI panel per SLO.
    histograms: dict[str, list[Slo]] = {}
    for lat in lats:
        assert lat.good_selector is not None
        histograms.setdefault(str(lat.good_selector.without("le")), []).append(lat)
    for bucket, on_it in histograms.items():
        quantiles = [Target(f"histogram_quantile({q}, sum by (le) (rate({bucket}[{w}])))", f"p{int(q * 100)}")
                     for q in (0.5, 0.95, 0.99)]
        thresholds = [Threshold(lat.threshold_seconds or 0.0, "red", f"{lat.name} SLO threshold") for lat in on_it]
        lines = ", ".join(f"{lat.name} ({lat.threshold_seconds or 0.0:g} s)" for lat in on_it)
        panels.append(Panel("Latency p50 / p95 / p99" + (f" ({bucket})" if len(histograms) > 1 else ""),
                            quantiles, unit="s", minimum=0, thresholds=thresholds, draw_thresholds=True,
                            description=(f"Red line: the {on_it[0].name} SLO threshold "
                                         f"({on_it[0].threshold_seconds or 0.0:g} s)." if len(on_it) == 1
                                         else f"Red lines: the SLO thresholds of {lines}.")))
    for lat in lats:
        threshold = lat.threshold_seconds or 0.0
        panels.append(Panel(f"Requests within {threshold:g} s (latency SLI"
                            + (f" {lat.name})" if len(lats) > 1 else ")"),
                            [Target(f"1 - ({lat.error_ratio_query(w)})", "within threshold")],
                            unit="percentunit", maximum=1, base_color="red",
                            thresholds=[Threshold(lat.objective, "green", "objective")], draw_thresholds=True,
                            description=f"Objective {lat.objective:.10g}: {lat.description}."))
    panels.append(row("Traffic"))
    panels.append(Panel("Requests per second", [Target(avail.total_query(w), "requests/s")], unit="reqps",
                        minimum=0))
    panels.append(Panel("Requests per second by status", [
        Target(f"sum by (status) (rate({total}[{w}]))", "{{status}}")], unit="reqps", minimum=0))
    panels.append(row("Errors"))
    budget = avail.error_budget
    fast = next(t for t in BURN_RATE_TIERS if t.severity == "P0").burn_rate
    panels.append(Panel("5xx error ratio", [Target(avail.error_ratio_query(w), "5xx ratio")],
                        unit="percentunit", minimum=0,
                        thresholds=[Threshold(budget, "orange", "budget rate"),
                                    Threshold(budget * fast, "red", f"{fast:g}x budget rate")],
                        draw_thresholds=True,
                        description=(f"Orange: the rate that spends exactly the {avail.window} budget "
                                     f"({budget:.4%}); red: the paging burn rate ({fast:g}x).")))
    panels.append(Panel("Error responses per second by status", [
        Target(f'sum by (status) (rate({total.metric}{{{job_matchers},status=~"[45].."}}[{w}]))', "{{status}}")],
        unit="reqps", minimum=0))
    panels.append(row("Saturation"))
    for title, agg, metric, unit in SATURATION:
        panels.append(Panel(title, [Target(f"{agg}({metric}{{{job_matchers}}})", title.lower())], width=8,
                            unit=unit, minimum=0))
    return GrafanaDashboard(key="golden-signals", uid=GOLDEN_SIGNALS_UID, title="AkiDB Golden Signals",
                            panels=panels, tags=("akidb", "golden-signals"))


def _burn(window: str) -> str:
    return f"{sli_error_ratio_metric(window)}{SEL} / on(service, slo) (1 - {objective_metric()}{SEL})"


def slo_board(slos: list[Slo]) -> GrafanaDashboard:
    remaining = f"{error_budget_remaining_metric()}{SEL}"
    panels: list[Panel] = [row("All SLOs")]
    panels.append(Panel("Error budget remaining, every SLO", [
        Target(error_budget_remaining_metric(), "{{service}} {{slo}}")], kind="stat", width=24, height=4,
        unit="percentunit", base_color="red",
        thresholds=[Threshold(0, "orange"), Threshold(0.25, "green")]))
    panels.append(row("Selected SLO ($service / $slo)"))
    panels.append(Panel("Error budget remaining", [Target(remaining, "remaining")], kind="gauge", width=6,
                        unit="percentunit", maximum=1, base_color="red",
                        thresholds=[Threshold(0, "orange"), Threshold(0.25, "green")]))
    # Time to exhaustion at the last hour's pace: remaining share x period / burn rate (burn 1 = exactly the
    # period). One target per SLO because periods may differ; only the selected SLO's target returns data.
    exhaustion = [Target(f'{error_budget_remaining_metric()}{{service="$service",slo=~"$slo",slo="{s.name}"}} '
                         f"* {s.window_days * 24} / ({_burn('1h')} > 0)", s.name) for s in slos]
    panels.append(Panel("Time to exhaustion at the last hour's burn rate", exhaustion, kind="stat", width=6,
                        unit="h", base_color="red", thresholds=[Threshold(24, "orange"), Threshold(72, "green")],
                        description="Hours until the budget is spent if the last hour's burn rate continues; "
                                    "no value while nothing burns."))
    panels.append(Panel("Error budget remaining over time", [Target(remaining, "remaining")], width=12,
                        unit="percentunit", maximum=1, thresholds=[Threshold(0, "red", "spent")], draw_thresholds=True))
    # Alert states: Prometheus' own ALERTS series of the burn-rate alerts, so the board shows which tier fired.
    panels.append(Panel("Burn-rate alerts firing (by tier)", [Target(
        f'sum by (severity, tier) (ALERTS{{alertname="{BURN_ALERT}",alertstate="firing",service="$service",'
        f'slo="$slo"}})', "{{severity}} {{tier}}")], width=24, height=5, unit="short", minimum=0,
        description="1 while a tier's alert fires (both of its windows above its burn rate)."))
    for tier in BURN_RATE_TIERS:
        panels.append(Panel(
            f"Burn rate {tier.name} ({tier.severity}): {tier.long_window} & {tier.short_window}",
            [Target(_burn(tier.long_window), tier.long_window), Target(_burn(tier.short_window), tier.short_window)],
            width=8, unit="suffix:x", minimum=0, thresholds=[Threshold(tier.burn_rate, "red", "threshold")],
            draw_thresholds=True,
            description=f"Fires when both windows exceed {tier.burn_rate:g}x: {tier.why}."))
    return GrafanaDashboard(
        key="slo", uid=SLO_DASHBOARD_UID, title="AkiDB SLO & error budget", panels=panels, tags=("akidb", "slo"),
        time_from="now-7d", variables=[
            ("service", f"label_values({objective_metric()}, service)", slos[0].service),
            ("slo", f'label_values({objective_metric()}{{service="$service"}}, slo)', slos[0].name),
        ])


def grafana_boards(cfg: StackConfig, slo_rules_deployed: bool) -> list[GrafanaDashboard]:
    """Golden Signals always; the SLO board only where the SLO recording rules are deployed (else it is empty)."""
    slos = list(cfg.slo_alerting.slos)
    boards = [golden_signals(slos)]
    if slo_rules_deployed:
        boards.append(slo_board(slos))
    return boards
