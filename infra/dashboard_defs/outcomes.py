"""Outcome panels: the plan's headline figures measured from real incidents (the incident timeline in
lambdas/runbook_automation/timeline.py), weekly p50/p90 against the plan's targets.

Targets (the project plan's "expected outcomes"): MTTD < 5 min, MTTR < 15 min, < 10 alerts a week. The plan
gives no MTTA target, so time to acknowledge is drawn without one. Metric names and dimensions are the ones the
timeline publishes (tests/test_incident_timeline.py checks both sides agree). One definition (TARGETS, the
statistics, the weekly period) draws both boards: `outcomes_dashboard` (CloudWatch) and `outcomes_grafana_board`
(Grafana, through the CloudWatch datasource the dashboards component provisions).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from infra.config import StackConfig
from infra.dashboard_defs.cloudwatch import (
    BLUE,
    ORANGE,
    RED,
    Dashboard,
    Expression,
    Graph,
    HLine,
    Metric,
    Widget,
    section,
)
from infra.dashboard_defs.grafana import CloudWatchTarget, GrafanaDashboard, Panel, Threshold, row
from infra.dashboard_defs.log_queries import Placement, log_tables

OUTCOME_NAMESPACE = "AkiDB/Incidents"
WEEK_S = 7 * 86400
# Deploy markers (put by infra/tools/deploy_marker.py, one datum per phase of a deploy or rollback, dimensions
# Stack and Phase): drawn beside the incident figures so a page can be tied to the change before it.
DEPLOY_NAMESPACE = "AkiDB/Deploys"
DEPLOY_METRIC = "Deploy"
DEPLOY_PHASES = ("start", "end")
AUDIT_QUERY = "runbook-audit-trail"  # infra/dashboard_defs/log_queries.py
TIME_TO_DETECT, TIME_TO_ACKNOWLEDGE, TIME_TO_RESOLVE, PAGES = (
    "TimeToDetect", "TimeToAcknowledge", "TimeToResolve", "Pages")
DIMENSIONS = ("Service", "Severity")
GRAFANA_OUTCOMES_UID = "akidb-outcomes"


@dataclass(frozen=True)
class OutcomeTarget:
    metric: str
    title: str
    statistic: str  # the weekly statistic the target is about
    limit: float | None  # None: the plan sets none
    unit: str


TARGETS: tuple[OutcomeTarget, ...] = (
    OutcomeTarget(TIME_TO_DETECT, "Time to detect (condition start -> page)", "p50", 5 * 60, "s"),
    OutcomeTarget(TIME_TO_ACKNOWLEDGE, "Time to acknowledge (page -> ack)", "p50", None, "s"),
    OutcomeTarget(TIME_TO_RESOLVE, "Time to resolve (page -> final resolution)", "p50", 15 * 60, "s"),
    OutcomeTarget(PAGES, "Pages per week", "Sum", 10, "pages"),
)


def target(metric: str) -> OutcomeTarget:
    return next(t for t in TARGETS if t.metric == metric)


def weekly_statistics(t: OutcomeTarget) -> tuple[str, ...]:
    """The statistics drawn for a figure's stack-wide series: pages are counted, times shown as p50 and p90."""
    return ("Sum",) if t.metric == PAGES else ("p50", "p90")


def outcome_widgets(region: str, namespace: str = OUTCOME_NAMESPACE) -> list[Widget]:
    """CloudWatch: per figure a weekly p50/p90 (or weekly sum of pages) of the stack-wide series with the target
    line, then the same per service and severity (SEARCH over the per-service dimension set)."""
    widgets: list[Widget] = []
    colors = {"p50": BLUE, "p90": ORANGE, "Sum": BLUE}
    for t in TARGETS:
        hlines = [HLine(t.limit, f"target {t.statistic} < {t.limit:g} {t.unit}", RED)] if t.limit else []
        lines: list[Metric | Expression] = [
            Metric(namespace, t.metric, region, stat=stat, color=colors[stat], period=WEEK_S,
                   label="pages / week" if t.metric == PAGES else f"weekly {stat}")
            for stat in weekly_statistics(t)]
        widgets.append(Graph(width=12, height=6, title=f"{t.title}: weekly", region=region, lines=lines,
                             period=WEEK_S, hlines=hlines, y_label=t.unit, y_min=0))
        dims = ",".join(DIMENSIONS)
        widgets.append(Graph(
            width=12, height=6, title=f"{t.title}: per service and severity, weekly {t.statistic}", region=region,
            lines=[Expression(f"SEARCH('{{{namespace},{dims}}} MetricName=\"{t.metric}\"', '{t.statistic}', "
                              f"{WEEK_S})", id=f"by_{t.metric.lower()}", label="")],
            period=WEEK_S, hlines=hlines, y_label=t.unit, y_min=0))
    return widgets


def deploy_widget(stack: str, region: str) -> Graph:
    """Each deploy and rollback of `stack` as a spike at its start and end (Maximum: a marker repeated by a retry
    is still one)."""
    return Graph(width=24, height=4, title=f"Deploys and rollbacks of {stack} (start, end)", region=region,
                 lines=[Metric(DEPLOY_NAMESPACE, DEPLOY_METRIC, region, dimensions=(("Stack", stack), ("Phase", phase)),
                               stat="Maximum", period=60, label=f"deploy {phase}") for phase in DEPLOY_PHASES],
                 period=60, y_min=0)


def outcome_widget_dicts(region: str, account_id: str, namespace: str = OUTCOME_NAMESPACE) -> list[dict[str, Any]]:
    return [w.to_json(account_id) for w in outcome_widgets(region, namespace)]


def _grafana_panel(t: OutcomeTarget, title: str, targets: list[CloudWatchTarget]) -> Panel:
    limit = [Threshold(t.limit, "red", f"target {t.statistic} < {t.limit:g} {t.unit}")] if t.limit else []
    return Panel(title, targets, unit="s" if t.unit == "s" else "short", minimum=0, thresholds=limit,
                 draw_thresholds=bool(limit),
                 description=(f"Red line: the plan's target ({t.statistic} < {t.limit:g} {t.unit}); a week above it "
                              "opens a ticket." if t.limit else "The plan sets no target for this figure."))


def outcomes_grafana_board(cfg: StackConfig, namespace: str = OUTCOME_NAMESPACE) -> GrafanaDashboard:
    """Grafana (the stack's CloudWatch datasource): the same figures, statistics, period and targets as the
    CloudWatch outcomes board; per service and severity through a wildcard on both dimensions."""
    region = cfg.aws.region
    panels: list[Panel] = [row("Stack-wide, week by week, against the plan's targets")]
    for t in TARGETS:
        panels.append(_grafana_panel(t, f"{t.title}: weekly", [
            CloudWatchTarget(namespace, t.metric, region, stat, WEEK_S,
                             label="pages / week" if t.metric == PAGES else f"weekly {stat}")
            for stat in weekly_statistics(t)]))
    panels.append(row("Per service and severity"))
    wildcard = tuple((d, "*") for d in DIMENSIONS)
    for t in TARGETS:
        panels.append(_grafana_panel(t, f"{t.title}: per service and severity, weekly {t.statistic}", [
            CloudWatchTarget(namespace, t.metric, region, t.statistic, WEEK_S, wildcard,
                             label=" ".join(f"${{PROP('Dim.{d}')}}" for d in DIMENSIONS))]))
    # One board for every stack (dashboards/grafana): the deploys of each stack the account holds, one line each.
    panels += [row("Deploys"), Panel("Deploys and rollbacks per stack (start, end)", [
        CloudWatchTarget(DEPLOY_NAMESPACE, DEPLOY_METRIC, region, "Maximum", 60, (("Stack", "*"), ("Phase", phase)),
                         label=f"${{PROP('Dim.Stack')}} deploy {phase}")
        for phase in DEPLOY_PHASES], width=24, height=4, minimum=0,
        description="One spike per deploy phase (infra/tools/deploy_marker.py): tie a page to the change before it.")]
    # Weekly figures: an hourly refresh is plenty, and every refresh is billed GetMetricData.
    return GrafanaDashboard(key="outcomes", uid=GRAFANA_OUTCOMES_UID, title="AkiDB outcomes: detection, response "
                            "and pages against the plan", panels=panels, tags=("akidb", "outcomes"),
                            time_from="now-90d", refresh="1h")


def outcomes_dashboard(cfg: StackConfig, logs: Sequence[Placement] = ()) -> Dashboard:
    """What the incident timeline measured, week by week, against the plan's targets; then the runbook
    automation's audit trail (its saved Logs Insights query)."""
    home = cfg.aws.region
    note = ("From the PagerDuty incident timeline (signed V3 webhooks): time to detect = trigger - condition start, "
            "to acknowledge and to resolve from the trigger. Red lines are the plan's targets; a week above one "
            "opens a ticket.")
    return Dashboard(key="outcomes", title="AkiDB outcomes: detection, response and pages against the plan",
                     widgets=[section("Incident outcomes", note), deploy_widget(cfg.environment, home),
                              *outcome_widgets(home), *_audit_trail(logs)], start="-P90D")


def _audit_trail(logs: Sequence[Placement]) -> list[Widget]:
    tables = log_tables(logs, AUDIT_QUERY)
    note = "Every decision of the runbook webhook and worker (acted, refused, dry run) by incident."
    return [section("Runbook actions (audit trail)", note), *tables] if tables else []
