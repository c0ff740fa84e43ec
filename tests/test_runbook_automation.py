"""The runbook automation function against moto: every action and every refusal path, on real events."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from runbook_automation import handler as h
from runbook_automation import runbooks
from runbook_automation.audit import Audit
from runbook_automation.settings import Settings, SettingsError, parse
from runbook_automation.signature import verify

REGION = "us-east-1"
SECRET = "whsec-test-secret"
ASG = "akidb-prod-rest-ondemand"


class Env:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.mp = monkeypatch
        self.sns = boto3.client("sns", region_name=REGION)
        self.sqs = boto3.client("sqs", region_name=REGION)
        self.ddb = boto3.client("dynamodb", region_name=REGION)
        self.asg = boto3.client("autoscaling", region_name=REGION)
        sm = boto3.client("secretsmanager", region_name=REGION)
        self.secret_arn = sm.create_secret(Name="akidb-prod-pagerduty-webhook", SecretString=SECRET)["ARN"]
        self.audit_topic = self.sns.create_topic(Name="audit")["TopicArn"]
        self.notify_topic = self.sns.create_topic(Name="alerts-p2")["TopicArn"]
        self.queue_url = self.sqs.create_queue(QueueName="jobs")["QueueUrl"]
        self.audit_q = self._subscribe(self.audit_topic, "audit-copy")
        self.notify_q = self._subscribe(self.notify_topic, "notify-copy")
        self.ddb.create_table(TableName="runbook-state", BillingMode="PAY_PER_REQUEST",
                              AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                              KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
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
            "queue_url": self.queue_url, "secret_arn": self.secret_arn, "notify_topic_arn": self.notify_topic,
            "dry_run": False, "allowed_asgs": [ASG, "akidb-prod-rest-spot"], "scale_out_asg": ASG,
            "scale_out_step": 2, "max_capacity": 8, "max_actions_per_hour": 3,
            "edge_function_name": "akidb-edge-inference", "edge_regions": ["us-east-1", "eu-west-1"],
            "runbook_base_url": "https://runbooks.akidb.internal", "grafana_base_url": "https://grafana.x",
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

    def run_queued_jobs(self) -> dict[str, Any]:
        msgs = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
        records = [{"messageId": m["MessageId"], "body": m["Body"]} for m in msgs]
        for m in msgs:
            self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"])
        return h.worker({"Records": records})


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield Env(monkeypatch)
    h._reset()


def incident(title: str, event_type: str = "incident.triggered") -> bytes:
    return json.dumps({"event": {
        "id": "01DEN4HPBQAAAG05V5QQYBRZMF", "event_type": event_type, "resource_type": "incident",
        "occurred_at": "2026-11-23T10:00:00Z",
        "data": {"id": "PGR0VU2", "type": "incident", "title": title, "urgency": "high",
                 "html_url": "https://acme.pagerduty.com/incidents/PGR0VU2", "status": "triggered"},
    }}).encode()


def sign(body: bytes, secret: str = SECRET) -> str:
    return "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def call(body: bytes, signature: str | None = None, webhook_id: str | None = "wh-1",
         b64: bool = False) -> dict[str, Any]:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-PagerDuty-Signature"] = signature
    if webhook_id is not None:
        headers["X-Webhook-Id"] = webhook_id
    event = {"version": "2.0", "routeKey": "POST /pagerduty", "headers": headers,
             "body": base64.b64encode(body).decode() if b64 else body.decode(), "isBase64Encoded": b64,
             "requestContext": {"http": {"method": "POST", "sourceIp": "203.0.113.9"}}}
    resp = h.handler(event)
    resp["json"] = json.loads(resp["body"])
    return resp


TITLE = "akidb-rest availability: error budget burning at 100.0x (P0 page-quick) [runbook:error-budget-fast-burn]"


# ------------------------------------------------------------------------------------------------ signatures
def test_signature_accepts_any_v1_during_rotation_and_rejects_the_rest() -> None:
    body = b'{"a":1}'
    good = sign(body)
    assert verify(SECRET.encode(), body, good)
    assert verify(SECRET.encode(), body, f"v1=00ff, {good}")
    assert not verify(SECRET.encode(), body, sign(body, "other"))
    assert not verify(SECRET.encode(), body + b" ", good)
    assert not verify(SECRET.encode(), body, good.replace("v1=", "v0="))
    assert not verify(SECRET.encode(), body, None)
    assert not verify(b"", body, good)


@pytest.mark.parametrize("signature", [None, "", "v1=deadbeef", "garbage"])
def test_unsigned_or_badly_signed_webhooks_get_401_and_do_nothing(env: Env, signature: str | None) -> None:
    body = incident(TITLE)
    resp = call(body, signature)
    assert resp["statusCode"] == 401
    assert "X-PagerDuty-Signature" in resp["json"]["error"]
    assert env.drain(env.queue_url) == [] and env.drain(env.audit_q) == []


def test_the_secret_comes_from_secrets_manager_not_the_environment(env: Env) -> None:
    assert SECRET not in json.dumps(dict(__import__("os").environ))
    body = incident(TITLE)
    assert call(body, sign(body))["statusCode"] == 202


# ------------------------------------------------------------------------------------------------ happy path
def test_signed_incident_is_queued_with_202_then_the_worker_scales_out_once(env: Env) -> None:
    body = incident(TITLE)
    resp = call(body, sign(body), b64=True)
    assert resp["statusCode"] == 202 and resp["json"] == {"status": "accepted", "runbook": "error-budget-fast-burn",
                                                          "dry_run": False}
    dup = call(body, sign(body))  # PagerDuty delivers at least once
    assert dup["statusCode"] == 200 and dup["json"]["status"] == "duplicate"
    assert env.desired() == 4  # nothing happens before the worker runs
    result = env.run_queued_jobs()
    assert result == {"batchItemFailures": []}
    assert env.desired() == 6
    audit = env.drain(env.audit_q)
    assert [a["decision"] for a in audit] == ["accepted", "acted"]
    assert audit[1]["action"] == "scale-out" and audit[1]["current"] == 4 and audit[1]["desired"] == 6


def test_scale_out_above_the_asg_max_size_raises_it_but_never_beyond_max_capacity(env: Env) -> None:
    env.asg.update_auto_scaling_group(AutoScalingGroupName=ASG, MaxSize=7, DesiredCapacity=7)
    body = incident(TITLE)
    call(body, sign(body))
    env.run_queued_jobs()
    assert env.desired() == 8 and env.max_size() == 8  # min(7 + 2, maxCapacity 8)
    body2 = incident(TITLE.replace("100.0x", "120.0x"))
    call(body2, sign(body2), webhook_id="wh-2")
    env.run_queued_jobs()
    assert env.desired() == 8
    refused = [a for a in env.drain(env.audit_q) if a["decision"] == "refused"]
    assert "capacity bound" in refused[0]["reason"]


def test_latency_runbook_scales_the_same_bounded_way(env: Env) -> None:
    body = incident("akidb-rest latency: burning [runbook:latency-slo-violation]")
    assert call(body, sign(body))["json"]["runbook"] == "latency-slo-violation"
    env.run_queued_jobs()
    assert env.desired() == 6


def test_cold_start_runbook_notifies_with_context_instead_of_provisioned_concurrency(env: Env) -> None:
    body = incident("edge cold starts [runbook:lambda-edge-cold-start]")
    call(body, sign(body))
    env.run_queued_jobs()
    notes = env.drain(env.notify_q)
    assert len(notes) == 1
    ctx = notes[0]["context"]
    assert "no provisioned concurrency" in ctx and "akidb-edge-inference" in ctx and "eu-west-1" in ctx
    assert notes[0]["runbook_url"] == "https://runbooks.akidb.internal/lambda-edge-cold-start"
    assert env.desired() == 4


# ------------------------------------------------------------------------------------------------ refusals
def test_dry_run_decides_and_audits_but_does_not_act(env: Env) -> None:
    env.configure(dry_run=True, environment="staging")
    body = incident(TITLE)
    assert call(body, sign(body))["json"]["dry_run"] is True
    env.run_queued_jobs()
    assert env.desired() == 4
    audit = env.drain(env.audit_q)
    assert audit[-1]["decision"] == "dry-run" and audit[-1]["desired"] == 6


def test_actions_per_hour_are_bounded(env: Env) -> None:
    env.configure(max_actions_per_hour=1)
    for i in range(2):
        body = incident(TITLE + f" #{i}")
        call(body, sign(body), webhook_id=f"wh-{i}")
        env.run_queued_jobs()
    assert env.desired() == 6  # one action, not two
    reasons = [a.get("reason", "") for a in env.drain(env.audit_q) if a["decision"] == "refused"]
    assert any("action budget spent (1 per hour)" in r for r in reasons)


def test_unknown_runbook_is_rejected_clearly(env: Env) -> None:
    body = incident("something [runbook:reboot-everything]")
    resp = call(body, sign(body))
    assert resp["statusCode"] == 422
    assert "unknown runbook 'reboot-everything'" in resp["json"]["error"]
    assert "error-budget-fast-burn" in resp["json"]["error"]
    assert env.drain(env.queue_url) == []
    assert env.drain(env.audit_q)[0]["decision"] == "rejected"


def test_worker_refuses_unknown_runbooks_and_malformed_jobs_too(env: Env) -> None:
    out = h.worker({"Records": [
        {"messageId": "1", "body": json.dumps({"runbook": "rm-rf", "incident_id": "X", "title": "t",
                                               "webhook_id": "w"})},
        {"messageId": "2", "body": "not json"},
    ]})
    assert out == {"batchItemFailures": []}
    decisions = env.drain(env.audit_q)
    assert [d["decision"] for d in decisions] == ["refused", "refused"]
    assert "unknown runbook 'rm-rf'" in decisions[0]["reason"] and "malformed job" in decisions[1]["reason"]


def test_targets_outside_the_allow_list_are_refused(env: Env) -> None:
    s = Settings(environment="prod", table_name="runbook-state", audit_topic_arn=env.audit_topic,
                 dry_run=False, allowed_asgs=(ASG,), scale_out_asg="not-allowed", max_capacity=8)
    deps = runbooks.Deps(settings=s, audit=Audit(env.sns, env.audit_topic, "prod"), autoscaling=env.asg,
                         dynamodb=env.ddb, sns=env.sns)
    job = runbooks.Job("error-budget-fast-burn", "P1", "t", "w")
    result = runbooks.run(deps, job)
    assert result["decision"] == "refused" and "not allow-listed" in result["reason"]
    assert env.desired("not-allowed") == 4


def test_missing_asg_is_refused(env: Env) -> None:
    env.configure(allowed_asgs=["ghost"], scale_out_asg="ghost")
    body = incident(TITLE)
    call(body, sign(body))
    env.run_queued_jobs()
    assert any("does not exist" in a.get("reason", "") for a in env.drain(env.audit_q))


@pytest.mark.parametrize(("body", "headers", "status", "text"), [
    (b"{not json", {}, 400, "PagerDuty V3 webhook"),
    (incident(TITLE), {"webhook_id": None}, 400, "X-Webhook-Id"),
    (incident(TITLE, "incident.resolved"), {}, 202, "incident.resolved runs no runbook"),
    (incident("no token in this title"), {}, 202, "names no [runbook:<id>]"),
])
def test_malformed_or_irrelevant_deliveries(env: Env, body: bytes, headers: dict, status: int, text: str) -> None:
    resp = call(body, sign(body), **headers)
    assert resp["statusCode"] == status and text in json.dumps(resp["json"])
    assert env.drain(env.queue_url) == []


@pytest.mark.parametrize(("raw", "text"), [
    (None, "RUNBOOK_SETTINGS is not set"),
    ("[1]", "must be a JSON object"),
    ('{"environment": "prod"}', "table_name is required"),
    ('{"environment": "p", "table_name": "t", "audit_topic_arn": "a", "max_capacity": 0}', "max_capacity"),
    ('{"environment": "p", "table_name": "t", "audit_topic_arn": "a", "scale_out_asg": "x"}', "not in allowed"),
    ('{"environment": "p", "table_name": "t", "audit_topic_arn": "a", "colour": "x"}', "unknown setting"),
])
def test_bad_settings_are_named(raw: str | None, text: str) -> None:
    with pytest.raises(SettingsError, match=text):
        parse(raw)
