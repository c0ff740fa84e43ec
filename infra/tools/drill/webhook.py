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
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import boto3

from infra.artifacts.packaging import build_lambda
from infra.components.runbook_automation import FUNCTION_FOLDER
from infra.core.paths import BUILD_DIR

PACKAGED_NAME = "drill_packaged_runbook_automation"


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


def aws_environment(moto_url: str) -> dict[str, str]:
    """What boto3 (this process) and Alertmanager's SigV4 (its process) need to talk to moto only."""
    return {"AWS_ENDPOINT_URL": moto_url, "AWS_ACCESS_KEY_ID": "drill", "AWS_SECRET_ACCESS_KEY": "drill",
            "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION}


def _subscribe(sns: Any, sqs: Any, topic: str, name: str) -> str:
    url = str(sqs.create_queue(QueueName=name)["QueueUrl"])
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})
    return url


def create_world() -> World:
    """Everything the functions expect, on the moto server the environment points at; sets RUNBOOK_SETTINGS."""
    sns, sqs, ddb = boto3.client("sns"), boto3.client("sqs"), boto3.client("dynamodb")
    asg, sm = boto3.client("autoscaling"), boto3.client("secretsmanager")
    secret_id = sm.create_secret(Name="akidb-drill-pagerduty-webhook", SecretString=SECRET)["ARN"]
    audit_topic = sns.create_topic(Name="akidb-drill-runbook-audit")["TopicArn"]
    notify_topic = sns.create_topic(Name="akidb-drill-alerts-p2")["TopicArn"]
    heartbeat_topic = sns.create_topic(Name=HEARTBEAT_TOPIC)["TopicArn"]
    queue_url = sqs.create_queue(QueueName="akidb-drill-runbook-jobs")["QueueUrl"]
    ddb.create_table(TableName="akidb-drill-runbook-state", BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
    ddb.create_table(TableName="akidb-drill-incident-timeline", BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                           {"AttributeName": "sk", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                {"AttributeName": "sk", "KeyType": "RANGE"}])
    asg.create_launch_configuration(LaunchConfigurationName="akidb-drill", ImageId="ami-12c6146b",
                                    InstanceType="t3.micro")
    asg.create_auto_scaling_group(AutoScalingGroupName=ASG, LaunchConfigurationName="akidb-drill", MinSize=0,
                                  MaxSize=1000, DesiredCapacity=START_CAPACITY, AvailabilityZones=[f"{REGION}a"])
    os.environ["RUNBOOK_SETTINGS"] = json.dumps({
        "environment": "drill", "table_name": "akidb-drill-runbook-state", "audit_topic_arn": audit_topic,
        "queue_url": queue_url, "secret_id": secret_id, "notify_topic_arn": notify_topic, "dry_run": False,
        "allowed_asgs": [ASG], "scale_out_asg": ASG, "scale_out_step": 2, "max_capacity": 1000,
        # Several scenarios page the same runbook within the hour: the budget must not mask an outcome.
        "max_actions_per_hour": 60, "timeline_table_name": "akidb-drill-incident-timeline",
        "runbook_base_url": "https://runbooks.akidb.internal", "grafana_base_url": "https://grafana.akidb.internal",
        "timeline_settle_s": 0})
    packaged_handler()._reset()
    return World(secret_id=secret_id, queue_url=queue_url,
                 audit_queue=_subscribe(sns, sqs, audit_topic, "akidb-drill-audit-copy"),
                 heartbeat_queue=_subscribe(sns, sqs, heartbeat_topic, "akidb-drill-heartbeat-copy"),
                 heartbeat_topic_arn=heartbeat_topic,
                 notify_queue=_subscribe(sns, sqs, notify_topic, "akidb-drill-notify-copy"))


def reset() -> None:
    """Forget the functions' cached settings and clients (as a new container would)."""
    packaged_handler()._reset()


class Functions:
    """The webhook (API Gateway -> handler) and the worker (SQS -> worker), one delivery at a time."""

    def __init__(self, world: World) -> None:
        self.world = world
        self._lock = threading.Lock()
        self._sqs = boto3.client("sqs")

    def deliver(self, scenario: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        event = {"version": "2.0", "routeKey": "POST /pagerduty", "headers": headers,
                 "body": base64.b64encode(body).decode(), "isBase64Encoded": True,
                 "requestContext": {"http": {"method": "POST", "sourceIp": "127.0.0.1"}}}
        with self._lock:
            resp = packaged_handler().handler(event)
            self._run_worker()
        return int(resp["statusCode"]), json.loads(resp["body"])

    def _run_worker(self) -> None:
        while True:
            msgs = self._sqs.receive_message(QueueUrl=self.world.queue_url, MaxNumberOfMessages=10,
                                             WaitTimeSeconds=0).get("Messages", [])
            if not msgs:
                return
            records = [{"messageId": m["MessageId"], "body": m["Body"]} for m in msgs]
            failed = {f["itemIdentifier"] for f in packaged_handler().worker({"Records": records})["batchItemFailures"]}
            for m in msgs:
                if m["MessageId"] not in failed:
                    self._sqs.delete_message(QueueUrl=self.world.queue_url, ReceiptHandle=m["ReceiptHandle"])


def drain(queue_url: str) -> list[dict[str, Any]]:
    """Every message on a copy queue (consumed), with SQS's SentTimestamp as `_received_at` (epoch s)."""
    sqs = boto3.client("sqs")
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
