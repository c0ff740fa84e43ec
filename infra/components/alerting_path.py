"""The alerting path watched (Day 5): every way a notification travels has an alarm of its own.

- SNS delivery failures (`NumberOfNotificationsFailed`) on every severity topic in every alarm region. A topic
  cannot report its own failure through itself, so P0/P1 failures go to P2 (the ticket path) and P2 failures
  to P1 (the paging path): each alarm leaves by a different subscription than the one that failed.
- Failure/dead-letter queues: any visible message (something was dropped), and the oldest message's age on
  every watched queue (a job queue that stopped draining).
- The runbook webhook and worker functions: errors, throttles, and the webhook's p99 duration (PagerDuty waits
  5 s for a 2xx).
- The webhook HTTP API: 5xx and p99 latency.
Canaries watch themselves (`infra/components/synthetics.py`). Alarms the owning component already has (the
anomaly functions' errors/throttles) are not duplicated. The plan-time rule `alerting_path_watched`
(`infra/validation/day5.py`) lists every notification path in the plan and fails on one without an alarm.

Resources are children of the dashboards component (`parent`); what they watch comes in as explicit inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from infra.components.severity_topics import SEVERITIES, AlertTopics
from infra.core.context import StackContext
from infra.core.naming import MAX_ALARM_NAME

# Where a delivery-failure alarm of a severity topic goes (never the topic that failed).
FAILURE_ROUTE = {"P0": "P2", "P1": "P2", "P2": "P1"}
PERIOD_S = 300


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
class AlertingPathInputs:
    topics: AlertTopics
    queues: list[WatchedQueue] = field(default_factory=list)
    functions: list[WatchedFunction] = field(default_factory=list)
    apis: dict[str, tuple[str, pulumi.Input[str]]] = field(default_factory=dict)  # key -> (region, api id)


def _last(arn: pulumi.Input[str]) -> pulumi.Output[str]:
    return pulumi.Output.from_input(arn).apply(lambda a: a.rsplit(":", 1)[-1])


def create_alerting_path_alarms(name: str, ctx: StackContext, inputs: AlertingPathInputs,
                                parent: pulumi.Resource) -> dict[str, list[str]]:
    cfg = ctx.config.dashboards.alerting_path
    child = pulumi.ResourceOptions(parent=parent)
    out: dict[str, list[str]] = {}

    def alarm(region: str, key: str, severity: str, description: str, **kwargs: object) -> None:
        alarm_name = ctx.naming.physical("alerting-path", key, region, max_len=MAX_ALARM_NAME)
        target = inputs.topics.arns[region][severity]
        aws.cloudwatch.MetricAlarm(
            f"{name}-path-{region}-{key}", region=region, name=alarm_name, alarm_description=description,
            period=PERIOD_S, alarm_actions=[target], ok_actions=[target], opts=child, **kwargs)
        out.setdefault(region, []).append(alarm_name)

    for region, by_severity in inputs.topics.arns.items():
        for severity in SEVERITIES:
            alarm(region, f"sns-{severity.lower()}-delivery", FAILURE_ROUTE[severity],
                  f"{severity} topic in {region} failed to deliver notifications (PagerDuty/ticket endpoint down "
                  "or rejecting): alerts of this severity may not reach anyone",
                  namespace="AWS/SNS", metric_name="NumberOfNotificationsFailed",
                  dimensions={"TopicName": _last(by_severity[severity])}, statistic="Sum",
                  comparison_operator="GreaterThanThreshold", threshold=0, evaluation_periods=1,
                  treat_missing_data="notBreaching")
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
    for key, (region, api_id) in inputs.apis.items():
        dims = {"ApiId": api_id}
        alarm(region, f"{key}-5xx", "P2", f"{key} HTTP API answered 5xx: webhook deliveries are failing",
              namespace="AWS/ApiGateway", metric_name="5xx", dimensions=dims, statistic="Sum",
              comparison_operator="GreaterThanThreshold", threshold=0, evaluation_periods=1,
              treat_missing_data="notBreaching")
        alarm(region, f"{key}-latency", "P2", f"{key} HTTP API p99 latency above {cfg.api_p99_ms} ms",
              namespace="AWS/ApiGateway", metric_name="Latency", dimensions=dims, extended_statistic="p99",
              comparison_operator="GreaterThanThreshold", threshold=cfg.api_p99_ms, evaluation_periods=3,
              datapoints_to_alarm=2, treat_missing_data="notBreaching")
    return out
