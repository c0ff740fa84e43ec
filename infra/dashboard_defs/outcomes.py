"""Day 5 outcome panels: the plan's headline figures measured from real incidents (the incident timeline in
lambdas/runbook_automation/timeline.py), weekly p50/p90 against the plan's targets.

Targets (shared/seeds 000/001, "expected outcomes"): MTTD < 5 min, MTTR < 15 min, < 10 alerts a week. The plan
gives no MTTA target, so time to acknowledge is drawn without one. Metric names and dimensions are the ones the
timeline publishes (tests/test_incident_timeline.py checks both sides agree). Pure functions: the lead places the
widgets on a dashboard (`Graph` objects for the CloudWatch model, dicts for Grafana's CloudWatch datasource).
"""

from __future__ import annotations

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

OUTCOME_NAMESPACE = "AkiDB/Incidents"
WEEK_S = 7 * 86400
TIME_TO_DETECT, TIME_TO_ACKNOWLEDGE, TIME_TO_RESOLVE, PAGES = (
    "TimeToDetect", "TimeToAcknowledge", "TimeToResolve", "Pages")
DIMENSIONS = ("Service", "Severity")


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


def outcome_widgets(region: str, namespace: str = OUTCOME_NAMESPACE) -> list[Widget]:
    """CloudWatch: per figure a weekly p50/p90 (or weekly sum of pages) of the stack-wide series with the target
    line, then the same per service and severity (SEARCH over the per-service dimension set)."""
    widgets: list[Widget] = []
    for t in TARGETS:
        hlines = [HLine(t.limit, f"target {t.statistic} < {t.limit:g} {t.unit}", RED)] if t.limit else []
        if t.metric == PAGES:
            lines: list[Metric | Expression] = [
                Metric(namespace, t.metric, region, stat="Sum", label="pages / week", color=BLUE, period=WEEK_S)]
        else:
            lines = [Metric(namespace, t.metric, region, stat=stat, label=f"weekly {stat}", color=color,
                            period=WEEK_S) for stat, color in (("p50", BLUE), ("p90", ORANGE))]
        widgets.append(Graph(width=12, height=6, title=f"{t.title}: weekly", region=region, lines=lines,
                             period=WEEK_S, hlines=hlines, y_label=t.unit, y_min=0))
        dims = ",".join(DIMENSIONS)
        widgets.append(Graph(
            width=12, height=6, title=f"{t.title}: per service and severity, weekly {t.statistic}", region=region,
            lines=[Expression(f"SEARCH('{{{namespace},{dims}}} MetricName=\"{t.metric}\"', '{t.statistic}', "
                              f"{WEEK_S})", id=f"by_{t.metric.lower()}", label="")],
            period=WEEK_S, hlines=hlines, y_label=t.unit, y_min=0))
    return widgets


def outcome_widget_dicts(region: str, account_id: str, namespace: str = OUTCOME_NAMESPACE) -> list[dict[str, Any]]:
    return [w.to_json(account_id) for w in outcome_widgets(region, namespace)]


def grafana_outcome_panels(region: str, namespace: str = OUTCOME_NAMESPACE,
                           datasource_uid: str = "${cloudwatch}") -> list[dict[str, Any]]:
    """Grafana (CloudWatch datasource, templated uid): the same weekly figures, one timeseries panel each, the
    target as a red threshold line."""
    panels: list[dict[str, Any]] = []
    for n, t in enumerate(TARGETS):
        stats = ["Sum"] if t.metric == PAGES else ["p50", "p90"]
        steps: list[dict[str, Any]] = [{"color": "green", "value": None}]
        if t.limit:
            steps.append({"color": "red", "value": t.limit})
        panels.append({
            "id": 900 + n, "type": "timeseries", "title": f"{t.title}: weekly",
            "datasource": {"type": "cloudwatch", "uid": datasource_uid},
            "gridPos": {"x": 12 * (n % 2), "y": 8 * (n // 2), "w": 12, "h": 8},
            "fieldConfig": {"defaults": {"unit": "s" if t.unit == "s" else "short", "min": 0,
                                         "thresholds": {"mode": "absolute", "steps": steps},
                                         "custom": {"thresholdsStyle": {"mode": "line" if t.limit else "off"}}},
                            "overrides": []},
            "targets": [{"refId": chr(ord("A") + i), "datasource": {"type": "cloudwatch", "uid": datasource_uid},
                         "queryMode": "Metrics", "region": region, "namespace": namespace,
                         "metricName": t.metric, "dimensions": {}, "statistic": stat, "period": str(WEEK_S),
                         "matchExact": True, "label": f"weekly {stat}"}
                        for i, stat in enumerate(stats)],
        })
    return panels


def outcomes_dashboard(cfg: StackConfig) -> Dashboard:
    """Day 5: what the incident timeline measured, week by week, against the plan's targets."""
    home = cfg.aws.region
    note = ("From the PagerDuty incident timeline (signed V3 webhooks): time to detect = trigger - condition start, "
            "to acknowledge and to resolve from the trigger. Red lines are the plan's targets; a week above one "
            "opens a ticket.")
    return Dashboard(key="outcomes", title="AkiDB outcomes: detection, response and pages against the plan",
                     widgets=[section("Incident outcomes", note), *outcome_widgets(home)], start="-P90D")
