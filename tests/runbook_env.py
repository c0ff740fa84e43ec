"""Shared moto world for the runbook webhook tests: queues, topics, tables, ASGs, signed PagerDuty V3 deliveries.

Used by test_runbook_automation.py, test_webhook_properties.py and test_incident_timeline.py.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from runbook_automation import handler as h

REGION = "us-east-1"
SECRET = "whsec-test-secret"
ASG = "akidb-prod-rest-ondemand"
TIMELINE_TABLE = "incident-timeline"
NAMESPACE = "AkiDB/Incidents"
EDGE_BOARD = "https://console.aws.amazon.com/cloudwatch/home?region=us-east-1#dashboards/dashboard/akidb-prod-edge"
TITLE = "akidb-rest availability: error budget burning at 100.0x (P0 page-quick) [runbook:error-budget-fast-burn]"


def iso(epoch: float) -> str:
    """PagerDuty's timestamp shape: 2026-11-23T10:00:00.000Z."""
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(epoch * 1000) % 1000:03d}Z"


_SESSION: list[boto3.Session] = []


def fast_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials for moto, no default AMIs (0.7 s per world), and one boto3 session for the whole run:
    moto drops the default session at every start, and reloading botocore's endpoint data costs ~1.2 s a test."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    if not _SESSION:
        _SESSION.append(boto3.Session(region_name=REGION))
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", _SESSION[0])


class Env:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.mp = monkeypatch
        self.last_batch: list[Any] = []
        fast_aws(monkeypatch)
        self.sns = boto3.client("sns", region_name=REGION)
        self.sqs = boto3.client("sqs", region_name=REGION)
        self.ddb = boto3.client("dynamodb", region_name=REGION)
        self.asg = boto3.client("autoscaling", region_name=REGION)
        self.cw = boto3.client("cloudwatch", region_name=REGION)
        sm = boto3.client("secretsmanager", region_name=REGION)
        self.secret_id = sm.create_secret(Name="akidb-prod-pagerduty-webhook", SecretString=SECRET)["ARN"]
        self.audit_topic = self.sns.create_topic(Name="audit")["TopicArn"]
        self.notify_topic = self.sns.create_topic(Name="alerts-p2")["TopicArn"]
        self.queue_url = self.sqs.create_queue(QueueName="jobs")["QueueUrl"]
        self.audit_q = self._subscribe(self.audit_topic, "audit-copy")
        self.notify_q = self._subscribe(self.notify_topic, "notify-copy")
        self.ddb.create_table(TableName="runbook-state", BillingMode="PAY_PER_REQUEST",
                              AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                              KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
        self.ddb.create_table(TableName=TIMELINE_TABLE, BillingMode="PAY_PER_REQUEST",
                              AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                                    {"AttributeName": "sk", "AttributeType": "S"}],
                              KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                         {"AttributeName": "sk", "KeyType": "RANGE"}])
        self.asg.create_launch_configuration(LaunchConfigurationName="lc", ImageId="ami-12c6146b",
                                             InstanceType="t3.micro")
        for name in (ASG, "akidb-prod-rest-spot", "not-allowed"):
            self.asg.create_auto_scaling_group(AutoScalingGroupName=name, LaunchConfigurationName="lc",
                                               MinSize=0, MaxSize=10, DesiredCapacity=4,
                                               AvailabilityZones=[f"{REGION}a"])
        self.configure()

    def _subscribe(self, topic: str, name: str) -> str:
        url = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn,
                           Attributes={"RawMessageDelivery": "true"})
        return url

    def configure(self, **overrides: Any) -> None:
        settings = {
            "environment": "prod", "table_name": "runbook-state", "audit_topic_arn": self.audit_topic,
            "queue_url": self.queue_url, "secret_id": self.secret_id, "notify_topic_arn": self.notify_topic,
            "dry_run": False, "allowed_asgs": [ASG, "akidb-prod-rest-spot"], "scale_out_asg": ASG,
            "scale_out_step": 2, "max_capacity": 8, "max_actions_per_hour": 3,
            "edge_function_name": "akidb-edge-inference", "edge_regions": ["us-east-1", "eu-west-1"],
            "runbook_base_url": "https://runbooks.akidb.internal", "grafana_base_url": "https://grafana.x",
            "edge_dashboard_url": EDGE_BOARD,
            "timeline_table_name": TIMELINE_TABLE, "metrics_namespace": NAMESPACE, "timeline_settle_s": 0,
            **overrides,
        }
        self.mp.setenv("RUNBOOK_SETTINGS", json.dumps(settings))
        h._reset()

    def drain(self, url: str) -> list[dict[str, Any]]:
        out = []
        while True:
            msgs = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            if not msgs:
                return out
            for m in msgs:
                out.append(json.loads(m["Body"]) if m["Body"].startswith("{") else {"raw": m["Body"]})
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])

    def desired(self, name: str = ASG) -> int:
        g = self.asg.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]
        return int(g["DesiredCapacity"])

    def max_size(self, name: str = ASG) -> int:
        g = self.asg.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]
        return int(g["MaxSize"])

    def run_queued_jobs(self, kinds: tuple[str | None, ...] | None = None) -> dict[str, Any]:
        """One worker batch over what is on the job queue (optionally only some kinds; the rest is dropped)."""
        records = []
        while True:
            msgs = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not msgs:
                break
            for m in msgs:
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"])
                if kinds is None or json.loads(m["Body"]).get("kind") in kinds:
                    records.append({"messageId": m["MessageId"], "body": m["Body"]})
        self.last_batch = [json.loads(r["body"]) for r in records]
        return h.worker({"Records": records})

    def runbook_jobs(self) -> list[dict[str, Any]]:
        """Runbook jobs waiting on the queue (incident events that carry one), consumed."""
        return [m["job"] for m in self.drain(self.queue_url) if m.get("job")]


def incident(title: str, event_type: str = "incident.triggered", *, event_id: str | None = None,
             occurred_at: float | None = None, incident_id: str = "PGR0VU2", **data: Any) -> bytes:
    """A real-shaped PagerDuty V3 delivery body (fresh unless told otherwise)."""
    at = time.time() if occurred_at is None else occurred_at
    eid = event_id or "01" + hashlib.sha256(f"{title}|{event_type}|{incident_id}|{at}".encode()).hexdigest()[:24]
    return json.dumps({"event": {
        "id": eid, "event_type": event_type, "resource_type": "incident", "occurred_at": iso(at),
        "agent": {"id": "PXPGF42", "type": "user_reference", "summary": "On-call engineer"},
        "client": {"name": "PagerDuty"},
        "data": {"id": incident_id, "type": "incident", "title": title, "urgency": "high",
                 "html_url": f"https://acme.pagerduty.com/incidents/{incident_id}",
                 "status": event_type.rsplit(".", 1)[-1], "created_at": iso(at), **data},
    }}).encode()


def sign(body: bytes, secret: str = SECRET) -> str:
    return "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def http_event(body: bytes, signature: str | None = None, webhook_id: str | None = "wh-1",
               b64: bool = False) -> dict[str, Any]:
    headers = {"Content-Type": "application/json"}
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:  # API Gateway hands binary bodies over base64-encoded
        b64 = True
    if signature is not None:
        headers["X-PagerDuty-Signature"] = signature
    if webhook_id is not None:
        headers["X-Webhook-Id"] = webhook_id
    return {"version": "2.0", "routeKey": "POST /pagerduty", "headers": headers,
            "body": base64.b64encode(body).decode() if b64 else body.decode("utf-8"),
            "isBase64Encoded": b64,
            "requestContext": {"http": {"method": "POST", "sourceIp": "203.0.113.9"}}}


def call(body: bytes, signature: str | None = None, webhook_id: str | None = "wh-1",
         b64: bool = False) -> dict[str, Any]:
    resp = h.handler(http_event(body, signature, webhook_id, b64))
    resp["json"] = json.loads(resp["body"])
    return resp
