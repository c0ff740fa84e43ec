"""`make dr-drill`: lose what the stack stores, restore it, check the consumers resume.

Part 1, the anomaly detector's objects (S3 versions). Runs the real trainer (Prophet) and the real detector
(`lambdas/anomaly_*`) against moto, in a bucket versioned like the stack's anomaly bucket
(`infra/components/anomaly.py`):
1. train on 15 days of CloudWatch history; the detector runs a few 5-minute points (state written each run);
2. disaster: the band, the detector state and the model object are deleted (delete markers, as an operator's
   `aws s3 rm` or a bad deploy would leave), and a later write corrupts the state;
3. the next detector run cannot score (`DetectorErrors` = 1: the alarm that would page);
4. restore: each key's delete marker is removed / the last good version is copied back (`restore_key`);
5. the detector runs again: no error, its state continues from the pre-disaster memory (same residual history,
   `last_ts` advanced), and the model JSON loads with `prophet.serialize.model_from_json`.

Part 2, the incident store (the timeline table, DynamoDB). Signed PagerDuty V3 deliveries go through the real
webhook and worker (`lambdas/runbook_automation`) into a table shaped like the stack's
(`infra/components/incident_timeline.py`):
1. an incident is triggered and acknowledged; its page is published;
2. the restore point: in prod, point-in-time recovery (any second of the last 35 days); moto restores PITR as
   the table's current state, so the drill takes an on-demand backup at that moment instead (same API family,
   same restore-to-a-new-table semantics);
3. disaster: the incident's records are deleted (an operator's cleanup, a bad migration); what a later event
   would then publish is computed (wrong service, no time to detect or acknowledge, the page counted twice);
4. restore: the table is restored to a new table and the incident's records are copied back into the live one
   (`restore_incident`: conditional puts, so nothing written since the restore point is overwritten);
5. the incident's resolution arrives through the webhook: the published figures (time to detect, acknowledge,
   resolve) equal the payload timestamps and the page is not counted again.

Part 3, the log archive (`run_log_drill`): audit lines of the runbook functions' logger are archived as
Firehose writes them, their log group is lost, and `infra/tools/log_archive.py` replays them into
`/restored/<group>`, byte for byte.

Prints each step with the time it took; exit 1 if the detector, the timeline or the logs do not come back.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from infra.core.paths import LAMBDAS_DIR

REGION = "us-east-1"
BUCKET = "akidb-drill-anomaly-us-east-1"
METRIC = "request_rate"
QUERY = "AkiDB/Drill|Requests|Average|Service=api"
STEP = 300
DAY = 86400


def seasonal(t: float) -> float:
    return 100 + 20 * math.sin(2 * math.pi * (t % DAY) / DAY) + 1.5 * math.sin(t / 777.0)


@dataclass
class DrillResult:
    steps: list[tuple[str, float, str]] = field(default_factory=list)  # (step, seconds, outcome)
    resumed: bool = False
    errors_while_lost: int = 0
    errors_after_restore: int = -1
    restore_seconds: float = 0.0

    def report(self) -> str:
        lines = ["DR drill (moto, real trainer and detector):"]
        lines += [f"  {secs:7.2f} s  {step}: {outcome}" for step, secs, outcome in self.steps]
        lines.append(f"Detector resumed after restore: {'yes' if self.resumed else 'NO'} "
                     f"(restore of the objects took {self.restore_seconds:.2f} s)")
        return "\n".join(lines)


def restore_key(s3: Any, bucket: str, key: str) -> str:
    """Make the newest good version of `key` current again; returns what was done.

    A delete marker on top is removed (the previous version becomes current); otherwise the version before the
    current one is copied over it (undoing a bad write). Raises LookupError when no earlier version exists."""
    listing = s3.list_object_versions(Bucket=bucket, Prefix=key)
    markers = [m for m in listing.get("DeleteMarkers", []) if m["Key"] == key]
    versions = sorted((v for v in listing.get("Versions", []) if v["Key"] == key),
                      key=lambda v: v["LastModified"], reverse=True)
    latest_marker = next((m for m in markers if m["IsLatest"]), None)
    if latest_marker is not None:
        s3.delete_object(Bucket=bucket, Key=key, VersionId=latest_marker["VersionId"])
        return f"removed delete marker {latest_marker['VersionId']}"
    if len(versions) < 2:
        raise LookupError(f"s3://{bucket}/{key} has no earlier version to restore")
    previous = versions[1]
    s3.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": key,
                                                       "VersionId": previous["VersionId"]})
    return f"copied back version {previous['VersionId']}"


@contextmanager
def _moto() -> Iterator[None]:
    from moto import mock_aws

    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
    os.environ.update(AWS_ACCESS_KEY_ID="drill", AWS_SECRET_ACCESS_KEY="drill", AWS_DEFAULT_REGION=REGION)
    try:
        with mock_aws():
            yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_drill(log: Callable[[str], None] = lambda _line: None) -> DrillResult:
    if str(LAMBDAS_DIR) not in sys.path:
        sys.path.insert(0, str(LAMBDAS_DIR))
    import boto3
    from anomaly_core.scoring import ConfidenceState
    from anomaly_core.settings import MetricSpec, Settings
    from anomaly_core.sources import Sources
    from anomaly_core.store import get_json, state_key
    from anomaly_detector import handler as detector
    from anomaly_trainer import handler as trainer
    from prophet.serialize import model_from_json

    result = DrillResult()

    def step(name: str, fn: Callable[[], str]) -> None:
        started = time.perf_counter()
        outcome = fn()
        result.steps.append((name, time.perf_counter() - started, outcome))
        log(f"{name}: {outcome}")

    now = (int(time.time()) // STEP) * STEP
    with _moto():
        s3 = boto3.client("s3", region_name=REGION)
        cw = boto3.client("cloudwatch", region_name=REGION)
        sns = boto3.client("sns", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        topic = sns.create_topic(Name="drill-anomaly")["TopicArn"]
        cfg = Settings(metrics=(MetricSpec(name=METRIC, source="cloudwatch", query=QUERY),),
                       prometheus_url=None, confidence_threshold=0.7, history_days=15,
                       forecast_max_age_s=192 * 3600)
        sources = Sources(cloudwatch=cw, prometheus_url=None)
        det_clients = detector.Clients(s3=s3, cloudwatch=cw, sns=sns, sources=sources)
        targets = detector.Targets(BUCKET, topic)

        def put_point(t: float) -> None:
            cw.put_metric_data(Namespace="AkiDB/Drill", MetricData=[{
                "MetricName": "Requests", "Dimensions": [{"Name": "Service", "Value": "api"}],
                "Timestamp": datetime.fromtimestamp(t, UTC), "Value": seasonal(t)}])

        def history() -> str:
            data = [{"MetricName": "Requests", "Dimensions": [{"Name": "Service", "Value": "api"}],
                     "Timestamp": datetime.fromtimestamp(t, UTC), "Value": seasonal(t)}
                    for t in range(now - 15 * DAY, now, STEP)]
            for i in range(0, len(data), 1000):
                cw.put_metric_data(Namespace="AkiDB/Drill", MetricData=data[i:i + 1000])
            return f"{len(data)} points of history"

        step("seed CloudWatch history", history)
        step("train (real Prophet)", lambda: json.dumps(
            trainer.run({}, cfg, trainer.Clients(s3=s3, sources=sources), BUCKET, now)))

        t = now
        for _ in range(3):
            t += STEP
            put_point(t)
            out = detector.run(cfg, det_clients, targets, t + 30)
            if out["errors"]:
                raise RuntimeError(f"detector failed before the disaster: {out}")
        before = get_json(s3, BUCKET, state_key(METRIC))
        if before is None:
            raise RuntimeError(f"the detector wrote no state to s3://{BUCKET}/{state_key(METRIC)} before the disaster")
        # The memory read as the detector reads it (its lists are stored packed: anomaly_core.scoring).
        old = ConfidenceState.from_json(before["confidence"]).residuals
        result.steps.append(("detector, 3 runs before the disaster", 0.0,
                             f"state last_ts={before['last_ts']:.0f}, {len(old)} residuals"))
        model_keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=f"models/{METRIC}/")["Contents"]]
        # The band is one object per UTC day (anomaly_core.store.band_day_key): all of them are lost.
        band_keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=f"bands/{METRIC}/")["Contents"]]
        lost = [*band_keys, state_key(METRIC), *model_keys]

        def disaster() -> str:
            for key in lost:
                s3.delete_object(Bucket=BUCKET, Key=key)
            return f"deleted {', '.join(lost)}"

        step("disaster", disaster)
        t += STEP
        put_point(t)
        lost_run = detector.run(cfg, det_clients, targets, t + 30)
        result.errors_while_lost = int(lost_run["errors"])
        result.steps.append(("detector while lost", 0.0, f"DetectorErrors={lost_run['errors']} "
                             f"({lost_run['metrics'][METRIC].get('skipped')})"))

        def restore() -> str:
            return "; ".join(f"{k}: {restore_key(s3, BUCKET, k)}" for k in lost)

        started = time.perf_counter()
        step("restore from versions", restore)
        result.restore_seconds = time.perf_counter() - started

        t += STEP
        put_point(t)
        after_run = detector.run(cfg, det_clients, targets, t + 30)
        result.errors_after_restore = int(after_run["errors"])
        after = get_json(s3, BUCKET, state_key(METRIC))
        if after is None:
            raise RuntimeError(f"the detector wrote no state to s3://{BUCKET}/{state_key(METRIC)} after the restore")
        # The restored memory continues (its residuals plus this run's), instead of a fresh seeded state.
        new = ConfidenceState.from_json(after["confidence"]).residuals
        # (the history is a bounded window: the oldest residual may have rolled out.)
        memory_kept = bool(new) and new[:-1] == old[len(old) - (len(new) - 1):]
        model = model_from_json(s3.get_object(Bucket=BUCKET, Key=model_keys[0])["Body"].read().decode())
        result.resumed = (after_run["errors"] == 0 and float(after["last_ts"]) > float(before["last_ts"])
                          and memory_kept and model is not None)
        result.steps.append(("detector after restore", 0.0,
                             f"DetectorErrors={after_run['errors']}, last_ts {before['last_ts']:.0f} -> "
                             f"{after['last_ts']:.0f}, residuals {len(old)} -> {len(new)}, model JSON loads"))

        # A bad write (not a delete): the previous version is copied back.
        s3.put_object(Bucket=BUCKET, Key=state_key(METRIC), Body=b"{not json")
        step("corrupt state, restore previous version", lambda: restore_key(s3, BUCKET, state_key(METRIC)))
        t += STEP
        put_point(t)
        healed = detector.run(cfg, det_clients, targets, t + 30)
        result.steps.append(("detector after undoing the bad write", 0.0, f"DetectorErrors={healed['errors']}"))
        result.resumed = result.resumed and healed["errors"] == 0
    return result


# ------------------------------------------------------------------------------------------ the incident store

TIMELINE_TABLE = "akidb-drill-incident-timeline"
DRILL_SECRET = "drill-webhook-secret"  # pragma: allowlist secret
INCIDENT = "PDRILL01"
# The drill incident, seconds after its trigger: the alert's condition started before it, then ack and resolve.
CONDITION_LEAD_S, ACK_AFTER_S, RESOLVE_AFTER_S = 150.0, 240.0, 900.0


@dataclass
class IncidentDrillResult:
    steps: list[tuple[str, float, str]] = field(default_factory=list)
    expected: dict[str, float] = field(default_factory=dict)
    without_restore: dict[str, Any] = field(default_factory=dict)
    published: dict[str, float] = field(default_factory=dict)
    pages_published: int = 0
    records_lost: int = 0
    records_restored: int = 0
    restore_seconds: float = 0.0

    @property
    def resumed(self) -> bool:
        return (self.records_lost > 0 and self.records_restored == self.records_lost
                and self.published == self.expected and self.pages_published == 1)

    def report(self) -> str:
        lines = ["DR drill (moto, real webhook and worker): the incident store"]
        lines += [f"  {secs:7.2f} s  {step}: {outcome}" for step, secs, outcome in self.steps]
        lines.append(f"Timeline resumed after restore: {'yes' if self.resumed else 'NO'} (published "
                     f"{self.published}, expected {self.expected}; pages counted {self.pages_published}; copy-back "
                     f"of {self.records_restored} records took {self.restore_seconds:.2f} s)")
        return "\n".join(lines)


def restore_table(dynamodb: Any, live: str, target: str, *, backup_arn: str | None = None,
                  restore_time: datetime | None = None) -> str:
    """Restore `live` into the new table `target` (DynamoDB restores only into a new table): from point-in-time
    recovery at `restore_time` (prod), or from an on-demand backup (`backup_arn`); waits until it is ACTIVE."""
    if (backup_arn is None) == (restore_time is None):
        raise ValueError("give exactly one of backup_arn (on-demand backup) or restore_time (point in time)")
    if backup_arn is not None:
        dynamodb.restore_table_from_backup(TargetTableName=target, BackupArn=backup_arn)
        how = f"backup {backup_arn.rsplit('/', 1)[-1]}"
    else:
        dynamodb.restore_table_to_point_in_time(SourceTableName=live, TargetTableName=target,
                                                RestoreDateTime=restore_time)
        how = f"point in time {restore_time:%Y-%m-%dT%H:%M:%SZ}"
    dynamodb.get_waiter("table_exists").wait(TableName=target)
    return f"{live} restored into {target} from {how}"


def restore_incident(dynamodb: Any, source: str, live: str, incident_id: str) -> int:
    """Copy one incident's records (events and summary) from the restored table `source` back into `live`;
    returns how many were written. Conditional puts: a record that exists in `live` (an event received after
    the restore point, a summary rewritten since) is kept, so the copy-back never undoes newer work."""
    from botocore.exceptions import ClientError

    kwargs: dict[str, Any] = {"TableName": source, "ConsistentRead": True, "KeyConditionExpression": "pk = :pk",
                              "ExpressionAttributeValues": {":pk": {"S": f"incident#{incident_id}"}}}
    written = 0
    while True:
        page = dynamodb.query(**kwargs)
        for item in page.get("Items", []):
            try:
                dynamodb.put_item(TableName=live, Item=item, ConditionExpression="attribute_not_exists(sk)")
                written += 1
            except ClientError as e:
                if e.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise
        if "LastEvaluatedKey" not in page:
            return written
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _delivery(event_type: str, at: float, trigger_at: float, *, details: dict[str, Any] | None) -> bytes:
    """A PagerDuty V3 incident delivery as PagerDuty sends it (the trigger carries Alertmanager's details)."""
    def iso(t: float) -> str:
        return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(t * 1000) % 1000:03d}Z"

    data: dict[str, Any] = {
        "id": INCIDENT, "type": "incident", "title": "akidb-rest availability: error budget burning (P1 page-slow)",
        "urgency": "high", "status": event_type.rsplit(".", 1)[-1], "created_at": iso(trigger_at),
        "html_url": f"https://acme.pagerduty.com/incidents/{INCIDENT}",
        "service": {"id": "PSVC001", "type": "service_reference", "summary": "akidb-rest (Alertmanager)"}}
    if details is not None:
        data["custom_details"] = details
    return json.dumps({"event": {
        "id": f"01DRILL{event_type.rsplit('.', 1)[-1].upper()}", "event_type": event_type,
        "resource_type": "incident", "occurred_at": iso(at),
        "agent": {"id": "PXPGF42", "type": "user_reference", "summary": "On-call engineer"}, "data": data}}).encode()


def run_incident_drill(log: Callable[[str], None] = lambda _line: None) -> IncidentDrillResult:
    if str(LAMBDAS_DIR) not in sys.path:
        sys.path.insert(0, str(LAMBDAS_DIR))
    import hashlib
    import hmac

    import boto3
    from moto.cloudwatch.models import cloudwatch_backends
    from runbook_automation import handler, timeline
    from runbook_automation.delivery import parse

    result = IncidentDrillResult()

    def step(name: str, fn: Callable[[], str]) -> None:
        started = time.perf_counter()
        outcome = fn()
        result.steps.append((name, time.perf_counter() - started, outcome))
        log(f"{name}: {outcome}")

    now = float(int(time.time()))  # whole seconds: PagerDuty's timestamps carry milliseconds
    trigger_at = now - RESOLVE_AFTER_S - 60  # recent: the webhook refuses deliveries older than an hour
    result.expected = {timeline.TIME_TO_DETECT: CONDITION_LEAD_S, timeline.TIME_TO_ACKNOWLEDGE: ACK_AFTER_S,
                       timeline.TIME_TO_RESOLVE: RESOLVE_AFTER_S}
    details = {"service": "akidb-rest", "slo": "availability", "severity": "P1", "tiers": "page-slow ",
               "condition_started_at": datetime.fromtimestamp(trigger_at - CONDITION_LEAD_S, UTC).isoformat()}
    saved = os.environ.get("RUNBOOK_SETTINGS")
    with _moto():
        ddb = boto3.client("dynamodb", region_name=REGION)
        sqs, sns = boto3.client("sqs", region_name=REGION), boto3.client("sns", region_name=REGION)
        secret = boto3.client("secretsmanager", region_name=REGION).create_secret(
            Name="drill-webhook", SecretString=DRILL_SECRET)["ARN"]
        queue = sqs.create_queue(QueueName="drill-runbook-jobs")["QueueUrl"]
        ddb.create_table(TableName="drill-runbook-state", BillingMode="PAY_PER_REQUEST",
                         AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                         KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
        ddb.create_table(TableName=TIMELINE_TABLE, BillingMode="PAY_PER_REQUEST",
                         AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                               {"AttributeName": "sk", "AttributeType": "S"}],
                         KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                    {"AttributeName": "sk", "KeyType": "RANGE"}])
        ddb.update_continuous_backups(TableName=TIMELINE_TABLE,  # as the stack's table: PITR on
                                      PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})
        os.environ["RUNBOOK_SETTINGS"] = json.dumps({
            "environment": "drill", "table_name": "drill-runbook-state",
            "audit_topic_arn": sns.create_topic(Name="drill-audit")["TopicArn"], "queue_url": queue,
            "secret_id": secret, "notify_topic_arn": sns.create_topic(Name="drill-p2")["TopicArn"],
            "timeline_table_name": TIMELINE_TABLE, "timeline_settle_s": 0})
        handler._reset()

        def deliver(body: bytes) -> str:
            signature = "v1=" + hmac.new(DRILL_SECRET.encode(), body, hashlib.sha256).hexdigest()
            answer = handler.handler({"version": "2.0", "routeKey": "POST /pagerduty", "isBase64Encoded": False,
                                      "headers": {"x-pagerduty-signature": signature}, "body": body.decode(),
                                      "requestContext": {"http": {"method": "POST", "sourceIp": "203.0.113.9"}}})
            failures = 0
            while True:  # the worker drains the queue: the event, then the publish job it queues
                msgs = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
                if not msgs:
                    break
                for m in msgs:
                    sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
                out = handler.worker({"Records": [{"messageId": m["MessageId"], "body": m["Body"]} for m in msgs]})
                failures += len(out["batchItemFailures"])
            if answer["statusCode"] >= 300 or failures:
                raise RuntimeError(f"delivery failed: {answer} ({failures} worker failures)")
            return f"{json.loads(body)['event']['event_type']} -> {answer['statusCode']}"

        def records() -> list[dict[str, Any]]:
            items: list[dict[str, Any]] = ddb.query(
                TableName=TIMELINE_TABLE, KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": f"incident#{INCIDENT}"}})["Items"]
            return items

        step("trigger and acknowledge (signed V3 webhooks)", lambda: "; ".join([
            deliver(_delivery("incident.triggered", trigger_at, trigger_at, details=details)),
            deliver(_delivery("incident.acknowledged", trigger_at + ACK_AFTER_S, trigger_at, details=None))]))
        backup: dict[str, str] = {}

        def restore_point() -> str:
            backup["arn"] = ddb.create_backup(TableName=TIMELINE_TABLE, BackupName="drill")["BackupDetails"][
                "BackupArn"]
            return f"{len(records())} records of {INCIDENT} (events and the summary holding the published page)"

        step("restore point (prod: PITR; moto: on-demand backup)", restore_point)

        def disaster() -> str:
            lost = records()
            for item in lost:
                ddb.delete_item(TableName=TIMELINE_TABLE, Key={"pk": item["pk"], "sk": item["sk"]})
            result.records_lost = len(lost)
            # What the resolution would publish now: its own event (as the webhook records it) is all that is
            # left, and without the summary the page's "published" flag is gone too.
            body = _delivery("incident.resolved", trigger_at + RESOLVE_AFTER_S, trigger_at, details=None)
            event = timeline.timeline_event(parse(body, now=time.time(), max_age_s=3600, skew_s=300))
            f = timeline.figures(INCIDENT, [event])
            result.without_restore = {"service": f.service, "severity": f.severity,
                                      timeline.TIME_TO_DETECT: f.time_to_detect,
                                      timeline.TIME_TO_ACKNOWLEDGE: f.time_to_acknowledge,
                                      timeline.TIME_TO_RESOLVE: f.time_to_resolve,
                                      "page counted again": not any(i["sk"]["S"] == timeline.SUMMARY_SK
                                                                    for i in records())}
            return f"deleted {len(lost)} records; a resolution now would publish {result.without_restore}"

        step("disaster", disaster)

        def restore() -> str:
            started = time.perf_counter()
            how = restore_table(ddb, TIMELINE_TABLE, f"{TIMELINE_TABLE}-restored", backup_arn=backup["arn"])
            result.records_restored = restore_incident(ddb, f"{TIMELINE_TABLE}-restored", TIMELINE_TABLE, INCIDENT)
            result.restore_seconds = time.perf_counter() - started
            return f"{how}; {result.records_restored} records of {INCIDENT} copied back"

        step("restore", restore)
        step("resolution arrives (signed V3 webhook)", lambda: deliver(
            _delivery("incident.resolved", trigger_at + RESOLVE_AFTER_S, trigger_at, details=None)))
        summary = next(i for i in records() if i["sk"]["S"] == timeline.SUMMARY_SK)
        published = json.loads(summary.get("figures_published", {}).get("S", "{}"))
        result.published = {k: float(v) for k, v in published.items()}
        # Every data point put (moto's query API would mix the dimensionless series with the per-service ones).
        account = boto3.client("sts", region_name=REGION).get_caller_identity()["Account"]
        result.pages_published = sum(1 for m in cloudwatch_backends[account][REGION].metric_data
                                     if m.name == timeline.PAGES and not m.dimensions)
        result.steps.append(("timeline after restore", 0.0, f"published {result.published}, pages counted "
                                                           f"{result.pages_published}"))
    if saved is None:
        os.environ.pop("RUNBOOK_SETTINGS", None)
    else:
        os.environ["RUNBOOK_SETTINGS"] = saved
    handler._reset()
    return result


@dataclass
class LogDrillResult:
    steps: list[tuple[str, float, str]] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)
    restored_group: str = ""

    @property
    def resumed(self) -> bool:
        return bool(self.written) and self.restored == self.written

    def report(self) -> str:
        lines = ["DR drill (moto, the runbook functions' real logger): the log archive"]
        lines += [f"  {secs:7.2f} s  {step}: {outcome}" for step, secs, outcome in self.steps]
        lines.append(f"Logs restored from the archive: {'yes' if self.resumed else 'NO'} ({len(self.restored)} of "
                     f"{len(self.written)} lines in {self.restored_group}, byte for byte)")
        return "\n".join(lines)


LOG_GROUP = "/aws/lambda/akidb-drill-runbook-webhook"
LOG_BUCKET = "akidb-drill-logs-archive-us-east-1"


def run_log_drill(log: Callable[[str], None] = lambda _line: None) -> LogDrillResult:
    """Part 3, the log archive (infra/components/logs.py, infra/tools/log_archive.py):
    1. the webhook's logger writes audit lines of an incident (lambdas/logshape's shape) into its log group;
    2. the archive receives them as Firehose writes a subscription's records (moto runs no subscription);
    3. disaster: the log group is deleted (an operator's cleanup, a retention set too short);
    4. restore: the archived events are read back and replayed into /restored/<group>;
    5. the restored lines equal the lost ones, and the audit trail of the incident is there again."""
    import io
    import logging

    import boto3

    from infra.tools.log_archive import archive_object, archived_events, replay, restored_group

    if str(LAMBDAS_DIR) not in sys.path:
        sys.path.insert(0, str(LAMBDAS_DIR))
    from logshape import stdlib as logshape

    result = LogDrillResult()

    def step(name: str, fn: Callable[[], str]) -> None:
        t0 = time.perf_counter()
        outcome = fn()
        result.steps.append((name, time.perf_counter() - t0, outcome))
        log(f"{name}: {outcome}")

    with _moto():
        logs, s3 = boto3.client("logs", region_name=REGION), boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=LOG_BUCKET)
        logs.create_log_group(logGroupName=LOG_GROUP)
        now_ms = int(time.time() * 1000)

        def write() -> str:
            out = io.StringIO()
            shape = logshape.configure("runbook-automation", stream=out)
            shape.bind(None)
            audit = logging.getLogger("runbook_automation")
            for decision in ("accepted", "dry-run", "refused"):
                audit.info(json.dumps({"decision": decision, "incident": "PDRILL1", "runbook": "edge-errors"}))
            result.written = out.getvalue().splitlines()
            logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName="2026/12/07/[$LATEST]drill")
            logs.put_log_events(logGroupName=LOG_GROUP, logStreamName="2026/12/07/[$LATEST]drill", logEvents=[
                {"timestamp": now_ms + i, "message": m} for i, m in enumerate(result.written)])
            return f"{len(result.written)} audit lines in {LOG_GROUP}"

        def archive() -> str:
            key = f"logs/{datetime.now(UTC):%Y/%m/%d}/akidb-drill-logs-archive-1"
            s3.put_object(Bucket=LOG_BUCKET, Key=key, Body=archive_object(
                LOG_GROUP, "2026/12/07/[$LATEST]drill", [(now_ms + i, m) for i, m in enumerate(result.written)]))
            return f"s3://{LOG_BUCKET}/{key}"

        def lose() -> str:
            logs.delete_log_group(logGroupName=LOG_GROUP)
            return "log group deleted"

        def restore() -> str:
            events = archived_events(s3, LOG_BUCKET, log_group=LOG_GROUP, since_ms=now_ms - 3600_000)
            counts = replay(logs, events)
            result.restored_group = restored_group(LOG_GROUP)
            got = logs.get_log_events(logGroupName=result.restored_group,
                                      logStreamName="2026/12/07/[$LATEST]drill", startFromHead=True)["events"]
            result.restored = [e["message"] for e in got]
            return f"{counts} replayed"

        def check() -> str:
            trail = [json.loads(m) for m in result.restored]
            ok = all(r.get("incident_id") == "PDRILL1" for r in trail)
            return f"audit trail of PDRILL1: {[r.get('decision') for r in trail]} ({'complete' if ok else 'BROKEN'})"

        for name, fn in (("write", write), ("archive", archive), ("disaster", lose), ("restore", restore),
                         ("check", check)):
            step(name, fn)
    return result


def main(argv: list[str] | None = None) -> int:
    result = run_drill()
    print(result.report())
    incidents = run_incident_drill()
    print(incidents.report())
    logs = run_log_drill()
    print(logs.report())
    return 0 if result.resumed and result.errors_while_lost == 1 and incidents.resumed and logs.resumed else 1


if __name__ == "__main__":
    sys.exit(main())
