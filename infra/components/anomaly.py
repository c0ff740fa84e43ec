"""Day 3: Prophet anomaly detection (component `anomaly`).

Deploys, in the home region: an encrypted, versioned bucket for models, bands and detector state; the weekly
trainer (Prophet, shipped through S3 because the package is far above the 50 MB direct-upload limit); the
5-minute detector (standard library + boto3); their schedules, log groups, on-failure queue and alarms; and the
component's own KMS-encrypted SNS topic for anomaly notifications. Metric names come from the contract module
`lambdas.anomaly_core.metrics` shared with the detector and the dashboards.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.artifacts.packaging import RUNTIME, build_lambda
from infra.components.severity_topics import AlertTopics
from infra.config import AnomalyConfig
from infra.core.context import StackContext
from infra.core.iam import assume_role_policy, document, lambda_logs_statement, statement
from infra.core.naming import MAX_ALARM_NAME, MAX_BUCKET_NAME, MAX_IAM_ROLE_NAME, MAX_LAMBDA_NAME, MAX_TOPIC_NAME
from lambdas.anomaly_core import metrics as contract

COMPONENT = "anomaly"
TRAINER_TIMEOUT_S = 900  # five metrics x (validation fit(s) + final fit + forecast) on 90 days: minutes at most
DETECTOR_TIMEOUT_S = 60
AMP_URL = re.compile(r"^https://aps-workspaces\.([a-z0-9-]+)\.amazonaws\.com/workspaces/(ws-[\w-]+)")


@dataclass
class AnomalyArgs:
    context: StackContext
    topics: AlertTopics  # the foundation's severity topics and their KMS keys, per region


def settings_json(cfg: AnomalyConfig) -> bytes:
    """What both functions bake in (Lambda env vars are limited to 4 KB; PromQL queries are long)."""
    return json.dumps({
        "metrics": [{"name": m.name, "source": m.source, "query": m.query, "seasonalityMode": m.seasonality_mode,
                     "hourlySeasonality": m.hourly_seasonality, "mapeLimit": m.mape_limit} for m in cfg.metrics],
        "prometheusUrl": cfg.prometheus_url,
        "confidenceThreshold": cfg.confidence_threshold,
        "historyDays": cfg.history_days,
        "forecastMaxAgeS": cfg.forecast_max_age_hours * 3600,
    }, sort_keys=True, indent=1).encode()


class Anomaly(pulumi.ComponentResource):
    bucket_name: pulumi.Output[str]
    topic_arn: pulumi.Output[str]
    trainer_name: str
    detector_name: str
    alarm_names: dict[str, list[str]]

    def __init__(self, name: str, args: AnomalyArgs, opts: pulumi.ResourceOptions | None = None):
        ctx = args.context
        cfg = ctx.config.anomaly
        super().__init__("akidb:anomaly:Anomaly", name, None, ctx.component_opts(COMPONENT, opts))
        child = pulumi.ResourceOptions(parent=self)
        region = ctx.region
        account = ctx.account_id
        key_arn = args.topics.key_arns[region]
        n = ctx.naming

        # ---- storage: models, bands, detector state, the trainer package ----
        bucket = aws.s3.Bucket(f"{name}-bucket", bucket=n.physical("anomaly", account_suffix(ctx),
                                                                   max_len=MAX_BUCKET_NAME),
                               force_destroy=not ctx.protect(),
                               opts=pulumi.ResourceOptions(parent=self, protect=ctx.protect()))
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-bucket-sse", bucket=bucket.bucket,
            rules=[aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                apply_server_side_encryption_by_default=aws.s3.
                BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                    sse_algorithm="AES256"))], opts=child)
        aws.s3.BucketPublicAccessBlock(f"{name}-bucket-pab", bucket=bucket.bucket, block_public_acls=True,
                                       block_public_policy=True, ignore_public_acls=True,
                                       restrict_public_buckets=True, opts=child)
        aws.s3.BucketVersioning(f"{name}-bucket-versioning", bucket=bucket.bucket,
                                versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(
                                    status="Enabled"), opts=child)
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-bucket-lifecycle", bucket=bucket.bucket,
            rules=[aws.s3.BucketLifecycleConfigurationRuleArgs(
                id="expire-old-versions", status="Enabled",
                filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                noncurrent_version_expiration=aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                    noncurrent_days=cfg.noncurrent_version_days),
                abort_incomplete_multipart_upload=aws.s3.
                BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(days_after_initiation=1))],
            opts=child)
        self.bucket_name = bucket.bucket

        # ---- notifications and failures ----
        topic = aws.sns.Topic(f"{name}-topic", name=n.physical("anomaly", max_len=MAX_TOPIC_NAME),
                              kms_master_key_id=key_arn, opts=child)
        self.topic_arn = topic.arn
        dlq = aws.sqs.Queue(f"{name}-failures", name=n.physical("anomaly", "failures", max_len=80),
                            sqs_managed_sse_enabled=True, message_retention_seconds=14 * 86400, opts=child)

        baked = {"settings.json": settings_json(cfg)}
        self.trainer_name = n.physical("anomaly", "trainer", max_len=MAX_LAMBDA_NAME)
        self.detector_name = n.physical("anomaly", "detector", max_len=MAX_LAMBDA_NAME)
        bucket_arn = bucket.arn

        def objects(prefix: str) -> pulumi.Output[str]:
            return pulumi.Output.concat(bucket_arn, "/", prefix, "*")

        xray = statement(["xray:PutTraceSegments", "xray:PutTelemetryRecords"], "*", sid="Tracing")
        failures = statement(["sqs:SendMessage"], [dlq.arn], sid="OnFailureDestination")
        read_source = [statement(["cloudwatch:GetMetricData"], "*", sid="ReadCloudWatchSource")]
        if cfg.prometheus_url and (amp := AMP_URL.match(cfg.prometheus_url)):
            read_source.append(statement(["aps:QueryMetrics"], [pulumi.Output.concat(
                "arn:aws:aps:", amp.group(1), ":", account, ":workspace/", amp.group(2))], sid="ReadPrometheus"))

        # ---- trainer: Prophet, through S3 ----
        trainer_pkg = build_lambda("anomaly_trainer", kind="lambda-s3", baked=baked)
        trainer_object = aws.s3.BucketObjectv2(
            f"{name}-trainer-package", bucket=bucket.bucket, key=f"packages/{trainer_pkg.path.name}",
            source=pulumi.FileAsset(str(trainer_pkg.path)), source_hash=trainer_pkg.sha256, opts=child)
        trainer_role = self._role(f"{name}-trainer", n.physical("anomaly", "trainer", max_len=MAX_IAM_ROLE_NAME),
                                  document(lambda_logs_statement(region, account, self.trainer_name), xray, failures,
                                           *read_source,
                                           statement(["s3:PutObject"], [objects("models/"), objects("bands/")],
                                                     sid="WriteModelsAndBands")))
        trainer_logs = aws.cloudwatch.LogGroup(f"{name}-trainer-logs", name=f"/aws/lambda/{self.trainer_name}",
                                               retention_in_days=cfg.log_retention_days, opts=child)
        trainer = aws.lambda_.Function(
            f"{name}-trainer", name=self.trainer_name, role=trainer_role.arn, runtime=RUNTIME,
            handler=trainer_pkg.handler, s3_bucket=bucket.bucket, s3_key=trainer_object.key,
            source_code_hash=trainer_pkg.source_code_hash, memory_size=cfg.trainer_memory_mb,
            timeout=TRAINER_TIMEOUT_S, architectures=["x86_64"],
            # cmdstan writes its CSV outputs to the temp dir: /tmp is the only writable path on Lambda.
            ephemeral_storage=aws.lambda_.FunctionEphemeralStorageArgs(size=2048),
            environment=aws.lambda_.FunctionEnvironmentArgs(variables={
                "ANOMALY_BUCKET": bucket.bucket, "TMPDIR": "/tmp", "MPLCONFIGDIR": "/tmp"}),
            tracing_config=aws.lambda_.FunctionTracingConfigArgs(mode="Active"),
            reserved_concurrent_executions=1,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[trainer_logs]))

        # ---- detector: tiny, every 5 minutes ----
        detector_pkg = build_lambda("anomaly_detector", kind="lambda", baked=baked)
        detector_role = self._role(
            f"{name}-detector", n.physical("anomaly", "detector", max_len=MAX_IAM_ROLE_NAME),
            document(lambda_logs_statement(region, account, self.detector_name), xray, failures, *read_source,
                     statement(["cloudwatch:PutMetricData"], "*", sid="PublishAnomalyMetrics",
                               conditions={"StringEquals": {"cloudwatch:namespace": contract.NAMESPACE}}),
                     statement(["s3:GetObject"], [objects("bands/"), objects("state/")], sid="ReadBandsAndState"),
                     statement(["s3:PutObject"], [objects("state/")], sid="WriteState"),
                     # Without ListBucket a missing key answers AccessDenied, not NoSuchKey (no prefix condition:
                     # GetObject's existence check carries no s3:prefix, so a condition would deny it).
                     statement(["s3:ListBucket"], [bucket_arn], sid="MissingKeyIsNoSuchKey"),
                     statement(["sns:Publish"], [topic.arn], sid="Notify"),
                     statement(["kms:GenerateDataKey", "kms:Decrypt"], [key_arn], sid="EncryptedTopic")))
        detector_logs = aws.cloudwatch.LogGroup(f"{name}-detector-logs", name=f"/aws/lambda/{self.detector_name}",
                                                retention_in_days=cfg.log_retention_days, opts=child)
        detector = aws.lambda_.Function(
            f"{name}-detector", name=self.detector_name, role=detector_role.arn, runtime=RUNTIME,
            handler=detector_pkg.handler, code=pulumi.FileArchive(str(detector_pkg.path)),
            source_code_hash=detector_pkg.source_code_hash, memory_size=256, timeout=DETECTOR_TIMEOUT_S,
            architectures=["x86_64"],
            environment=aws.lambda_.FunctionEnvironmentArgs(variables={
                "ANOMALY_BUCKET": bucket.bucket, "ANOMALY_TOPIC_ARN": topic.arn}),
            tracing_config=aws.lambda_.FunctionTracingConfigArgs(mode="Active"),
            # One run at a time: the episode state in S3 is read-modify-write.
            reserved_concurrent_executions=1,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[detector_logs]))

        for kind, fn, schedule, retries in (("trainer", trainer, cfg.train_schedule, 1),
                                            ("detector", detector, cfg.detect_schedule, 0)):
            aws.lambda_.FunctionEventInvokeConfig(
                f"{name}-{kind}-invoke", function_name=fn.name, maximum_retry_attempts=retries,
                maximum_event_age_in_seconds=3600 if kind == "trainer" else 600,
                destination_config=aws.lambda_.FunctionEventInvokeConfigDestinationConfigArgs(
                    on_failure=aws.lambda_.FunctionEventInvokeConfigDestinationConfigOnFailureArgs(
                        destination=dlq.arn)), opts=child)
            rule = aws.cloudwatch.EventRule(f"{name}-{kind}-schedule",
                                            name=n.physical("anomaly", kind, max_len=64),
                                            schedule_expression=schedule,
                                            description=f"anomaly {kind} ({schedule})", opts=child)
            aws.cloudwatch.EventTarget(f"{name}-{kind}-target", rule=rule.name, arn=fn.arn, opts=child)
            aws.lambda_.Permission(f"{name}-{kind}-invoke-permission", action="lambda:InvokeFunction",
                                   function=fn.name, principal="events.amazonaws.com", source_arn=rule.arn,
                                   opts=child)

        # ---- alarms (home region, to the home region's severity topics) ----
        self.alarm_names = {region: []}
        ticket = args.topics.arns[region]["P2"]
        for kind, fn_name in (("trainer", self.trainer_name), ("detector", self.detector_name)):
            for metric_name, what in (("Errors", "errors"), ("Throttles", "throttles")):
                self._alarm(f"{name}-{kind}-{what}", n.physical("anomaly", kind, what, max_len=MAX_ALARM_NAME),
                            f"[P2] anomaly {kind} {what}: see its log group /aws/lambda/{fn_name} and the failures "
                            f"queue", ticket, namespace="AWS/Lambda", metric_name=metric_name,
                            dimensions={"FunctionName": fn_name},
                            period=86400 if kind == "trainer" else 900, statistic="Sum", threshold=0,
                            treat_missing="notBreaching")
        # Failures that never page by design land here: missing data, NaN, source errors, stale forecasts.
        self._alarm(f"{name}-detector-health", n.physical("anomaly", "detector", "health", max_len=MAX_ALARM_NAME),
                    "[P2] anomaly detector cannot score some metrics (DetectorErrors > 0 for 30 min, or no runs): "
                    "missing data, NaN, source errors or a stale/flagged forecast. Check the detector log.",
                    ticket, namespace=contract.NAMESPACE, metric_name=contract.DETECTOR_ERRORS, dimensions={},
                    period=300, statistic="Maximum", threshold=0, evaluation_periods=6, treat_missing="breaching")
        for m in cfg.metrics:
            self._alarm(f"{name}-forecast-age-{m.name}",
                        n.physical("anomaly", "forecast-age", m.name, max_len=MAX_ALARM_NAME),
                        f"[P2] forecast of {m.name} older than {cfg.forecast_max_age_hours} h: the weekly trainer "
                        f"did not refresh it", ticket, namespace=contract.NAMESPACE,
                        metric_name=contract.FORECAST_AGE, dimensions={contract.METRIC_DIMENSION: m.name},
                        period=3600, statistic="Maximum", threshold=cfg.forecast_max_age_hours * 3600,
                        treat_missing="missing")
        self.failure_queue_arn = dlq.arn
        self.register_outputs({"bucket": self.bucket_name, "topicArn": self.topic_arn,
                               "trainer": trainer.name, "detector": detector.name,
                               "alarmNames": self.alarm_names, "failureQueue": dlq.arn})

    def _role(self, logical: str, role_name: str, policy: pulumi.Output[str]) -> aws.iam.Role:
        child = pulumi.ResourceOptions(parent=self)
        role = aws.iam.Role(f"{logical}-role", name=role_name, assume_role_policy=assume_role_policy(
            "lambda.amazonaws.com"), opts=child)
        aws.iam.RolePolicy(f"{logical}-policy", role=role.id, policy=policy, opts=child)
        return role

    def _alarm(self, logical: str, alarm_name: str, description: str, topic: pulumi.Output[str], *,
               namespace: str, metric_name: str, dimensions: dict[str, str], period: int, statistic: str,
               threshold: float, treat_missing: str, evaluation_periods: int = 1) -> None:
        aws.cloudwatch.MetricAlarm(
            logical, name=alarm_name, alarm_description=description, namespace=namespace, metric_name=metric_name,
            dimensions=dimensions or None, period=period, statistic=statistic, threshold=threshold,
            comparison_operator="GreaterThanThreshold", evaluation_periods=evaluation_periods,
            datapoints_to_alarm=evaluation_periods, treat_missing_data=treat_missing, alarm_actions=[topic],
            ok_actions=[topic], opts=pulumi.ResourceOptions(parent=self))
        self.alarm_names[self._region].append(alarm_name)

    @property
    def _region(self) -> str:
        return next(iter(self.alarm_names))


def account_suffix(ctx: StackContext) -> str:
    """Bucket names are global: the stack's prefix plus the home region keeps them apart across regions."""
    return ctx.region
