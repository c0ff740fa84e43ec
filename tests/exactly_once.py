"""Fault interleavings for the runbook webhook and worker, run from the zip the stack deploys against a moto server.

A run is one signed PagerDuty delivery through the receiver, then the worker over the job queue until it is empty
(SQS redelivering what failed). `calls(scenario)` records every AWS call of a clean run; `run(scenario, kind, at)`
replays it with one fault at call `at`:
- `fail`: the call raises as a throttled AWS API does (SNS, DynamoDB, SQS, Auto Scaling, CloudWatch alike);
- `die`: the function's time runs out right before the call. Each call is taken to last its bounded duration
  (ledger.CALL_BOUND_MS: the case that lets a guarded step run closest to the deadline), the worker's Lambda
  context reports the time left accordingly, and a call at or past the deadline kills the invocation
  (LambdaTimeout, which no handler catches): its whole batch comes back. A receiver that dies is retried by
  PagerDuty after its claim's lease (the claim is aged past CLAIM_LEASE_S, as the minute would).
Then recovery runs clean, and the outcome reads what happened: the ASG's desired capacity, the notices on the
ticket topic's copy, the incident's Pages datums (the timeline), the audit entries per decision.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib
import json
import os
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

import boto3
from botocore.exceptions import ClientError

from infra.tools.drill import webhook

KINDS = ("fail", "die")
SCENARIOS = {
    "scale-out": "akidb-rest availability: burning at 14.4x (P0) [runbook:error-budget-fast-burn]",
    "cold-start": "edge cold starts above target [runbook:lambda-edge-cold-start]",
    "manual": "akidb-rest is down [runbook:service-down]",
}
MAX_ROUNDS = 8  # SQS redeliveries before the test calls it stuck (the queue's DLQ takes it after 5 in the stack)


class LambdaTimeout(BaseException):
    """The invocation ran out of time before this call."""


def _throttled(operation: str) -> ClientError:
    return ClientError({"Error": {"Code": "Throttling", "Message": "Rate exceeded (injected)"},
                        "ResponseMetadata": {"HTTPStatusCode": 400}}, operation)


@dataclass
class Faults:
    """Numbers every AWS call of the functions (botocore `before-call` on their clients) and injects one fault."""

    bound_ms: int
    kind: str | None = None
    at: int = -1
    calls: list[str] = field(default_factory=list)
    fired: bool = False
    invocation_start: int = 0

    def hook(self, model: Any, **_: Any) -> None:
        index = len(self.calls)
        self.calls.append(f"{model.service_model.service_name}.{model.name}")
        if self.kind is None or self.fired:
            return
        if self.kind == "fail" and index == self.at:
            self.fired = True
            raise _throttled(model.name)
        if self.kind == "die" and index >= self.at:
            self.fired = True
            raise LambdaTimeout(f"before call {index} ({self.calls[-1]})")

    def remaining_ms(self) -> float:
        """The worker's time left: the deadline falls right before call `at`, each call lasting bound_ms."""
        if self.kind != "die" or self.fired:
            return 60_000.0
        return float(max(0, self.at - len(self.calls)) * self.bound_ms)


class Context:
    def __init__(self, faults: Faults) -> None:
        self._faults = faults

    def get_remaining_time_in_millis(self) -> int:
        return int(self._faults.remaining_ms())


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(epoch * 1000) % 1000:03d}Z"


def delivery(title: str, event_id: str) -> tuple[bytes, dict[str, str]]:
    now = time.time()
    body = json.dumps({"event": {
        "id": event_id, "event_type": "incident.triggered", "resource_type": "incident", "occurred_at": _iso(now),
        "data": {"id": "P" + event_id[-12:].upper(), "type": "incident", "title": title, "urgency": "high",
                 "service": {"summary": service_of(event_id)},  # the run's own Service dimension (its Pages)
                 "html_url": "https://acme.pagerduty.com/incidents/X", "status": "triggered",
                 "created_at": _iso(now)}}}).encode()
    signature = "v1=" + hmac.new(webhook.SECRET.encode(), body, hashlib.sha256).hexdigest()
    return body, {"Content-Type": "application/json", "X-PagerDuty-Signature": signature}


def service_of(event_id: str) -> str:
    return f"svc-{event_id.lower()}"


@dataclass
class Outcome:
    scenario: str
    kind: str | None
    at: int
    fired: bool
    scaled_by: int
    notices: int
    pages: int
    decisions: Counter[str]
    rounds: int
    receiver_answers: list[int]


class Harness:
    """One moto world (drill's create_world) and the packaged functions; runs interleavings one after another."""

    def __init__(self, world: webhook.World) -> None:
        self.world = world
        self.mod: ModuleType = webhook.packaged_handler()
        try:
            bound_ms = int(importlib.import_module(f"{webhook.PACKAGED_NAME}.ledger").CALL_BOUND_MS)
        except ImportError:  # a build without the ledger (main before issue 30): botocore's default read timeout
            bound_ms = 60_000
        self.faults = Faults(bound_ms=bound_ms)
        self.sqs = boto3.client("sqs")
        self.asg = boto3.client("autoscaling")
        self.ddb = boto3.client("dynamodb")
        self.settings = json.loads(os.environ["RUNBOOK_SETTINGS"])
        self._armed_clients: set[int] = set()
        self._scaled = True  # unknown at the start: put the group to START_CAPACITY

    def _arm(self) -> None:
        st = self.mod._init()
        self.mod._secret(st)  # read once per container, before the faults: the same calls in every run
        for name in ("sns", "dynamodb", "sqs", "autoscaling", "cloudwatch"):
            client = st[name]
            if id(client) not in self._armed_clients:
                client.meta.events.register("before-call", self.faults.hook)
                self._armed_clients.add(id(client))

    def _drain(self, url: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            msgs = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                            VisibilityTimeout=30).get("Messages", [])
            if not msgs:
                return out
            out += [json.loads(m["Body"]) for m in msgs]
            self.sqs.delete_message_batch(QueueUrl=url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(msgs)])

    def pages(self, event_id: str) -> int:
        """How many Pages datums the timeline put for this run's incident (its own Service dimension)."""
        now = time.time()
        points = boto3.client("cloudwatch").get_metric_statistics(
            Namespace="AkiDB/Incidents", MetricName="Pages", StartTime=datetime.fromtimestamp(now - 3600, UTC),
            EndTime=datetime.fromtimestamp(now + 3600, UTC), Period=60, Statistics=["SampleCount"],
            Dimensions=[{"Name": "Service", "Value": service_of(event_id)},
                        {"Name": "Severity", "Value": "urgency-high"}])["Datapoints"]
        return int(sum(p["SampleCount"] for p in points))

    def desired(self) -> int:
        g = self.asg.describe_auto_scaling_groups(AutoScalingGroupNames=[webhook.ASG])["AutoScalingGroups"][0]
        return int(g["DesiredCapacity"])

    def _deliver(self, body: bytes, headers: dict[str, str]) -> int:
        event = {"version": "2.0", "routeKey": "POST /pagerduty", "headers": headers,
                 "body": base64.b64encode(body).decode(), "isBase64Encoded": True,
                 "requestContext": {"http": {"method": "POST", "sourceIp": "127.0.0.1"}}}
        try:
            return int(self.mod.handler(event)["statusCode"])
        except LambdaTimeout:
            return 0
        except Exception:
            return 500

    def _age_claim(self, event_id: str) -> None:
        """A minute passes before PagerDuty's retry: a pending claim's lease has run out."""
        self.ddb.update_item(TableName=self.settings["table_name"], Key={"pk": {"S": f"event#{event_id}"}},
                             UpdateExpression="SET claimed_at = :old", ConditionExpression="attribute_exists(pk)",
                             ExpressionAttributeValues={":old": {"N": str(int(time.time()) - 3600)}}) \
            if self._claim_pending(event_id) else None

    def _claim_pending(self, event_id: str) -> bool:
        item = self.ddb.get_item(TableName=self.settings["table_name"], Key={"pk": {"S": f"event#{event_id}"}},
                                 ConsistentRead=True).get("Item")
        return bool(item and item["status"]["S"] == "pending")

    def _worker_round(self) -> bool:
        """One batch (up to 10, as the event source's batch of 5 or more); False when the queue is empty."""
        msgs = self.sqs.receive_message(QueueUrl=self.world.queue_url, MaxNumberOfMessages=10,
                                        WaitTimeSeconds=0, VisibilityTimeout=30).get("Messages", [])
        if not msgs:
            return False
        records = [{"messageId": m["MessageId"], "body": m["Body"]} for m in msgs]
        try:
            failed = {f["itemIdentifier"]
                      for f in self.mod.worker({"Records": records}, Context(self.faults))["batchItemFailures"]}
        except LambdaTimeout:
            failed = {m["MessageId"] for m in msgs}  # the invocation died: the whole batch comes back
        if self.faults.kind == "die" and failed:  # stopped before its deadline (OutOfTime): the next one is fresh
            self.faults.fired = True
        done = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(msgs)
                if m["MessageId"] not in failed]
        again = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                 for i, m in enumerate(msgs) if m["MessageId"] in failed]  # the redelivery, without the wait
        if done:
            self.sqs.delete_message_batch(QueueUrl=self.world.queue_url, Entries=done)
        if again:
            self.sqs.change_message_visibility_batch(QueueUrl=self.world.queue_url, Entries=again)
        return True

    def run(self, scenario: str, kind: str | None = None, at: int = -1) -> Outcome:
        self._arm()
        if self._scaled:  # put the group back (the previous run drained its notices already)
            self.asg.set_desired_capacity(AutoScalingGroupName=webhook.ASG, DesiredCapacity=webhook.START_CAPACITY)
        self.faults.calls.clear()
        self.faults.kind, self.faults.at, self.faults.fired = kind, at, False
        event_id = "01" + uuid.uuid4().hex[:24].upper()
        body, headers = delivery(SCENARIOS[scenario], event_id)
        answers = [self._deliver(body, headers)]
        rounds = 0
        while self._worker_round():
            rounds += 1
            if rounds > MAX_ROUNDS:
                raise AssertionError(f"{scenario} {kind}@{at}: still redelivering after {MAX_ROUNDS} rounds")
        if answers[0] not in (200, 202):  # PagerDuty retries a delivery that was not answered 2xx
            self._age_claim(event_id)
            answers.append(self._deliver(body, headers))
            while self._worker_round():
                rounds += 1
        fired = self.faults.fired
        self.faults.kind = None
        notices = self._drain(self.world.notify_queue)
        audits = [a for a in self._drain(self.world.audit_queue) if a.get("event_id", "") == event_id
                  or event_id in str(a.get("webhook_id", ""))]
        scaled_by = self.desired() - webhook.START_CAPACITY if scenario == "scale-out" or self._scaled else 0
        self._scaled = scaled_by != 0
        return Outcome(scenario=scenario, kind=kind, at=at, fired=fired, scaled_by=scaled_by, notices=len(notices),
                       pages=self.pages(event_id),
                       decisions=Counter(a["decision"] for a in audits), rounds=rounds, receiver_answers=answers)

    def clean_calls(self, scenario: str) -> list[str]:
        self.run(scenario)
        return list(self.faults.calls)


EXPECTED = {  # each side effect of a scenario and how many times it happens: once
    "scale-out": {"scaled_by": 2, "notices": 0, "pages": 1, "decisions": {"accepted": 1, "acted": 1}},
    "cold-start": {"scaled_by": 0, "notices": 1, "pages": 1, "decisions": {"accepted": 1, "acted": 1}},
    "manual": {"scaled_by": 0, "notices": 0, "pages": 1, "decisions": {"no-automation": 1}},
}


def problems(o: Outcome) -> list[str]:
    """What differs from exactly once (error audits are per failed attempt, not effects)."""
    want = EXPECTED[o.scenario]
    got = {"scaled_by": o.scaled_by, "notices": o.notices, "pages": o.pages,
           "decisions": {k: v for k, v in o.decisions.items() if k != "error"}}
    return [f"{o.scenario} {o.kind}@{o.at}: {k} {got[k]!r}, want {v!r}" for k, v in want.items() if got[k] != v]
