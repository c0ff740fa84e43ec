"""Day 5 settings: dashboards, synthetic probes, the watched alerting path, cost (budgets, estimate), backups."""

from __future__ import annotations

import re
from dataclasses import dataclass

from infra.config.schema import AWS_REGION_PATTERN, Problem, setting

# Synthetics runtimes accepted here: the Python 3.12 generation of syn-python-selenium (12.0 to 14.0, the newest
# listed on the AWS "Runtime versions using Python and Selenium Webdriver" page); older ones run Python 3.9/3.11.
CANARY_RUNTIMES = ("syn-python-selenium-12.0", "syn-python-selenium-13.0", "syn-python-selenium-14.0")
# A canary period this code can turn into an alarm period: rate(N minutes) or rate(1 hour).
CANARY_SCHEDULE_PATTERN = r"^rate\((1 minute|[2-9] minutes|[1-5][0-9] minutes|60 minutes|1 hour)\)$"
URL_PATTERN = r"^https://[A-Za-z0-9.-]+(:\d+)?(/[\w./-]*)?$"


def schedule_minutes(expression: str) -> int:
    """Minutes between runs of a canary schedule that matched CANARY_SCHEDULE_PATTERN."""
    m = re.match(r"^rate\((\d+) (minute|minutes|hour)\)$", expression)
    if m is None:
        raise ValueError(f"canary schedule {expression!r}: expected rate(N minutes) or rate(1 hour)")
    return int(m.group(1)) * (60 if m.group(2) == "hour" else 1)


@dataclass(frozen=True)
class SyntheticsSettings:
    enabled: bool = setting(True, doc="deploy CloudWatch Synthetics canaries from every probe region")
    probe_regions: list[str] = setting(default_factory=lambda: ["us-east-1"], min_items=1, pattern=AWS_REGION_PATTERN,
                                       doc="regions a canary probes from (one canary per region)")
    schedule: str = setting("rate(5 minutes)", doc="canary schedule (also the alarm period)",
                            pattern=CANARY_SCHEDULE_PATTERN)
    runtime_version: str = setting("syn-python-selenium-14.0", doc="Synthetics runtime", choices=CANARY_RUNTIMES)
    edge_url: str | None = setting(None, pattern=URL_PATTERN, format="https_url",
                                   doc="base URL of the CloudFront distribution serving POST /embed (default: the "
                                       "distribution emf-edge creates; none: no edge probe)")
    rest_url: str | None = setting(None, pattern=URL_PATTERN, format="https_url",
                                   doc="base URL of the REST tier (none: no health probe)")
    health_paths: list[str] = setting(default_factory=lambda: ["/health/live", "/health/ready"],
                                      pattern=r"^/[\w./-]*$", doc="REST health endpoints probed with GET")
    embed_text: str = setting("AkiDB synthetic probe: is the edge embedding endpoint answering?",
                              pattern=r"^[^\x00-\x1f]{1,500}$", format="edge_probe_text",
                              doc="fixed sentence POSTed to /embed")
    embed_dimensions: int = setting(384, doc="floats the embedding must have", minimum=1, maximum=4096)
    max_latency_ms: int = setting(3000, doc="a check slower than this fails (seen from the probe region)",
                                  minimum=50, maximum=60000)
    timeout_s: int = setting(60, doc="canary run timeout", minimum=3, maximum=840)
    memory_mb: int = setting(960, doc="canary memory (Synthetics minimum 960)", minimum=960, maximum=3008)
    artifact_expiration_days: int = setting(30, doc="days canary artifacts (logs, HAR) stay in S3",
                                            minimum=1, maximum=455)
    success_retention_days: int = setting(7, doc="days successful run records are kept", minimum=1, maximum=455)
    failure_retention_days: int = setting(31, doc="days failed run records are kept", minimum=1, maximum=455)
    evaluation_periods: int = setting(3, doc="runs an availability alarm looks at (N of M-of-N)", minimum=1,
                                      maximum=60)
    datapoints_to_alarm: int = setting(2, doc="failed runs among them that fire it (M of M-of-N)", minimum=1,
                                       maximum=60)


@dataclass(frozen=True)
class HeartbeatSettings:
    """Alertmanager's dead-man's switch, received by the stack (infra/components/alerting_path.py)."""

    enabled: bool = setting(True, doc="route the always-firing heartbeat to an SNS topic of the stack (IAM-signed "
                                      "publish, no shared secret) and page P1 when it stops")
    service_account: str = setting("kube-prometheus-stack-alertmanager", format="k8s_name",
                                   doc="Alertmanager's service account in kubernetes.namespace: the only identity "
                                       "the publish role trusts (annotate it with that role)")
    missing_periods: int = setting(2, minimum=1, maximum=12,
                                   doc="5-minute periods without a heartbeat before the P1 page")


@dataclass(frozen=True)
class AlertingPathSettings:
    enabled: bool = setting(True, doc="alarm on the alerting path itself (SNS delivery, queues, functions, API)")
    queue_age_s: int = setting(900, doc="oldest message age of a failures/jobs queue that fires", minimum=60,
                               maximum=1209600)
    webhook_p99_ms: int = setting(3000, doc="runbook webhook p99 duration that fires (PagerDuty waits 5 s)",
                                  minimum=100, maximum=30000)
    api_p99_ms: int = setting(4000, doc="webhook API p99 latency that fires", minimum=100, maximum=30000)
    webhook_4xx_share: float = setting(0.2, doc="share of webhook API requests answered 4xx that tickets",
                                       exclusive_minimum=0.0, maximum=1.0)
    webhook_401_share: float = setting(0.5, doc="share of webhook API requests answered 401 that pages P1 "
                                       "(a wrong PagerDuty signing secret answers 401 to every delivery)",
                                       exclusive_minimum=0.0, maximum=1.0)
    webhook_min_requests: int = setting(3, doc="requests in 5 minutes below which the 4xx/401 shares are not "
                                        "judged (a lone probe is not a rate)", minimum=1, maximum=10000)
    heartbeat: HeartbeatSettings = setting(default_factory=HeartbeatSettings,
                                           doc="Alertmanager's heartbeat and its missing-heartbeat alarm")


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
class CostSettings:
    budget_enabled: bool = setting(True, doc="tag-scoped AWS Budget and Cost Anomaly Detection for the stack")
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


@dataclass(frozen=True)
class GrafanaCloudwatchSettings:
    """Grafana's CloudWatch datasource (the outcome panels read the incident timeline's metrics through it)."""

    enabled: bool = setting(True, doc="provision a read-only CloudWatch datasource for Grafana (IRSA, no keys) and "
                                      "the Grafana outcomes board")
    datasource_label: str = setting("grafana_datasource", format="k8s_label_key",
                                    doc="label (value \"1\") Grafana's datasource sidecar watches "
                                        "(sidecar.datasources.label)")
    service_account: str = setting("kube-prometheus-stack-grafana", format="k8s_name",
                                   doc="Grafana's service account in kubernetes.namespace: the only identity the "
                                       "read-only role trusts (annotate it with that role)")


@dataclass(frozen=True)
class DashboardsConfig:
    enabled: bool = setting(True, doc="deploy CloudWatch and Grafana dashboards")
    grafana_folder: str = setting("AkiDB", doc="Grafana folder the dashboards appear in",
                                  pattern=r"^[\w ./-]{1,100}$")
    grafana_folder_annotation: str = setting(
        "grafana_folder", doc="annotation key the sidecar reads the folder from (sidecar.dashboards.folderAnnotation)",
        format="k8s_label_key")
    grafana_dashboard_label: str = setting("grafana_dashboard", doc="label (value \"1\") Grafana's sidecar watches",
                                           format="k8s_label_key")
    grafana_cloudwatch: GrafanaCloudwatchSettings = setting(default_factory=GrafanaCloudwatchSettings,
                                                            doc="Grafana's CloudWatch datasource")
    synthetics: SyntheticsSettings = setting(default_factory=SyntheticsSettings, doc="synthetic probes")
    alerting_path: AlertingPathSettings = setting(default_factory=AlertingPathSettings,
                                                  doc="alarms on the alerting path")
    cost: CostSettings = setting(default_factory=CostSettings, doc="budgets, cost anomalies, the estimate")


def cross_field_problems(d: DashboardsConfig, ns: str, *, stack_distribution: bool,
                         cluster_roles: bool | None = None) -> list[Problem]:
    """Rules of the Day 5 section no single field can check (`stack_distribution`: emf-edge creates one;
    `cluster_roles`: Kubernetes is on, and False when the cluster has no OIDC provider, None: not checked).
    Probe regions are alarm regions (StackConfig.alarm_regions), so each has its severity topics."""
    p: list[Problem] = []
    if cluster_roles is False and d.enabled:
        # Grafana's datasource and Alertmanager's heartbeat get AWS access only through IRSA (no keys).
        for key, on in ((f"{ns}:dashboards.grafanaCloudwatch.enabled", d.grafana_cloudwatch.enabled),
                        (f"{ns}:dashboards.alertingPath.heartbeat.enabled",
                         d.alerting_path.enabled and d.alerting_path.heartbeat.enabled)):
            if on:
                p.append(Problem(key, True, "needs kubernetes.oidcProviderArn (the role of the workload's service "
                                            "account is trusted through IRSA, never with static keys); set it or "
                                            "set this to false"))
    s = d.synthetics
    key = f"{ns}:dashboards.synthetics"
    if d.enabled and s.enabled and not (s.edge_url or stack_distribution or s.rest_url):
        p.append(Problem(f"{key}.edgeUrl", None, "set edgeUrl and/or restUrl (https://...), or disable synthetics: "
                                                 "a canary needs something to probe"))
    if len(set(s.probe_regions)) != len(s.probe_regions):
        p.append(Problem(f"{key}.probeRegions", s.probe_regions, "regions must be distinct"))
    if s.datapoints_to_alarm > s.evaluation_periods:
        p.append(Problem(f"{key}.datapointsToAlarm", s.datapoints_to_alarm,
                         f"must be <= evaluationPeriods ({s.evaluation_periods})"))
    minutes = schedule_minutes(s.schedule)
    if minutes * 60 * s.evaluation_periods > 86400:
        p.append(Problem(f"{key}.evaluationPeriods", s.evaluation_periods,
                         f"schedule period x evaluationPeriods must be <= 1 day ({minutes} min per run)"))
    if s.timeout_s > minutes * 60:
        p.append(Problem(f"{key}.timeoutS", s.timeout_s, f"must not exceed the schedule's {minutes * 60} s"))
    if len(set(s.health_paths)) != len(s.health_paths):
        p.append(Problem(f"{key}.healthPaths", s.health_paths, "paths must be distinct"))
    c = d.cost
    if any(not 0 < pct <= 1000 for pct in c.actual_alert_percents):
        p.append(Problem(f"{ns}:dashboards.cost.actualAlertPercents", c.actual_alert_percents,
                         "each in (0, 1000]"))
    if len(set(c.actual_alert_percents)) != len(c.actual_alert_percents):
        p.append(Problem(f"{ns}:dashboards.cost.actualAlertPercents", c.actual_alert_percents, "must be distinct"))
    return p
