"""Cross-field rules of the stack config: what no single field can check. Each adds problems; all listed here."""

from __future__ import annotations

import re

from infra.config.dashboards import cross_field_problems as dashboards_problems
from infra.config.schema import ABSENT, PROJECT, Problem, camel
from infra.config.stack import StackConfig


def _valid_alarm_period(period: int) -> bool:
    return period in (10, 20, 30) or period % 60 == 0


def cross_field_problems(cfg: StackConfig, present_secrets: set[str]) -> list[Problem]:
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
        p.append(Problem(f"{ns}:pagerdutyRoutingKey", ABSENT,
                         "required (as a secret) when sloAlerting.pagingEnabled is true"))
    if slo.enabled and slo.paging_enabled and "pagerdutyCloudwatchKey" not in present_secrets:
        p.append(Problem(f"{ns}:pagerdutyCloudwatchKey", ABSENT,
                         "required (as a secret) when sloAlerting.pagingEnabled is true (the P0/P1 topics' "
                         "PagerDuty subscription; a CloudWatch integration key, not the Events API v2 one)"))
    if slo.enabled and slo.runbooks.enabled and "pagerdutyWebhookSecret" not in present_secrets:
        p.append(Problem(f"{ns}:pagerdutyWebhookSecret", ABSENT,
                         "required (as a secret) when sloAlerting.runbooks.enabled is true"))
    rb = slo.runbooks
    if rb.scale_out_asg is not None and rb.scale_out_asg not in rb.allowed_asgs:
        p.append(Problem(f"{ns}:sloAlerting.runbooks.scaleOutAsg", rb.scale_out_asg,
                         f"must be one of runbooks.allowedAsgs {rb.allowed_asgs}"))
    if len(set(rb.allowed_asgs)) != len(rb.allowed_asgs):
        p.append(Problem(f"{ns}:sloAlerting.runbooks.allowedAsgs", rb.allowed_asgs, "names must be distinct"))
    if cfg.environment == "prod" and not cfg.protect_stateful:
        p.append(Problem(f"{ns}:protectStateful", False, "prod must protect its stateful resources"))
    p += dashboards_problems(cfg.dashboards, ns,
                             stack_distribution=cfg.emf_edge.enabled and cfg.emf_edge.create_distribution)
    if cfg.dashboards.enabled and not cfg.kubernetes.enabled:
        pass  # CloudWatch dashboards still deploy; Grafana ConfigMaps are skipped (see infra/components/dashboards.py).
    return p
