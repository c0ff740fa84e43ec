"""Cross-field rules of the stack config: what no single field can check. Each adds problems; all listed here."""

from __future__ import annotations

from infra.config.dashboards import cross_field_problems as dashboards_problems
from infra.config.formats import ScheduleError, interval_s, parse_schedule
from infra.config.game_days import cross_field_problems as game_days_problems
from infra.config.pagerduty import cross_field_problems as pagerduty_problems
from infra.config.schema import ABSENT, PROJECT, Problem
from infra.config.stack import StackConfig

# The edge function's EMF metrics are standard resolution (lambdas/edge_inference/emf.py sets no
# StorageResolution): CloudWatch keeps them per minute, so a 10/20/30 s alarm period would see no data.
EDGE_METRICS_HIGH_RESOLUTION = False
# The DetectorErrors health alarm (infra/components/anomaly.py) has 5-minute periods with missing data breaching:
# it assumes a detector run in every 5 minutes.
DETECTOR_ALARM_PERIOD_S = 300


def _valid_alarm_period(period: int) -> bool:
    return (EDGE_METRICS_HIGH_RESOLUTION and period in (10, 20, 30)) or period % 60 == 0


def required_secrets(cfg: StackConfig) -> dict[str, str]:
    """Secret keys this config needs, with why."""
    slo = cfg.slo_alerting
    out: dict[str, str] = {}
    managed = cfg.pagerduty_managed
    if managed:
        out["pagerdutyToken"] = ("required (as a secret) when pagerduty.manage is true: the PagerDuty provider's "
                                 "REST API token")
    if slo.enabled and slo.paging_enabled and not managed:
        out["pagerdutyRoutingKey"] = ("required (as a secret) when sloAlerting.pagingEnabled is true and "
                                      "pagerduty.manage is false")
        out["pagerdutyCloudwatchKey"] = ("required (as a secret) when sloAlerting.pagingEnabled is true and "
                                         "pagerduty.manage is false (the P0/P1 "
                                         "topics' PagerDuty subscription; a CloudWatch integration key, not the "
                                         "Events API v2 one)")
    if slo.enabled and slo.runbooks.enabled and not managed:
        out["pagerdutyWebhookSecret"] = ("required (as a secret) when sloAlerting.runbooks.enabled is true and "
                                         "pagerduty.manage is false")
    return out


def cross_field_problems(cfg: StackConfig, present_secrets: set[str], stack: str | None = None) -> list[Problem]:
    p: list[Problem] = []
    ns = PROJECT
    alarms = cfg.emf_edge.alarms
    if not _valid_alarm_period(alarms.period_s):
        p.append(Problem(f"{ns}:emfEdge.alarms.periodS", alarms.period_s,
                         "must be a multiple of 60 seconds: the edge EMF metrics are standard resolution (10, 20 "
                         "and 30 s periods need high-resolution metrics)"))
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
    a = cfg.anomaly
    if a.page_confidence < a.confidence_threshold:
        p.append(Problem(f"{ns}:anomaly.pageConfidence", a.page_confidence,
                         f"must be >= anomaly.confidenceThreshold ({a.confidence_threshold}): a page is an episode "
                         "that lasts, never one that was not notified"))
    if a.page_after_minutes % 5:
        p.append(Problem(f"{ns}:anomaly.pageAfterMinutes", a.page_after_minutes,
                         "must be a multiple of 5: the detector scores every 5 minutes"))
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
    # Schedules are checked field by field by their format; this is what the detector's own alarm needs.
    try:
        every = interval_s(parse_schedule(cfg.anomaly.detect_schedule))
    except ScheduleError:
        every = None
    if cfg.anomaly.enabled and every != DETECTOR_ALARM_PERIOD_S:
        p.append(Problem(f"{ns}:anomaly.detectSchedule", cfg.anomaly.detect_schedule,
                         "must run every 5 minutes: rate(5 minutes) or cron(0/5 * * * ? *). The DetectorErrors "
                         "alarm has 5-minute periods with missing data breaching (a slower schedule breaches it), "
                         "and the forecast band is on a 5-minute grid (a faster one scores the same point again)"))
    stack_flag = f" -s {stack}" if stack else ""
    for key, why in required_secrets(cfg).items():
        if key not in present_secrets:
            p.append(Problem(f"{ns}:{key}", ABSENT, f"{why}; run: pulumi config set --secret {key}{stack_flag}"))
    slo = cfg.slo_alerting
    rb = slo.runbooks
    if rb.scale_out_asg is not None and rb.scale_out_asg not in rb.allowed_asgs:
        p.append(Problem(f"{ns}:sloAlerting.runbooks.scaleOutAsg", rb.scale_out_asg,
                         f"must be one of runbooks.allowedAsgs {rb.allowed_asgs}"))
    if len(set(rb.allowed_asgs)) != len(rb.allowed_asgs):
        p.append(Problem(f"{ns}:sloAlerting.runbooks.allowedAsgs", rb.allowed_asgs, "names must be distinct"))
    p += pagerduty_problems(cfg.pagerduty, ns, slo_enabled=slo.enabled, paging=slo.paging_enabled)
    if cfg.environment == "prod" and not cfg.protect_stateful:
        p.append(Problem(f"{ns}:protectStateful", False, "prod must protect its stateful resources"))
    p += dashboards_problems(cfg.dashboards, ns,
                             stack_distribution=cfg.emf_edge.enabled and cfg.emf_edge.create_distribution,
                             cluster_roles=bool(cfg.kubernetes.oidc_provider_arn) if cfg.kubernetes.enabled else None)
    p += [Problem(k, v, a) for k, v, a in game_days_problems(cfg.game_days, ns, environment=cfg.environment)]
    if cfg.dashboards.enabled and not cfg.kubernetes.enabled:
        pass  # CloudWatch dashboards still deploy; Grafana ConfigMaps are skipped (see infra/components/dashboards.py).
    return p
