"""Prophet anomaly detection (component `anomaly`).

Deploys, in the home region: an encrypted, versioned bucket for models, bands and detector state; the weekly
trainer (Prophet, shipped through S3 because the package is far above the 50 MB direct-upload limit); the
5-minute detector (standard library + boto3); their schedules, log groups, on-failure queue and alarms; and the
component's own KMS-encrypted SNS topic for anomaly notifications.

Fan-out over SQS (issue 28): both schedules invoke the dispatcher, which queues the metrics in batches
(`anomaly.detectBatchMetrics`, `anomaly.trainBatchMetrics`) on the detection and training queues; the detector
and the trainer consume one batch per invocation through event source mappings (ReportBatchItemFailures, at most
`anomaly.detectMaxConcurrency` / `anomaly.trainMaxConcurrency` at once). SQS rather than a Step Functions
distributed map: the work is a flat list of independent batches that needs no state machine, the retry and
dead-letter path is the queue's own, and the cost is one request per batch (a distributed map bills a state
transition per item and its child executions, and starts at the same Lambda invocations). Each queue is
KMS-encrypted with the topics' key and redrives to its dead-letter queue after MAX_RECEIVES; its visibility
timeout is six times the consumer's timeout, as the Lambda developer guide asks for an SQS event source
("Configuring a queue to use with Lambda",
https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html). Metric names come from the contract module
`lambdas.anomaly_core.metrics` shared with the detector and the dashboards.

An episode reaches a person two ways (item 4 of issue 23):
- ticket: the anomaly topic's HTTPS subscription to the ticket webhook delivers the detector's own notice (one
  per episode start and end, claimed once in S3 before publishing; metric, value, band, score, confidence,
  episode id and a `dedupe_key` the ticket receiver keys on), so the ticket carries the episode's context;
- page: per metric, an alarm on the detector's IsAnomaly x Confidence staying at `anomaly.pageConfidence` for
  `anomaly.pageAfterMinutes` notifies P1. An alarm notifies on its state change only, so a lasting episode is
  one ALARM (and one OK), and PagerDuty's CloudWatch integration keys the incident on the alarm: one page.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.artifacts.packaging import build_lambda
from infra.blocks.alarms import metric_alarm, threshold_alarm
from infra.blocks.bucket import PrivateBucket
from infra.blocks.context import StackContext
from infra.blocks.function import FunctionSpec, HealthAlarms, PythonFunction, S3Code
from infra.components.severity_topics import AlertTopics
from infra.config import AnomalyConfig
from infra.core.iam import json_text, key_alias_condition, known_after, statement
from infra.core.naming import MAX_ALARM_NAME, MAX_BUCKET_NAME, MAX_IAM_ROLE_NAME, MAX_LAMBDA_NAME, MAX_TOPIC_NAME
from lambdas.anomaly_core import metrics as contract

COMPONENT = "anomaly"
TOKEN = "akidb:anomaly:Anomaly"
TRAINER_TIMEOUT_S = 900  # five metrics x (validation fit(s) + final fit + forecast) on 90 days: minutes at most
DETECTOR_TIMEOUT_S = 60
DISPATCHER_TIMEOUT_S = 60  # SendMessageBatch calls of 10 batches: 10,000 metrics are 5 calls
VISIBILITY_FACTOR = 6  # queue visibility timeout = 6 x the consumer's timeout (Lambda developer guide, above)
MAX_RECEIVES = 3  # deliveries of a batch before it goes to the dead-letter queue
DETECT_RETENTION_S = 3600  # a detection batch is worth an hour at most: later cycles score the same metrics
TRAIN_RETENTION_S = 86400
# Age of the oldest detection batch that means the fleet is not keeping up: a whole 5-minute cycle behind.
DETECT_BACKLOG_S = 300
TRAIN_BACKLOG_S = 6 * 3600  # the weekly run's batches should be done within hours
DLQ_NEGLECT_S = 3 * 86400
PIPELINE_RUNBOOK = "anomaly-pipeline-failure"  # the trainer/detector cannot produce or score forecasts
EPISODE_RUNBOOK = "anomaly-episode"  # a detected episode: tickets and pages
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
    bucket_name: str
    topic_arn: pulumi.Output[str]
    trainer_name: str
    detector_name: str
    dispatcher_name: str
    alarm_names: dict[str, list[str]]

    def __init__(self, name: str, args: AnomalyArgs, opts: pulumi.ResourceOptions | None = None):
        ctx = args.context
        cfg = ctx.config.anomaly
        super().__init__(TOKEN, name, None, ctx.component_opts(COMPONENT, opts))
        child = pulumi.ResourceOptions(parent=self)
        region = ctx.region
        arns = ctx.arns
        key_arn = args.topics.key_arns[region]
        n = ctx.naming

        # ---- storage: models, bands, detector state, the trainer package ----
        storage = PrivateBucket(f"{name}-bucket", parent=self, ctx=ctx,
                                name=n.physical("anomaly", account_suffix(ctx), max_len=MAX_BUCKET_NAME),
                                noncurrent_version_days=cfg.noncurrent_version_days,
                                suffixes={"public_access": "pab"})
        bucket = storage.bucket
        self.bucket_name = storage.name

        # ---- notifications and failures ----
        topic_name = n.physical("anomaly", max_len=MAX_TOPIC_NAME)
        topic = aws.sns.Topic(f"{name}-topic", name=topic_name, kms_master_key_id=key_arn, opts=child)
        self.topic_arn = known_after(topic, arns.topic(region, topic_name))
        aws.sns.TopicSubscription(
            f"{name}-tickets", topic=self.topic_arn, protocol="https",
            endpoint=ctx.config.slo_alerting.ticket_webhook_url, raw_message_delivery=False, opts=child)
        dlq_name = n.physical("anomaly", "failures", max_len=80)
        dlq = aws.sqs.Queue(f"{name}-failures", name=dlq_name, sqs_managed_sse_enabled=True,
                            message_retention_seconds=14 * 86400, opts=child)
        dlq_arn = known_after(dlq, arns.queue(region, dlq_name))

        baked = {"settings.json": settings_json(cfg)}
        self.trainer_name = n.physical("anomaly", "trainer", max_len=MAX_LAMBDA_NAME)
        self.detector_name = n.physical("anomaly", "detector", max_len=MAX_LAMBDA_NAME)
        bucket_arn = storage.arn

        def objects(prefix: str) -> str:
            return f"{bucket_arn}/{prefix}*"

        xray = statement(["xray:PutTraceSegments", "xray:PutTelemetryRecords"], "*", sid="Tracing")
        failures = statement(["sqs:SendMessage"], [arns.queue(region, dlq_name)], sid="OnFailureDestination")
        read_source = [statement(["cloudwatch:GetMetricData"], "*", sid="ReadCloudWatchSource")]
        if cfg.prometheus_url and (amp := AMP_URL.match(cfg.prometheus_url)):
            read_source.append(statement(["aps:QueryMetrics"], [arns.amp_workspace(amp.group(1), amp.group(2))],
                                         sid="ReadPrometheus"))
        ticket = args.topics.arns[region]["P2"]

        def health(kind: str, fn_name: str) -> HealthAlarms:
            return HealthAlarms(
                topic_arn=ticket, name_parts=("anomaly", kind), period_s=86400 if kind == "trainer" else 900,
                runbook=PIPELINE_RUNBOOK,
                description=f"[P2] anomaly {kind} {{what}}: see its log group /aws/lambda/{fn_name} and the "
                            f"failures queue")

        # ---- queues: one batch of metrics per message ----
        key_alias = args.topics.key_aliases[region]

        def work_queue(kind: str, timeout_s: int,
                       retention_s: int) -> tuple[str, str, pulumi.Input[str], pulumi.Input[str]]:
            dlq_q_name = n.physical("anomaly", kind, "dlq", max_len=80)
            q_name = n.physical("anomaly", kind, max_len=80)
            dead = aws.sqs.Queue(f"{name}-{kind}-dlq", name=dlq_q_name, kms_master_key_id=key_arn,
                                 message_retention_seconds=14 * 86400, opts=child)
            q = aws.sqs.Queue(
                f"{name}-{kind}-queue", name=q_name, kms_master_key_id=key_arn,
                visibility_timeout_seconds=VISIBILITY_FACTOR * timeout_s, message_retention_seconds=retention_s,
                redrive_policy=json_text({"deadLetterTargetArn": known_after(dead, arns.queue(region, dlq_q_name)),
                                          "maxReceiveCount": MAX_RECEIVES}, sort_keys=False), opts=child)
            return (q_name, dlq_q_name, known_after(q, arns.queue_url(region, q_name)),
                    known_after(q, arns.queue(region, q_name)))

        detect_q, detect_dlq, detect_url, detect_arn = work_queue("detect", DETECTOR_TIMEOUT_S, DETECT_RETENTION_S)
        train_q, train_dlq, train_url, train_arn = work_queue("train", TRAINER_TIMEOUT_S, TRAIN_RETENTION_S)
        # The queues' messages are encrypted with the topics' key, named by its alias (its ARN holds AWS's id).
        queue_key = statement(["kms:GenerateDataKey", "kms:Decrypt"], [arns.any_key(region)], sid="EncryptedQueues",
                              conditions=key_alias_condition(key_alias))

        def consume(q_name: str, sid: str) -> Any:
            return statement(["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"],
                             [arns.queue(region, q_name)], sid=sid)

        # ---- trainer: Prophet, through S3 ----
        trainer_pkg = build_lambda("anomaly_trainer", kind="lambda-s3", baked=baked)
        trainer_object = aws.s3.BucketObjectv2(
            f"{name}-trainer-package", bucket=bucket.bucket, key=f"packages/{trainer_pkg.path.name}",
            source=pulumi.FileAsset(str(trainer_pkg.path)), source_hash=trainer_pkg.sha256, opts=child)
        trainer = PythonFunction(f"{name}-trainer", FunctionSpec(
            name=self.trainer_name, role_name=n.physical("anomaly", "trainer", max_len=MAX_IAM_ROLE_NAME),
            package=trainer_pkg, s3_code=S3Code(bucket=bucket.bucket, key=trainer_object.key),
            handler=trainer_pkg.handler.removesuffix(".handler") + ".consume",
            memory_mb=cfg.trainer_memory_mb, timeout_s=TRAINER_TIMEOUT_S,
            log_retention_days=cfg.log_retention_days,
            statements=[xray, failures, *read_source,
                        statement(["s3:PutObject"], [objects("models/"), objects("bands/")],
                                  sid="WriteModelsAndBands"),
                        consume(train_q, "ConsumeTrainingBatches"), queue_key],
            # cmdstan writes its CSV outputs to the temp dir: /tmp is the only writable path on Lambda.
            ephemeral_storage_mb=2048,
            environment={"ANOMALY_BUCKET": self.bucket_name, "TMPDIR": "/tmp", "MPLCONFIGDIR": "/tmp"},
            # Each metric's model and band objects are its own: batches of distinct metrics train side by side.
            tracing=True, reserved_concurrency=cfg.train_max_concurrency,
            alarms=health("trainer", self.trainer_name)), parent=self, ctx=ctx)

        # ---- dispatcher: the metrics in batches onto the queues ----
        self.dispatcher_name = n.physical("anomaly", "dispatcher", max_len=MAX_LAMBDA_NAME)
        dispatcher = PythonFunction(f"{name}-dispatcher", FunctionSpec(
            name=self.dispatcher_name, role_name=n.physical("anomaly", "dispatcher", max_len=MAX_IAM_ROLE_NAME),
            package=build_lambda("anomaly_dispatcher", kind="lambda", baked=baked), memory_mb=128,
            timeout_s=DISPATCHER_TIMEOUT_S, log_retention_days=cfg.log_retention_days,
            statements=[xray, failures,
                        statement(["sqs:SendMessage"], [arns.queue(region, detect_q), arns.queue(region, train_q)],
                                  sid="QueueBatches"), queue_key],
            environment={"ANOMALY_DETECT_QUEUE_URL": detect_url, "ANOMALY_TRAIN_QUEUE_URL": train_url,
                         "DETECT_BATCH_METRICS": str(cfg.detect_batch_metrics),
                         "TRAIN_BATCH_METRICS": str(cfg.train_batch_metrics)},
            tracing=True, reserved_concurrency=1,
            alarms=health("dispatcher", self.dispatcher_name)), parent=self, ctx=ctx)

        # ---- detector: tiny, one batch per invocation ----
        detector_pkg = build_lambda("anomaly_detector", kind="lambda", baked=baked)
        detector = PythonFunction(f"{name}-detector", FunctionSpec(
            name=self.detector_name, role_name=n.physical("anomaly", "detector", max_len=MAX_IAM_ROLE_NAME),
            package=detector_pkg, memory_mb=256, timeout_s=DETECTOR_TIMEOUT_S,
            handler=detector_pkg.handler.removesuffix(".handler") + ".consume",
            log_retention_days=cfg.log_retention_days,
            statements=[
                xray, failures, *read_source,
                statement(["cloudwatch:PutMetricData"], "*", sid="PublishAnomalyMetrics",
                          conditions={"StringEquals": {"cloudwatch:namespace": contract.NAMESPACE}}),
                statement(["s3:GetObject"], [objects("bands/"), objects("state/")], sid="ReadBandsAndState"),
                statement(["s3:PutObject"], [objects("state/")], sid="WriteState"),
                # Without ListBucket a missing key answers AccessDenied, not NoSuchKey (no prefix condition:
                # GetObject's existence check carries no s3:prefix, so a condition would deny it).
                statement(["s3:ListBucket"], [bucket_arn], sid="MissingKeyIsNoSuchKey"),
                statement(["sns:Publish"], [arns.topic(region, topic_name)], sid="Notify"),
                # The topic's key (and the queue's, the same key), named by its alias: a key ARN holds an id AWS
                # picks.
                statement(["kms:GenerateDataKey", "kms:Decrypt"], [arns.any_key(region)], sid="EncryptedTopic",
                          conditions=key_alias_condition(key_alias)),
                consume(detect_q, "ConsumeDetectionBatches")],
            environment={"ANOMALY_BUCKET": self.bucket_name, "ANOMALY_TOPIC_ARN": self.topic_arn},
            tracing=True,
            # Batches hold distinct metrics, and each state write is conditional on the ETag read: invocations
            # at once never overwrite each other's state (a duplicated batch's loser skips that metric).
            reserved_concurrency=cfg.detect_max_concurrency,
            alarms=health("detector", self.detector_name)), parent=self, ctx=ctx)

        for kind, fn, q_arn, concurrency in (("trainer", trainer, train_arn, cfg.train_max_concurrency),
                                             ("detector", detector, detect_arn, cfg.detect_max_concurrency)):
            aws.lambda_.EventSourceMapping(
                f"{name}-{kind}-batches", event_source_arn=q_arn, function_name=fn.arn,
                # One batch of metrics per invocation: the batch is sized to the function's timeout.
                batch_size=1, function_response_types=["ReportBatchItemFailures"],
                scaling_config=aws.lambda_.EventSourceMappingScalingConfigArgs(maximum_concurrency=concurrency),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[fn.function]))
            # A direct asynchronous invocation (`aws lambda invoke --invocation-type Event`) still reports its
            # failure to the failures queue.
            aws.lambda_.FunctionEventInvokeConfig(
                f"{name}-{kind}-invoke", function_name=fn.function.name, maximum_retry_attempts=1 if kind == "trainer"
                else 0, maximum_event_age_in_seconds=3600 if kind == "trainer" else 600,
                destination_config=aws.lambda_.FunctionEventInvokeConfigDestinationConfigArgs(
                    on_failure=aws.lambda_.FunctionEventInvokeConfigDestinationConfigOnFailureArgs(
                        destination=dlq_arn)), opts=child)
        aws.lambda_.FunctionEventInvokeConfig(
            f"{name}-dispatcher-invoke", function_name=dispatcher.function.name,
            # A repeated dispatch is harmless (the consumers admit each point once): retry both times.
            maximum_retry_attempts=2, maximum_event_age_in_seconds=600,
            destination_config=aws.lambda_.FunctionEventInvokeConfigDestinationConfigArgs(
                on_failure=aws.lambda_.FunctionEventInvokeConfigDestinationConfigOnFailureArgs(
                    destination=dlq_arn)), opts=child)
        for kind, schedule in (("trainer", cfg.train_schedule), ("detector", cfg.detect_schedule)):
            job = "train" if kind == "trainer" else "detect"
            rule_name = n.physical("anomaly", kind, max_len=64)
            rule = aws.cloudwatch.EventRule(f"{name}-{kind}-schedule", name=rule_name,
                                            schedule_expression=schedule,
                                            description=f"anomaly {kind} ({schedule})", opts=child)
            aws.cloudwatch.EventTarget(f"{name}-{kind}-target", rule=rule.name, arn=dispatcher.arn,
                                       input=json.dumps({"job": job}), opts=child)
            aws.lambda_.Permission(f"{name}-{kind}-dispatch-permission", action="lambda:InvokeFunction",
                                   function=dispatcher.function.name, principal="events.amazonaws.com",
                                   source_arn=known_after(rule, arns.event_rule(region, rule_name)), opts=child)

        # ---- alarms (home region, to the home region's severity topics) ----
        self.alarm_names = {region: [*trainer.alarm_names, *detector.alarm_names, *dispatcher.alarm_names]}
        self._queue_alarms(name, ctx, ticket, (("detect", detect_q, detect_dlq, DETECT_BACKLOG_S),
                                               ("train", train_q, train_dlq, TRAIN_BACKLOG_S)))
        # Failures that never page by design land here: missing data, NaN, source errors, stale forecasts.
        self._alarm(f"{name}-detector-health", n.physical("anomaly", "detector", "health", max_len=MAX_ALARM_NAME),
                    "[P2] anomaly detector cannot score some metrics (DetectorErrors > 0 for 30 min, or no runs): "
                    "missing data, NaN, source errors or a stale/flagged forecast. Check the detector log.",
                    ticket, namespace=contract.NAMESPACE, metric_name=contract.DETECTOR_ERRORS, dimensions={},
                    period_s=300, statistic="Maximum", threshold=0, evaluation_periods=6, treat_missing="breaching")
        for m in cfg.metrics:
            self._alarm(f"{name}-forecast-age-{m.name}",
                        n.physical("anomaly", "forecast-age", m.name, max_len=MAX_ALARM_NAME),
                        f"[P2] forecast of {m.name} older than {cfg.forecast_max_age_hours} h: the weekly trainer "
                        f"did not refresh it", ticket, namespace=contract.NAMESPACE,
                        metric_name=contract.FORECAST_AGE, dimensions={contract.METRIC_DIMENSION: m.name},
                        period_s=3600, statistic="Maximum", threshold=cfg.forecast_max_age_hours * 3600,
                        treat_missing="missing")
        self._page_alarms(name, ctx, args.topics.arns[region]["P1"])
        self.failure_queue_arn = dlq_arn
        self.register_outputs({"bucket": self.bucket_name, "topicArn": self.topic_arn,
                               "trainer": self.trainer_name, "detector": self.detector_name,
                               "dispatcher": self.dispatcher_name, "queues": [detect_q, train_q],
                               "alarmNames": self.alarm_names, "failureQueue": dlq_arn})

    def _alarm(self, logical: str, alarm_name: str, description: str, topic: pulumi.Input[str],
               **spec: Any) -> None:
        threshold_alarm(logical, parent=self, name=alarm_name, description=description, runbook=PIPELINE_RUNBOOK,
                        topic_arn=topic, **spec)
        self.alarm_names[self._region].append(alarm_name)

    def _queue_alarms(self, name: str, ctx: StackContext, topic: pulumi.Input[str],
                      queues: tuple[tuple[str, str, str, int], ...]) -> None:
        """Per queue: a batch in its dead-letter queue (delivered MAX_RECEIVES times and failed each time: those
        metrics went unscored or untrained), and the oldest batch waiting longer than the work allows."""
        n = ctx.naming
        for kind, q_name, dlq_q_name, backlog_s in queues:
            self._alarm(f"{name}-{kind}-dlq-alarm", n.physical("anomaly", kind, "dlq", max_len=MAX_ALARM_NAME),
                        f"[P2] anomaly {kind} batches in the dead-letter queue {dlq_q_name}: a batch failed "
                        f"{MAX_RECEIVES} times. Read its metrics from the queue, the reason from the consumer's log.",
                        topic, namespace="AWS/SQS", metric_name="ApproximateNumberOfMessagesVisible",
                        dimensions={"QueueName": dlq_q_name}, period_s=300, statistic="Maximum", threshold=0,
                        treat_missing="notBreaching")
            # The dead-letter queue keeps 14 days: a failed batch left unread for DLQ_NEGLECT_S is one nobody looked
            # at (the not-empty alarm above has been firing since).
            self._alarm(f"{name}-{kind}-dlq-age-alarm",
                        n.physical("anomaly", kind, "dlq", "age", max_len=MAX_ALARM_NAME),
                        f"[P2] anomaly {kind} batches have sat in the dead-letter queue {dlq_q_name} over "
                        f"{DLQ_NEGLECT_S // 86400} days unread: redrive or delete them (they expire after 14 days)",
                        topic, namespace="AWS/SQS", metric_name="ApproximateAgeOfOldestMessage",
                        dimensions={"QueueName": dlq_q_name}, period_s=3600, statistic="Maximum",
                        threshold=DLQ_NEGLECT_S, treat_missing="notBreaching")
            self._alarm(f"{name}-{kind}-backlog-alarm",
                        n.physical("anomaly", kind, "backlog", max_len=MAX_ALARM_NAME),
                        f"[P2] anomaly {kind} queue {q_name}: the oldest batch has waited over {backlog_s} s (the "
                        f"consumers are not keeping up, throttled or failing)", topic, namespace="AWS/SQS",
                        metric_name="ApproximateAgeOfOldestMessage", dimensions={"QueueName": q_name},
                        period_s=300, statistic="Maximum", threshold=backlog_s, evaluation_periods=2,
                        treat_missing="notBreaching")

    def _page_alarms(self, name: str, ctx: StackContext, page_topic: pulumi.Input[str]) -> None:
        """Per metric: IsAnomaly x Confidence at or above pageConfidence in every 5-minute period of
        pageAfterMinutes pages P1 (missing data keeps the state: a skipped run neither pages nor clears)."""
        cfg = ctx.config.anomaly
        periods = -(-cfg.page_after_minutes // 5)

        def metric(qid: str, metric_name: str, dim: str) -> aws.cloudwatch.MetricAlarmMetricQueryArgs:
            return aws.cloudwatch.MetricAlarmMetricQueryArgs(
                id=qid, return_data=False, metric=aws.cloudwatch.MetricAlarmMetricQueryMetricArgs(
                    namespace=contract.NAMESPACE, metric_name=metric_name,
                    dimensions={contract.METRIC_DIMENSION: dim}, period=300, stat="Maximum"))

        for m in cfg.metrics:
            alarm_name = ctx.naming.physical("anomaly", "page", m.name, max_len=MAX_ALARM_NAME)
            metric_alarm(
                f"{name}-page-{m.name}", parent=self, name=alarm_name, runbook=EPISODE_RUNBOOK, topic_arn=page_topic,
                description=(f"[P1] {m.name} has stayed outside its forecast band with confidence >= "
                             f"{cfg.page_confidence:g} for {cfg.page_after_minutes} min (anomaly detector). The "
                             f"episode's ticket holds the values, band and episode id; see the anomaly dashboard."),
                metric_queries=[metric("anomalous", contract.IS_ANOMALY, m.name),
                                metric("confidence", contract.CONFIDENCE, m.name),
                                aws.cloudwatch.MetricAlarmMetricQueryArgs(
                                    id="lasting", return_data=True, label="confidence while anomalous",
                                    expression="anomalous * confidence")],
                comparison_operator="GreaterThanOrEqualToThreshold", threshold=cfg.page_confidence,
                evaluation_periods=periods, datapoints_to_alarm=periods, treat_missing_data="missing")
            self.alarm_names[self._region].append(alarm_name)

    @property
    def _region(self) -> str:
        return next(iter(self.alarm_names))


def account_suffix(ctx: StackContext) -> str:
    """Bucket names are global: the stack's prefix plus the home region keeps them apart across regions."""
    return ctx.region
