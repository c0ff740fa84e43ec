"""`python -m infra.tools.game_day_report` against a moto server: timeline items written by the worker's own
`timeline.record` (from PagerDuty lifecycle deliveries), audit lines written by the worker's own `Audit` in the
Lambda runtime's log format, then the tool run as the workflow runs it. Expected figures come from the times the
test chose, never from the tool."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from runbook_automation import audit as audit_mod
from runbook_automation import timeline
from runbook_automation.delivery import Delivery
from runbook_env import iso

from infra.core.paths import ROOT
from infra.tools import daemons
from infra.tools.game_day_report import MTTD_TARGET_S

REGION = "us-east-1"
LOG_GROUP = "/aws/lambda/akidb-staging-runbook-worker"


@pytest.fixture(scope="module")
def moto() -> Iterator[dict[str, Any]]:
    with daemons.moto_server() as server:
        env = daemons.aws_env(server.url, REGION)
        session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)

        def client(service: str) -> Any:
            return session.client(service, endpoint_url=server.url)

        client("logs").create_log_group(logGroupName=LOG_GROUP)
        client("logs").create_log_stream(logGroupName=LOG_GROUP, logStreamName="worker")
        yield {"env": env, "client": client,
               "queue": client("sqs").create_queue(QueueName="jobs")["QueueUrl"],
               "topic": client("sns").create_topic(Name="audit")["TopicArn"]}


def new_table(moto: dict[str, Any], name: str) -> str:
    moto["client"]("dynamodb").create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "sk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}])
    return name


def lifecycle(moto: dict[str, Any], table: str, incident: str, fault: float, *, page_after: float,
              ack_after: float | None, resolve_after: float | None) -> None:
    """PagerDuty events of one incident, recorded the way the worker records them."""
    deps = SimpleNamespace(
        settings=SimpleNamespace(timeline_table_name=table, queue_url=moto["queue"], timeline_settle_s=0,
                                 timeline_retention_days=400),
        now=time.time, dynamodb=moto["client"]("dynamodb"), sqs=moto["client"]("sqs"))
    triggered = fault + page_after
    data = {"id": incident, "created_at": iso(triggered), "urgency": "high",
            "custom_details": {"service": "akidb-rest", "severity": "P1",
                               "condition_started_at": iso(fault + 30)}}
    steps = [("incident.triggered", triggered)]
    if ack_after is not None:
        steps.append(("incident.acknowledged", triggered + ack_after))
    if resolve_after is not None:
        steps.append(("incident.resolved", triggered + resolve_after))
    for n, (kind, at) in enumerate(steps):
        event = timeline.timeline_event(Delivery(f"{incident}-{n}", kind, "incident", at, data))
        assert timeline.record(deps, event)


def audit_line(moto: dict[str, Any], incident: str, decision: str, **details: Any) -> None:
    """One decision through the worker's Audit, its log line as the Lambda Python runtime prints it."""
    lines: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(f"[INFO]\t{iso(record.created)}\t0f1e2d3c-request\t{record.getMessage()}")

    handler = Capture()
    audit_mod.LOG.addHandler(handler)
    try:
        audit_mod.Audit(moto["client"]("sns"), moto["topic"], "staging").record(
            decision, incident=incident, webhook_id=f"w-{incident}", **details)
    finally:
        audit_mod.LOG.removeHandler(handler)
    moto["client"]("logs").put_log_events(logGroupName=LOG_GROUP, logStreamName="worker", logEvents=[
        {"timestamp": int(time.time() * 1000), "message": line} for line in lines])


def report(moto: dict[str, Any], table: str, fault: float, expect: str, tmp_path: Path,
           runbook: str = "", delay: int = 0) -> tuple[int, dict[str, Any], str]:
    summary = tmp_path / f"{table}-{delay}.md"
    proc = subprocess.run(
        [sys.executable, "-m", "infra.tools.game_day_report", "--experiment", table, "--started-at", iso(fault),
         "--ended-at", iso(fault + 600), "--expect", expect, "--expected-runbook", runbook, "--table", table,
         "--grace-minutes", "10", "--fault-delay-seconds", str(delay)],
        cwd=ROOT, env={**moto["env"], "GITHUB_STEP_SUMMARY": str(summary)}, capture_output=True, text=True,
        timeout=120, check=False)
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout.strip().splitlines()[-1]), summary.read_text()


def test_one_page_in_time_with_the_runbook_is_as_expected(moto: dict[str, Any], tmp_path: Path) -> None:
    table = new_table(moto, "as-expected")
    fault = time.time() - 1800
    lifecycle(moto, table, "PGAME1", fault, page_after=95, ack_after=120, resolve_after=700)
    lifecycle(moto, table, "POLDER", fault - 7200, page_after=0, ack_after=None, resolve_after=60)  # not ours
    audit_line(moto, "PGAME1", "dry-run", runbook="error-budget-fast-burn", action="scale-out",
               target="akidb-staging-rest-spot")
    code, out, summary = report(moto, table, fault, "page", tmp_path, runbook="error-budget-fast-burn")
    assert code == 0, out
    (incident,) = out["incidents"]
    assert incident["incident_id"] == "PGAME1" and out["pages"] == 1
    assert incident["time_to_detect"] == pytest.approx(95, abs=0.01)
    assert incident["time_to_acknowledge"] == pytest.approx(120, abs=0.01)
    assert incident["time_to_resolve"] == pytest.approx(700, abs=0.01)
    assert incident["alert_time_to_detect"] == pytest.approx(65, abs=0.01)
    assert incident["runbook_outcome"] == "dry-run scale-out"
    assert "| as-expected | 1 | 95 s | 120 s | 700 s | dry-run scale-out | as expected |" in summary
    # A spot interruption's fault starts after its notice: time to detect counts from there.
    code, out, _ = report(moto, table, fault, "page", tmp_path, runbook="error-budget-fast-burn", delay=60)
    assert code == 0 and out["incidents"][0]["time_to_detect"] == pytest.approx(35, abs=0.01)


@pytest.mark.parametrize(("name", "pages", "first_after", "expect", "message"), [
    ("twice", 2, 60, "page", "paged 2 times"),
    ("never", 0, 0, "page", "did not page"),
    ("late", 1, MTTD_TARGET_S + 100, "page", "not under the plan's target"),
    ("noisy", 1, 60, "no-page", "where no page was expected"),
])
def test_what_the_workflow_fails_on(moto: dict[str, Any], tmp_path: Path, name: str, pages: int,
                                    first_after: float, expect: str, message: str) -> None:
    table = new_table(moto, name)
    fault = time.time() - 1800
    for n in range(pages):
        lifecycle(moto, table, f"P{name.upper()}{n}", fault, page_after=first_after + 60 * n, ack_after=30,
                  resolve_after=300)
    code, out, summary = report(moto, table, fault, expect, tmp_path)
    assert code == 1 and out["pages"] == pages
    assert any(message in p for p in out["problems"]), out["problems"]
    assert "MISSED" in summary and message in summary


def test_no_page_expected_and_none_is_as_expected(moto: dict[str, Any], tmp_path: Path) -> None:
    table = new_table(moto, "quiet")
    code, out, _ = report(moto, table, time.time() - 1800, "no-page", tmp_path)
    assert code == 0 and out["pages"] == 0


def test_a_missing_table_is_a_clear_error(moto: dict[str, Any], tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "infra.tools.game_day_report", "--experiment", "x", "--started-at", "0",
         "--ended-at", "60", "--expect", "page", "--table", "no-such-table"],
        cwd=ROOT, env=moto["env"], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2 and "cannot read the incident timeline no-such-table" in proc.stderr
