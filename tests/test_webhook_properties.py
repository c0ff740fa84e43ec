"""Property tests of the runbook webhook (Hypothesis, derandomized, fixed budget): whatever the body and headers,
the receiver answers 2xx/4xx (503 only when queueing failed) with a JSON reason and never raises; a runbook job is
queued only for a correctly signed, fresh event whose signed id has not acted before. The worker never raises on
any queued message either.

A bigger pass: WEBHOOK_FUZZ_EXAMPLES=3000 .venv/bin/python -m pytest -q -s tests/test_webhook_properties.py
(prints the cases and answers)."""

from __future__ import annotations

import base64
import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws
from runbook_automation import handler as h
from runbook_env import TITLE, Env, http_event, iso, sign

EXAMPLES = int(os.environ.get("WEBHOOK_FUZZ_EXAMPLES", "150"))
BUDGET = settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                         HealthCheck.data_too_large])
EVENT_IDS = [f"01PROP{i:04d}" for i in range(12)]  # a small pool: replays happen often
EVENT_TYPES = ["incident.triggered", "incident.acknowledged", "incident.escalated", "incident.resolved",
               "incident.reopened", "incident.annotated", "service.updated", "pagey.ping", "", "incident"]
TITLES = [TITLE, "edge cold starts [runbook:lambda-edge-cold-start]", "x [runbook:rm-rf]", "no token", ""]
SEEN: Counter[str] = Counter()

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12)


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[bytes, bool]:
    """(body, fresh): a real-shaped delivery with some fields mutated, or arbitrary JSON / bytes."""
    shape = draw(st.sampled_from(["delivery", "delivery", "delivery", "json", "bytes", "deep"]))
    if shape == "bytes":
        return draw(st.binary(max_size=200)), False
    if shape == "json":
        return json.dumps(draw(json_values)).encode(), False
    if shape == "deep":
        depth = draw(st.integers(min_value=500, max_value=6000))
        return ('{"event": {"data": ' + "[" * depth + "]" * depth + "}}").encode(), False
    age = draw(st.sampled_from([0, 30, 1800, 3500, 3700, 86400, 10 * 365 * 86400, -100, -290, -310, -86400]))
    at = time.time() - age
    data: Any = {"id": draw(st.sampled_from(["PGR0VU2", "PGR0VU2", "P1", "", "bad id!", None])),
                 "title": draw(st.sampled_from(TITLES)), "urgency": "high",
                 "created_at": iso(at), "custom_details": draw(json_values)}
    if draw(st.integers(0, 5)) == 5:  # (Hypothesis favours 0)
        data = draw(json_values)
    event: dict[str, Any] = {"id": draw(st.sampled_from([*EVENT_IDS, "", "has space", None])),
                             "event_type": draw(st.sampled_from(EVENT_TYPES)), "resource_type": "incident",
                             "occurred_at": draw(st.sampled_from([iso(at)] * 4 + ["2020-01-01", 17e8, None])),
                             "data": data}
    if draw(st.integers(0, 3)) == 3:  # one field of four deliveries replaced by anything
        event[draw(st.sampled_from(list(event)))] = draw(json_values)
    fresh = isinstance(event["occurred_at"], str) and event["occurred_at"] == iso(at) and -300 <= age <= 3600
    return json.dumps({"event": event}).encode(), fresh


signatures = st.sampled_from(["good", "good", "good", "none", "empty", "other-secret", "other-body", "shape",
                              "garbage", "rotation"])


def signature_for(kind: str, body: bytes) -> str | None:
    return {"good": sign(body), "none": None, "empty": "", "other-secret": sign(body, "not-the-secret"),
            "other-body": sign(body + b" "), "shape": "v1=" + "0" * 64, "garbage": "v1=" + "z" * 64,
            "rotation": f"v1={'1' * 64}, {sign(body)}"}[kind]


@pytest.fixture(scope="module")
def world() -> Iterator[Env]:
    with pytest.MonkeyPatch.context() as mp, mock_aws():
        env = Env(mp)
        env.configure(dry_run=True)  # what "acts" here is a queued job; the worker property checks the rest
        yield env
    h._reset()


@BUDGET
@given(delivery=deliveries(), signature=signatures, webhook_id=st.sampled_from(["wh-1", None, "x" * 300]),
       b64=st.sampled_from([False, False, True, "broken"]))
def test_nothing_unsigned_stale_or_replayed_acts_and_nothing_crashes(
        world: Env, delivery: tuple[bytes, bool], signature: str, webhook_id: str | None, b64: Any) -> None:
    body, fresh = delivery
    event = http_event(body, signature_for(signature, body), webhook_id, b64 is True)
    if b64 == "broken":
        event["isBase64Encoded"], event["body"] = True, base64.b64encode(body).decode()[:-1] + "!"
    before = {k for k, v in SEEN.items() if v and not k.startswith("status")}
    resp = h.handler(event)
    code = resp["statusCode"]
    SEEN[f"status {code}"] += 1
    assert 200 <= code < 500 or code == 503
    reason = json.loads(resp["body"])
    assert isinstance(reason, dict) and reason
    signed = signature in ("good", "rotation") and b64 != "broken"
    if not signed:
        assert code in (400, 401)  # 400: a body that is not base64 is refused before its signature
    jobs = world.runbook_jobs()
    for job in jobs:
        assert signed and fresh, "an unsigned or stale delivery queued a runbook"
        assert job["webhook_id"] not in before, "a replayed event id queued a runbook again"
        SEEN[job["webhook_id"]] += 1
    assert len(jobs) <= 1
    world.drain(world.queue_url)  # timeline events: recorded by the worker property below


messages = st.one_of(
    st.text(max_size=50),
    json_values.map(json.dumps),
    st.builds(lambda ev, job: json.dumps({"kind": "incident-event", "event": ev, "job": job}),
              json_values, st.one_of(st.none(), json_values,
                                     st.just({"runbook": "lambda-edge-cold-start", "incident_id": "P1",
                                              "title": "t", "webhook_id": "w"}))),
    st.builds(lambda iid: json.dumps({"kind": "timeline-publish", "incident_id": iid}), json_values),
    # The receiver's decision travels with the event (published once by the worker's ledger): any shape of it.
    st.builds(lambda ev, audit: json.dumps({"kind": "incident-event", "event": ev, "job": None, "audit": audit}),
              st.one_of(json_values, st.just({"event_id": "01AUDIT", "event_type": "incident.triggered",
                                               "incident_id": "P1", "occurred_at": 1.0, "correlation": {}})),
              st.one_of(json_values, st.just({"decision": "ignored", "incident": "P1"}))),
)


@BUDGET
@given(bodies=st.lists(messages, min_size=1, max_size=3))
def test_the_worker_never_crashes_on_any_queued_message(world: Env, bodies: list[str]) -> None:
    out = h.worker({"Records": [{"messageId": str(i), "body": b} for i, b in enumerate(bodies)]})
    assert set(out) == {"batchItemFailures"}
    world.drain(world.queue_url)
    world.drain(world.audit_q)


def test_zz_report_the_pass(world: Env) -> None:
    """Prints what the receiver property saw (run with -s); asserts the budget really explored both sides."""
    statuses = {k: v for k, v in SEEN.items() if k.startswith("status")}
    acted = sum(v for k, v in SEEN.items() if not k.startswith("status"))
    print(f"\nwebhook fuzz: {sum(statuses.values())} cases, answers {dict(sorted(statuses.items()))}, "
          f"{acted} runbook jobs queued (each a first, signed, fresh event id), 0 crashes")
    assert statuses.get("status 401", 0) > 0 and acted > 0
