"""The incident timeline against moto: a recorded sequence of PagerDuty V3 incident events (out of order, with
duplicates) goes through the real webhook and worker; the published MTTD/MTTA/MTTR and pages must equal what the
payload timestamps say. Expected figures are computed here from the test data, never copied."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws
from runbook_automation import handler as h
from runbook_automation import timeline
from runbook_env import NAMESPACE, REGION, TIMELINE_TABLE, Env, call, iso, sign

from infra.config import StackConfig
from infra.dashboard_defs import outcomes

DATA = Path(__file__).parent / "data" / "pagerduty_v3_timeline.json"
DETAIL_TIMES = ("condition_started_at", "StateChangeTime")


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    with mock_aws():
        yield Env(monkeypatch)
    h._reset()


def _t(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def recorded(now: float, *, documented: bool = False) -> tuple[list[dict[str, Any]], list[str]]:
    """The recorded payloads moved in time so the latest happened a minute ago (the webhook refuses stale
    events); every difference between timestamps, which is all the figures depend on, is kept.

    documented: as PagerDuty's V3 incident object is documented, without the event's custom details; an
    Alertmanager page's title then ends with the `[since:<start>]` mark its description template renders."""
    doc = json.loads(DATA.read_text())
    shift = now - 60 - max(_t(p["event"]["occurred_at"]) for p in doc["payloads"])
    for p in doc["payloads"]:
        ev = p["event"]
        ev["occurred_at"] = iso(_t(ev["occurred_at"]) + shift)
        ev["data"]["created_at"] = iso(_t(ev["data"]["created_at"]) + shift)
        details = ev["data"]["custom_details"]
        for key in DETAIL_TIMES:
            if key in details:
                details[key] = iso(_t(details[key]) + shift)
        if documented:
            del ev["data"]["custom_details"]
            if "condition_started_at" in details:
                ev["data"]["title"] += f" [since:{details['condition_started_at']}]"
    return doc["payloads"], doc["delivery_order"]


def expected_figures(payloads: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per incident, straight from the timestamps: trigger, first ack, final resolution, condition start."""
    by_incident: dict[str, list[dict[str, Any]]] = {}
    for p in payloads:
        by_incident.setdefault(p["event"]["data"]["id"], []).append(p["event"])
    out = {}
    for incident_id, events in by_incident.items():
        events.sort(key=lambda e: _t(e["occurred_at"]))
        trigger = next(e for e in events if e["event_type"] == "incident.triggered")
        details = trigger["data"].get("custom_details", {})
        start = next((_t(details[k]) for k in DETAIL_TIMES if k in details), None)
        if start is None and "[since:" in trigger["data"]["title"]:
            start = _t(trigger["data"]["title"].rsplit("[since:", 1)[1].rstrip("]"))
        acks = [_t(e["occurred_at"]) for e in events if e["event_type"] == "incident.acknowledged"]
        finished = events[-1]["event_type"] == "incident.resolved"
        t0 = _t(trigger["occurred_at"])
        out[incident_id] = {
            "service": details.get("service") or trigger["data"]["service"]["summary"],
            "severity": details.get("severity") or f"urgency-{trigger['data']['urgency']}",
            "TimeToDetect": round(t0 - start, 3) if finished and start is not None else None,
            "TimeToAcknowledge": round(min(acks) - t0, 3) if finished and acks else None,
            "TimeToResolve": round(_t(events[-1]["occurred_at"]) - t0, 3) if finished else None,
            "Pages": 1,
        }
    return out


def stats(env: Env, name: str, dimensions: list[dict[str, str]], now: float) -> dict[str, float]:
    """What was put to one series: exactly these dimensions, as CloudWatch keeps them (moto's query API would
    mix the dimensionless aggregate with the per-service series, which CloudWatch does not)."""
    from moto.cloudwatch.models import cloudwatch_backends
    from moto.core import DEFAULT_ACCOUNT_ID
    want = sorted((d["Name"], d["Value"]) for d in dimensions)
    values = [float(m.value) for m in cloudwatch_backends[DEFAULT_ACCOUNT_ID][REGION].metric_data
              if m.namespace == NAMESPACE and m.name == name
              and sorted((d.name, d.value) for d in m.dimensions) == want
              and abs(m.timestamp.timestamp() - now) < 3 * 3600]
    if not values:
        return {}
    return {"count": len(values), "sum": round(sum(values), 3), "min": min(values), "max": max(values)}


def deliver(payloads: list[dict[str, Any]], order: list[str]) -> list[int]:
    bodies = {p["event"]["id"]: json.dumps(p).encode() for p in payloads}
    codes = []
    for n, event_id in enumerate(order):
        body = bodies[event_id]
        codes.append(call(body, sign(body), webhook_id=f"delivery-{n}")["statusCode"])
    return codes


@pytest.mark.parametrize("documented", [False, True], ids=["with-custom-details", "as-documented"])
def test_a_recorded_out_of_order_sequence_gives_the_exact_figures(env: Env, documented: bool) -> None:
    now = datetime.now(tz=UTC).timestamp()
    payloads, order = recorded(now, documented=documented)
    codes = deliver(payloads, order)
    assert len(order) > len(payloads)  # the recording holds duplicates ...
    assert codes.count(200) == len(order) - len(payloads)  # ... and each is recognised as one
    env.run_queued_jobs(kinds=("incident-event",))  # record all (their publish jobs dropped: replayed below)
    for _ in range(2):  # every incident's publish job, delivered twice by SQS
        for incident_id in {p["event"]["data"]["id"] for p in payloads}:
            out = h.worker({"Records": [{"messageId": "m", "body": json.dumps(
                {"kind": timeline.KIND_PUBLISH, "incident_id": incident_id})}]})
            assert out == {"batchItemFailures": []}
    expected = expected_figures(payloads)
    for name in (timeline.TIME_TO_DETECT, timeline.TIME_TO_ACKNOWLEDGE, timeline.TIME_TO_RESOLVE,
                 timeline.PAGES):
        values = [fig[name] for fig in expected.values() if fig[name] is not None]
        assert stats(env, name, [], now) == ({"count": len(values), "sum": round(sum(values), 3),
                                              "min": min(values), "max": max(values)} if values else {}), name
        for fig in expected.values():
            dims = [{"Name": "Service", "Value": fig["service"]}, {"Name": "Severity", "Value": fig["severity"]}]
            got = stats(env, name, dims, now)
            want = [f[name] for f in expected.values()
                    if f["service"] == fig["service"] and f["severity"] == fig["severity"] and f[name] is not None]
            assert got.get("count", 0) == len(want) and got.get("sum", 0) == round(sum(want), 3), (name, fig)
    # The figures really vary: a reopened incident, an unacknowledged one, a CloudWatch one, an open one.
    assert len({f["TimeToResolve"] for f in expected.values()}) == 4
    assert sum(f["TimeToAcknowledge"] is None for f in expected.values()) == 2
    # Time to detect is published for the Alertmanager pages in both shapes (from the title's mark as documented).
    assert sum(f["TimeToDetect"] is not None for f in expected.values()) >= 2


def test_every_event_is_stored_once_whatever_the_redeliveries(env: Env) -> None:
    now = datetime.now(tz=UTC).timestamp()
    payloads, order = recorded(now)
    deliver(payloads, order)
    queued = env.sqs.receive_message(QueueUrl=env.queue_url, MaxNumberOfMessages=10)["Messages"]
    queued += env.sqs.receive_message(QueueUrl=env.queue_url, MaxNumberOfMessages=10)["Messages"]
    records = [{"messageId": m["MessageId"], "body": m["Body"]} for m in queued
               if json.loads(m["Body"])["kind"] == "incident-event"]
    assert len(records) == len(payloads)
    for _ in range(2):  # SQS at-least-once: the whole batch again
        h.worker({"Records": records})
    items = env.ddb.scan(TableName=TIMELINE_TABLE)["Items"]
    assert sorted(it["sk"]["S"].rsplit("#", 1)[1] for it in items if it["sk"]["S"] != "summary") == \
        sorted(p["event"]["id"] for p in payloads)
    assert all(int(it["expires_at"]["N"]) > now + 300 * 86400 for it in items)  # TTL set (400 days)


def test_nothing_is_published_before_the_incident_settles(env: Env) -> None:
    env.configure(timeline_settle_s=300)
    now = datetime.now(tz=UTC).timestamp()
    payloads, _ = recorded(now)
    first = [p for p in payloads if p["event"]["data"]["id"] == payloads[0]["event"]["data"]["id"]]
    deliver(first, [p["event"]["id"] for p in first])
    env.run_queued_jobs(kinds=("incident-event",))
    publish_jobs = env.drain(env.queue_url)
    assert publish_jobs == []  # delayed by 300 s on the queue: not visible yet
    deps = _deps()
    assert timeline.publish(deps, first[0]["event"]["data"]["id"])["reason"] == "not settled"
    assert stats(env, timeline.PAGES, [], now) == {}


def test_a_failed_publication_is_rolled_back_and_retried(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    from botocore.exceptions import ClientError
    now = datetime.now(tz=UTC).timestamp()
    payloads, _ = recorded(now)
    one = [p for p in payloads if p["event"]["data"]["id"] == "PG7H8I9"]
    deliver(one, [p["event"]["id"] for p in one])
    env.run_queued_jobs(kinds=("incident-event",))
    deps = _deps()
    real = deps.cloudwatch.put_metric_data
    calls = {"n": 0}

    def flaky(**kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:  # the figures, after the page went through
            raise ClientError({"Error": {"Code": "Throttling", "Message": "slow down"}}, "PutMetricData")
        return real(**kwargs)

    monkeypatch.setattr(deps.cloudwatch, "put_metric_data", flaky)
    with pytest.raises(ClientError):
        timeline.publish(deps, "PG7H8I9")
    assert timeline.publish(deps, "PG7H8I9")["published"] == [timeline.TIME_TO_DETECT, timeline.TIME_TO_RESOLVE]
    assert timeline.publish(deps, "PG7H8I9")["published"] == []
    assert stats(env, timeline.PAGES, [], now)["count"] == 1
    assert stats(env, timeline.TIME_TO_RESOLVE, [], now)["count"] == 1


def _deps() -> Any:
    st = h._init()
    return h.Deps(settings=st["settings"], audit=st["audit"], autoscaling=st["autoscaling"],
                  dynamodb=st["dynamodb"], sns=st["sns"], sqs=st["sqs"], cloudwatch=st["cloudwatch"])


@pytest.mark.parametrize(("details", "want"), [
    ({"service": "akidb-rest", "slo": "availability", "tiers": "page-quick ", "severity": "P0",
      "condition_started_at": "2026-11-23T10:00:00Z"},
     {"service": "akidb-rest", "slo": "availability", "tier": "page-quick", "severity": "P0",
      "condition_started_at": _t("2026-11-23T10:00:00Z")}),
    ({"AlarmName": "akidb-prod-edge-errors", "StateChangeTime": "2026-11-23T10:00:00.000+0000"},
     {"alarm": "akidb-prod-edge-errors", "condition_started_at": _t("2026-11-23T10:00:00Z")}),
    ({"condition_started_at": "yesterday"}, {"correlation_problem": "custom details condition_started_at must be an "
                                                                    "ISO 8601 timestamp with a zone, got 'yesterday'"}),
    ([1, 2], {}),
])
def test_correlation_reads_alertmanager_and_cloudwatch_details(details: Any, want: dict[str, Any]) -> None:
    assert timeline.correlate({"custom_details": details}) == want


@pytest.mark.parametrize(("title", "want"), [
    ("akidb-rest availability: burning (P0) [runbook:error-budget-fast-burn] [since:2026-11-23T10:00:00Z]",
     {"condition_started_at": _t("2026-11-23T10:00:00Z")}),
    ("x [since:2026-11-23T10:00:00+01:00]", {"condition_started_at": _t("2026-11-23T09:00:00Z")}),
    ("x [since:2026-13-45T10:00:00Z]", {"correlation_problem": "the title's [since:] mark must be an ISO 8601 "
                                                               "timestamp with a zone, got '2026-13-45T10:00:00Z'"}),
    ("x [since:] or [since:soon]", {}),
    ("ALARM: akidb-prod-edge-errors-us-east-1", {}),
])
def test_correlation_reads_the_condition_start_from_the_title_as_documented(title: str, want: dict[str, Any]) -> None:
    """PagerDuty's V3 incident carries its title, not the event's details: Alertmanager's description ends with
    the first alert's start."""
    assert timeline.correlate({"title": title}) == want


# ------------------------------------------------------------------------------------------------ infrastructure
def _policy(plan: Any, role: str) -> list[dict[str, Any]]:
    doc = next(json.loads(p.inputs["policy"]) for p in plan.of_type("aws:iam/rolePolicy:RolePolicy")
               if p.name.endswith(f"-{role}-policy"))
    return list(doc["Statement"])


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_the_timeline_table_keeps_records_encrypted_recoverable_and_protected(planned: Any, stack: str) -> None:
    result = planned[stack]
    tables = [t for t in result.plan.of_type("aws:dynamodb/table:Table") if "incident-timeline" in t.name]
    assert len(tables) == 1
    t = tables[0].inputs
    assert t["ttl"] == {"attributeName": "expires_at", "enabled": True}
    assert t["serverSideEncryption"]["enabled"] is True and t["serverSideEncryption"]["kmsKeyArn"]
    assert t["pointInTimeRecovery"] == {"enabled": True}
    assert t["deletionProtectionEnabled"] is result.plan.config.protect_stateful
    assert (t["hashKey"], t["rangeKey"]) == ("pk", "sk")
    settings = next(json.loads(f.inputs["environment"]["variables"]["RUNBOOK_SETTINGS"])
                    for f in result.plan.of_type("aws:lambda/function:Function") if f.name.endswith("-worker"))
    assert settings["timeline_table_name"] == t["name"]
    from runbook_automation.settings import parse
    parsed = parse(json.dumps(settings))  # the function accepts what the stack gives it
    assert parsed.metrics_namespace == outcomes.OUTCOME_NAMESPACE


def test_worker_may_raise_max_size_only_up_to_max_capacity(planned: Any) -> None:
    plan = planned["prod"].plan
    statements = _policy(plan, "worker")
    update = [s for s in statements if "autoscaling:UpdateAutoScalingGroup" in s["Action"]]
    assert len(update) == 1 and update[0]["Action"] == ["autoscaling:UpdateAutoScalingGroup"]
    bound = update[0]["Condition"]["NumericLessThanEquals"]["autoscaling:MaxSize"]
    assert int(bound) == plan.config.slo_alerting.runbooks.max_capacity
    assert update[0]["Condition"]["Null"]["autoscaling:MinSize"] == "true"
    # Only the group it scales: an allow-listed group it never acts on (prod's spot ASG) gets no permission.
    rb = plan.config.slo_alerting.runbooks
    assert set(rb.allowed_asgs) - {rb.scale_out_asg}, "prod allow-lists a group it does not scale"
    scaling = [s for s in statements if {"autoscaling:SetDesiredCapacity", "autoscaling:UpdateAutoScalingGroup"}
               & set(s["Action"])]
    assert {r.rsplit("/", 1)[1] for s in scaling for r in s["Resource"]} == {rb.scale_out_asg}
    metrics = next(s for s in statements if s["Action"] == ["cloudwatch:PutMetricData"])
    assert metrics["Condition"] == {"StringEquals": {"cloudwatch:namespace": outcomes.OUTCOME_NAMESPACE}}
    receiver = next(s for s in _policy(plan, "webhook") if s.get("Sid") == "Dedupe")
    assert receiver["Action"] == ["dynamodb:DeleteItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]


def test_a_week_that_misses_a_target_opens_a_ticket(planned: Any) -> None:
    plan = planned["prod"].plan
    alarms = {a.inputs["metricName"]: a.inputs for a in plan.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
              if a.inputs.get("namespace") == outcomes.OUTCOME_NAMESPACE}
    targets = {t.metric: t for t in outcomes.TARGETS if t.limit is not None}
    assert set(alarms) == set(targets)
    p2 = next(t for t in plan.of_type("aws:sns/topic:Topic") if t.name.endswith(f"{plan.config.aws.region}-p2"))
    for metric, alarm in alarms.items():
        assert alarm["threshold"] == targets[metric].limit and alarm["period"] == 7 * 86400
        assert alarm.get("extendedStatistic", alarm.get("statistic")) == targets[metric].statistic
        assert alarm["alarmActions"] == [p2.outputs["arn"]] and alarm["alarmDescription"].startswith("[ticket]")
        assert alarm["treatMissingData"] == "notBreaching"  # a quiet week is a good week


def test_dashboards_draw_what_the_timeline_publishes_against_the_targets() -> None:
    assert (outcomes.TIME_TO_DETECT, outcomes.TIME_TO_ACKNOWLEDGE, outcomes.TIME_TO_RESOLVE, outcomes.PAGES) == (
        timeline.TIME_TO_DETECT, timeline.TIME_TO_ACKNOWLEDGE, timeline.TIME_TO_RESOLVE, timeline.PAGES)
    assert outcomes.DIMENSIONS == timeline.DIMENSIONS
    assert timeline_settings_default() == outcomes.OUTCOME_NAMESPACE
    widgets = outcomes.outcome_widget_dicts("us-east-1", "111111111111")
    drawn = {m[1] for w in widgets for m in w["properties"]["metrics"] if len(m) > 2}
    assert drawn == {t.metric for t in outcomes.TARGETS}
    for t in outcomes.TARGETS:
        lines = [h["value"] for w in widgets if t.title in w["properties"]["title"]
                 for h in w["properties"].get("annotations", {}).get("horizontal", [])]
        assert lines == ([t.limit, t.limit] if t.limit else [])
    board = outcomes.outcomes_grafana_board(StackConfig(environment="staging")).to_json()
    # The timeline's figures (the deploy markers beside them come from the workflows: tests/test_deploy_marker.py).
    panels = [p for p in board["panels"] if p["type"] != "row"
              and all(q["namespace"] == outcomes.OUTCOME_NAMESPACE for q in p["targets"])]
    assert {q["metricName"] for p in panels for q in p["targets"]} == {t.metric for t in outcomes.TARGETS}
    per_service = [q for p in panels for q in p["targets"] if q["dimensions"]]
    assert {tuple(sorted(q["dimensions"])) for q in per_service} == {tuple(sorted(timeline.DIMENSIONS))}


def timeline_settings_default() -> str:
    from runbook_automation.settings import Settings
    return str(Settings.__dataclass_fields__["metrics_namespace"].default)


def _event(kind: str, at: float, n: int, incident: str = "PLONG1") -> dict[str, Any]:
    return {"event_id": f"ev-{incident}-{n}", "event_type": kind, "occurred_at": at, "incident_id": incident,
            "created_at": None, "urgency": "high",
            "correlation": {"service": "akidb-rest", "severity": "P0", "condition_started_at": at - 120}
            if kind == "incident.triggered" else {}}


def test_a_trigger_and_its_resolution_in_the_same_millisecond_are_a_resolved_incident() -> None:
    at = 1_790_000_000.123
    f = timeline.figures("P1", [_event("incident.resolved", at, 2), _event("incident.triggered", at, 1)])
    assert f.resolved_at == at and f.time_to_resolve == 0.0 and f.time_to_detect == 120.0


def test_an_incident_open_for_weeks_still_publishes_every_figure_inside_what_cloudwatch_accepts(env: Env) -> None:
    env.configure(timeline_settle_s=0)
    deps = _deps()
    now = deps.now()
    opened, resolved = now - 20 * 86400, now - 60
    for n, (kind, at) in enumerate((("incident.triggered", opened), ("incident.acknowledged", opened + 600),
                                    ("incident.resolved", resolved))):
        timeline.record(deps, _event(kind, at, n))
    out = timeline.publish(deps, "PLONG1")
    assert out["published"] == [timeline.PAGES, timeline.TIME_TO_ACKNOWLEDGE, timeline.TIME_TO_DETECT,
                                timeline.TIME_TO_RESOLVE]
    from moto.cloudwatch.models import cloudwatch_backends
    from moto.core import DEFAULT_ACCOUNT_ID
    put = [m for m in cloudwatch_backends[DEFAULT_ACCOUNT_ID][REGION].metric_data if m.namespace == NAMESPACE]
    # AWS refuses a whole PutMetricData request holding one datum older than two weeks (moto does not check it).
    assert put and all(now - 14 * 86400 < m.timestamp.timestamp() <= now + 7200 for m in put)
    ttr = [float(m.value) for m in put if m.name == timeline.TIME_TO_RESOLVE]
    assert ttr and set(ttr) == {round(resolved - opened, 3)}


def test_an_incident_reopened_after_its_figures_were_published_is_a_new_episode_to_its_last_resolution(
        env: Env) -> None:
    """Trigger, acknowledge, resolve: published once settled. Reopened later (after the settle time), acknowledged,
    resolved, reopened, resolved: the second episode's figures run from the reopening to its last resolution; the
    first episode's stay as published; a redelivered publish job repeats nothing; Pages stays one."""
    env.configure(timeline_settle_s=0)
    deps = _deps()
    now = deps.now()
    t0 = now - 3600
    first = (("incident.triggered", t0), ("incident.acknowledged", t0 + 60), ("incident.resolved", t0 + 600))
    for n, (kind, at) in enumerate(first):
        timeline.record(deps, _event(kind, at, n, "PREOPEN"))
    assert timeline.TIME_TO_RESOLVE in timeline.publish(deps, "PREOPEN")["published"]
    second = (("incident.reopened", t0 + 1800), ("incident.acknowledged", t0 + 1830),
              ("incident.resolved", t0 + 2000), ("incident.reopened", t0 + 2010), ("incident.resolved", t0 + 2400))
    for n, (kind, at) in enumerate(second, len(first)):
        timeline.record(deps, _event(kind, at, n, "PREOPEN"))
    for _ in range(2):  # SQS delivers the publish job twice
        timeline.publish(deps, "PREOPEN")
    from moto.cloudwatch.models import cloudwatch_backends
    from moto.core import DEFAULT_ACCOUNT_ID
    put = [m for m in cloudwatch_backends[DEFAULT_ACCOUNT_ID][REGION].metric_data
           if m.namespace == NAMESPACE and not m.dimensions]
    by_name: dict[str, list[float]] = {}
    for m in put:
        by_name.setdefault(m.name, []).append(float(m.value))
    assert sorted(by_name[timeline.TIME_TO_RESOLVE]) == [600.0, 600.0]  # 0 -> 600; reopened 1800 -> 2400
    assert sorted(by_name[timeline.TIME_TO_ACKNOWLEDGE]) == [30.0, 60.0]
    assert by_name[timeline.TIME_TO_DETECT] == [pytest.approx(120.0, abs=0.01)] and by_name[timeline.PAGES] == [1.0]
