"""The runbook automation function against moto: every action and every refusal path, on real events."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from runbook_automation import handler as h
from runbook_automation import runbooks
from runbook_automation import settings as settings_mod
from runbook_automation.audit import Audit
from runbook_automation.delivery import MAX_BODY_BYTES
from runbook_automation.runbook_ids import MANUAL_RUNBOOK_IDS
from runbook_automation.settings import Settings, SettingsError, parse
from runbook_automation.signature import verify
from runbook_env import ASG, EDGE_BOARD, REGION, SECRET, TITLE, Env, call, incident, sign


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield Env(monkeypatch)
    h._reset()


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
    assert EDGE_BOARD in ctx and "/d/akidb-edge/" not in ctx  # the board the stack deploys, not a missing one
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


def test_unknown_runbook_answers_200_no_automation_and_is_audited_as_unknown(env: Env) -> None:
    """A validly signed page is never answered 4xx (PagerDuty would retry, then disable the subscription)."""
    body = incident("something [runbook:reboot-everything]")
    resp = call(body, sign(body))
    assert resp["statusCode"] == 200
    assert resp["json"]["status"] == "no-automation" and resp["json"]["runbook"] == "reboot-everything"
    assert "unknown runbook 'reboot-everything'" in resp["json"]["reason"]
    assert "error-budget-fast-burn" in resp["json"]["reason"]
    assert env.run_queued_jobs() == {"batchItemFailures": []}  # the worker publishes the decision
    assert [m["job"] for m in env.last_batch] == [None]
    (entry,) = env.drain(env.audit_q)
    assert entry["decision"] == "unknown-runbook" and entry["runbook"] == "reboot-everything"


@pytest.mark.parametrize("runbook", MANUAL_RUNBOOK_IDS)
def test_manual_runbook_answers_200_no_automation_audited_once(env: Env, runbook: str) -> None:
    """Every ServiceDown page carries [runbook:service-down]: a person follows it, the webhook says so with 200,
    and a retried delivery of the same signed event is neither queued nor audited again."""
    body = incident(f"akidb-rest is down [runbook:{runbook}]")
    first, again = call(body, sign(body)), call(body, sign(body), webhook_id="wh-retry")
    assert first["statusCode"] == 200 and first["json"] == {"status": "no-automation", "runbook": runbook}
    assert again["statusCode"] == 200 and again["json"]["status"] == "duplicate"
    assert env.run_queued_jobs() == {"batchItemFailures": []}
    assert [m["job"] for m in env.last_batch] == [None]
    audit = env.drain(env.audit_q)
    assert [(a["decision"], a["runbook"]) for a in audit] == [("no-automation", runbook)]


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


@pytest.mark.parametrize(("make_body", "status", "text"), [
    (lambda: b"{not json", 400, "PagerDuty V3 webhook"),
    (lambda: incident(TITLE, event_id="01 spaces"), 400, "event.id must be"),
    (lambda: incident(TITLE, "incident.resolved"), 202, "incident.resolved runs no runbook"),
    (lambda: incident("no token in this title"), 202, "names no [runbook:<id>]"),
])
def test_malformed_or_irrelevant_deliveries(env: Env, make_body: Callable[[], bytes], status: int,
                                            text: str) -> None:
    body = make_body()  # built when the test runs: deliveries go stale after an hour
    resp = call(body, sign(body))
    assert resp["statusCode"] == status and text in json.dumps(resp["json"])
    assert env.runbook_jobs() == []


@pytest.mark.parametrize(("raw", "text"), [
    (None, "RUNBOOK_SETTINGS is not set"),
    ("[1]", "must be a JSON object"),
    ('{"environment": "prod"}', "table_name is required"),
    ('{"environment": "p", "table_name": "t", "audit_topic_arn": "a", "max_capacity": 0}', "max_capacity"),
    ('{"environment": "p", "table_name": "t", "audit_topic_arn": "a", "scale_out_asg": "x"}', "not in allowed"),
    ('{"environment": "p", "table_name": "t", "audit_topic_arn": "a", "colour": "x"}', "unknown setting"),
    ('{"environment": "p", "table_name": "t", "audit_topic_arn": "a", "timeline_settle_s": 901}', "settle"),
])
def test_bad_settings_are_named(raw: str | None, text: str) -> None:
    with pytest.raises(SettingsError, match=text):
        parse(raw)


# ------------------------------------------------------------------------------- hardening (issue 12 findings)
def test_replay_with_a_fresh_webhook_id_is_a_duplicate_of_the_signed_event_id(env: Env) -> None:
    body = incident(TITLE)
    codes = [call(body, sign(body), webhook_id=f"wh-fresh-{i}")["statusCode"] for i in range(5)]
    assert codes == [202, 200, 200, 200, 200]
    assert len(env.runbook_jobs()) == 1


def test_the_unsigned_webhook_id_header_is_not_needed(env: Env) -> None:
    body = incident(TITLE)
    assert call(body, sign(body), webhook_id=None)["statusCode"] == 202


@pytest.mark.parametrize(("age_s", "status"), [(0, 202), (3000, 202), (3700, 400), (6 * 365 * 86400, 400),
                                               (-200, 202), (-400, 400)])
def test_stale_or_future_events_are_refused(env: Env, age_s: float, status: int) -> None:
    body = incident(TITLE, occurred_at=time.time() - age_s)
    resp = call(body, sign(body))
    assert resp["statusCode"] == status, resp["json"]
    if status == 400:
        assert "event.occurred_at" in resp["json"]["error"]
        assert env.runbook_jobs() == []


def test_dedupe_window_outlives_the_freshness_window() -> None:
    limits = settings_mod._INTS
    assert limits["max_event_age_s"][1] + limits["clock_skew_s"][1] < h.DEDUPE_TTL_S


def test_a_failed_enqueue_releases_the_claim_so_the_retry_runs_the_job(env: Env,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    body = incident(TITLE)
    h._init()
    sqs = h._state["sqs"]
    real = sqs.send_message
    failures = iter([ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "down"}}, "SendMessage")])

    def flaky(**kwargs: Any) -> Any:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return real(**kwargs)

    monkeypatch.setattr(sqs, "send_message", flaky)
    first = call(body, sign(body))
    assert first["statusCode"] == 503 and "retry" in first["json"]["error"]
    retry = call(body, sign(body))
    assert retry["statusCode"] == 202 and retry["json"]["status"] == "accepted"
    env.run_queued_jobs()
    assert env.desired() == 6


def test_a_pending_claim_of_a_crashed_invocation_expires(env: Env) -> None:
    body = incident(TITLE)
    event_id = json.loads(body)["event"]["id"]
    env.ddb.put_item(TableName="runbook-state", Item={
        "pk": {"S": f"event#{event_id}"}, "status": {"S": "pending"}, "claim": {"S": "dead"},
        "claimed_at": {"N": str(int(time.time()) - h.CLAIM_LEASE_S - 1)}, "expires_at": {"N": "9999999999"}})
    assert call(body, sign(body))["statusCode"] == 202
    assert len(env.runbook_jobs()) == 1


def test_a_throttled_action_keeps_its_runs_budget_unit_and_the_redelivery_acts(
        env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    env.configure(max_actions_per_hour=1, timeline_table_name="")
    body = incident(TITLE)
    call(body, sign(body))
    messages = env.sqs.receive_message(QueueUrl=env.queue_url, MaxNumberOfMessages=10)["Messages"]
    records = [{"messageId": m["MessageId"], "body": m["Body"]} for m in messages]
    h._init()
    autoscaling = h._state["autoscaling"]
    real = autoscaling.set_desired_capacity
    throttled = iter([ClientError({"Error": {"Code": "Throttling", "Message": "Rate exceeded"}},
                                  "SetDesiredCapacity")])

    def flaky(**kwargs: Any) -> Any:
        failure = next(throttled, None)
        if failure is not None:
            raise failure
        return real(**kwargs)

    monkeypatch.setattr(autoscaling, "set_desired_capacity", flaky)
    first = h.worker({"Records": records})
    assert first["batchItemFailures"] == [{"itemIdentifier": records[0]["messageId"]}]
    assert env.desired() == 4
    again = h.worker({"Records": records})  # SQS redelivers the failed record
    assert again == {"batchItemFailures": []}
    assert env.desired() == 6
    decisions = [a["decision"] for a in env.drain(env.audit_q)]
    assert decisions == ["accepted", "error", "acted"]


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(("event_json", "text"), [
    ('{"id": "01A", "event_type": "incident.triggered", "resource_type": "incident", "occurred_at": "%s", '
     '"data": [1, 2]}', "event.data must be an object"),
    ('{"id": "01A", "event_type": "incident.triggered", "resource_type": "incident", "occurred_at": "%s", '
     '"data": "PGR0VU2"}', "event.data must be an object"),
    ('{"id": "01A", "event_type": "incident.triggered", "resource_type": "incident", "occurred_at": "%s", '
     '"data": ' + _nested(5000) + '}', "must be JSON"),
    ('{"id": "01A", "event_type": "incident.triggered", "occurred_at": "%s", "data": {"id": ' + _nested(5000)
     + '}}', "must be JSON"),
    ('{"id": ["01A"], "event_type": "incident.triggered", "occurred_at": "%s", "data": {}}', "event.id must be"),
    ('{"id": "01A", "event_type": "incident.triggered", "occurred_at": 1700000000, "data": {}}', "ISO 8601"),
    ('{"id": "01A", "event_type": "incident.triggered", "occurred_at": "%s", "data": {"id": null}}',
     "event.data.id"),
])
def test_signed_but_malformed_bodies_answer_400(env: Env, event_json: str, text: str) -> None:
    from runbook_env import iso
    raw = '{"event": ' + (event_json % iso(time.time()) if "%s" in event_json else event_json) + '}'
    body = raw.encode()
    resp = call(body, sign(body))
    assert resp["statusCode"] == 400 and text in resp["json"]["error"], resp["json"]
    assert env.drain(env.queue_url) == []


def test_unsigned_requests_are_refused_before_any_aws_call(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    h._reset()

    def no_aws(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("an AWS client was created for an unsigned request")

    monkeypatch.setattr(boto3, "client", no_aws)
    body = incident(TITLE)
    for signature in (None, "", "v1=deadbeef", "garbage", "v1=" + "g" * 64, "v1=" + "0" * 64 + "," * 2000):
        assert call(body, signature)["statusCode"] == 401


def test_oversized_bodies_are_refused(env: Env) -> None:
    body = b"{" + b" " * MAX_BODY_BYTES + b"}"
    assert call(body, sign(body))["statusCode"] == 413
