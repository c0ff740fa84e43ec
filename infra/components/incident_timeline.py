"""The incident timeline's infrastructure and the IAM the hardened runbook functions need.

The timeline runs inside the runbook worker (lambdas/runbook_automation/timeline.py: same signed webhook, same
queue), so this module adds no function: a DynamoDB table (TTL, KMS, point-in-time recovery, deletion protection
where the stack protects state), the IAM statements the worker needs, its settings, and the "a week missed a
target" alarms (tickets, to the P2 topic). Called by SloAlerting._runbooks with explicit inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.blocks.alarms import metric_alarm
from infra.blocks.context import StackContext
from infra.core import iam
from infra.dashboard_defs.outcomes import OUTCOME_NAMESPACE, PAGES, TARGETS, WEEK_S

RETENTION_DAYS = 400  # a year of weekly figures to compare, plus the review quarter
SETTLE_S = 300  # quiet time before an incident's figures are published (SQS delays at most 900 s)


@dataclass
class IncidentTimeline:
    table: aws.dynamodb.Table
    table_name: str
    worker_statements: list[dict[str, Any]]
    settings: dict[str, Any]  # static RUNBOOK_SETTINGS entries (the table name is an Output: `table.name`)
    alarm_names: list[str] = field(default_factory=list)


def incident_timeline(parent: pulumi.Resource, ctx: StackContext, *, name: str, region: str,
                      key_arn: pulumi.Input[str], queue_arn: pulumi.Input[str],
                      ticket_topic_arn: pulumi.Input[str]) -> IncidentTimeline:
    table_name = ctx.naming.physical("incident-timeline")
    table = aws.dynamodb.Table(
        f"{name}-incident-timeline", region=region, name=table_name,
        billing_mode="PAY_PER_REQUEST", hash_key="pk", range_key="sk",
        attributes=[aws.dynamodb.TableAttributeArgs(name="pk", type="S"),
                    aws.dynamodb.TableAttributeArgs(name="sk", type="S")],
        ttl=aws.dynamodb.TableTtlArgs(attribute_name="expires_at", enabled=True),
        server_side_encryption=aws.dynamodb.TableServerSideEncryptionArgs(enabled=True, kms_key_arn=key_arn),
        point_in_time_recovery=aws.dynamodb.TablePointInTimeRecoveryArgs(enabled=True),
        deletion_protection_enabled=ctx.protect(),
        opts=pulumi.ResourceOptions(parent=parent, protect=ctx.protect()))
    statements = [
        iam.statement(["dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem"],
                      [ctx.arns.table(region, table_name)],
                      sid="IncidentTimeline"),
        # PutMetricData has no resource type: the namespace condition is what scopes it.
        iam.statement(["cloudwatch:PutMetricData"], "*", sid="OutcomeMetrics",
                      conditions={"StringEquals": {"cloudwatch:namespace": OUTCOME_NAMESPACE}}),
        iam.statement(["sqs:SendMessage"], [queue_arn], sid="DelayedPublish"),
    ]
    alarm_names = []
    for t in TARGETS:
        if t.limit is None:
            continue
        alarm_name = ctx.naming.physical("outcome", t.metric.lower(), "weekly", max_len=255)
        stat = {"statistic": "Sum"} if t.metric == PAGES else {"extended_statistic": t.statistic}
        metric_alarm(
            f"{name}-outcome-{t.metric.lower()}", parent=parent, region=region, name=alarm_name,
            runbook="incident-outcome-target", notify_ok=False, topic_arn=ticket_topic_arn,
            description=(f"[ticket] The last 7 days missed the plan's target: {t.title} {t.statistic} "
                               f"must not exceed {t.limit:g} {t.unit}. Review the week's incidents in the "
                               f"incident timeline table and the outcomes dashboard."),
            namespace=OUTCOME_NAMESPACE, metric_name=t.metric, period=WEEK_S, evaluation_periods=1,
            threshold=t.limit, comparison_operator="GreaterThanThreshold", treat_missing_data="notBreaching",
            **stat)
        alarm_names.append(alarm_name)
    settings = {"metrics_namespace": OUTCOME_NAMESPACE, "timeline_retention_days": RETENTION_DAYS,
                "timeline_settle_s": SETTLE_S}
    return IncidentTimeline(table=table, table_name=table_name, worker_statements=statements, settings=settings,
                            alarm_names=alarm_names)


def webhook_dedupe_statement(table_arn: pulumi.Input[str]) -> dict[str, Any]:
    """The receiver claims an event id (PutItem), marks it queued (UpdateItem) or releases it (DeleteItem)."""
    return iam.statement(["dynamodb:DeleteItem", "dynamodb:PutItem", "dynamodb:UpdateItem"], [table_arn],
                         sid="Dedupe")


def bounded_scale_statements(asg_arns: Sequence[pulumi.Input[str]], max_capacity: int) -> list[dict[str, Any]]:
    """Scale only the ASG the worker scales (scaleOutAsg), and UpdateAutoScalingGroup only to a MaxSize <=
    maxCapacity with nothing else changed that IAM can see (autoscaling:MaxSize/MinSize/LaunchConfigurationName/
    VPCZoneIdentifiers/InstanceTypes are condition keys of UpdateAutoScalingGroup). IAM has no key for
    DesiredCapacity: AWS itself refuses a desired capacity above the group's MaxSize, and the worker never sets
    more than maxCapacity."""
    if not asg_arns:
        return []
    return [
        iam.statement(["autoscaling:SetDesiredCapacity"], asg_arns, sid="ScaleAllowListedAsgs"),
        iam.statement(["autoscaling:UpdateAutoScalingGroup"], asg_arns, sid="RaiseMaxSizeWithinBound",
                      conditions={"NumericLessThanEquals": {"autoscaling:MaxSize": str(max_capacity)},
                                  "Null": {"autoscaling:MinSize": "true",
                                           "autoscaling:LaunchConfigurationName": "true",
                                           "autoscaling:VPCZoneIdentifiers": "true",
                                           "autoscaling:InstanceTypes": "true"}}),
    ]
