"""Severity SNS topics (P0/P1/P2) in every region an alarm lives in: the shared target of all alarms.

CloudWatch alarms can only notify a topic in their own region, and edge alarms live in every edge region, so
the topics exist once per alarm region. Topics are encrypted with a customer-managed KMS key whose policy lets
CloudWatch and EventBridge use it (the AWS-managed SNS key cannot be used by CloudWatch alarms). The topic
policy lets only CloudWatch and EventBridge of this account publish. Subscriptions (PagerDuty, tickets) are
added by slo-alerting.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.core.context import StackContext
from infra.core.iam import statement
from infra.core.naming import MAX_TOPIC_NAME

SEVERITIES = ("P0", "P1", "P2")


@dataclass(frozen=True)
class AlertTopics:
    """What a component needs of the severity topics: `arns[region][severity]`, `key_arns[region]`."""

    arns: dict[str, dict[str, pulumi.Output[str]]]
    key_arns: dict[str, pulumi.Output[str]]
# budgets/costalerts: Day 5's budget and cost-anomaly notifications to P2 (infra/components/cost.py).
PUBLISHING_SERVICES = ["budgets.amazonaws.com", "cloudwatch.amazonaws.com", "costalerts.amazonaws.com",
                       "events.amazonaws.com"]
COMPONENT = "foundation"


@dataclass
class SeverityTopicsArgs:
    context: StackContext


class SeverityTopics(pulumi.ComponentResource):
    """`arns[region][severity]`: the topic ARN alarms in that region notify."""

    arns: dict[str, dict[str, pulumi.Output[str]]]
    key_arns: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, args: SeverityTopicsArgs, opts: pulumi.ResourceOptions | None = None):
        ctx = args.context
        super().__init__("akidb:foundation:SeverityTopics", name, None, ctx.component_opts(COMPONENT, opts))
        account = ctx.account_id
        self.arns = {}
        self.key_arns = {}
        for region in ctx.config.alarm_regions:
            key = aws.kms.Key(
                f"{name}-{region}-key",
                region=region,
                description=f"{ctx.naming.prefix} alert topics ({region})",
                enable_key_rotation=True,
                deletion_window_in_days=30,
                policy=account.apply(lambda acct: _key_policy(acct)),
                opts=pulumi.ResourceOptions(parent=self, protect=ctx.protect()),
            )
            aws.kms.Alias(
                f"{name}-{region}-key-alias",
                region=region,
                name=f"alias/{ctx.naming.prefix}-alerts",
                target_key_id=key.key_id,
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.key_arns[region] = key.arn
            self.arns[region] = {}
            for severity in SEVERITIES:
                topic = aws.sns.Topic(
                    f"{name}-{region}-{severity.lower()}",
                    region=region,
                    name=ctx.naming.physical("alerts", severity.lower(), max_len=MAX_TOPIC_NAME),
                    kms_master_key_id=key.arn,
                    opts=pulumi.ResourceOptions(parent=self),
                )
                aws.sns.TopicPolicy(
                    f"{name}-{region}-{severity.lower()}-policy",
                    region=region,
                    arn=topic.arn,
                    policy=pulumi.Output.all(topic.arn, account).apply(
                        lambda a: json.dumps(_topic_policy(a[0], a[1]), sort_keys=True)),
                    opts=pulumi.ResourceOptions(parent=self),
                )
                self.arns[region][severity] = topic.arn
        self.refs = AlertTopics(arns=self.arns, key_arns=self.key_arns)
        self.register_outputs({"arns": self.arns})


def _key_policy(account: str) -> str:
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [
            statement(["kms:*"], "*", sid="AccountAdministers",
                      principals={"AWS": f"arn:aws:iam::{account}:root"}),
            statement(["kms:Decrypt", "kms:GenerateDataKey*"], "*", sid="AlarmServicesEncrypt",
                      principals={"Service": PUBLISHING_SERVICES},
                      conditions={"StringEquals": {"aws:SourceAccount": account}}),
        ],
    }, sort_keys=True)


def _topic_policy(topic_arn: str, account: str) -> dict:
    return {
        "Version": "2012-10-17",
        "Statement": [statement(["sns:Publish"], topic_arn, sid="AlarmServicesPublish",
                                principals={"Service": PUBLISHING_SERVICES},
                                conditions={"StringEquals": {"aws:SourceAccount": account}})],
    }
