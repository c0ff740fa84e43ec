"""The program: validated config -> components -> resources. `__main__.py` (real CLI) and the offline plan
both call `build()`, so what is planned offline is exactly what `pulumi up` deploys."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pulumi

from infra.components.anomaly import Anomaly, AnomalyArgs
from infra.components.dashboards import Dashboards, DashboardsArgs, day5_watch_inputs
from infra.components.emf_edge import EmfEdge, EmfEdgeArgs
from infra.components.game_days import EXPERIMENT_KEYS as GAME_DAY_KEYS
from infra.components.game_days import GameDays, GameDaysArgs, stop_alarm_names
from infra.components.logs import Logs, LogsArgs
from infra.components.pagerduty import PagerDuty, PagerDutyArgs
from infra.components.severity_topics import SeverityTopics, SeverityTopicsArgs
from infra.components.slo_alerting import PagerDutyKeys, SloAlerting, SloAlertingArgs
from infra.components.xray import Tracing, TracingArgs
from infra.config import StackConfig
from infra.core.context import StackContext


def build(cfg: StackConfig) -> dict[str, Any]:
    """Create every enabled component; return the stack outputs."""
    ctx = StackContext(cfg)
    topics = SeverityTopics("alert-topics", SeverityTopicsArgs(context=ctx))
    outputs: dict[str, Any] = {
        "environment": cfg.environment,
        "alertTopicArns": topics.arns,
    }
    # Day components are added below, each guarded by its `enabled` switch (one block per component).
    # -- xray --
    if cfg.xray.enabled:
        tracing = Tracing("tracing", TracingArgs(context=ctx, alert_topic_arn=topics.arns[ctx.region]["P1"]))
        outputs["xrayDaemonAddress"] = tracing.daemon_address
        outputs["xrayGroupArns"] = tracing.group_arns
    # -- emf-edge --
    if cfg.emf_edge.enabled:
        edge = EmfEdge("emf-edge", EmfEdgeArgs(context=ctx, topics=topics.refs))
        outputs["edgeFunctionName"] = edge.function_name
        # Attach this version to the distribution's origin-request trigger (include body) when it is not ours.
        outputs["edgeFunctionQualifiedArn"] = edge.qualified_arn
        outputs["edgeAlarmNames"] = edge.alarm_names
        outputs["edgeLogGroups"] = edge.log_group_names
        outputs["edgeModelBucket"] = edge.model_bucket
        if edge.distribution_domain is not None:
            outputs["edgeDistributionDomain"] = edge.distribution_domain
    # -- anomaly --
    if cfg.anomaly.enabled:
        anomaly = Anomaly("anomaly", AnomalyArgs(context=ctx, topics=topics.refs))
        outputs["anomalyBucket"] = anomaly.bucket_name
        outputs["anomalyTopicArn"] = anomaly.topic_arn
        outputs["anomalyFunctions"] = {"trainer": anomaly.trainer_name, "detector": anomaly.detector_name}
        outputs["anomalyAlarmNames"] = anomaly.alarm_names
    # -- pagerduty --
    # Before slo-alerting, which sends to its keys; its webhook subscription delivers to slo-alerting's runbook
    # API, whose URL is known only after: a deferred Output, resolved right after slo-alerting (below).
    pagerduty_keys: PagerDutyKeys | None = None
    resolve_webhook_url: Callable[[pulumi.Output[str]], None] | None = None
    if cfg.pagerduty_managed:  # the config refuses it without slo-alerting's paging (infra/config/pagerduty.py)
        assert cfg.secrets.pagerduty_token is not None  # required by the config when manage (infra/config/rules.py)
        webhook_url: pulumi.Output[str] | None = None
        if cfg.slo_alerting.runbooks.enabled:
            webhook_url, resolve_webhook_url = pulumi.deferred_output()
        pagerduty = PagerDuty("pagerduty", PagerDutyArgs(
            settings=cfg.pagerduty, name_prefix=ctx.naming.prefix, token=cfg.secrets.pagerduty_token,
            webhook_url=webhook_url, protect=ctx.protect()))
        pagerduty_keys = PagerDutyKeys(events=pagerduty.events_keys, cloudwatch=pagerduty.cloudwatch_keys,
                                       webhook_secret=pagerduty.webhook_secret)
        outputs["pagerdutyServices"] = pagerduty.service_names
    # -- slo-alerting --
    if cfg.slo_alerting.enabled:
        slo_alerting = SloAlerting("slo-alerting", SloAlertingArgs(
            context=ctx, topics=topics.refs,
            edge_function_name=edge.function_name if cfg.emf_edge.enabled else "",
            edge_regions=edge.regions if cfg.emf_edge.enabled else [], pagerduty=pagerduty_keys))
        if resolve_webhook_url is not None:
            assert slo_alerting.webhook_url is not None  # runbooks enabled: the API exists
            resolve_webhook_url(slo_alerting.webhook_url)
        outputs["sloPrometheusRules"] = slo_alerting.prometheus_rules
        outputs["sloAlertmanagerSecret"] = slo_alerting.alertmanager_secret
        outputs["sloAlertmanagerRoutes"] = slo_alerting.alertmanager_routes
        outputs["sloSeverityRouting"] = slo_alerting.subscriptions
        outputs["runbookWebhookUrl"] = slo_alerting.webhook_url
    # -- dashboards --
    if cfg.dashboards.enabled:
        dashboards = Dashboards("dashboards", DashboardsArgs(
            context=ctx,
            edge_alarm_names=edge.alarm_names if cfg.emf_edge.enabled else None,
            edge_function_name=edge.function_name if cfg.emf_edge.enabled else None,
            anomaly_alarm_names=anomaly.alarm_names if cfg.anomaly.enabled else None,
            anomaly_function_names=[anomaly.detector_name, anomaly.trainer_name] if cfg.anomaly.enabled else [],
            slo_rules_deployed=bool(slo_alerting.prometheus_rules) if cfg.slo_alerting.enabled else False,
            **day5_watch_inputs(cfg, topics, edge if cfg.emf_edge.enabled else None,
                                anomaly if cfg.anomaly.enabled else None,
                                slo_alerting if cfg.slo_alerting.enabled else None),
        ))
        outputs["cloudwatchDashboards"] = dashboards.cloudwatch_names
        outputs["grafanaDashboardConfigMaps"] = dashboards.grafana_config_maps
        if dashboards.grafana_cloudwatch_role is not None:
            # For the Helm value grafana.serviceAccount.annotations."eks.amazonaws.com/role-arn".
            outputs["grafanaCloudwatchRoleArn"] = dashboards.grafana_cloudwatch_role.arn
    # -- game-days --
    if cfg.game_days.enabled:
        # Experiments stop on the home Region's user-facing alarms; without one, none is safe to create.
        stop = stop_alarm_names(ctx.region, edge.composite_alarms if cfg.emf_edge.enabled else None,
                                dashboards.probes.alarm_names if cfg.dashboards.enabled else None)
        if not stop:
            outputs["gameDaySkipped"] = {k: "no stop-condition alarm in the home Region (emfEdge and "
                                            "dashboards.synthetics are off)" for k in GAME_DAY_KEYS}
        else:
            # The templates name alarms and a function of these components: created after them.
            owners: list[pulumi.Resource] = [
                c for c in (edge if cfg.emf_edge.enabled else None, anomaly if cfg.anomaly.enabled else None,
                            dashboards if cfg.dashboards.enabled else None) if c is not None]
            game_days = GameDays("game-days", GameDaysArgs(
                context=ctx, stop_alarm_names=stop,
                detector_function_name=anomaly.detector_name if cfg.anomaly.enabled else None,
                depends_on=owners))
            outputs["gameDayExperiments"] = game_days.template_keys
            outputs["gameDayLogGroup"] = game_days.log_group_name
            if game_days.skipped:
                outputs["gameDaySkipped"] = game_days.skipped
    # -- logs --
    # Last: it archives every log group the components above created (StackContext.log_groups).
    if cfg.logs.enabled:
        runbook_functions = getattr(slo_alerting, "runbook_function_names", None) \
            if cfg.slo_alerting.enabled else None
        logs = Logs("logs", LogsArgs(
            context=ctx, topics=topics.refs,
            edge_function_name=edge.function_name if cfg.emf_edge.enabled else None,
            runbook_functions=dict(runbook_functions or {}),
            detector_function_name=anomaly.detector_name if cfg.anomaly.enabled else None))
        outputs["logArchiveBuckets"] = logs.archive_buckets
        outputs["logQueries"] = logs.query_urls
        outputs["logAlarmNames"] = logs.alarm_names
    return outputs


def export_all(outputs: dict[str, Any]) -> None:
    for key, value in outputs.items():
        pulumi.export(key, value)
