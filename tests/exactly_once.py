"""Fault interleavings for the runbook webhook and worker, run from the zip the stack deploys against a moto server.

Each function runs as Lambda runs it (infra/tools/drill/zip_runtime.py: its own warm container, the runtime's
Python with only the extracted zip and boto3 on its path), started once and reused by every run as Lambda reuses a
warm container: a module, a wheel or a file the zip lacks fails here. Only the functions' own boto3 clients see
the faults; the harness's checking clients (this process) never do.

A run is one signed PagerDuty delivery through the receiver, then the worker over the job queue until it is empty
(SQS redelivering what failed). `clean_calls(scenario)` records every AWS call of a clean run, both functions' in
order; `run(scenario, kind, at)` replays it with one fault at call `at` of the run (the runtime's fault, given to
the invocation that makes that call):
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
import json
import os
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3

from infra.artifacts.packaging import build_lambda
from infra.components.runbook_automation import (
    FUNCTION_FOLDER,
    RECEIVER_TIMEOUT_S,
    WORKER_TIMEOUT_S,
    worker_handler,
)
from infra.tools import daemons
from infra.tools.drill import webhook
from infra.tools.drill.zip_runtime import FAULT_KINDS, Invocation, ZipProcess, extract
from lambdas.runbook_automation.ledger import CALL_BOUND_MS

KINDS = FAULT_KINDS
SCENARIOS = {
    "scale-out": "akidb-rest availability: burning at 14.4x (P0) [runbook:error-budget-fast-burn]",
    "cold-start": "edge cold starts above target [runbook:lambda-edge-cold-start]",
    "manual": "akidb-rest is down [runbook:service-down]",
}
MAX_ROUNDS = 8  # SQS redeliveries before the test calls it stuck (the queue's DLQ takes it after 5 in the stack)
INJECTED = "(injected)"  # in the message of the runtime's throttled call: an error the run was meant to meet


@dataclass
class Faults:
    """One fault per run, numbered over every AWS call of the run (both functions, every invocation): each
    invocation is given the part of it that falls in its own calls."""

    bound_ms: int
    kind: str | None = None
    at: int = -1
    calls: list[str] = field(default_factory=list)
    fired: bool = False
    errors: list[str] = field(default_factory=list)  # what the functions raised that no fault explains

    def arm(self, kind: str | None, at: int) -> None:
        self.kind, self.at, self.fired = kind, at, False
        self.calls.clear()
        self.errors.clear()

    def for_invocation(self) -> dict[str, Any] | None:
        if self.kind is None or self.fired:
            return None
        return {"kind": self.kind, "at": self.at - len(self.calls), "call_ms": self.bound_ms}

    def took(self, got: Invocation) -> None:
        self.calls += got.calls
        self.fired = self.fired or got.fired
        if got.error is not None and INJECTED not in got.error:
            self.errors.append(got.error)


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
    errors: list[str] = field(default_factory=list)


class Harness:
    """One moto world (drill's create_world, in_process=False) and the two functions of the packaged zip, each in
    its own runtime process (ZipProcess), started once; runs interleavings one after another."""

    def __init__(self, world: webhook.World, moto_url: str, workdir: Path) -> None:
        self.world = world
        self.faults = Faults(bound_ms=CALL_BOUND_MS)
        self.sqs = boto3.client("sqs")
        self.asg = boto3.client("autoscaling")
        self.ddb = boto3.client("dynamodb")
        self.settings = json.loads(os.environ["RUNBOOK_SETTINGS"])
        self._scaled = True  # unknown at the start: put the group to START_CAPACITY
        pkg = build_lambda(FUNCTION_FOLDER, kind="lambda")
        root = extract(pkg.path, workdir / "runbook-zip")  # one zip, two functions (the stack's two handlers)
        env = {**daemons.aws_env(moto_url, webhook.REGION), "RUNBOOK_SETTINGS": os.environ["RUNBOOK_SETTINGS"]}
        receiver_module, self.receiver_function = pkg.handler.rsplit(".", 1)
        worker_module, self.worker_function = worker_handler(pkg.handler).rsplit(".", 1)
        self.receiver = ZipProcess(root, receiver_module,
                                   {**env, "AWS_LAMBDA_FUNCTION_NAME": "akidb-drill-runbook-webhook"},
                                   workdir / "webhook.log")
        self.worker = ZipProcess(root, worker_module, {**env, "AWS_LAMBDA_FUNCTION_NAME": "akidb-drill-runbook-worker"},
                                 workdir / "worker.log")

    def __enter__(self) -> Harness:
        self.receiver.__enter__()
        self.worker.__enter__()
        # The receiver reads its secret once per container, on the first signed-looking delivery: a refused one
        # here, before any fault, so every run makes the same calls.
        body = b"{}"
        warm = self._invoke_receiver(body, {"Content-Type": "application/json",
                                            "X-PagerDuty-Signature": "v1=" + "0" * 64})
        if warm.result is None or warm.result.get("statusCode") != 401 or warm.calls != [
                "secretsmanager.GetSecretValue"]:
            raise RuntimeError(f"the receiver's first delivery: {warm}\n{self.receiver.tail()}")
        return self

    def __exit__(self, *exc: object) -> None:
        self.worker.__exit__(*exc)
        self.receiver.__exit__(*exc)

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

    def _invoke_receiver(self, body: bytes, headers: dict[str, str]) -> Invocation:
        event = {"version": "2.0", "routeKey": "POST /pagerduty", "headers": headers,
                 "body": base64.b64encode(body).decode(), "isBase64Encoded": True,
                 "requestContext": {"http": {"method": "POST", "sourceIp": "127.0.0.1"}}}
        return self.receiver.invoke(event, function=self.receiver_function, fault=self.faults.for_invocation(),
                                    context={"timeout_s": RECEIVER_TIMEOUT_S})

    def _deliver(self, body: bytes, headers: dict[str, str]) -> int:
        """The receiver's answer as PagerDuty sees it: its status, 0 when it timed out, 500 when it raised."""
        got = self._invoke_receiver(body, headers)
        self.faults.took(got)
        if got.died is not None:
            return 0
        if got.error is not None:
            return 500
        return int(got.result["statusCode"])

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
        got = self.worker.invoke({"Records": records}, function=self.worker_function,
                                 fault=self.faults.for_invocation(), context={"timeout_s": WORKER_TIMEOUT_S})
        self.faults.took(got)
        if got.died is None and got.error is None:
            failed = {f["itemIdentifier"] for f in got.result["batchItemFailures"]}
        else:  # the invocation died or raised: the whole batch comes back
            failed = {m["MessageId"] for m in msgs}
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

    def _stuck(self, scenario: str, kind: str | None, at: int) -> AssertionError:
        return AssertionError(f"{scenario} {kind}@{at}: still redelivering after {MAX_ROUNDS} rounds; the functions "
                              f"raised {self.faults.errors[-3:]}\n{self.worker.tail()}")

    def run(self, scenario: str, kind: str | None = None, at: int = -1) -> Outcome:
        if self._scaled:  # put the group back (the previous run drained its notices already)
            self.asg.set_desired_capacity(AutoScalingGroupName=webhook.ASG, DesiredCapacity=webhook.START_CAPACITY)
        self.faults.arm(kind, at)
        event_id = "01" + uuid.uuid4().hex[:24].upper()
        body, headers = delivery(SCENARIOS[scenario], event_id)
        answers = [self._deliver(body, headers)]
        rounds = 0
        while self._worker_round():
            rounds += 1
            if rounds > MAX_ROUNDS:
                raise self._stuck(scenario, kind, at)
        if answers[0] not in (200, 202):  # PagerDuty retries a delivery that was not answered 2xx
            self._age_claim(event_id)
            answers.append(self._deliver(body, headers))
            while self._worker_round():
                rounds += 1
                if rounds > 2 * MAX_ROUNDS:
                    raise self._stuck(scenario, kind, at)
        fired = self.faults.fired
        self.faults.kind = None
        notices = self._drain(self.world.notify_queue)
        audits = [a for a in self._drain(self.world.audit_queue) if a.get("event_id", "") == event_id
                  or event_id in str(a.get("webhook_id", ""))]
        scaled_by = self.desired() - webhook.START_CAPACITY if scenario == "scale-out" or self._scaled else 0
        self._scaled = scaled_by != 0
        return Outcome(scenario=scenario, kind=kind, at=at, fired=fired, scaled_by=scaled_by, notices=len(notices),
                       pages=self.pages(event_id),
                       decisions=Counter(a["decision"] for a in audits), rounds=rounds, receiver_answers=answers,
                       errors=list(self.faults.errors))

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
    return [f"{o.scenario} {o.kind}@{o.at}: {k} {got[k]!r}, want {v!r}" for k, v in want.items() if got[k] != v] + \
        [f"{o.scenario} {o.kind}@{o.at}: a function raised {e}" for e in dict.fromkeys(o.errors)]
