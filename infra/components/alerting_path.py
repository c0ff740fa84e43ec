"""The alerting path watched: every way a notification travels has an alarm of its own.

- SNS delivery failures (`NumberOfNotificationsFailed`) on every severity topic in every alarm region. A topic
  cannot report its own failure through itself, so P0/P1 failures go to P2 (the ticket path) and P2 failures
  to P1 (the paging path): each alarm leaves by a different subscription than the one that failed.
- Failure/dead-letter queues: any visible message (something was dropped), and the oldest message's age on
  every watched queue (a job queue that stopped draining).
- The runbook webhook and worker functions: errors, throttles, and the webhook's p99 duration (PagerDuty waits
  5 s for a 2xx).
- The webhook HTTP API: 5xx and p99 latency; its 4xx share (tickets) and its 401 share (pages P1: a wrong
  PagerDuty signing secret turns every delivery into a 401, so no runbook runs and nobody is told). 401s are
  counted from the API's JSON access log by a metric filter (API Gateway publishes 4xx, not per status).
- The runbook state and incident timeline tables: throttled requests and DynamoDB system errors.
- Delivery failures on every other topic something publishes to and a person reads (the anomaly episodes, the
  runbook audit), each to a severity other than the path that failed.
- Alertmanager's dead-man's switch: the always-firing heartbeat is published to a topic of the stack (KMS, the
  home alert key) by the IRSA role of Alertmanager's service account (Publish to that topic only); an alarm on
  the topic's `NumberOfMessagesPublished` (missing data breaching) pages P1 when the heartbeat stops: Prometheus,
  the rules, Alertmanager, its credentials or its way out of the cluster broke, and with them every alert routed
  through Alertmanager. SNS itself counts what it accepted, so no function of ours sits between the heartbeat
  and its metric; a publish without the role's credentials is refused and never counted.
Canaries watch themselves (`infra/components/synthetics.py`). Alarms the owning component already has (the
anomaly functions' errors/throttles) are not duplicated. The plan-time rule `alerting_path_watched`
(`infra/validation/probes_path_cost.py`) lists every notification path in the plan and fails on one without an alarm.

The `AlertingPath` component (config section `alertingPath`); what it watches comes in as explicit inputs (the
program collects them from the owning components). Its resources lived under the dashboards component before and
keep their identity through aliases (infra/core/moves.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.blocks.alarms import metric_alarm
from infra.blocks.context import StackContext
from infra.blocks.irsa import WorkloadRole, workload_role
from infra.components.severity_topics import SEVERITIES, AlertTopics
from infra.config import StackConfig
from infra.core import iam
from infra.core.moves import OldParent, moved_from
from infra.core.naming import MAX_ALARM_NAME, MAX_TOPIC_NAME, Naming
from infra.slo.alertmanager import SnsHeartbeat

# Where a delivery-failure alarm of a severity topic goes (never the topic that failed).
FAILURE_ROUTE = {"P0": "P2", "P1": "P2", "P2": "P1"}
PERIOD_S = 300
PATH_RUNBOOK = "alerting-path-failure"  # rules/runbooks.yaml: every alarm below but the two that follow
HEARTBEAT_RUNBOOK = "alertmanager-heartbeat-missing"
WEBHOOK_RUNBOOK = "runbook-webhook-rejected"
WEBHOOK_METRICS_NAMESPACE = "AkiDB/RunbookWebhook"
# 401 answers of the webhook API, from its access log: <prefix>-<api key>-unauthorized (one series per stack).
UNAUTHORIZED_METRIC = "Unauthorized"
HEARTBEAT_TOPIC = "alertmanager-heartbeat"  # also the role's key: akidb-<env>-alertmanager-heartbeat
HEARTBEAT_ALARM = "alertmanager-heartbeat"
COMPONENT = "alerting-path"
TOKEN = "akidb:alerting-path:AlertingPath"
# Where these alarms lived before they were a component of their own: children of the dashboards component.
OLD_PARENT: OldParent = ("akidb:dashboards:Dashboards", "dashboards")


def heartbeat_enabled(cfg: StackConfig) -> bool:
    """The stack receives the heartbeat: it deploys the Alertmanager config (Kubernetes, slo-alerting) and
    watches the alerting path."""
    a = cfg.alerting_path
    return cfg.kubernetes.enabled and cfg.slo_alerting.enabled and a.enabled and a.heartbeat.enabled


def heartbeat_topic_name(naming: Naming) -> str:
    return naming.physical(HEARTBEAT_TOPIC, max_len=MAX_TOPIC_NAME)


def stack_heartbeat(cfg: StackConfig, account_id: str) -> SnsHeartbeat | None:
    """Where this stack's Alertmanager publishes its heartbeat (the topic's ARN from its name), or None: the
    external `sloAlerting.heartbeatWebhookUrl`."""
    if not heartbeat_enabled(cfg):
        return None
    region = cfg.aws.region
    name = heartbeat_topic_name(Naming(cfg.service, cfg.environment))
    return SnsHeartbeat(topic_arn=f"arn:{iam.partition_of(region)}:sns:{region}:{account_id}:{name}", region=region)


@dataclass
class WatchedQueue:
    key: str  # short name in alarm names, e.g. "runbook-jobs"
    region: str
    arn: pulumi.Input[str]
    dead_letter: bool  # any message at all is a failure


@dataclass
class WatchedFunction:
    key: str
    region: str
    name: pulumi.Input[str]
    p99_ms: int | None = None  # duration alarm threshold (None: no duration alarm)


@dataclass
class WatchedTopic:
    """A topic outside the severity topics that something publishes to and a subscriber reads."""

    key: str
    region: str
    arn: pulumi.Input[str]
    failure_severity: str  # where its delivery-failure alarm goes: never the path that failed


@dataclass
class WatchedTable:
    key: str
    region: str
    name: pulumi.Input[str]
    operations: tuple[str, ...]  # the operations the stack calls (SystemErrors is published per operation)


@dataclass
class WatchedApi:
    region: str
    api_id: pulumi.Input[str]
    access_log_group: pulumi.Input[str] | None = None  # JSON access log with `status`: enables the 401 alarm


@dataclass
class AlertingPathInputs:
    topics: AlertTopics
    queues: list[WatchedQueue] = field(default_factory=list)
    functions: list[WatchedFunction] = field(default_factory=list)
    apis: dict[str, WatchedApi] = field(default_factory=dict)
    other_topics: list[WatchedTopic] = field(default_factory=list)
    tables: list[WatchedTable] = field(default_factory=list)


@dataclass
class AlertingPathArgs:
    context: StackContext
    watched: AlertingPathInputs


class AlertingPath(pulumi.ComponentResource):
    alarm_names: dict[str, list[str]]  # region -> alarm names

    def __init__(self, name: str, args: AlertingPathArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        ctx = args.context
        moved = pulumi.ResourceOptions(transformations=[moved_from(self, name, OLD_PARENT, OLD_PARENT[1])])
        super().__init__(TOKEN, name, None, ctx.component_opts(COMPONENT, pulumi.ResourceOptions.merge(moved, opts)))
        self.alarm_names = create_alerting_path_alarms(name, ctx, args.watched, self)
        self.register_outputs({"alarms": self.alarm_names})


def _last(arn: pulumi.Input[str]) -> pulumi.Output[str]:
    return pulumi.Output.from_input(arn).apply(lambda a: a.rsplit(":", 1)[-1])


def create_heartbeat_receiver(name: str, ctx: StackContext, topics: AlertTopics,
                              parent: pulumi.Resource) -> tuple[str, WorkloadRole]:
    """The heartbeat topic and the only role that may publish to it; returns the topic name and the role."""
    home = ctx.region
    hb = ctx.config.alerting_path.heartbeat
    topic_name = heartbeat_topic_name(ctx.naming)
    topic = aws.sns.Topic(f"{name}-heartbeat", region=home, name=topic_name, kms_master_key_id=topics.key_arns[home],
                          opts=pulumi.ResourceOptions(parent=parent))
    role = workload_role(
        f"{name}-heartbeat", ctx, key=HEARTBEAT_TOPIC, service_account=hb.service_account,
        setting="alertingPath.heartbeat", parent=parent,
        description=f"IRSA role of Alertmanager ({ctx.config.kubernetes.namespace}/{hb.service_account}): publish "
                    "the heartbeat, nothing else",
        statements=[
            iam.statement(["sns:Publish"], [iam.known_after(topic, ctx.arns.topic(home, topic_name))],
                          sid="PublishHeartbeat"),
            # The topic is encrypted with the home alert key: SNS needs the publisher's use of it.
            iam.statement(["kms:Decrypt", "kms:GenerateDataKey"], [ctx.arns.any_key(home)], sid="AlertKey",
                          conditions=iam.key_alias_condition(topics.key_aliases[home])),
        ])
    return topic_name, role


def create_alerting_path_alarms(name: str, ctx: StackContext, inputs: AlertingPathInputs,
                                parent: pulumi.Resource) -> dict[str, list[str]]:
    cfg = ctx.config.alerting_path
    out: dict[str, list[str]] = {}

    def alarm(region: str, key: str, severity: str, description: str, runbook: str = PATH_RUNBOOK,
              **kwargs: Any) -> None:
        alarm_name = ctx.naming.physical("alerting-path", key, region, max_len=MAX_ALARM_NAME)
        target = inputs.topics.arns[region][severity]
        spec = kwargs if "metric_queries" in kwargs else {"period": PERIOD_S, **kwargs}
        metric_alarm(f"{name}-path-{region}-{key}", parent=parent, region=region, name=alarm_name,
                     description=description, runbook=runbook, topic_arn=target, **spec)
        out.setdefault(region, []).append(alarm_name)

    def delivery_failed(region: str, key: str, topic_arn: pulumi.Input[str], severity: str, what: str) -> None:
        alarm(region, f"sns-{key}-delivery", severity,
              f"{what} in {region} failed to deliver notifications (PagerDuty/ticket endpoint down or "
              "rejecting): they may not reach anyone",
              namespace="AWS/SNS", metric_name="NumberOfNotificationsFailed",
              dimensions={"TopicName": _last(topic_arn)}, statistic="Sum",
              comparison_operator="GreaterThanThreshold", threshold=0, evaluation_periods=1,
              treat_missing_data="notBreaching")

    for region, by_severity in inputs.topics.arns.items():
        for severity in SEVERITIES:
            delivery_failed(region, severity.lower(), by_severity[severity], FAILURE_ROUTE[severity],
                            f"{severity} topic (alerts of this severity)")
    for t in inputs.other_topics:
        delivery_failed(t.region, t.key, t.arn, t.failure_severity, f"{t.key} topic")
    for table in inputs.tables:
        _table_alarms(alarm, table)
    for q in inputs.queues:
        qname = _last(q.arn)
        if q.dead_letter:
            alarm(q.region, f"{q.key}-messages", "P2",
                  f"Failures queue {q.key} holds messages: an invocation or job failed after its retries",
                  namespace="AWS/SQS", metric_name="ApproximateNumberOfMessagesVisible",
                  dimensions={"QueueName": qname}, statistic="Maximum", comparison_operator="GreaterThanThreshold",
                  threshold=0, evaluation_periods=1, treat_missing_data="notBreaching")
        alarm(q.region, f"{q.key}-age", "P2",
              f"Oldest message in {q.key} is older than {cfg.queue_age_s} s: nothing is draining it",
              namespace="AWS/SQS", metric_name="ApproximateAgeOfOldestMessage", dimensions={"QueueName": qname},
              statistic="Maximum", comparison_operator="GreaterThanThreshold", threshold=cfg.queue_age_s,
              evaluation_periods=1, treat_missing_data="notBreaching")
    for fn in inputs.functions:
        dims = {"FunctionName": fn.name}
        for metric in ("Errors", "Throttles"):
            alarm(fn.region, f"{fn.key}-{metric.lower()}", "P2",
                  f"{fn.key} function {metric.lower()}: the alerting path's automation is failing",
                  namespace="AWS/Lambda", metric_name=metric, dimensions=dims, statistic="Sum",
                  comparison_operator="GreaterThanThreshold", threshold=0, evaluation_periods=1,
                  treat_missing_data="notBreaching")
        if fn.p99_ms is not None:
            alarm(fn.region, f"{fn.key}-duration", "P2",
                  f"{fn.key} function p99 duration above {fn.p99_ms} ms",
                  namespace="AWS/Lambda", metric_name="Duration", dimensions=dims, extended_statistic="p99",
                  comparison_operator="GreaterThanThreshold", threshold=fn.p99_ms, evaluation_periods=3,
                  datapoints_to_alarm=2, treat_missing_data="notBreaching")
    for key, api in inputs.apis.items():
        region, dims = api.region, {"ApiId": api.api_id}
        alarm(region, f"{key}-5xx", "P2", f"{key} HTTP API answered 5xx: webhook deliveries are failing",
              namespace="AWS/ApiGateway", metric_name="5xx", dimensions=dims, statistic="Sum",
              comparison_operator="GreaterThanThreshold", threshold=0, evaluation_periods=1,
              treat_missing_data="notBreaching")
        alarm(region, f"{key}-latency", "P2", f"{key} HTTP API p99 latency above {cfg.api_p99_ms} ms",
              namespace="AWS/ApiGateway", metric_name="Latency", dimensions=dims, extended_statistic="p99",
              comparison_operator="GreaterThanThreshold", threshold=cfg.api_p99_ms, evaluation_periods=3,
              datapoints_to_alarm=2, treat_missing_data="notBreaching")
        _webhook_rejections(name, alarm, key, api, cfg.webhook_4xx_share, cfg.webhook_401_share,
                            cfg.webhook_min_requests, ctx.naming.physical(key, UNAUTHORIZED_METRIC.lower()), parent)
    if heartbeat_enabled(ctx.config):
        topic_name, role = create_heartbeat_receiver(name, ctx, inputs.topics, parent)
        periods = cfg.heartbeat.missing_periods
        alarm(ctx.region, HEARTBEAT_ALARM, "P1", runbook=HEARTBEAT_RUNBOOK,
              description=f"[page] No heartbeat from Alertmanager for {periods * PERIOD_S // 60} min: Prometheus, "
              "the alert "
              "rules, Alertmanager, its AWS credentials (role " + role.name + ") or its way out of the cluster "
              "broke, so alerts routed through Alertmanager reach nobody. Check the Alertmanager pods' logs "
              "(sns notify errors) and the SLOAlertingHeartbeat alert in Prometheus.",
              namespace="AWS/SNS", metric_name="NumberOfMessagesPublished", dimensions={"TopicName": topic_name},
              statistic="Sum", comparison_operator="LessThanThreshold", threshold=1, evaluation_periods=periods,
              datapoints_to_alarm=periods, treat_missing_data="breaching")
    return out


AlarmFn = Callable[..., None]


def _query(qid: str, namespace: str, metric: str, dims: dict[str, pulumi.Input[str]],
           stat: str = "Sum") -> aws.cloudwatch.MetricAlarmMetricQueryArgs:
    return aws.cloudwatch.MetricAlarmMetricQueryArgs(
        id=qid, return_data=False, metric=aws.cloudwatch.MetricAlarmMetricQueryMetricArgs(
            namespace=namespace, metric_name=metric, dimensions=dims, period=PERIOD_S, stat=stat))


def _table_alarms(alarm: AlarmFn, table: WatchedTable) -> None:
    """Throttled reads/writes and system errors (per operation the stack calls) of one table, as tickets: the
    runbook path retries, but a table that throttles or fails loses dedupe claims and timeline events."""
    dims: dict[str, pulumi.Input[str]] = {"TableName": table.name}
    alarm(table.region, f"{table.key}-throttles", "P2",
          f"DynamoDB table {table.key} throttles requests: dedupe claims or timeline writes are refused",
          metric_queries=[_query("r", "AWS/DynamoDB", "ReadThrottleEvents", dims),
                          _query("w", "AWS/DynamoDB", "WriteThrottleEvents", dims),
                          aws.cloudwatch.MetricAlarmMetricQueryArgs(
                              id="throttled", return_data=True, label="throttle events",
                              expression="FILL(r, 0) + FILL(w, 0)")],
          comparison_operator="GreaterThanThreshold", threshold=0, evaluation_periods=1,
          treat_missing_data="notBreaching")
    ops = [_query(f"e{i}", "AWS/DynamoDB", "SystemErrors", {**dims, "Operation": op})
           for i, op in enumerate(table.operations)]
    alarm(table.region, f"{table.key}-system-errors", "P2",
          f"DynamoDB table {table.key} answers system errors (HTTP 500) on {', '.join(table.operations)}",
          metric_queries=[*ops, aws.cloudwatch.MetricAlarmMetricQueryArgs(
              id="errors", return_data=True, label="system errors",
              expression=" + ".join(f"FILL(e{i}, 0)" for i in range(len(ops))))],
          comparison_operator="GreaterThanThreshold", threshold=0, evaluation_periods=1,
          treat_missing_data="notBreaching")


def _webhook_rejections(name: str, alarm: AlarmFn, key: str, api: WatchedApi, share_4xx: float,
                        share_401: float, min_requests: int, metric_name: str, parent: pulumi.Resource) -> None:
    """The share of webhook requests answered 4xx (ticket) and 401 (page P1), judged only above `min_requests`
    requests in a period (a lone probe is not a rate). PagerDuty retries a failed delivery and then drops it
    (PagerDuty "Webhooks: retries"), so a wrong signing secret loses every runbook run silently."""
    dims: dict[str, pulumi.Input[str]] = {"ApiId": api.api_id}
    count = _query("requests", "AWS/ApiGateway", "Count", dims)
    alarm(api.region, f"{key}-4xx", "P2",
          f"{key} HTTP API answered 4xx to more than {share_4xx:.0%} of its requests: deliveries are refused "
          "(malformed, stale or unsigned)", runbook=WEBHOOK_RUNBOOK,
          metric_queries=[count, _query("rejected", "AWS/ApiGateway", "4xx", dims),
                          aws.cloudwatch.MetricAlarmMetricQueryArgs(
                              id="share", return_data=True, label="4xx share",
                              expression=f"IF(FILL(requests, 0) >= {min_requests}, FILL(rejected, 0) / requests, 0)")],
          comparison_operator="GreaterThanThreshold", threshold=share_4xx, evaluation_periods=3,
          datapoints_to_alarm=2, treat_missing_data="notBreaching")
    if api.access_log_group is None:
        return
    aws.cloudwatch.LogMetricFilter(
        f"{name}-path-{api.region}-{key}-401", region=api.region, log_group_name=api.access_log_group,
        name=f"{key}-unauthorized", pattern='{ $.status = "401" }',
        metric_transformation=aws.cloudwatch.LogMetricFilterMetricTransformationArgs(
            name=metric_name, namespace=WEBHOOK_METRICS_NAMESPACE, value="1", default_value="0"),
        opts=pulumi.ResourceOptions(parent=parent))
    alarm(api.region, f"{key}-401", "P1",
          f"[page] {key} HTTP API answered 401 to at least {share_401:.0%} of its requests: the PagerDuty V3 "
          "webhook signing secret (Pulumi secret pagerdutyWebhookSecret) no longer matches the subscription's, "
          "so no runbook runs. Compare the secret with the webhook subscription in PagerDuty and update it.",
          runbook=WEBHOOK_RUNBOOK,
          metric_queries=[count, _query("unauthorized", WEBHOOK_METRICS_NAMESPACE, metric_name, {}),
                          aws.cloudwatch.MetricAlarmMetricQueryArgs(
                              id="share", return_data=True, label="401 share",
                              expression=f"IF(FILL(requests, 0) >= {min_requests}, "
                                         "FILL(unauthorized, 0) / requests, 0)")],
          comparison_operator="GreaterThanOrEqualToThreshold", threshold=share_401, evaluation_periods=3,
          datapoints_to_alarm=2, treat_missing_data="notBreaching")
