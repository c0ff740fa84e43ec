"""Typed, validated stack configuration: the only place settings are read.

Every setting of every component lives here as a frozen dataclass field with its default, type and range.
`load_stack_config()` reads the project namespace from Pulumi config (the real CLI, or the offline plan that
feeds the same stack file to the mock runtime), rejects unknown keys, checks every range and cross-field rule,
and raises one `ConfigError` listing every problem before a single resource is registered.

YAML keys are camelCase (the Pulumi convention); fields are snake_case. Secrets are top-level keys that must
be set with `pulumi config set --secret`; a secret given in plain text is an error, not a warning.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import pulumi

PROJECT = "akidb-observability"

# CloudWatch Logs accepts only these retention values (PutRetentionPolicy).
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
)
AWS_REGION_PATTERN = (r"^(us|eu|ap|ca|sa|me|af|il|mx)-"
                      r"(north|south|east|west|central|northeast|southeast|northwest|southwest)-\d$")
ROLE_ARN_PATTERN = r"^arn:aws:iam::\d{12}:role/[\w+=,.@/-]{1,512}$"
OIDC_PROVIDER_ARN_PATTERN = r"^arn:aws:iam::\d{12}:oidc-provider/[\w.-]+(/[\w.-]+)*$"
# An image reference pinned by tag (not latest) or digest.
PINNED_IMAGE_PATTERN = r"^[\w.-]+(:\d+)?(/[\w.-]+)+(:(?!latest$)[\w][\w.-]{0,127}|@sha256:[0-9a-f]{64})$"
K8S_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


# --------------------------------------------------------------------------------------------------------------
# Field declarations
# --------------------------------------------------------------------------------------------------------------


def setting(
    default: Any = dataclasses.MISSING,
    *,
    doc: str,
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive_minimum: float | None = None,
    exclusive_maximum: float | None = None,
    choices: tuple[Any, ...] | None = None,
    pattern: str | None = None,
    min_items: int | None = None,
    default_factory: Callable[[], Any] | None = None,
) -> Any:
    """A config field with its constraints; `doc` is shown in error messages and the README table."""
    meta = {
        "doc": doc,
        "minimum": minimum,
        "maximum": maximum,
        "exclusive_minimum": exclusive_minimum,
        "exclusive_maximum": exclusive_maximum,
        "choices": choices,
        "pattern": pattern,
        "min_items": min_items,
    }
    if default_factory is not None:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


# --------------------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    key: str
    value: Any
    allowed: str

    def __str__(self) -> str:
        shown = "<missing>" if self.value is _ABSENT else json.dumps(self.value, default=str)
        return f"{self.key} = {shown}: {self.allowed}"


class ConfigError(Exception):
    """Every problem of a stack config at once; printed one per line, never as a traceback."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class _Absent:
    def __repr__(self) -> str:
        return "<missing>"


_ABSENT = _Absent()


# --------------------------------------------------------------------------------------------------------------
# Sections (one per component, plus the shared ones)
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AwsSettings:
    region: str = setting("us-east-1", doc="home region of the stack (SNS, S3, Lambdas, X-Ray)",
                          pattern=AWS_REGION_PATTERN)
    assume_role_arn: str | None = setting(None, doc="role the AWS provider assumes (cross-account stacks)",
                                          pattern=ROLE_ARN_PATTERN)
    allowed_account_ids: list[str] = setting(default_factory=list,
                                             doc="accounts the provider may touch (guards against a wrong profile)",
                                             pattern=r"^\d{12}$")


@dataclass(frozen=True)
class KubernetesSettings:
    enabled: bool = setting(True, doc="create Kubernetes objects (collector, rules, dashboards)")
    context: str | None = setting(None, doc="kubeconfig context of the target cluster")
    namespace: str = setting("observability", doc="namespace of the observability objects", pattern=K8S_NAME_PATTERN)
    cluster_version: str = setting("1.30", doc="Kubernetes minor version objects are validated against",
                                   pattern=r"^1\.(2[5-9]|3[0-7])$")  # the schemas kubernetes-validate ships
    oidc_provider_arn: str | None = setting(None, doc="the cluster's IAM OIDC provider (IRSA trust)",
                                            pattern=OIDC_PROVIDER_ARN_PATTERN)
    prometheus_rule_labels: dict[str, str] = setting(
        default_factory=lambda: {"release": "kube-prometheus-stack"},
        doc="labels the Prometheus operator's ruleSelector matches")


@dataclass(frozen=True)
class SamplingRuleSettings:
    service_name: str = setting(doc="X-Ray service name the rule matches ('*' for any)")
    fixed_rate: float = setting(doc="head-sampling fraction after the reservoir", minimum=0.0, maximum=1.0)
    reservoir_size: int = setting(1, doc="traces per second always sampled", minimum=0, maximum=100000)
    priority: int = setting(100, doc="lower wins", minimum=1, maximum=9999)
    url_path: str = setting("*", doc="URL path the rule matches")
    http_method: str = setting("*", doc="HTTP method the rule matches",
                               choices=("*", "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"))


@dataclass(frozen=True)
class XrayConfig:
    enabled: bool = setting(True, doc="deploy the tracing pipeline")
    collector_image: str = setting("public.ecr.aws/aws-observability/aws-otel-collector:v0.43.3",
                                   doc="ADOT collector image, pinned by tag or digest", pattern=PINNED_IMAGE_PATTERN)
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


@dataclass(frozen=True)
class EdgeAlarmSettings:
    period_s: int = setting(60, doc="alarm period (10, 20, 30 or a multiple of 60)", minimum=10, maximum=86400)
    evaluation_periods: int = setting(3, doc="N of the M-of-N rule", minimum=1, maximum=1440)
    datapoints_to_alarm: int = setting(2, doc="M of the M-of-N rule", minimum=1, maximum=1440)
    inference_latency_avg_ms: float = setting(50.0, doc="average inference latency threshold", exclusive_minimum=0)
    inference_latency_p95_ms: float = setting(100.0, doc="p95 inference latency threshold", exclusive_minimum=0)
    error_count: float = setting(10.0, doc="errors per period threshold", minimum=0)
    cache_hit_rate_min: float = setting(0.8, doc="warm-container share below which the alarm fires",
                                        minimum=0.0, maximum=1.0)
    cache_hit_min_requests: int = setting(20, doc="requests per period below which the cache-hit rate is not judged "
                                                  "(a few cold starts at low traffic are normal)",
                                          minimum=1, maximum=1000000)


@dataclass(frozen=True)
class EmfEdgeConfig:
    enabled: bool = setting(True, doc="deploy the Lambda@Edge embedding function and its alarms")
    function_name: str = setting("edge-inference", doc="Lambda@Edge function name, after the <service>-<environment>- "
                                                       "prefix", pattern=r"^[A-Za-z0-9_-]{1,40}$")
    edge_regions: list[str] = setting(default_factory=lambda: ["us-east-1"], min_items=1, pattern=AWS_REGION_PATTERN,
                                      doc="regions where replicas run and alarms are created")
    namespace: str = setting("AkiDB/Edge", doc="EMF namespace", pattern=r"^[\w./#:-]{1,255}$")
    model_name: str = setting("all-MiniLM-L6-v2-INT8", doc="model dimension value")
    memory_mb: int = setting(1024, doc="function memory (origin-request max 10240)", minimum=128, maximum=10240)
    timeout_s: int = setting(10, doc="function timeout (origin-request max 30)", minimum=1, maximum=30)
    log_retention_days: int = setting(14, doc="retention of the replica log groups", choices=LOG_RETENTION_DAYS)
    alarms: EdgeAlarmSettings = setting(default_factory=EdgeAlarmSettings, doc="edge alarm thresholds")
    create_distribution: bool = setting(False, doc="create a CloudFront distribution for POST /embed")
    origin_domain: str | None = setting(None, doc="origin of that distribution (required when created)")


@dataclass(frozen=True)
class AnomalyMetricSettings:
    name: str = setting(doc="metric id (used in S3 keys and the CloudWatch dimension)", pattern=r"^[a-z0-9_]{1,64}$")
    source: Literal["cloudwatch", "prometheus"] = setting(doc="where the history and the live value come from",
                                                          choices=("cloudwatch", "prometheus"))
    query: str = setting(doc="PromQL expression, or CloudWatch 'Namespace|MetricName|Stat|Dim=Value,...'")
    seasonality_mode: Literal["additive", "multiplicative"] = setting(
        "additive", doc="Prophet seasonality mode", choices=("additive", "multiplicative"))
    hourly_seasonality: bool = setting(False, doc="add an hourly term (period=1/24 day)")
    mape_limit: float = setting(0.15, doc="validation error above which the model is flagged",
                                exclusive_minimum=0.0, maximum=10.0)


def _default_anomaly_metrics() -> list[AnomalyMetricSettings]:
    prom = "prometheus"
    return [
        AnomalyMetricSettings(name="request_latency_p95", source=prom,
                              query='histogram_quantile(0.95, sum by (le) (rate('
                                    'akidb_request_duration_seconds_bucket{job="akidb-rest"}[5m])))'),
        AnomalyMetricSettings(name="request_rate", source=prom,
                              query='sum(rate(akidb_requests_total{job="akidb-rest"}[5m]))',
                              seasonality_mode="multiplicative"),
        AnomalyMetricSettings(name="active_connections", source=prom,
                              query='sum(akidb_active_connections{job="akidb-rest"})'),
        AnomalyMetricSettings(name="cpu_usage_percent", source=prom,
                              query='avg(akidb_cpu_usage_percent{job="akidb-rest"})'),
        AnomalyMetricSettings(name="memory_usage_bytes", source=prom,
                              query='sum(akidb_memory_usage_bytes{job="akidb-rest"})'),
    ]


@dataclass(frozen=True)
class AnomalyConfig:
    enabled: bool = setting(True, doc="deploy the Prophet trainer and the anomaly detector")
    metrics: list[AnomalyMetricSettings] = setting(default_factory=_default_anomaly_metrics, min_items=1,
                                                   doc="metrics forecast and watched")
    prometheus_url: str | None = setting(None, doc="Prometheus HTTP API reachable from the Lambdas (AMP or VPC)",
                                         pattern=r"^https?://\S+$")
    confidence_threshold: float = setting(0.7, doc="confidence above which an anomaly is notified",
                                          minimum=0.0, maximum=1.0)
    detect_schedule: str = setting("rate(5 minutes)", doc="detector schedule expression")
    train_schedule: str = setting("cron(0 3 ? * SUN *)", doc="trainer schedule expression")
    history_days: int = setting(90, doc="days of 5-minute history fetched for training", minimum=14, maximum=365)
    forecast_max_age_hours: int = setting(192, doc="forecast age beyond which the detector stops scoring "
                                          "(the band covers 8 days: the weekly run plus a day of slack)",
                                          minimum=1, maximum=192)
    trainer_memory_mb: int = setting(3008, doc="trainer memory (Prophet fits on 90 days)", minimum=1024,
                                     maximum=10240)
    log_retention_days: int = setting(30, doc="retention of the trainer and detector log groups",
                                      choices=LOG_RETENTION_DAYS)
    noncurrent_version_days: int = setting(30, doc="days old model/band/state versions are kept",
                                           minimum=1, maximum=3650)


@dataclass(frozen=True)
class RunbookSettings:
    enabled: bool = setting(True, doc="deploy the PagerDuty webhook runbook automation")
    dry_run: bool = setting(True, doc="decide and audit, but do not act")
    allowed_asgs: list[str] = setting(default_factory=list, doc="Auto Scaling groups runbooks may scale",
                                      pattern=r"^[\w.:/-]{1,255}$")
    max_capacity: int = setting(20, doc="upper bound for any scale-out", minimum=1, maximum=1000)
    max_actions_per_hour: int = setting(3, doc="actions per runbook per hour", minimum=0, maximum=60)
    scale_out_asg: str | None = setting(None, doc="ASG the spot-cascade and latency runbooks scale out "
                                        "(must be in allowedAsgs; none: those runbooks only notify)",
                                        pattern=r"^[\w.:/-]{1,255}$")
    scale_out_step: int = setting(2, doc="instances added per scale-out action", minimum=1, maximum=50)
    log_retention_days: int = setting(30, doc="retention of the runbook functions' logs", choices=LOG_RETENTION_DAYS)


@dataclass(frozen=True)
class SloAlertingConfig:
    enabled: bool = setting(True, doc="deploy SLO rules, routing, severity subscriptions and runbooks")
    paging_enabled: bool = setting(False, doc="page PagerDuty (prod); otherwise everything goes to tickets")
    runbook_base_url: str = setting("https://runbooks.akidb.internal", doc="base URL of runbook links",
                                    pattern=r"^https://\S+$")
    grafana_base_url: str = setting("https://grafana.akidb.internal", doc="base URL of dashboard links",
                                    pattern=r"^https://\S+$")
    runbooks: RunbookSettings = setting(default_factory=RunbookSettings, doc="runbook automation guardrails")
    ticket_webhook_url: str = setting("https://tickets.akidb.internal/alertmanager", pattern=r"^https://\S+$",
                                      doc="ticket/chat receiver of P2 (and of everything when paging is off)")
    heartbeat_webhook_url: str = setting("https://heartbeat.akidb.internal/ping", pattern=r"^https://\S+$",
                                         doc="dead-man's-switch receiver of the always-firing heartbeat")
    alertmanager_secret_name: str = setting("alertmanager-akidb", pattern=K8S_NAME_PATTERN,
                                            doc="Secret holding alertmanager.yaml (the Alertmanager's configSecret)")


@dataclass(frozen=True)
class DashboardsConfig:
    enabled: bool = setting(True, doc="deploy CloudWatch and Grafana dashboards")
    grafana_folder: str = setting("AkiDB", doc="Grafana folder the dashboards appear in",
                                  pattern=r"^[\w ./-]{1,100}$")
    grafana_folder_annotation: str = setting(
        "grafana_folder", doc="annotation key the sidecar reads the folder from (sidecar.dashboards.folderAnnotation)",
        pattern=r"^([a-z0-9.-]{1,253}/)?[A-Za-z0-9]([\w.-]{0,61}[A-Za-z0-9])?$")
    grafana_dashboard_label: str = setting("grafana_dashboard", doc="label (value \"1\") Grafana's sidecar watches",
                                           pattern=r"^([a-z0-9.-]{1,253}/)?[A-Za-z0-9]([\w.-]{0,61}[A-Za-z0-9])?$")


# Top-level keys set with `pulumi config set --secret`. Value: (doc, required_when).
SECRET_KEYS: dict[str, str] = {
    "kubeconfig": "kubeconfig of the target cluster (optional: ambient kubeconfig otherwise)",
    "pagerdutyRoutingKey": "PagerDuty Events API v2 routing key (required when sloAlerting.pagingEnabled)",
    "pagerdutyCloudwatchKey": "PagerDuty Amazon CloudWatch integration key: P0/P1 severity topics subscribe to "
                              "it (required when sloAlerting.pagingEnabled)",
    "pagerdutyWebhookSecret": "PagerDuty V3 webhook signing secret (required when runbooks are enabled)",
}


@dataclass(frozen=True)
class Secrets:
    """Secret values, only ever as secret Outputs."""

    kubeconfig: pulumi.Output[str] | None = None
    pagerduty_routing_key: pulumi.Output[str] | None = None
    pagerduty_cloudwatch_key: pulumi.Output[str] | None = None
    pagerduty_webhook_secret: pulumi.Output[str] | None = None


@dataclass(frozen=True)
class StackConfig:
    environment: Literal["staging", "prod"] = setting(doc="environment name (tags, names)",
                                                      choices=("staging", "prod"))
    owner: str = setting("sre", doc="owner tag", pattern=r"^[\w.@-]{1,64}$")
    service: str = setting("akidb", doc="service tag and name prefix", pattern=r"^[a-z][a-z0-9-]{1,20}$")
    protect_stateful: bool = setting(False, doc="protect buckets and keys from deletion (prod)")
    aws: AwsSettings = setting(default_factory=AwsSettings, doc="AWS provider")
    kubernetes: KubernetesSettings = setting(default_factory=KubernetesSettings, doc="Kubernetes provider")
    xray: XrayConfig = setting(default_factory=XrayConfig, doc="Day 1: tracing")
    emf_edge: EmfEdgeConfig = setting(default_factory=EmfEdgeConfig, doc="Day 2: edge function and metrics")
    anomaly: AnomalyConfig = setting(default_factory=AnomalyConfig, doc="Day 3: anomaly detection")
    slo_alerting: SloAlertingConfig = setting(default_factory=SloAlertingConfig, doc="Day 4: SLO alerting")
    dashboards: DashboardsConfig = setting(default_factory=DashboardsConfig, doc="Day 5: dashboards")
    secrets: Secrets = field(default_factory=Secrets, metadata={"doc": "secret keys", "internal": True})

    @property
    def alarm_regions(self) -> list[str]:
        """Every region an alarm (and so a severity topic) lives in: home first, then edge regions."""
        regions = [self.aws.region]
        if self.emf_edge.enabled:
            regions += [r for r in self.emf_edge.edge_regions if r not in regions]
        return regions


# --------------------------------------------------------------------------------------------------------------
# Cross-field rules: each returns problems; listed once here.
# --------------------------------------------------------------------------------------------------------------


def _valid_alarm_period(period: int) -> bool:
    return period in (10, 20, 30) or period % 60 == 0


def _cross_field_problems(cfg: StackConfig, present_secrets: set[str]) -> list[Problem]:
    p: list[Problem] = []
    ns = PROJECT
    alarms = cfg.emf_edge.alarms
    if not _valid_alarm_period(alarms.period_s):
        p.append(Problem(f"{ns}:emfEdge.alarms.periodS", alarms.period_s,
                         "CloudWatch accepts 10, 20, 30 or a multiple of 60 seconds"))
    if alarms.period_s < 3600 and alarms.period_s * alarms.evaluation_periods > 86400:
        p.append(Problem(f"{ns}:emfEdge.alarms.evaluationPeriods", alarms.evaluation_periods,
                         f"periodS x evaluationPeriods must be <= 86400 s (periodS is {alarms.period_s})"))
    if alarms.datapoints_to_alarm > alarms.evaluation_periods:
        p.append(Problem(f"{ns}:emfEdge.alarms.datapointsToAlarm", alarms.datapoints_to_alarm,
                         f"must be <= evaluationPeriods ({alarms.evaluation_periods})"))
    if len(set(cfg.emf_edge.edge_regions)) != len(cfg.emf_edge.edge_regions):
        p.append(Problem(f"{ns}:emfEdge.edgeRegions", cfg.emf_edge.edge_regions, "regions must be distinct"))
    if cfg.emf_edge.enabled and cfg.emf_edge.create_distribution and not cfg.emf_edge.origin_domain:
        p.append(Problem(f"{ns}:emfEdge.originDomain", None, "required when emfEdge.createDistribution is true"))
    if cfg.xray.enabled and cfg.kubernetes.enabled and not cfg.kubernetes.oidc_provider_arn:
        p.append(Problem(f"{ns}:kubernetes.oidcProviderArn", None,
                         "required when xray is enabled (IRSA trust of the collector's service account)"))
    if cfg.xray.enabled and not cfg.kubernetes.enabled:
        p.append(Problem(f"{ns}:xray.enabled", True, "the collector runs in Kubernetes: enable kubernetes too"))
    names = [r.service_name for r in cfg.xray.sampling_rules]
    if len(set(names)) != len(names):
        p.append(Problem(f"{ns}:xray.samplingRules", names, "one rule per service name"))
    priorities = [r.priority for r in cfg.xray.sampling_rules]
    if len(set(priorities)) != len(priorities):
        p.append(Problem(f"{ns}:xray.samplingRules", priorities, "priorities must be distinct"))
    for i, r in enumerate(cfg.xray.sampling_rules):
        if r.service_name == "*":
            p.append(Problem(f"{ns}:xray.samplingRules[{i}].serviceName", "*",
                             "the catch-all rule is built from xray.defaultFixedRate; name a service"))
        if r.priority >= 9999:
            p.append(Problem(f"{ns}:xray.samplingRules[{i}].priority", r.priority,
                             "must be below 9999 (the catch-all rule's priority)"))
    metric_names = [m.name for m in cfg.anomaly.metrics]
    if len(set(metric_names)) != len(metric_names):
        p.append(Problem(f"{ns}:anomaly.metrics", metric_names, "metric names must be distinct"))
    if (cfg.anomaly.enabled and any(m.source == "prometheus" for m in cfg.anomaly.metrics)
            and not cfg.anomaly.prometheus_url):
        p.append(Problem(f"{ns}:anomaly.prometheusUrl", None,
                         "required when a metric has source 'prometheus' (an AMP or VPC-reachable endpoint)"))
    for i, m in enumerate(cfg.anomaly.metrics):
        if m.source == "cloudwatch" and len(m.query.split("|")) < 3:
            p.append(Problem(f"{ns}:anomaly.metrics[{i}].query", m.query,
                             "a CloudWatch query is 'Namespace|MetricName|Stat[|Dim=Value,...]'"))
    for key in ("detect_schedule", "train_schedule"):
        expr = getattr(cfg.anomaly, key)
        if not re.match(r"^(rate\(\d+ (minute|minutes|hour|hours|day|days)\)|cron\(\S+ \S+ \S+ \S+ \S+ \S+\))$", expr):
            p.append(Problem(f"{ns}:anomaly.{camel(key)}", expr,
                             "an EventBridge schedule: rate(N minutes|hours|days) or "
                             "cron(min hour day-of-month month day-of-week year)"))
    if cfg.anomaly.detect_schedule.startswith("rate(") and "day" in cfg.anomaly.detect_schedule:
        p.append(Problem(f"{ns}:anomaly.detectSchedule", cfg.anomaly.detect_schedule,
                         "the forecast band is on a 5-minute grid: detect at least hourly"))
    slo = cfg.slo_alerting
    if slo.enabled and slo.paging_enabled and "pagerdutyRoutingKey" not in present_secrets:
        p.append(Problem(f"{ns}:pagerdutyRoutingKey", _ABSENT,
                         "required (as a secret) when sloAlerting.pagingEnabled is true"))
    if slo.enabled and slo.paging_enabled and "pagerdutyCloudwatchKey" not in present_secrets:
        p.append(Problem(f"{ns}:pagerdutyCloudwatchKey", _ABSENT,
                         "required (as a secret) when sloAlerting.pagingEnabled is true (the P0/P1 topics' "
                         "PagerDuty subscription; a CloudWatch integration key, not the Events API v2 one)"))
    if slo.enabled and slo.runbooks.enabled and "pagerdutyWebhookSecret" not in present_secrets:
        p.append(Problem(f"{ns}:pagerdutyWebhookSecret", _ABSENT,
                         "required (as a secret) when sloAlerting.runbooks.enabled is true"))
    rb = slo.runbooks
    if rb.scale_out_asg is not None and rb.scale_out_asg not in rb.allowed_asgs:
        p.append(Problem(f"{ns}:sloAlerting.runbooks.scaleOutAsg", rb.scale_out_asg,
                         f"must be one of runbooks.allowedAsgs {rb.allowed_asgs}"))
    if len(set(rb.allowed_asgs)) != len(rb.allowed_asgs):
        p.append(Problem(f"{ns}:sloAlerting.runbooks.allowedAsgs", rb.allowed_asgs, "names must be distinct"))
    if cfg.environment == "prod" and not cfg.protect_stateful:
        p.append(Problem(f"{ns}:protectStateful", False, "prod must protect its stateful resources"))
    if cfg.dashboards.enabled and not cfg.kubernetes.enabled:
        pass  # CloudWatch dashboards still deploy; Grafana ConfigMaps are skipped (see infra/components/dashboards.py).
    return p


# --------------------------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------------------------


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if tp is bool:
        return "true or false"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is str:
        return "a string"
    if origin is Literal:
        return "one of " + ", ".join(json.dumps(a) for a in typing.get_args(tp))
    if origin in (list,):
        return f"a list of {_describe(typing.get_args(tp)[0])}"
    if origin in (dict,):
        return f"a map of string to {_describe(typing.get_args(tp)[1])}"
    if dataclasses.is_dataclass(tp):
        keys = ", ".join(camel(f.name) for f in dataclasses.fields(tp) if not f.metadata.get("internal"))
        return f"an object with keys {keys}"
    return str(tp)


def _constraint_text(meta: Mapping[str, Any]) -> str:
    parts = []
    lo, hi = meta.get("minimum"), meta.get("maximum")
    xlo, xhi = meta.get("exclusive_minimum"), meta.get("exclusive_maximum")
    if lo is not None or xlo is not None or hi is not None or xhi is not None:
        left = f"[{lo}" if lo is not None else (f"({xlo}" if xlo is not None else "(-inf")
        right = f"{hi}]" if hi is not None else (f"{xhi})" if xhi is not None else "inf)")
        parts.append(f"in {left}, {right}")
    if meta.get("choices") is not None:
        parts.append("one of " + ", ".join(json.dumps(c) for c in meta["choices"]))
    if meta.get("pattern"):
        parts.append(f"matching {meta['pattern']}")
    return " ".join(parts)


class _Parser:
    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def fail(self, key: str, value: Any, allowed: str) -> None:
        self.problems.append(Problem(key, value, allowed))

    def value(self, tp: Any, raw: Any, key: str, meta: Mapping[str, Any]) -> Any:
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin in (typing.Union, types.UnionType):
            inner = [a for a in args if a is not type(None)]
            if raw is None:
                return None
            return self.value(inner[0], raw, key, meta)
        if dataclasses.is_dataclass(tp):
            if not isinstance(raw, dict):
                self.fail(key, raw, f"must be {_describe(tp)}")
                return _ABSENT
            return self.section(tp, raw, key)
        if origin is list:
            if not isinstance(raw, list):
                self.fail(key, raw, f"must be {_describe(tp)}")
                return _ABSENT
            items = [self.value(args[0], item, f"{key}[{i}]", meta) for i, item in enumerate(raw)]
            if meta.get("min_items") and len(items) < meta["min_items"]:
                self.fail(key, raw, f"needs at least {meta['min_items']} item(s)")
            return items
        if origin is dict:
            if not isinstance(raw, dict):
                self.fail(key, raw, f"must be {_describe(tp)}")
                return _ABSENT
            return {str(k): self.value(args[1], v, f"{key}.{k}", meta) for k, v in raw.items()}
        return self.scalar(tp, raw, key, meta)

    def scalar(self, tp: Any, raw: Any, key: str, meta: Mapping[str, Any]) -> Any:
        allowed = f"must be {_describe(tp)}"
        extra = _constraint_text(meta)
        if extra:
            allowed += f" {extra}"
        if typing.get_origin(tp) is Literal:
            if raw not in typing.get_args(tp):
                self.fail(key, raw, allowed)
                return _ABSENT
            return raw
        if tp is bool:
            if not isinstance(raw, bool):
                self.fail(key, raw, allowed)
                return _ABSENT
            return raw
        if tp in (int, float):
            ok = isinstance(raw, (int, float)) and not isinstance(raw, bool)
            if tp is int and ok and float(raw) != int(raw):
                ok = False
            if not ok:
                self.fail(key, raw, allowed)
                return _ABSENT
            val = tp(raw)
            lo, hi = meta.get("minimum"), meta.get("maximum")
            xlo, xhi = meta.get("exclusive_minimum"), meta.get("exclusive_maximum")
            if ((lo is not None and val < lo) or (hi is not None and val > hi)
                    or (xlo is not None and val <= xlo) or (xhi is not None and val >= xhi)):
                self.fail(key, raw, allowed)
                return _ABSENT
        elif tp is str:
            if not isinstance(raw, str):
                self.fail(key, raw, allowed)
                return _ABSENT
            val = raw
            if meta.get("pattern") and not re.match(meta["pattern"], val):
                self.fail(key, raw, allowed)
                return _ABSENT
        else:  # pragma: no cover - a field type this parser does not know is a programming error
            raise TypeError(f"unsupported config field type {tp!r} at {key}")
        if meta.get("choices") is not None and val not in meta["choices"]:
            self.fail(key, raw, allowed)
            return _ABSENT
        return val

    def section(self, cls: Any, raw: Mapping[str, Any], prefix: str) -> Any:
        hints = typing.get_type_hints(cls)
        fields = {camel(f.name): f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
        for key in raw:
            if key not in fields:
                close = difflib.get_close_matches(key, list(fields), n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                self.fail(f"{prefix}.{key}", raw[key],
                          f"unknown key{hint}; allowed keys: {', '.join(sorted(fields))}")
        kwargs: dict[str, Any] = {}
        for key, f in fields.items():
            full = f"{prefix}.{key}"
            if key in raw:
                val = self.value(hints[f.name], raw[key], full, f.metadata)
                if val is not _ABSENT:
                    kwargs[f.name] = val
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                self.fail(full, _ABSENT, f"required: {f.metadata.get('doc', '')}")
        if self.problems and any(p.key.startswith(prefix + ".") for p in self.problems):
            try:
                return cls(**kwargs)
            except TypeError:
                return _ABSENT
        return cls(**kwargs)


def _all_config() -> dict[str, Any]:
    from pulumi.runtime import config as rt

    merged = dict(rt.get_config_env())
    merged.update(rt.CONFIG.get())
    return merged


def _secret_keys() -> set[str]:
    from pulumi.runtime import config as rt

    return set(rt._SECRET_KEYS.get()) | set(rt.get_config_secret_keys_env())


def _decode(raw: Any) -> Any:
    """Pulumi hands structured config over as JSON text and scalars as strings."""
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def parse_stack_config(values: Mapping[str, Any], secret_keys: set[str],
                       secret_reader: Callable[[str], pulumi.Output[str] | None] | None = None) -> StackConfig:
    """Parse fully qualified project config values; raise ConfigError with every problem."""
    parser = _Parser()
    prefix = f"{PROJECT}:"
    raw: dict[str, Any] = {}
    present_secrets: set[str] = set()
    for full_key, value in values.items():
        if not full_key.startswith(prefix):
            continue
        key = full_key[len(prefix):]
        if key in SECRET_KEYS:
            if full_key not in secret_keys:
                parser.fail(full_key, "<plain text>",
                            f"must be a secret: pulumi config set --secret {key} ... ({SECRET_KEYS[key]})")
            present_secrets.add(key)
            continue
        raw[key] = _decode(value)

    top_fields = {camel(f.name) for f in dataclasses.fields(StackConfig) if not f.metadata.get("internal")}
    unknown = [k for k in raw if k not in top_fields]
    for key in unknown:
        choices = sorted(top_fields | set(SECRET_KEYS))
        close = difflib.get_close_matches(key, choices, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        parser.fail(f"{PROJECT}:{key}", raw.pop(key), f"unknown key{hint}; allowed keys: {', '.join(choices)}")

    cfg = parser.section(StackConfig, raw, PROJECT)
    # section() reports nested paths as "<project>.<key>": show them the way `pulumi config` spells them.
    problems = [Problem(p.key.replace(f"{PROJECT}.", f"{PROJECT}:", 1), p.value, p.allowed) for p in parser.problems]
    if cfg is not _ABSENT and not problems:
        problems += _cross_field_problems(cfg, present_secrets)
    if problems:
        raise ConfigError(problems)

    read = secret_reader or (lambda k: None)
    secrets = Secrets(
        kubeconfig=read("kubeconfig") if "kubeconfig" in present_secrets else None,
        pagerduty_routing_key=read("pagerdutyRoutingKey") if "pagerdutyRoutingKey" in present_secrets else None,
        pagerduty_cloudwatch_key=(read("pagerdutyCloudwatchKey")
                                  if "pagerdutyCloudwatchKey" in present_secrets else None),
        pagerduty_webhook_secret=(read("pagerdutyWebhookSecret")
                                  if "pagerdutyWebhookSecret" in present_secrets else None),
    )
    return dataclasses.replace(cfg, secrets=secrets)


def load_stack_config() -> StackConfig:
    """Read and validate the current stack's config from the Pulumi runtime."""
    conf = pulumi.Config(PROJECT)
    return parse_stack_config(_all_config(), _secret_keys(), secret_reader=conf.get_secret)


def reference_rows() -> list[tuple[str, str, str, str]]:
    """(key, type, default, doc) for every setting: the README's config table is generated from this."""
    rows: list[tuple[str, str, str, str]] = []

    def walk(cls: Any, prefix: str) -> None:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.metadata.get("internal"):
                continue
            key = f"{prefix}{camel(f.name)}"
            tp = hints[f.name]
            if dataclasses.is_dataclass(tp):
                walk(tp, key + ".")
                continue
            if f.default is not dataclasses.MISSING:
                default = json.dumps(f.default)
            elif f.default_factory is not dataclasses.MISSING:
                produced = f.default_factory()
                default = json.dumps(produced, default=lambda o: {camel(k): v for k, v in
                                                                  dataclasses.asdict(o).items()})
            else:
                default = "(required)"
            doc = f.metadata.get("doc", "")
            extra = _constraint_text(f.metadata)
            rows.append((key, _describe(tp), default, f"{doc} {extra}".strip()))

    walk(StackConfig, "")
    rows += [(k, "secret string", "(unset)", doc) for k, doc in SECRET_KEYS.items()]
    return rows
