"""The SLO alerts over long replays (a sustained slow burn over days, healthy days through every rule), measured
by promtool (infra/slo/replay.py); a module of its own so the test workers run it beside the incident replays
(tests/test_slo_replay.py). The measured figures are appended to build/slo-replay.txt."""

from __future__ import annotations

from pathlib import Path

import pytest
from replay_report import report

from infra.slo.replay import (
    ALERT_BUDGET_PER_WEEK,
    SUITE_BUDGET_DAYS,
    alert_budget,
    generated_rules,
    minutes,
    paging_tier_names,
    replay,
    sustained_burn,
)
from infra.slo.spec import load_slos

pytestmark = pytest.mark.slow  # one of the long modules: handed out first to the test workers


def test_sustained_4x_burn_opens_a_ticket_within_a_day_and_never_pages(tmp_path: Path) -> None:
    # Only the generated rules are asserted on: `make slo-replay` prints the plan's rules on the same leak.
    rulesets = {"generated": generated_rules(tmp_path),
                "generated-paging": generated_rules(tmp_path, paging_tier_names())}
    # 5-minute steps over 3 healthy days + 30 h of leak: every window of 1h and more, so tickets and the
    # 1h/6h paging tiers; the 10m/2m tier needs 1-minute steps: replayed over the first day of the leak.
    # 4x the availability budget rate (0.2% errors at 99.95%): from the definition, not today's number.
    leak = 4 * next(s for s in load_slos() if s.kind == "availability").error_budget
    sc = sustained_burn(leak, 30, warmup_s=3 * 86400, step_s=300)
    assert sc.onset_s is not None
    r = replay(sc, rulesets["generated"], "generated")
    first_ticket = min((f.first_s for f in r.tickets()), default=None)
    after = None if first_ticket is None else first_ticket - sc.onset_s
    report(f"{sc.name}: generated: first P2 {minutes(after)} after onset, {len(r.pages())} pages "
            f"(promtool {r.seconds:.1f}s)")
    assert after is not None and 0 < after <= 86400, r.firings
    assert r.pages() == [], r.pages()
    fine = sustained_burn(leak, 24, warmup_s=7 * 3600, step_s=60)
    r = replay(fine, rulesets["generated-paging"], "generated-paging")
    report(f"{fine.name}: generated P0/P1 tiers: {len(r.pages())} pages (promtool {r.seconds:.1f}s)")
    assert r.pages() == [], r.pages()


def test_alert_budget_of_healthy_days(tmp_path: Path) -> None:
    """Healthy days (daily cycle, nightly low hour, blips, the weekly deploy with a 2-minute error bump) through
    every Prometheus rule: no page, and fewer than the plan's 10 alerts a week. The whole month is
    `make slo-replay` (the same function at 30 days)."""
    budget = alert_budget(tmp_path, SUITE_BUDGET_DAYS)
    for line in budget.lines:
        report(line)
    assert budget.pages == [], budget.pages
    assert budget.per_week < ALERT_BUDGET_PER_WEEK
