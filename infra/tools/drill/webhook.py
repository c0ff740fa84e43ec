"""The project's PagerDuty webhook and worker (lambdas/runbook_automation/handler.py) against a moto server: the
tables, queue, topics, secret and ASG their settings name (lambdas/runbook_automation/settings.py), created on
moto; deliveries invoked in-process as API Gateway (payload 2.0) would, each queued job handed to the worker as
SQS would. The audit topic and the heartbeat topic are read back through SQS subscriptions."""

from __future__ import annotations

import base64
import json
import os
import threading
from dataclasses import dataclass
from typing import Any

import boto3

from lambdas.runbook_automation import handler as webhook

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
    webhook._reset()
    return World(secret_id=secret_id, queue_url=queue_url,
                 audit_queue=_subscribe(sns, sqs, audit_topic, "akidb-drill-audit-copy"),
                 heartbeat_queue=_subscribe(sns, sqs, heartbeat_topic, "akidb-drill-heartbeat-copy"),
                 heartbeat_topic_arn=heartbeat_topic)


def reset() -> None:
    """Forget the functions' cached settings and clients (as a new container would)."""
    webhook._reset()


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
            resp = webhook.handler(event)
            self._run_worker()
        return int(resp["statusCode"]), json.loads(resp["body"])

    def _run_worker(self) -> None:
        while True:
            msgs = self._sqs.receive_message(QueueUrl=self.world.queue_url, MaxNumberOfMessages=10,
                                             WaitTimeSeconds=0).get("Messages", [])
            if not msgs:
                return
            records = [{"messageId": m["MessageId"], "body": m["Body"]} for m in msgs]
            failed = {f["itemIdentifier"] for f in webhook.worker({"Records": records})["batchItemFailures"]}
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
