"""Cross-field rules of the stack config: what no single field can check. Each adds problems; all listed here."""

from __future__ import annotations

import re

from infra.config.aws_limits import alarm_window_problem, cloudwatch_query_problems
from infra.config.cost_watch import cross_field_problems as cost_watch_problems
from infra.config.coverage import price_class_problems
from infra.config.dashboards import irsa_problems
from infra.config.formats import ScheduleError, fire_gaps_s, interval_s, parse_schedule
from infra.config.game_days import cross_field_problems as game_days_problems
from infra.config.pagerduty import cross_field_problems as pagerduty_problems
from infra.config.promql import promql_problems
from infra.config.schema import ABSENT, PROJECT, Problem
from infra.config.slo_alerting import RUNBOOK_RECEIVER_TIMEOUT_S
from infra.config.stack import StackConfig
from infra.config.synthetics import cross_field_problems as synthetics_problems
from infra.config.synthetics import schedule_minutes
from infra.config.time_intervals import window_problems

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
    window = alarm_window_problem(alarms.period_s, alarms.evaluation_periods)
    if window:
        p.append(Problem(f"{ns}:emfEdge.alarms.evaluationPeriods", alarms.evaluation_periods,
                         f"{window} (periodS is {alarms.period_s})"))
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
        if m.source == "cloudwatch":
            for why in cloudwatch_query_problems(m.query):
                p.append(Problem(f"{ns}:anomaly.metrics[{i}].query", m.query, why))
    prom = {i: m.query for i, m in enumerate(cfg.anomaly.metrics) if m.source == "prometheus"}
    for i, why in promql_problems(prom).items():
        p.append(Problem(f"{ns}:anomaly.metrics[{i}].query" if i >= 0 else f"{ns}:anomaly.metrics", prom.get(i), why))
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
    try:
        _, train_gap_s = fire_gaps_s(parse_schedule(cfg.anomaly.train_schedule))
    except ScheduleError:
        train_gap_s = 0  # its format reports it
    max_age_s = cfg.anomaly.forecast_max_age_hours * 3600
    if cfg.anomaly.enabled and train_gap_s > max_age_s:
        p.append(Problem(f"{ns}:anomaly.trainSchedule", cfg.anomaly.train_schedule,
                         f"goes up to {train_gap_s / 3600:.0f} h between runs, but a forecast is used for at most "
                         f"anomaly.forecastMaxAgeHours = {cfg.anomaly.forecast_max_age_hours} h: the detector would "
                         "stop scoring until the next run (train more often)"))
    p += _provider_problems(cfg, ns)
    p += _edge_timeout_problems(cfg, ns)
    p += _prod_guard_problems(cfg, ns, stack)
    for i, w in enumerate(cfg.slo_alerting.maintenance_windows):
        for why in window_problems(w.weekdays, w.start, w.end):
            p.append(Problem(f"{ns}:sloAlerting.maintenanceWindows[{i}]", {"weekdays": w.weekdays, "start": w.start,
                                                                              "end": w.end},
                             f"{why} (Alertmanager's time_intervals rules: it would refuse the whole config)"))
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
    p += irsa_problems(cfg.dashboards, cfg.alerting_path, ns,
                       cluster_roles=bool(cfg.kubernetes.oidc_provider_arn) if cfg.kubernetes.enabled else None)
    p += synthetics_problems(cfg.synthetics, ns,
                             stack_distribution=cfg.emf_edge.enabled and cfg.emf_edge.create_distribution)
    p += cost_watch_problems(cfg.cost_watch, ns)
    p += [Problem(k, v, a) for k, v, a in game_days_problems(cfg.game_days, ns, environment=cfg.environment)]
    p += price_class_problems(cfg)
    if cfg.dashboards.enabled and not cfg.kubernetes.enabled:
        pass  # CloudWatch dashboards still deploy; Grafana ConfigMaps are skipped (see infra/components/dashboards.py).
    return p


def _account(arn: str | None) -> str | None:
    m = re.match(r"arn:aws:iam::(\d{12}):", arn or "")
    return m.group(1) if m else None


def _provider_problems(cfg: StackConfig, ns: str) -> list[Problem]:
    """Role and OIDC provider ARNs in the accounts the stack may touch."""
    p: list[Problem] = []
    allowed = cfg.aws.allowed_account_ids
    for key, arn in (("aws.assumeRoleArn", cfg.aws.assume_role_arn),
                     ("kubernetes.oidcProviderArn", cfg.kubernetes.oidc_provider_arn)):
        account = _account(arn)
        if account is not None and allowed and account not in allowed:
            p.append(Problem(f"{ns}:{key}", arn, f"is in account {account}, not one of aws.allowedAccountIds "
                                                 f"{allowed}: the provider would refuse it (or act in another "
                                                 "account)"))
    role, oidc = _account(cfg.aws.assume_role_arn), _account(cfg.kubernetes.oidc_provider_arn)
    if role and oidc and role != oidc and not allowed:
        p.append(Problem(f"{ns}:kubernetes.oidcProviderArn", cfg.kubernetes.oidc_provider_arn,
                         f"is in account {oidc}, the deploy role in {role}: IRSA roles trust the cluster's OIDC "
                         "provider of their own account"))
    return p


def _edge_timeout_problems(cfg: StackConfig, ns: str) -> list[Problem]:
    """Thresholds a function's or a canary's own timeout makes unreachable, and alarm windows CloudWatch
    refuses."""
    p: list[Problem] = []
    edge = cfg.emf_edge
    timeout_ms = edge.timeout_s * 1000
    for key, value in (("inferenceLatencyAvgMs", edge.alarms.inference_latency_avg_ms),
                       ("inferenceLatencyP95Ms", edge.alarms.inference_latency_p95_ms)):
        if edge.enabled and value >= timeout_ms:
            p.append(Problem(f"{ns}:emfEdge.alarms.{key}", value,
                             f"must be below the function's timeout (emfEdge.timeoutS = {edge.timeout_s} s = "
                             f"{timeout_ms} ms): no invocation can be slower, so the alarm could never fire"))
    webhook_p99 = cfg.alerting_path.webhook_p99_ms
    if cfg.alerting_path.enabled and cfg.slo_alerting.enabled and webhook_p99 >= RUNBOOK_RECEIVER_TIMEOUT_S * 1000:
        p.append(Problem(f"{ns}:alertingPath.webhookP99Ms", webhook_p99,
                         f"must be below the webhook receiver's timeout ({RUNBOOK_RECEIVER_TIMEOUT_S * 1000} ms): no "
                         "invocation lasts longer, so the alarm could never fire"))
    syn = cfg.synthetics
    if syn.enabled:
        if syn.max_latency_ms >= syn.timeout_s * 1000:
            p.append(Problem(f"{ns}:synthetics.maxLatencyMs", syn.max_latency_ms,
                             f"must be below the canary timeout (timeoutS = {syn.timeout_s} s): a slower check is "
                             "cut off as a timeout, never measured as slow"))
        try:
            period_s = schedule_minutes(syn.schedule) * 60
        except ValueError:
            period_s = 0  # its pattern reports it
        window = alarm_window_problem(period_s, syn.evaluation_periods) if period_s else None
        if window:
            p.append(Problem(f"{ns}:synthetics.evaluationPeriods", syn.evaluation_periods,
                             f"{window} (the period is the schedule, {syn.schedule})"))
    return p


def _prod_guard_problems(cfg: StackConfig, ns: str, stack: str | None) -> list[Problem]:
    """The stack file names its environment; prod's safety switches are off only behind an explicit guard."""
    p: list[Problem] = []
    if stack in ("staging", "prod") and cfg.environment != stack:
        p.append(Problem(f"{ns}:environment", cfg.environment,
                         f"must be {stack!r} in Pulumi.{stack}.yaml: a stack deploys the environment it is named "
                         "after (names, tags, paging, protection follow this value)"))
    slo = cfg.slo_alerting
    reason = slo.paging_disabled_reason
    if cfg.environment == "prod" and slo.enabled and not slo.paging_enabled and not reason:
        p.append(Problem(f"{ns}:sloAlerting.pagingEnabled", False,
                         "prod pages PagerDuty: to turn paging off in prod, say why in "
                         "sloAlerting.pagingDisabledReason (the explicit guard)"))
    if reason and (cfg.environment != "prod" or slo.paging_enabled):
        p.append(Problem(f"{ns}:sloAlerting.pagingDisabledReason", reason,
                         "only guards a prod stack with pagingEnabled false: remove it"))
    rb = slo.runbooks
    if cfg.environment == "prod" and slo.enabled and rb.enabled and rb.dry_run and not rb.dry_run_reason:
        p.append(Problem(f"{ns}:sloAlerting.runbooks.dryRun", True,
                         "prod runbooks act (bounded by their guardrails): set dryRun false, or keep them in "
                         "dry-run and say why in sloAlerting.runbooks.dryRunReason (the explicit guard)"))
    if rb.dry_run_reason and not (cfg.environment == "prod" and slo.enabled and rb.enabled and rb.dry_run):
        p.append(Problem(f"{ns}:sloAlerting.runbooks.dryRunReason", rb.dry_run_reason,
                         "only guards a prod stack whose runbooks are in dry-run: remove it"))
    return p
