"""`make drill`'s short subset in the suite: the shipped rules and Alertmanager config in real Prometheus and
Alertmanager, the synthetic akidb-rest, the PagerDuty/Slack stand-ins and the project's webhook and worker on a
moto server (infra/tools/drill). Outage (its first webhook answer late: PagerDuty retries), ServiceDown and an
outage inside a maintenance window and an anomaly episode (the detector from its zip) run in parallel, once for the
module; scrape and evaluation every 5 s (the
rules' windows and `for` unchanged). Also: the drill's Alertmanager config
differs from the shipped one only in endpoints, secret files and the window's times, whatever the hour."""

from __future__ import annotations

import json
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from infra.slo.alertmanager import RECEIVER_P0, RECEIVER_P1
from infra.tools.drill import configs, report
from infra.tools.drill.runner import Drill, Result, Timing, judge_gap
from infra.tools.drill.scenarios import SHORT, by_name
from infra.tools.drill.standins import ACK_AFTER_S, TIMED_OUT, StandIns
from infra.tools.drill.webhook import ASG, START_CAPACITY

# The short drill's scrape and evaluation interval (the shipped windows, `for` and thresholds are unchanged).
SHORT_INTERVAL_S = 5


def _endpoints(tmp_path: Path) -> configs.Endpoints:
    return configs.Endpoints(pagerduty_url="http://127.0.0.1:1/x/v2/enqueue", slack_url_file=tmp_path / "slack",
                             tickets_url="http://127.0.0.1:1/x/tickets", routing_key_file=tmp_path / "key",
                             sns_url="http://127.0.0.1:2")


def _muted_at(intervals: list[dict[str, Any]], at: datetime) -> bool:
    """Whether Alertmanager time_intervals of weekdays and times (what the drill writes) contain `at` (UTC)."""
    day, hhmm = configs.WEEKDAYS[at.weekday()], at.strftime("%H:%M")
    return any(day in i["weekdays"] and any(t["start_time"] <= hhmm < t["end_time"] for t in i["times"])
               for i in intervals)


@pytest.mark.parametrize("maintenance", [False, True])
@pytest.mark.parametrize("now", [datetime(2026, 12, 8, 2, 13, tzinfo=UTC),  # inside the shipped window
                                 datetime(2026, 12, 6, 23, 30, tzinfo=UTC)])  # ... and a drill over midnight
def test_the_drill_config_is_the_shipped_one_but_endpoints_and_secret_files(tmp_path: Path, now: datetime,
                                                                          maintenance: bool) -> None:
    """Only endpoints, secret files and the window's times differ; the window holds the drill's next hour in
    the maintenance scenario and none of them in the others, whatever hour the drill runs at (the shipped window,
    Tuesdays 02:00-03:00 UTC, muted the outage of a suite run at 02:13 on a Tuesday)."""
    shipped = configs.load_shipped()
    drill = configs.drill_alertmanager(shipped, _endpoints(tmp_path), now=now, maintenance=maintenance)
    assert configs.unexpected_differences(shipped, drill) == []
    assert _muted_at(shipped["time_intervals"][0]["time_intervals"], datetime(2026, 12, 8, 2, 13, tzinfo=UTC))
    for interval in drill["time_intervals"]:
        assert all(_muted_at(interval["time_intervals"], now + timedelta(minutes=m)) == maintenance
                   for m in range(0, 60, 5))
    changed = {".".join(p) for p, _, _ in configs.differences(shipped, drill)}
    # Not vacuous: every paging receiver's endpoint and key file, the heartbeat's SNS endpoint were replaced.
    receivers = [r["name"] for r in shipped["receivers"]]
    for name in (RECEIVER_P0, RECEIVER_P1):
        i = receivers.index(name)
        assert {f"receivers.{i}.pagerduty_configs.0.url", f"receivers.{i}.pagerduty_configs.0.routing_key_file"} \
            <= changed
    assert any(c.endswith("sns_configs.0.api_url") for c in changed)
    assert any(c.startswith("time_intervals.") for c in changed)


def test_any_other_difference_is_caught(tmp_path: Path) -> None:
    shipped = configs.load_shipped()
    drill = configs.drill_alertmanager(shipped, _endpoints(tmp_path), now=datetime.now(UTC), maintenance=True)
    drill["route"]["routes"][0]["group_wait"] = "1s"
    drill["inhibit_rules"].pop()
    drill["receivers"][0]["webhook_configs"][0]["send_resolved"] = False
    drill["time_intervals"][0]["name"] = "renamed"  # the window's times may differ, not what it is
    found = configs.unexpected_differences(shipped, drill)
    assert len(found) == 4 and any("group_wait" in f for f in found) and any("inhibit_rules" in f for f in found)
    assert any("time_intervals.0.name" in f for f in found)


def test_unknown_scenario_names_are_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown scenario.*nope.*known: all, short, outage"):
        by_name("outage,nope")


def test_the_gap_judge_names_a_page_that_stopped_firing_resolved_or_paged_again() -> None:
    """The full drill's outage-scrape-gap judgement (its run takes 20 minutes: `make drill`, not the suite)."""
    gap = by_name("outage-scrape-gap")[0]
    assert gap.gap_s >= 600 and gap not in SHORT
    slo_page = {"incident": "PDRILL0001", "title": "akidb-rest availability: error budget burning", "opened_at": 50.0,
                "resolved_at": 1000.0, "triggers": 1, "triggered_at": [50.0]}
    down = {"incident": "PDRILL0002", "title": "akidb-rest: no target of job akidb-rest answers its scrape",
            "opened_at": 200.0, "resolved_at": 760.0, "triggers": 1, "triggered_at": [200.0]}
    held = ("page-fast", "page-quick")

    def judged(**changes: Any) -> list[str]:
        r = Result(gap, fault_at=0.0, recovered_at=850.0, gap_at=100.0, gap_ended_at=700.0, gap_held=held,
                   gap_polls=[(float(t), held) for t in range(101, 850, 10)], pages=[slo_page, down])
        for k, v in changes.items():
            setattr(r, k, v)
        judge_gap(r)
        return r.problems

    assert judged() == []
    polls = [(float(t), held if t < 400 else ("page-fast",)) for t in range(101, 850, 10)]
    assert judged(gap_polls=polls) == ["the SLO page stopped firing in Prometheus 301 s into the gap "
                                       "(page-quick not firing)"]
    assert judged(pages=[slo_page | {"resolved_at": 400.0}, down]) == [
        "the SLO page was resolved 300 s into the gap, before the recovery"]
    again = slo_page | {"incident": "PDRILL0003", "opened_at": 720.0}
    assert judged(pages=[slo_page, down, again]) == [
        "after the target left, expected ServiceDown's page alone, got: " + down["title"] + "; " + again["title"]]
    assert judged(gap_held=()) == ["no P0 tier of the SLO page was firing when the target left"]


def test_the_pagerduty_stand_in_retries_as_pagerduty_documents() -> None:
    """5xx, 429 and a late answer are retried with the same body and X-Webhook-Id, later webhooks of the incident
    wait behind; another 4xx is dropped without a retry (PagerDuty's "Webhook Behavior")."""
    answers = {"PDRILL0001": [503, 429, 202, 202], "PDRILL0002": [400, 202]}
    seen: list[tuple[str, str, str]] = []

    def deliver(scenario: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        event = json.loads(body)["event"]
        seen.append((event["data"]["id"], event["event_type"], headers["X-Webhook-Id"]))
        return answers[event["data"]["id"]].pop(0), {}

    with StandIns(deliver, {"s": "secret"}) as standins:
        for key in ("k1", "k2"):
            body = {"routing_key": "r", "event_action": "trigger", "dedup_key": key, "payload": {"summary": key}}
            req = urllib.request.Request(standins.url("s", "pagerduty"), json.dumps(body).encode(), method="POST")
            with urllib.request.urlopen(req, timeout=5) as resp:
                assert resp.status == 202
        deadline = time.time() + 30
        while time.time() < deadline and (answers["PDRILL0001"] or len(answers["PDRILL0002"]) > 1
                                          or not standins.idle()):
            time.sleep(0.1)
    first = [(t, w) for i, t, w in seen if i == "PDRILL0001"]
    # The trigger three times with one id (503, 429, then 202), then the acknowledgement.
    assert [t for t, _ in first] == ["incident.triggered"] * 3 + ["incident.acknowledged"]
    assert len({w for _, w in first[:3]}) == 1 and first[3][1] != first[0][1]
    second = [t for i, t, _ in seen if i == "PDRILL0002"]
    assert second == ["incident.triggered", "incident.acknowledged"]  # the 400 was dropped, not retried
    assert [w.status for w in standins.webhooks("s") if w.incident == "PDRILL0001"] == [503, 429, 202, 202]


@pytest.fixture(scope="module")
def short_drill(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Result]:
    """The short subset once for the module: its scenarios in parallel, each in its own Prometheus (the rules sum
    over the whole job), sharing one backfilled history, the moto server, the stand-ins and the webhook."""
    results = Drill(tmp_path_factory.mktemp("drill") / "drill", Timing(scrape_s=SHORT_INTERVAL_S,
                                                                       evaluation_s=SHORT_INTERVAL_S),
                    wait_resolve=False).run(SHORT)
    print("\n" + report.table(results))
    return {r.scenario.name: r for r in results}


@pytest.mark.slow
def test_short_drill_outage_service_down_and_maintenance(short_drill: dict[str, Result]) -> None:
    assert all(r.ok for r in short_drill.values()), report.table(list(short_drill.values()))
    outage, down, muted = short_drill["outage"], short_drill["service-down"], short_drill["maintenance"]
    # One page per outage; the outage's runbook scaled the ASG; ServiceDown's is manual: 200, no automation.
    assert len(outage.pages) == len(down.pages) == 1
    assert any(a["decision"] == "acted" and a["desired"] == START_CAPACITY + 2 and a["target"] == ASG
               for a in outage.runbook)
    assert [a["decision"] for a in down.runbook] == ["no-automation"]
    assert {w["status"] for w in down.webhooks} <= {200, 202}
    # ServiceDown pages alone: nothing else of the service reached PagerDuty.
    assert "[runbook:service-down]" in down.pages[0]["title"]
    # The maintenance outage fired in Prometheus, reached Alertmanager, paged nobody; the heartbeat went out.
    assert muted.firing_at and muted.in_alertmanager_at and muted.pages == [] and muted.heartbeats


@pytest.mark.slow
def test_short_drill_pagerduty_retry_runs_the_runbook_once(short_drill: dict[str, Result]) -> None:
    """The outage's first webhook answer came after PagerDuty's timeout: the same delivery came again, was
    answered 2xx as a duplicate, and the runbook decided and scaled once (the ASG moved by one step)."""
    outage = short_drill["outage"]
    trigger = [w for w in outage.webhooks if w["event_type"] == "incident.triggered"]
    assert [w["status"] for w in trigger][:1] == [TIMED_OUT] and 200 <= trigger[-1]["status"] < 300
    assert len({w["webhook_id"] for w in trigger}) == 1 and trigger[-1]["answer"].get("status") == "duplicate"
    assert [a["decision"] for a in outage.runbook].count("acted") == 1
    assert [a["decision"] for a in outage.runbook].count("accepted") == 1


@pytest.mark.slow
def test_short_drill_report_carries_the_incident_timeline(short_drill: dict[str, Result]) -> None:
    """Each page's figures as the incident timeline computed them from the events the drill produced: one event
    per lifecycle step however often it was delivered (the outage's trigger came twice), TTA to the stand-in's
    acknowledgement a second after the trigger; unresolved in the short drill, so computed, not yet published."""
    for name in ("outage", "service-down"):
        r = short_drill[name]
        (t,) = r.timeline
        assert t["events"] == 2 and not t["published"]  # triggered + acknowledged
        assert t["tta"] is not None and abs(t["tta"] - ACK_AFTER_S) < 0.5
        # TTD from the fault's start to the page as the V3 delivery dates it: between the fault and the stand-in's
        # incident (no later than the page the drill saw opened)
        page = min(p["opened_at"] for p in r.pages)
        assert t["triggered_at"] is not None and r.fault_at < t["triggered_at"] <= page + 0.001
        assert report.timeline(r).startswith(f"{report.ttd(r, t):.0f} / {t['tta']:.0f} / - ")


@pytest.mark.slow
def test_short_drill_anomaly_episode_reaches_the_ticket_webhook(short_drill: dict[str, Result]) -> None:
    """The detector from its zip, on the drill's Prometheus: clean before the surge, then one episode notice
    through the anomaly topic to the ticket webhook (the topic's only subscriber), carrying the episode's context;
    no PagerDuty page (the P1 page alarm needs 30 minutes of it)."""
    r = short_drill["anomaly-episode"]
    assert r.detector_runs[0]["is_anomaly"] is False and r.detector_runs[0]["event"] is None
    (notice,) = r.anomaly_notices
    assert notice["event"] == "anomaly_start" and notice["metric"] == "request_rate" and notice["episode"]
    assert notice["at"] >= r.fault_at and r.pages == []
    assert any(x.get("event") == "start" for x in r.detector_runs)
