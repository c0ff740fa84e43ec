"""The project's PagerDuty webhook and worker (lambdas/runbook_automation/handler.py) against a moto server: the
tables, queue, topics, secret and ASG their settings name (lambdas/runbook_automation/settings.py), created on
moto; deliveries invoked in-process as API Gateway (payload 2.0) would, each queued job handed to the worker as
SQS would. The audit topic and the heartbeat topic are read back through SQS subscriptions.

The functions run from the zip the stack deploys (infra.artifacts.packaging.build_lambda), loaded under a package
name of their own, never from the source tree: a module the zip lacks fails the drill as it would fail Lambda."""

from __future__ import annotations

import base64
import importlib
import importlib.util
import json
import os
import shutil
import sys
import threading
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import boto3

from infra.artifacts.packaging import build_lambda
from infra.components.runbook_automation import FUNCTION_FOLDER
from infra.core.paths import BUILD_DIR

PACKAGED_NAME = "drill_packaged_runbook_automation"
_CLIENTS = threading.Lock()


def client(service: str) -> Any:
    """A boto3 client made under a lock: the default session is not thread-safe (boto3's "Multithreading"
    guide), and the drill's scenarios run in threads; clients themselves are."""
    with _CLIENTS:
        return boto3.client(service)


def packaged_handler() -> ModuleType:
    """The handler module as Lambda imports it from the deployed zip (its `handler` setting), extracted under
    build/drill/ and imported as PACKAGED_NAME (the package's relative imports hold under any name)."""
    if f"{PACKAGED_NAME}.handler" in sys.modules:
        return sys.modules[f"{PACKAGED_NAME}.handler"]
    pkg = build_lambda(FUNCTION_FOLDER, kind="lambda")
    root = BUILD_DIR / "drill" / "runbook-zip"
    shutil.rmtree(root, ignore_errors=True)
    with zipfile.ZipFile(pkg.path) as z:
        z.extractall(root)
    package, module = pkg.handler.rsplit(".", 1)[0].split(".", 1)  # runbook_automation.handler.handler
    # The shared code the zip holds at its root (include.txt: logshape) is imported absolutely: Lambda has the
    # zip's root on sys.path (/var/task), so does this process (first: the zip's copy, not the source tree's, unless
    # this process imported the source's before).
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    spec = importlib.util.spec_from_file_location(PACKAGED_NAME, root / package / "__init__.py",
                                                  submodule_search_locations=[str(root / package)])
    if spec is None or spec.loader is None:
        raise RuntimeError(f"{pkg.path}: no package {package}/ in the zip")
    sys.modules[PACKAGED_NAME] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sys.modules[PACKAGED_NAME])
    return importlib.import_module(f"{PACKAGED_NAME}.{module}")


REGION = "us-east-1"
SECRET = "drill-webhook-secret"  # pragma: allowlist secret (a throwaway value of the drill)
ASG = "akidb-drill-rest-ondemand"
START_CAPACITY = 4
SCALE_OUT_STEP = 2
TIMELINE_TABLE = "akidb-drill-incident-timeline"
# The heartbeat topic of the shipped config: moto's default account is the example account 123456789012.
HEARTBEAT_TOPIC = "akidb-example-alertmanager-heartbeat"


@dataclass(frozen=True)
class World:
    secret_id: str
    queue_url: str
    audit_queue: str
    heartbeat_queue: str
    heartbeat_topic_arn: str
    notify_queue: str = ""  # a copy of the runbooks' ticket topic (the cold-start notice)
    asg_created: threading.Event = field(default_factory=threading.Event)
    asg_error: list[str] = field(default_factory=list)


def aws_environment(moto_url: str) -> dict[str, str]:
    """What boto3 (this process) and Alertmanager's SigV4 (its process) need to talk to moto only."""
    return {"AWS_ENDPOINT_URL": moto_url, "AWS_ACCESS_KEY_ID": "drill", "AWS_SECRET_ACCESS_KEY": "drill",
            "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION}


def _subscribe(sns: Any, sqs: Any, topic: str, name: str) -> str:
    url = str(sqs.create_queue(QueueName=name)["QueueUrl"])
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})
    return url


def create_world(*, in_process: bool = True) -> World:
    """Everything the functions expect, on the moto server the environment points at; sets RUNBOOK_SETTINGS.
    `in_process`: the drill's functions run in this process (Functions): their container's init is done here.
    Without it nothing of the zip is imported here (the functions run in their own runtime: zip_runtime)."""
    sns, sqs, ddb = client("sns"), client("sqs"), client("dynamodb")
    sm = client("secretsmanager")
    secret_id = sm.create_secret(Name="akidb-drill-pagerduty-webhook", SecretString=SECRET)["ARN"]
    audit_topic = sns.create_topic(Name="akidb-drill-runbook-audit")["TopicArn"]
    notify_topic = sns.create_topic(Name="akidb-drill-alerts-p2")["TopicArn"]
    heartbeat_topic = sns.create_topic(Name=HEARTBEAT_TOPIC)["TopicArn"]
    queue_url = sqs.create_queue(QueueName="akidb-drill-runbook-jobs")["QueueUrl"]
    ddb.create_table(TableName="akidb-drill-runbook-state", BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
    ddb.create_table(TableName=TIMELINE_TABLE, BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                           {"AttributeName": "sk", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                {"AttributeName": "sk", "KeyType": "RANGE"}])
    os.environ["RUNBOOK_SETTINGS"] = json.dumps({
        "environment": "drill", "table_name": "akidb-drill-runbook-state", "audit_topic_arn": audit_topic,
        "queue_url": queue_url, "secret_id": secret_id, "notify_topic_arn": notify_topic, "dry_run": False,
        "allowed_asgs": [ASG], "scale_out_asg": ASG, "scale_out_step": SCALE_OUT_STEP, "max_capacity": 1000,
        # Several scenarios page the same runbook within the hour: the budget must not mask an outcome.
        "max_actions_per_hour": 60, "timeline_table_name": TIMELINE_TABLE,
        "runbook_base_url": "https://runbooks.akidb.internal", "grafana_base_url": "https://grafana.akidb.internal",
        "timeline_settle_s": 0})
    if in_process:
        handler = packaged_handler()
        handler._reset()
        handler._init()  # the container's init phase, once: its clients are then shared by the webhook and worker
    world = World(secret_id=secret_id, queue_url=queue_url,
                  audit_queue=_subscribe(sns, sqs, audit_topic, "akidb-drill-audit-copy"),
                  heartbeat_queue=_subscribe(sns, sqs, heartbeat_topic, "akidb-drill-heartbeat-copy"),
                  heartbeat_topic_arn=heartbeat_topic,
                  notify_queue=_subscribe(sns, sqs, notify_topic, "akidb-drill-notify-copy"))
    # moto loads its EC2 backend on the first Auto Scaling call (5 s on 2 cores): the ASG is made meanwhile, and
    # `asg_ready()` waits for it before any fault can page.
    threading.Thread(target=_create_asg, args=(world,), daemon=True).start()
    return world


def _create_asg(world: World) -> None:
    try:
        asg = client("autoscaling")
        asg.create_launch_configuration(LaunchConfigurationName="akidb-drill", ImageId="ami-12c6146b",
                                        InstanceType="t3.micro")
        asg.create_auto_scaling_group(AutoScalingGroupName=ASG, LaunchConfigurationName="akidb-drill", MinSize=0,
                                      MaxSize=1000, DesiredCapacity=START_CAPACITY,
                                      AvailabilityZones=[f"{REGION}a"])
    except Exception as e:
        world.asg_error.append(f"{type(e).__name__}: {e}")
    finally:
        world.asg_created.set()


def asg_ready(world: World, timeout_s: float = 120.0) -> None:
    """Until the on-demand ASG exists (raises when it could not be made)."""
    if not world.asg_created.wait(timeout_s):
        raise RuntimeError(f"the drill's ASG was not created within {timeout_s:.0f} s")
    if world.asg_error:
        raise RuntimeError(f"creating the drill's ASG failed: {world.asg_error[0]}")


def reset() -> None:
    """Forget the functions' cached settings and clients (as a new container would)."""
    packaged_handler()._reset()


class Functions:
    """The webhook (API Gateway -> handler) and the worker (SQS -> worker). As in Lambda, the worker runs apart
    from the webhook (a thread polling the job queue), so the webhook's answer time is its own."""

    POLL_S = 0.2

    def __init__(self, world: Callable[[], World]) -> None:
        self._world = world  # waits until the world exists
        self._lock = threading.Lock()
        self._sqs: Any = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> Functions:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)
        self.run_worker()

    def deliver(self, scenario: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        event = {"version": "2.0", "routeKey": "POST /pagerduty", "headers": headers,
                 "body": base64.b64encode(body).decode(), "isBase64Encoded": True,
                 "requestContext": {"http": {"method": "POST", "sourceIp": "127.0.0.1"}}}
        resp = packaged_handler().handler(event)
        return int(resp["statusCode"]), json.loads(resp["body"])

    def _poll(self) -> None:
        while not self._stop.wait(self.POLL_S):
            self.run_worker()

    def run_worker(self) -> None:
        """Hand every queued job to the worker (10 a batch, as the SQS trigger), until the queue is empty."""
        queue_url = self._world().queue_url
        with self._lock:
            if self._sqs is None:
                self._sqs = client("sqs")
            while True:
                msgs = self._sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10,
                                                 WaitTimeSeconds=0).get("Messages", [])
                if not msgs:
                    return
                records = [{"messageId": m["MessageId"], "body": m["Body"]} for m in msgs]
                result = packaged_handler().worker({"Records": records})
                failed = {f["itemIdentifier"] for f in result["batchItemFailures"]}
                for m in msgs:
                    if m["MessageId"] not in failed:
                        self._sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])


def asg_capacity() -> int:
    """The on-demand ASG's desired capacity now (what the scale-out runbooks changed)."""
    groups = client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[ASG])
    return int(groups["AutoScalingGroups"][0]["DesiredCapacity"])


def timeline_figures(world: World) -> dict[str, dict[str, Any]]:
    """Per incident, the figures of the incident timeline: what it published (the summary item's
    `figures_published`, written when it put TimeToDetect/Acknowledge/Resolve to CloudWatch), else what its
    `figures` computes from the stored events (an incident not resolved within the run: not yet published)."""
    timeline = importlib.import_module(f"{PACKAGED_NAME}.timeline")
    ddb = client("dynamodb")
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": TIMELINE_TABLE, "ConsistentRead": True}
    while True:
        page = ddb.scan(**kwargs)
        items += page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    by_incident: dict[str, list[dict[str, Any]]] = {}
    published: dict[str, dict[str, float]] = {}
    for it in items:
        incident = it["pk"]["S"].removeprefix("incident#")
        if it["sk"]["S"] == timeline.SUMMARY_SK:
            if "figures_published" in it:
                published[incident] = json.loads(it["figures_published"]["S"])
            continue
        by_incident.setdefault(incident, []).append({
            "event_type": it["event_type"]["S"], "occurred_at": float(it["occurred_at"]["N"]),
            "created_at": float(it["created_at"]["N"]) if "created_at" in it else None,
            "urgency": it.get("urgency", {}).get("S", ""), "correlation": json.loads(it["correlation"]["S"])})
    out: dict[str, dict[str, Any]] = {}
    for incident, events in by_incident.items():
        f = timeline.figures(incident, events)
        got = published.get(incident)
        out[incident] = {
            "incident": incident, "events": len(events), "published": got is not None,
            # PagerDuty's V3 incident object carries no alert start (only its own created_at and the trigger's
            # occurred_at): the timeline's TTD (alert condition start -> page) is None for a real delivery, and the
            # report counts TTD from the drill's fault marker to `triggered_at` instead (as game_day_report does).
            "ttd": got.get(timeline.TIME_TO_DETECT) if got else f.time_to_detect,
            "triggered_at": f.triggered_at,
            "tta": got.get(timeline.TIME_TO_ACKNOWLEDGE) if got else f.time_to_acknowledge,
            "ttr": got.get(timeline.TIME_TO_RESOLVE) if got else f.time_to_resolve,
            "service": f.service, "severity": f.severity}
    return out


def drain(queue_url: str) -> list[dict[str, Any]]:
    """Every message on a copy queue (consumed), with SQS's SentTimestamp as `_received_at` (epoch s)."""
    sqs = client("sqs")
    out: list[dict[str, Any]] = []
    while True:
        msgs = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                   AttributeNames=["SentTimestamp"]).get("Messages", [])
        if not msgs:
            return out
        for m in msgs:
            try:
                body = json.loads(m["Body"])
            except json.JSONDecodeError:
                body = {"raw": m["Body"]}
            if not isinstance(body, dict):
                body = {"raw": m["Body"]}
            body["_received_at"] = int(m["Attributes"]["SentTimestamp"]) / 1000
            out.append(body)
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
