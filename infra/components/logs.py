"""Logs as a signal (issue 32): every log group archived, the root-cause queries saved, log events alarmed.

Archive: CloudWatch Logs subscriptions deliver only to a destination of their own Region ("Using CloudWatch Logs
subscription filters", Amazon CloudWatch Logs User Guide), so each Region holding a log group of the stack gets
a Firehose stream (server-side encrypted with the stack's key there) writing to a PrivateBucket of that Region
(SSE-KMS with the same key, versioned, TLS only), whose objects expire after `logs.archiveDays`. Firehose writes
the records as CloudWatch Logs sent them (gzip JSON batches): `infra/tools/dr_drill.py --restore-logs` reads
them back. Every log group the program creates (StackContext.register_log_group) gets one `archive` filter;
the plan rule `log_groups_archived` (infra/validation/logs.py) refuses a log group without one.

Queries: CloudWatch Logs Insights QueryDefinitions of infra/dashboard_defs/log_queries.py (the boards' log widgets
show the same text on the same log groups). A query definition names log groups of its own Region: the edge
queries exist in every edge Region.

Alarms: metric filters count the log events no metric carries (the webhook's signature refusals, the worker's
refused actions) and `threshold_alarm` sends them, with their runbook, to the P2 topic like every other ticket;
each archive stream's delivery freshness and S3 success ticket too (rules/coverage.yaml requires both).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from infra.blocks.alarms import threshold_alarm
from infra.blocks.bucket import PrivateBucket
from infra.blocks.context import LogGroupRef, StackContext
from infra.components.severity_topics import AlertTopics
from infra.core import iam
from infra.core.iam import statement
from infra.core.naming import MAX_ALARM_NAME, MAX_BUCKET_NAME, MAX_IAM_ROLE_NAME
from infra.dashboard_defs.log_queries import LogOwners, placements, queries, query_name
from infra.slo.spec import logs_insights_url

COMPONENT = "logs"
TOKEN = "akidb:logs:Logs"
NAMESPACE = "AkiDB/Logs"
ARCHIVE_FILTER = "archive"  # the subscription filter's name on every log group starts with it
ARCHIVE_PREFIX = "logs/"
SIGNATURE_FAILURES = "WebhookSignatureFailures"
REFUSED_ACTIONS = "RunbookRefusedActions"
WEBHOOK_RUNBOOK = "runbook-webhook-rejected"
REFUSED_RUNBOOK = "alerting-path-failure"
ARCHIVE_RUNBOOK = "log-archive-delivery"
FIREHOSE = "AWS/Firehose"
# Firehose's S3 delivery metrics (Amazon Data Firehose developer guide, "Data delivery CloudWatch metrics"):
# DataFreshness is the age in seconds of the oldest record not yet in S3; Success the share of S3 puts that worked.
FRESHNESS = "DeliveryToS3.DataFreshness"
SUCCESS = "DeliveryToS3.Success"
FRESHNESS_BUFFERS = 3  # a record older than three buffer intervals is stuck, not buffered


@dataclass
class LogsArgs:
    context: StackContext
    topics: AlertTopics
    owners: LogOwners = field(default_factory=LogOwners)  # whose log groups each query reads
    runbook_functions: dict[str, str] = field(default_factory=dict)  # "runbook-webhook" / "runbook-worker" -> name


class Logs(pulumi.ComponentResource):
    archive_buckets: dict[str, str]  # region -> bucket name
    query_names: list[str]
    query_urls: dict[str, str]  # query key -> console link (home Region, or the first edge Region)
    alarm_names: list[str]

    def __init__(self, name: str, args: LogsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        ctx = args.context
        super().__init__(TOKEN, name, None, ctx.component_opts(COMPONENT, opts))
        cfg = ctx.config.logs
        n = ctx.naming
        child = pulumi.ResourceOptions(parent=self)
        groups = list(ctx.log_groups)
        self.archive_buckets = {}
        self.alarm_names = []
        for region in sorted({g.region for g in groups}):
            self._archive(name, ctx, region, [g for g in groups if g.region == region],
                          args.topics.key_aliases[region], child, args.topics.arns[region]["P2"])

        self.query_names, self.query_urls = [], {}
        for p in placements(queries(ctx.config.xray.latency_threshold_ms), groups, args.owners, ctx.region):
            qname = query_name(n.prefix, p.query.key)
            aws.cloudwatch.QueryDefinition(
                f"{name}-query-{p.query.key}-{p.region}", region=p.region, name=qname, query_string=p.query.text,
                log_group_names=list(p.log_groups),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[g.resource for g in groups
                                                                     if g.region == p.region
                                                                     and g.name in p.log_groups]))
            self.query_names.append(qname)
            self.query_urls.setdefault(p.query.key, logs_insights_url(p.region, p.log_groups, p.query.text))

        p2 = args.topics.arns[ctx.region]["P2"]
        webhook = args.runbook_functions.get("runbook-webhook")
        worker = args.runbook_functions.get("runbook-worker")
        for key, function, pattern, metric, threshold, period, runbook, what in (
                ("signature-failures", webhook, '{ $.decision = "unauthenticated" }', SIGNATURE_FAILURES,
                 cfg.signature_failures_per_5min, 300, WEBHOOK_RUNBOOK,
                 "webhook deliveries refused for a missing or wrong signature"),
                ("refused-actions", worker, '{ $.decision = "refused" }', REFUSED_ACTIONS,
                 cfg.refused_actions_per_hour, 3600, REFUSED_RUNBOOK,
                 "runbook jobs the worker refused (guardrails, malformed or unknown jobs)")):
            group = next((g for g in groups if function and g.owner == function), None)
            if group is None:
                continue
            aws.cloudwatch.LogMetricFilter(
                f"{name}-{key}", region=group.region, name=n.physical(key), log_group_name=group.name,
                pattern=pattern,
                metric_transformation=aws.cloudwatch.LogMetricFilterMetricTransformationArgs(
                    name=metric, namespace=NAMESPACE, value="1", default_value="0", unit="Count"),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[group.resource]))
            alarm = n.physical("logs", key, max_len=MAX_ALARM_NAME)
            threshold_alarm(
                f"{name}-{key}-alarm", parent=self, name=alarm,
                description=f"{n.prefix}: more than {threshold} {what} in {period // 60} minutes (log group "
                            f"{group.name}; query {query_name(n.prefix, 'runbook-audit-trail')})",
                runbook=runbook, topic_arn=p2, namespace=NAMESPACE, metric_name=metric, dimensions={},
                period_s=period, statistic="Sum", threshold=threshold, treat_missing="notBreaching")
            self.alarm_names.append(alarm)
        self.register_outputs({"archiveBuckets": self.archive_buckets, "queries": self.query_names})

    def _archive_alarms(self, name: str, ctx: StackContext, region: str, stream_name: str,
                        topic_arn: pulumi.Input[str]) -> None:
        """A stuck or failing archive stream opens a ticket (P2): its lines stay in their log groups meanwhile."""
        buffer_s = ctx.config.logs.archive_buffer_s
        for key, metric, statistic, threshold, comparison, what in (
                ("freshness", FRESHNESS, "Maximum", FRESHNESS_BUFFERS * buffer_s, "GreaterThanThreshold",
                 f"the oldest log record waiting is older than {FRESHNESS_BUFFERS} buffer intervals "
                 f"({FRESHNESS_BUFFERS * buffer_s} s)"),
                ("delivery", SUCCESS, "Average", 1, "LessThanThreshold", "some puts to the archive bucket failed")):
            alarm = ctx.naming.physical("logs-archive", region, key, max_len=MAX_ALARM_NAME)
            threshold_alarm(
                f"{name}-archive-{key}-{region}", parent=self, name=alarm, region=region,
                description=f"[P2] log archive stream {stream_name} ({region}): {what} for 15 minutes",
                runbook=ARCHIVE_RUNBOOK, topic_arn=topic_arn, namespace=FIREHOSE, metric_name=metric,
                dimensions={"DeliveryStreamName": stream_name}, period_s=300, evaluation_periods=3,
                statistic=statistic, threshold=threshold, comparison=comparison,
                # No data: nothing to deliver (no log lines in that Region), not a failure.
                treat_missing="notBreaching")
            self.alarm_names.append(alarm)

    def _archive(self, name: str, ctx: StackContext, region: str, groups: list[LogGroupRef], key_alias: str,
                 child: pulumi.ResourceOptions, topic_arn: pulumi.Input[str]) -> None:
        cfg, n, arns = ctx.config.logs, ctx.naming, ctx.arns
        key_arn = ctx.regional_key(region)
        bucket_name = n.physical("logs-archive", region, max_len=MAX_BUCKET_NAME)
        bucket = PrivateBucket(f"{name}-archive-{region}", parent=self, ctx=ctx, region=region, name=bucket_name,
                               kms_key_arn=key_arn, expiration_days=cfg.archive_days)
        self.archive_buckets[region] = bucket_name
        account = ctx.account_id
        stream_name = n.physical("logs-archive", region)
        stream_arn = arns.delivery_stream(region, stream_name)
        firehose_role_name = n.physical("logs-archive", region, "firehose", max_len=MAX_IAM_ROLE_NAME)
        firehose_role = aws.iam.Role(
            f"{name}-firehose-role-{region}", name=firehose_role_name,
            description=f"Firehose writes the {region} log archive",
            # Confused deputy: only this account's streams assume it (Firehose developer guide, S3 access).
            assume_role_policy=iam.assume_role_policy(
                "firehose.amazonaws.com", conditions={"StringEquals": {"sts:ExternalId": account}}),
            opts=child)
        firehose_policy = aws.iam.RolePolicy(
            f"{name}-firehose-policy-{region}", role=firehose_role.name, policy=iam.document(
                statement(["s3:AbortMultipartUpload", "s3:GetBucketLocation", "s3:GetObject", "s3:ListBucket",
                           "s3:ListBucketMultipartUploads", "s3:PutObject"],
                          [bucket.arn, f"{bucket.arn}/{ARCHIVE_PREFIX}*"], sid="WriteArchive"),
                # The stack's key of the Region (by its alias: a key ARN is AWS's pick), through S3, for this
                # bucket's archive objects only.
                statement(["kms:Decrypt", "kms:GenerateDataKey"], arns.any_key(region), sid="ArchiveKey",
                          conditions={**iam.key_alias_condition(key_alias),
                                      "StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"},
                                      "StringLike": {"kms:EncryptionContext:aws:s3:arn":
                                                     f"{bucket.arn}/{ARCHIVE_PREFIX}*"}})),
            opts=child)
        stream = aws.kinesis.FirehoseDeliveryStream(
            f"{name}-firehose-{region}", region=region, name=stream_name, destination="extended_s3",
            server_side_encryption=aws.kinesis.FirehoseDeliveryStreamServerSideEncryptionArgs(
                enabled=True, key_type="CUSTOMER_MANAGED_CMK", key_arn=key_arn),
            extended_s3_configuration=aws.kinesis.FirehoseDeliveryStreamExtendedS3ConfigurationArgs(
                role_arn=iam.known_after(firehose_role, arns.role(firehose_role_name)),
                bucket_arn=iam.known_after(bucket.bucket, bucket.arn),
                prefix=f"{ARCHIVE_PREFIX}!{{timestamp:yyyy/MM/dd}}/",
                error_output_prefix=f"{ARCHIVE_PREFIX}errors/!{{firehose:error-output-type}}/"
                                    "!{timestamp:yyyy/MM/dd}/",
                # CloudWatch Logs already gzips what it sends: Firehose stores it as it comes.
                compression_format="UNCOMPRESSED", kms_key_arn=key_arn,
                buffering_interval=cfg.archive_buffer_s, buffering_size=5),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[firehose_policy]))
        self._archive_alarms(name, ctx, region, stream_name, topic_arn)
        logs_role_name = n.physical("logs-archive", region, "logs", max_len=MAX_IAM_ROLE_NAME)
        logs_role = aws.iam.Role(
            f"{name}-logs-role-{region}", name=logs_role_name,
            description=f"CloudWatch Logs sends the {region} log groups to their archive stream",
            # Only this account's log groups of this Region send through it (CloudWatch Logs user guide,
            # subscription filters with Firehose: the aws:SourceArn condition).
            assume_role_policy=iam.assume_role_policy(
                "logs.amazonaws.com", conditions={"StringLike": {"aws:SourceArn": arns.log_group(region, "*")}}),
            opts=child)
        logs_policy = aws.iam.RolePolicy(
            f"{name}-logs-policy-{region}", role=logs_role.name, policy=iam.document(
                statement(["firehose:PutRecord", "firehose:PutRecordBatch"], stream_arn, sid="ArchiveStream")),
            opts=child)
        for g in groups:
            aws.cloudwatch.LogSubscriptionFilter(
                f"{name}-archive-{region}-{g.name.strip('/').replace('/', '-')}", region=region,
                name=f"{ARCHIVE_FILTER}-{g.name.strip('/').replace('/', '-')}"[:512], log_group=g.name,
                filter_pattern="",
                destination_arn=iam.known_after(stream, stream_arn),
                role_arn=iam.known_after(logs_role, arns.role(logs_role_name)),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[g.resource, logs_policy]))
