"""Cost settings (the `costWatch` section): the tag-scoped budget and anomaly monitor
(infra/components/cost_watch.py) and the monthly estimate `make plan` checks against a ceiling
(infra/plan/cost.py)."""

from __future__ import annotations

from dataclasses import dataclass

from infra.config.schema import Problem, setting


@dataclass(frozen=True)
class UsageAssumptions:
    """What the monthly estimate multiplies the price table by (the plan fixes the counts of everything else)."""

    edge_requests_per_month: float = setting(2.0e6, doc="POST /embed requests reaching Lambda@Edge", minimum=0)
    edge_duration_ms: float = setting(25.0, doc="average billed Lambda@Edge duration", minimum=0)
    traces_recorded_per_month: float = setting(5.0e6, doc="traces kept by tail sampling and sent to X-Ray",
                                               minimum=0)
    traces_retrieved_per_month: float = setting(1.0e6, doc="traces read or scanned (console, Insights)",
                                                minimum=0)
    custom_metrics: float = setting(60, doc="custom metric series (EMF x dimension sets x regions, anomaly "
                                            "contract, probe checks)", minimum=0)
    log_ingest_gb_per_month: float = setting(5.0, doc="CloudWatch Logs ingested (all log groups)", minimum=0)
    log_stored_gb: float = setting(10.0, doc="CloudWatch Logs stored", minimum=0)
    logs_insights_gb_scanned: float = setting(5.0, doc="Logs Insights data scanned per month", minimum=0)
    s3_stored_gb: float = setting(5.0, doc="S3 (models, bands, state, versions, canary artifacts)", minimum=0)
    notifications_per_month: float = setting(2000, doc="SNS notifications (alarms, tickets, pages)", minimum=0)
    webhook_requests_per_month: float = setting(500, doc="PagerDuty webhook deliveries", minimum=0)
    pagerduty_users: float = setting(10, doc="PagerDuty seats (the plan's $4/user)", minimum=0)
    cluster_nodes: float = setting(6, doc="Kubernetes nodes (one collector agent pod each)", minimum=0)


@dataclass(frozen=True)
class CostWatchConfig:
    enabled: bool = setting(True, doc="tag-scoped AWS Budget and Cost Anomaly Detection for the stack")
    monthly_budget_usd: float = setting(170.0, doc="monthly budget of the stack's tagged resources",
                                        exclusive_minimum=0)
    actual_alert_percents: list[float] = setting(default_factory=lambda: [80.0, 100.0], min_items=1,
                                                 doc="actual spend (% of budget) that notifies P2")
    forecast_alert_percent: float = setting(100.0, doc="forecast spend (% of budget) that notifies P2",
                                            exclusive_minimum=0, maximum=1000)
    anomaly_threshold_usd: float = setting(10.0, doc="total impact of a cost anomaly that notifies P2",
                                           exclusive_minimum=0)
    ceiling_usd: float = setting(170.0, doc="`make plan` fails when the monthly estimate exceeds this",
                                 exclusive_minimum=0)
    usage: UsageAssumptions = setting(default_factory=UsageAssumptions, doc="usage the estimate assumes")


def cross_field_problems(c: CostWatchConfig, ns: str) -> list[Problem]:
    """Rules of the section no single field can check."""
    p: list[Problem] = []
    if any(not 0 < pct <= 1000 for pct in c.actual_alert_percents):
        p.append(Problem(f"{ns}:costWatch.actualAlertPercents", c.actual_alert_percents,
                         "each in (0, 1000]"))
    if len(set(c.actual_alert_percents)) != len(c.actual_alert_percents):
        p.append(Problem(f"{ns}:costWatch.actualAlertPercents", c.actual_alert_percents, "must be distinct"))
    return p
