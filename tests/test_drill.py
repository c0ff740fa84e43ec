"""`make drill`'s short subset in the suite: the shipped rules and Alertmanager config in real Prometheus and
Alertmanager, the synthetic akidb-rest, the PagerDuty/Slack stand-ins and the project's webhook and worker on a
moto server (infra/tools/drill). Outage, ServiceDown and an outage inside a maintenance window run in parallel;
scrape and evaluation every 10 s (the rules' windows and `for` unchanged). Also: the drill's Alertmanager config
differs from the shipped one only in endpoints and secret files (and the window's times)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from infra.slo.alertmanager import RECEIVER_P0, RECEIVER_P1
from infra.tools.drill import configs, report
from infra.tools.drill.runner import Drill, Timing
from infra.tools.drill.scenarios import SHORT, by_name
from infra.tools.drill.webhook import ASG, START_CAPACITY


def _endpoints(tmp_path: Path) -> configs.Endpoints:
    return configs.Endpoints(pagerduty_url="http://127.0.0.1:1/x/v2/enqueue", slack_url_file=tmp_path / "slack",
                             tickets_url="http://127.0.0.1:1/x/tickets", routing_key_file=tmp_path / "key",
                             sns_url="http://127.0.0.1:2")


@pytest.mark.parametrize("maintenance", [False, True])
def test_the_drill_config_is_the_shipped_one_but_endpoints_and_secret_files(tmp_path: Path,
                                                                          maintenance: bool) -> None:
    shipped = configs.load_shipped()
    drill = configs.drill_alertmanager(shipped, _endpoints(tmp_path),
                                       maintenance_at=datetime.now(UTC) if maintenance else None)
    assert configs.unexpected_differences(shipped, drill, maintenance=maintenance) == []
    changed = {".".join(p) for p, _, _ in configs.differences(shipped, drill)}
    # Not vacuous: every paging receiver's endpoint and key file, the heartbeat's SNS endpoint were replaced.
    receivers = [r["name"] for r in shipped["receivers"]]
    for name in (RECEIVER_P0, RECEIVER_P1):
        i = receivers.index(name)
        assert {f"receivers.{i}.pagerduty_configs.0.url", f"receivers.{i}.pagerduty_configs.0.routing_key_file"} \
            <= changed
    assert any(c.endswith("sns_configs.0.api_url") for c in changed)
    assert any(c.startswith("time_intervals.") for c in changed) == maintenance


def test_any_other_difference_is_caught(tmp_path: Path) -> None:
    shipped = configs.load_shipped()
    drill = configs.drill_alertmanager(shipped, _endpoints(tmp_path), maintenance_at=datetime.now(UTC))
    drill["route"]["routes"][0]["group_wait"] = "1s"
    drill["inhibit_rules"].pop()
    drill["receivers"][0]["webhook_configs"][0]["send_resolved"] = False
    found = configs.unexpected_differences(shipped, drill, maintenance=True)
    assert len(found) == 3 and any("group_wait" in f for f in found) and any("inhibit_rules" in f for f in found)
    # The maintenance window's times may differ only in the maintenance scenario.
    assert any("time_intervals" in f for f in configs.unexpected_differences(shipped, drill, maintenance=False))


def test_unknown_scenario_names_are_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown scenario.*nope.*known: all, short, outage"):
        by_name("outage,nope")


@pytest.mark.slow
def test_short_drill_outage_service_down_and_maintenance(tmp_path: Path) -> None:
    results = Drill(tmp_path / "drill", Timing(scrape_s=10, evaluation_s=10), wait_resolve=False).run(SHORT)
    print("\n" + report.table(results))
    by = {r.scenario.name: r for r in results}
    assert all(r.ok for r in results), report.table(results)
    outage, down, muted = by["outage"], by["service-down"], by["maintenance"]
    # One page per outage; the outage's runbook scaled the ASG; ServiceDown's is manual: 200, no automation.
    assert len(outage.pages) == len(down.pages) == 1
    assert any(a["decision"] == "acted" and a["desired"] == START_CAPACITY + 2 and a["target"] == ASG
               for a in outage.runbook)
    assert [a["decision"] for a in down.runbook] == ["no-automation"]
    assert {w["status"] for w in outage.webhooks + down.webhooks} <= {200, 202}
    # ServiceDown pages alone: nothing else of the service reached PagerDuty.
    assert "[runbook:service-down]" in down.pages[0]["title"]
    # The maintenance outage fired in Prometheus, reached Alertmanager, paged nobody; the heartbeat went out.
    assert muted.firing_at and muted.in_alertmanager_at and muted.pages == [] and muted.heartbeats
