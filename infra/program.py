"""The program: validated config -> components -> resources. `__main__.py` (real CLI) and the offline plan
both call `build()`, so what is planned offline is exactly what `pulumi up` deploys."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pulumi

from infra.blocks.context import StackContext
from infra.components import alerting_path as alerting_path_component
from infra.components import anomaly as anomaly_component
from infra.components import cost_watch as cost_watch_component
from infra.components import coverage as coverage_component
from infra.components import dashboards as dashboards_component
from infra.components import emf_edge as emf_edge_component
from infra.components import game_days as game_days_component
from infra.components import logs as logs_component
from infra.components import severity_topics as severity_topics_component
from infra.components import slo_alerting as slo_alerting_component
from infra.components import synthetics as synthetics_component
from infra.components import xray as xray_component
from infra.components.alerting_path import (
    AlertingPath,
    AlertingPathArgs,
    AlertingPathInputs,
    WatchedApi,
    WatchedFunction,
    WatchedQueue,
    WatchedTable,
    WatchedTopic,
)
from infra.components.anomaly import Anomaly, AnomalyArgs
from infra.components.cost_watch import CostWatch, CostWatchArgs
from infra.components.coverage import Coverage, CoverageArgs, start_inventory
from infra.components.dashboards import Dashboards, DashboardsArgs
from infra.components.emf_edge import EmfEdge, EmfEdgeArgs
from infra.components.game_days import EXPERIMENT_KEYS as GAME_DAY_KEYS
from infra.components.game_days import GameDays, GameDaysArgs, stop_alarm_names
from infra.components.logs import Logs, LogsArgs
from infra.components.pagerduty import PagerDuty, PagerDutyArgs
from infra.components.runbook_automation import PagerDutyKeys
from infra.components.severity_topics import AlertTopics, SeverityTopics, SeverityTopicsArgs
from infra.components.slo_alerting import SloAlerting, SloAlertingArgs
from infra.components.synthetics import Synthetics, SyntheticsArgs
from infra.components.xray import Tracing, TracingArgs
from infra.config import StackConfig
from infra.dashboard_defs.log_queries import LogOwners

# The `component` tag of every AWS provider of the program: the budget's scope (CostWatch).
STACK_COMPONENTS = (severity_topics_component.COMPONENT, xray_component.COMPONENT, emf_edge_component.COMPONENT,
                    anomaly_component.COMPONENT, slo_alerting_component.COMPONENT, dashboards_component.COMPONENT,
                    synthetics_component.COMPONENT, alerting_path_component.COMPONENT,
                    cost_watch_component.COMPONENT, game_days_component.COMPONENT, coverage_component.COMPONENT,
                    logs_component.COMPONENT)


def watched_paths(cfg: StackConfig, topics: AlertTopics, anomaly: Anomaly | None,
                  slo: SloAlerting | None) -> AlertingPathInputs:
    """What the alerting path watches, from the components that own it."""
    home = cfg.aws.region
    watched = AlertingPathInputs(topics=topics)
    if anomaly is not None:
        watched.queues.append(WatchedQueue("anomaly-failures", home, anomaly.failure_queue_arn, dead_letter=True))
        # Episodes go to the ticket webhook: its failure must page (P1), as the P2 topic's does.
        watched.other_topics.append(WatchedTopic("anomaly", home, anomaly.topic_arn, failure_severity="P1"))
    if slo is not None and slo.runbooks is not None:
        rb = slo.runbooks
        for key, arn in rb.queue_arns.items():
            watched.queues.append(WatchedQueue(key, home, arn, dead_letter=key.endswith("-dlq")))
        p99 = cfg.alerting_path.webhook_p99_ms
        for key, fn_name in rb.function_names.items():
            watched.functions.append(WatchedFunction(key, home, fn_name,
                                                     p99_ms=p99 if key == "runbook-webhook" else None))
        watched.apis["runbook-api"] = WatchedApi(home, rb.api_id, rb.api_access_logs)
        watched.other_topics.append(WatchedTopic("runbook-audit", home, rb.audit_topic_arn, failure_severity="P2"))
        watched.tables += [WatchedTable(key, home, table_name, ops) for key, (table_name, ops) in rb.tables.items()]
    return watched


def build(cfg: StackConfig) -> dict[str, Any]:
    """Create every enabled component; return the stack outputs."""
    ctx = StackContext(cfg)
    inventory = start_inventory()  # first: records what the coverage component draws (infra/components/coverage.py)
    topics = SeverityTopics("alert-topics", SeverityTopicsArgs(context=ctx))
    outputs: dict[str, Any] = {
        "environment": cfg.environment,
        "alertTopicArns": topics.arns,
    }
    # Components are added below, each guarded by its `enabled` switch (one block per component).
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
        outputs["anomalyFunctions"] = {"trainer": anomaly.trainer_name, "detector": anomaly.detector_name,
                                        "dispatcher": anomaly.dispatcher_name}
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
    # -- synthetics --
    synthetics: Synthetics | None = None
    if cfg.synthetics.enabled:
        edge_url = None
        if cfg.emf_edge.enabled and edge.distribution_domain is not None:
            edge_url = pulumi.Output.concat("https://", edge.distribution_domain)
        synthetics = Synthetics("synthetics", SyntheticsArgs(context=ctx, topics=topics.refs, edge_url=edge_url))
    # -- alerting-path --
    path_alarms: dict[str, list[str]] = {}
    if cfg.alerting_path.enabled:
        alerting_path = AlertingPath("alerting-path", AlertingPathArgs(context=ctx, watched=watched_paths(
            cfg, topics.refs, anomaly if cfg.anomaly.enabled else None,
            slo_alerting if cfg.slo_alerting.enabled else None)))
        path_alarms = alerting_path.alarm_names
    # -- cost-watch --
    if cfg.cost_watch.enabled:
        CostWatch("cost-watch", CostWatchArgs(context=ctx, p2_topic_arn=topics.arns[ctx.region]["P2"],
                                                           components=STACK_COMPONENTS))
    # Whose log groups the Logs Insights queries read: the saved queries (logs) and the boards' log widgets.
    runbooks = slo_alerting.runbooks if cfg.slo_alerting.enabled else None
    runbook_functions = runbooks.function_names if runbooks is not None else None
    log_owners = LogOwners(
        edge=(edge.function_name,) if cfg.emf_edge.enabled else (),
        runbook=tuple(runbook_functions.values()) if runbook_functions else (),
        detector=(anomaly.detector_name,) if cfg.anomaly.enabled else ())
    # -- dashboards --
    if cfg.dashboards.enabled:
        # The probes board shows the canaries' alarms and the alerting path's; without canaries there is none.
        probe_alarms: dict[str, list[str]] = {}
        if synthetics is not None:
            for source in (synthetics.result.alarm_names, path_alarms):
                for region, names in source.items():
                    probe_alarms.setdefault(region, []).extend(names)
        dashboards = Dashboards("dashboards", DashboardsArgs(
            context=ctx,
            edge_alarm_names=edge.alarm_names if cfg.emf_edge.enabled else None,
            edge_function_name=edge.function_name if cfg.emf_edge.enabled else None,
            anomaly_alarm_names=anomaly.alarm_names if cfg.anomaly.enabled else None,
            anomaly_function_names=[anomaly.detector_name, anomaly.trainer_name] if cfg.anomaly.enabled else [],
            slo_rules_deployed=bool(slo_alerting.prometheus_rules) if cfg.slo_alerting.enabled else False,
            probe_alarm_names=probe_alarms,
            log_owners=log_owners if cfg.logs.enabled else None,
        ))
        outputs["cloudwatchDashboards"] = dashboards.cloudwatch_names
        outputs["grafanaDashboardConfigMaps"] = dashboards.grafana_config_maps
        if dashboards.grafana_cloudwatch_role is not None:
            # For the Helm value grafana.serviceAccount.annotations."eks.amazonaws.com/role-arn".
            outputs["grafanaCloudwatchRoleArn"] = dashboards.grafana_cloudwatch_role.arn
    # -- coverage -- (after every component it watches; rules/coverage.yaml)
    if cfg.emf_edge.enabled or cfg.dashboards.enabled:
        coverage = Coverage("coverage", CoverageArgs(
            context=ctx, topics=topics.refs, inventory=inventory, draw=cfg.dashboards.enabled,
            edge_function_name=edge.function_name if cfg.emf_edge.enabled else None,
            edge_regions=edge.regions if cfg.emf_edge.enabled else [],
            distribution=edge.distribution if cfg.emf_edge.enabled else None))
        outputs["coverageAlarmNames"] = coverage.alarm_names
    # -- game-days --
    if cfg.game_days.enabled:
        # Experiments stop on the home Region's user-facing alarms; without one, none is safe to create.
        stop = stop_alarm_names(ctx.region, edge.composite_alarms if cfg.emf_edge.enabled else None,
                                synthetics.result.alarm_names if synthetics is not None else None)
        if not stop:
            outputs["gameDaySkipped"] = {k: "no stop-condition alarm in the home Region (emfEdge and "
                                            "synthetics are off)" for k in GAME_DAY_KEYS}
        else:
            # The templates name alarms and a function of these components: created after them.
            owners: list[pulumi.Resource] = [
                c for c in (edge if cfg.emf_edge.enabled else None, anomaly if cfg.anomaly.enabled else None,
                            synthetics) if c is not None]
            game_days = GameDays("game-days", GameDaysArgs(
                context=ctx, stop_alarm_names=stop,
                detector_function_name=anomaly.detector_name if cfg.anomaly.enabled else None,
                depends_on=owners))
            outputs["gameDayExperiments"] = game_days.template_keys
            outputs["gameDayLogGroup"] = game_days.log_group_name
            if game_days.skipped:
                outputs["gameDaySkipped"] = game_days.skipped
    # -- logs --
    # Last: it archives every log group the components above created (StackContext.log_groups); none, nothing.
    if cfg.logs.enabled and ctx.log_groups:
        logs = Logs("logs", LogsArgs(context=ctx, topics=topics.refs, owners=log_owners,
                                     runbook_functions=dict(runbook_functions or {})))
        outputs["logArchiveBuckets"] = logs.archive_buckets
        outputs["logQueries"] = logs.query_urls
        outputs["logAlarmNames"] = logs.alarm_names
    return outputs


def export_all(outputs: dict[str, Any]) -> None:
    for key, value in outputs.items():
        pulumi.export(key, value)
