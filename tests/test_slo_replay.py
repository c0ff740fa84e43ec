"""Detection goals of the SLO alerts, measured by promtool replays (infra/slo/replay.py), and the same replays
against the plan's original rules for comparison. The measured figures are written to build/slo-replay.txt."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.core.paths import BUILD_DIR
from infra.slo.replay import (
    ReplayResult,
    Scenario,
    error_incident,
    generated_rules,
    latency_incident,
    month_plan,
    mttd,
    original_rules,
    paging_tier_names,
    replay,
    stops_after_end,
    sustained_burn,
)

REPORT = BUILD_DIR / "slo-replay.txt"
PAGE_WITHIN_S = 5 * 60
STOP_WITHIN_S = 10 * 60


@pytest.fixture(scope="module")
def rulesets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    tmp = tmp_path_factory.mktemp("replay-rules")
    return {
        "generated": generated_rules(tmp),
        "generated-paging": generated_rules(tmp, paging_tier_names()),
        "plan": original_rules(tmp),
        "plan-le-fixed": original_rules(tmp, fix_bucket=True),
    }


def _report(line: str) -> None:
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    with REPORT.open("a", encoding="utf-8") as f:
        f.write(line + "\n")
    print(line)


def _minutes(x: float | None) -> str:
    return "never" if x is None else f"{x / 60:.1f} min"


INCIDENTS = {
    "spot-cascade": (error_incident(0.05, 8), "availability"),
    "cold-start-storm": (latency_incident(0.05, 15), "latency"),
    "cold-start-storm-50pct-slow": (latency_incident(0.50, 15), "latency"),
}


@pytest.fixture(scope="module")
def incident_results(rulesets: dict[str, list[Path]]) -> dict[tuple[str, str], tuple[Scenario, ReplayResult]]:
    out = {}
    for key, (sc, _slo) in INCIDENTS.items():
        for rules in ("generated-paging", "plan", "plan-le-fixed"):
            out[(key, rules)] = (sc, replay(sc, rulesets[rules], rules))
    return out


@pytest.mark.parametrize("incident", list(INCIDENTS))
def test_week14_incident_pages_within_5_minutes_and_stops_within_10(incident: str, incident_results) -> None:
    sc, result = incident_results[(incident, "generated-paging")]
    slo = INCIDENTS[incident][1]
    detected, stopped = mttd(result, sc, slo), stops_after_end(result, sc, slo)
    _report(f"{sc.name}: generated rules: MTTD {_minutes(detected)}, paging stops {_minutes(stopped)} after the "
            f"end; tiers {sorted({p.labels['tier'] for p in result.pages(slo)})} (promtool {result.seconds:.1f}s)")
    assert detected is not None and 0 <= detected <= PAGE_WITHIN_S, result.firings
    assert stopped is not None and stopped <= STOP_WITHIN_S, result.firings
    assert all(p.labels["slo"] == slo for p in result.pages()), "an incident paged for an unrelated SLO"


def test_plan_rules_comparison(incident_results) -> None:
    """The plan's single-window rules on the same data: the 8-minute outage is never seen, the latency rule as
    written never matches a bucket, and with the bucket fixed it pages late and keeps paging after the end."""
    for key, (sc, slo) in INCIDENTS.items():
        for rules in ("plan", "plan-le-fixed"):
            _, r = incident_results[(key, rules)]
            _report(f"{sc.name}: {rules}: MTTD {_minutes(mttd(r, sc, slo))}, paging stops "
                    f"{_minutes(stops_after_end(r, sc, slo))} after the end")
    _, spot = incident_results[("spot-cascade", "plan")]
    assert mttd(spot, *INCIDENTS["spot-cascade"]) is None  # FACTS 8: 1h/14.4x cannot see 8 min at 5%
    _, storm = incident_results[("cold-start-storm", "plan")]
    assert storm.pages("latency") == []  # le="0.030" is not a bucket anyone exports
    _, fixed = incident_results[("cold-start-storm", "plan-le-fixed")]
    stop = stops_after_end(fixed, *INCIDENTS["cold-start-storm"])
    assert stop is not None and stop > STOP_WITHIN_S  # a 1h ratio below 0.999 long after recovery


def test_sustained_4x_burn_opens_a_ticket_within_a_day_and_never_pages(rulesets) -> None:
    # 5-minute steps over 3 healthy days + 30 h of leak: every window of 1h and more, so tickets and the
    # 1h/6h paging tiers; the 10m/2m tier needs 1-minute steps: replayed over the first day of the leak.
    sc = sustained_burn(0.002, 30, warmup_s=3 * 86400, step_s=300)
    assert sc.onset_s is not None
    for rules in ("generated", "plan"):
        r = replay(sc, rulesets[rules], rules)
        first_ticket = min((f.first_s for f in r.tickets()), default=None)
        after = None if first_ticket is None else first_ticket - sc.onset_s
        _report(f"{sc.name}: {rules}: first P2 {_minutes(after)} after onset, {len(r.pages())} pages "
                f"(promtool {r.seconds:.1f}s)")
        if rules == "generated":
            assert after is not None and 0 < after <= 86400, r.firings
            assert r.pages() == [], r.pages()
    fine = sustained_burn(0.002, 24, warmup_s=7 * 3600, step_s=60)
    r = replay(fine, rulesets["generated-paging"], "generated-paging")
    _report(f"{fine.name}: generated P0/P1 tiers: {len(r.pages())} pages (promtool {r.seconds:.1f}s)")
    assert r.pages() == [], r.pages()


def test_normal_month_gives_zero_pages(tmp_path: Path) -> None:
    plan = month_plan(tmp_path, 30)
    for name, runs in plan.items():
        pages = []
        for sc, rules in runs:
            r = replay(sc, rules, name)
            pages += r.pages()
            which = [(f.alertname, f.labels.get("tier") or f.labels.get("component"), f.first_s) for f in r.pages()]
            _report(f"{sc.name}, {sc.step_s}s steps: {name} rules {[p.name for p in rules]}: {len(r.pages())} "
                    f"pages {which} (promtool {r.seconds:.1f}s)")
        if name == "generated":
            assert pages == [], pages
