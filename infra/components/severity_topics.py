"""Severity SNS topics (P0/P1/P2) in every region an alarm lives in: the shared target of all alarms.

CloudWatch alarms can only notify a topic in their own region, and edge alarms live in every edge region, so
the topics exist once per alarm region. Topics are encrypted with a customer-managed KMS key whose policy lets
CloudWatch and EventBridge use it (the AWS-managed SNS key cannot be used by CloudWatch alarms). The topic
policy lets only CloudWatch and EventBridge of this account publish. Subscriptions (PagerDuty, tickets) are
added by slo-alerting.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.blocks.context import StackContext
from infra.core import iam
from infra.core.iam import statement
from infra.core.naming import MAX_TOPIC_NAME

SEVERITIES = ("P0", "P1", "P2")
COMPONENT = "foundation"
TOKEN = "akidb:foundation:SeverityTopics"


@dataclass(frozen=True)
class AlertTopics:
    """What a component needs of the severity topics, per region.

    `arns[region][severity]`: built from the topic names (known at preview), each depending on its topic;
    `key_arns[region]`: the topics' KMS key (its ARN holds a random key id: computed by AWS);
    `key_aliases[region]`: the key's alias, which policies name instead (`iam.key_alias_condition`).
    """

    arns: dict[str, dict[str, pulumi.Output[str]]]
    key_arns: dict[str, pulumi.Output[str]]
    key_aliases: dict[str, str]


def key_alias(naming_prefix: str) -> str:
    return f"alias/{naming_prefix}-alerts"


# budgets/costalerts: the cost watch's budget and cost-anomaly notifications to P2 (infra/components/cost_watch.py).
PUBLISHING_SERVICES = ["budgets.amazonaws.com", "cloudwatch.amazonaws.com", "costalerts.amazonaws.com",
                       "events.amazonaws.com"]


@dataclass
class SeverityTopicsArgs:
    context: StackContext


class SeverityTopics(pulumi.ComponentResource):
    """`arns[region][severity]`: the topic ARN alarms in that region notify."""

    arns: dict[str, dict[str, pulumi.Output[str]]]
    key_arns: dict[str, pulumi.Output[str]]
    refs: AlertTopics

    def __init__(self, name: str, args: SeverityTopicsArgs, opts: pulumi.ResourceOptions | None = None):
        ctx = args.context
        super().__init__(TOKEN, name, None, ctx.component_opts(COMPONENT, opts))
        account = ctx.account_id
        arns = ctx.arns
        self.arns = {}
        self.key_arns = {}
        aliases: dict[str, str] = {}
        for region in ctx.config.alarm_regions:
            key = aws.kms.Key(
                f"{name}-{region}-key",
                region=region,
                description=f"{ctx.naming.prefix} alert topics and log groups ({region})",
                enable_key_rotation=True,
                deletion_window_in_days=30,
                policy=iam.document(*_key_statements(arns, account, region)),
                opts=pulumi.ResourceOptions(parent=self, protect=ctx.protect()),
            )
            aliases[region] = key_alias(ctx.naming.prefix)
            aws.kms.Alias(
                f"{name}-{region}-key-alias",
                region=region,
                name=aliases[region],
                target_key_id=key.key_id,
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.key_arns[region] = key.arn
            ctx.register_regional_key(region, key.arn)
            self.arns[region] = {}
            for severity in SEVERITIES:
                topic_name = ctx.naming.physical("alerts", severity.lower(), max_len=MAX_TOPIC_NAME)
                topic = aws.sns.Topic(
                    f"{name}-{region}-{severity.lower()}",
                    region=region,
                    name=topic_name,
                    kms_master_key_id=key.arn,
                    opts=pulumi.ResourceOptions(parent=self),
                )
                topic_arn = iam.known_after(topic, arns.topic(region, topic_name))
                aws.sns.TopicPolicy(
                    f"{name}-{region}-{severity.lower()}-policy",
                    region=region,
                    arn=topic_arn,
                    policy=iam.document(_topic_statement(topic_arn, account)),
                    opts=pulumi.ResourceOptions(parent=self),
                )
                self.arns[region][severity] = topic_arn
        self.refs = AlertTopics(arns=self.arns, key_arns=self.key_arns, key_aliases=aliases)
        self.register_outputs({"arns": self.arns})


def _key_statements(arns: iam.Arns, account: pulumi.Input[str], region: str) -> list[iam.Statement]:
    return [
        statement(["kms:*"], "*", sid="AccountAdministers", principals={"AWS": arns.root()}),
        statement(["kms:Decrypt", "kms:GenerateDataKey*"], "*", sid="AlarmServicesEncrypt",
                  principals={"Service": PUBLISHING_SERVICES},
                  conditions={"StringEquals": {"aws:SourceAccount": account}}),
        # CloudWatch Logs encrypts this region's log groups of this account, and only those: the encryption
        # context names the log group (AWS's key policy for log group encryption, with the context key compared
        # as the String KMS documents it as). DescribeKey carries no encryption context, so it has its own
        # statement (a condition on a key absent from the request would deny it).
        statement(["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*"], "*",
                  sid="LogsEncrypt", principals={"Service": f"logs.{region}.amazonaws.com"},
                  conditions={"StringLike": {"kms:EncryptionContext:aws:logs:arn": arns.log_group(region, "*")}}),
        statement(["kms:DescribeKey"], "*", sid="LogsDescribeKey",
                  principals={"Service": f"logs.{region}.amazonaws.com"}),
    ]


def _topic_statement(topic_arn: pulumi.Input[str], account: pulumi.Input[str]) -> iam.Statement:
    return statement(["sns:Publish"], topic_arn, sid="AlarmServicesPublish",
                     principals={"Service": PUBLISHING_SERVICES},
                     conditions={"StringEquals": {"aws:SourceAccount": account}})
