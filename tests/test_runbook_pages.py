"""Runbook pages (docs/runbooks/<id>.md): one per catalogued id, a generated part that matches the definitions and
the plans, a hand-written part a person can follow, and links that reach what the stack and the repository
provide. Expected values come from the definitions (rule_files, BURN_RATE_TIERS), never copied numbers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from infra.core.paths import DASHBOARDS_DIR, ROOT
from infra.offline.generate import expected_runbook_files
from infra.offline.runbook_facts import stack_facts
from infra.slo import runbook_pages as rp
from infra.slo import stack_facts as sf
from infra.slo.rules import burn_threshold
from infra.slo.runbooks import RUNBOOK_PAGES_DIR, Runbook, load_runbooks
from infra.slo.spec import BURN_RATE_TIERS, cloudwatch_dashboard_url, load_slos
from infra.slo.symptoms import load_symptoms

CATALOGUE = load_runbooks()
SLOS = load_slos()
SYMPTOMS = load_symptoms(SLOS)


@pytest.fixture(scope="module")
def facts(planned) -> list[sf.StackFacts]:  # type: ignore[no-untyped-def]
    return [stack_facts(stack, result.plan) for stack, result in planned.items()]


@pytest.mark.parametrize("runbook_id", list(CATALOGUE))
def test_every_runbook_has_a_page_with_diagnosis_and_mitigation_written_by_hand(runbook_id: str) -> None:
    page = CATALOGUE[runbook_id].page
    assert page.exists(), f"no page for runbook {runbook_id}: run `make generate`, then write its two sections"
    assert rp.hand_written_problems(page) == []


def test_checked_in_pages_and_nav_match_the_definitions_and_plans(planned) -> None:  # type: ignore[no-untyped-def]
    expected = expected_runbook_files({stack: r.plan for stack, r in planned.items()})
    drifted = [str(p.relative_to(ROOT)) for p, text in expected.items()
               if not p.exists() or p.read_text(encoding="utf-8") != text]
    assert drifted == [], "run `make generate` (target runbooks)"
    pages = {p.name for p in RUNBOOK_PAGES_DIR.glob("*.md")} - {"index.md"}
    assert pages == {f"{rid}.md" for rid in CATALOGUE}, "a page without a catalogue entry (or the reverse)"


def test_a_new_runbook_starts_from_a_skeleton_the_checks_refuse(tmp_path: Path, facts) -> None:  # type: ignore[no-untyped-def]
    runbook = Runbook("brand-new", "Something new", "manual")
    (tmp_path / "index.md").write_text(f"# Runbooks\n{rp.INDEX_BEGIN}\n{rp.INDEX_END}\n")
    files = rp.expected_pages({"brand-new": runbook}, SLOS, SYMPTOMS, facts, pages_dir=tmp_path)
    page = tmp_path / "brand-new.md"
    page.write_text(files[page])
    assert "[Something new](brand-new.md)" in files[tmp_path / "index.md"]
    problems = rp.hand_written_problems(page)
    assert any(rp.TODO_MARK in p for p in problems)
    # Written by hand, but too thin to follow: still refused.
    thin = "\n## Diagnosis\n\nLook.\n\n## Mitigation\n\nFix.\n"
    page.write_text(files[page].split(rp.END_MARK)[0] + rp.END_MARK + thin)
    assert [p for p in rp.hand_written_problems(page) if "words" in p] and rp.TODO_MARK not in page.read_text()
    # Regenerating keeps the hand-written part as it is; a page that lost its markers is an error, not a rewrite.
    again = rp.page_text(runbook, SLOS, SYMPTOMS, facts, page.read_text())
    assert again.endswith("## Mitigation\n\nFix.\n")
    with pytest.raises(rp.RunbookPageError, match="begin marker"):
        rp.page_text(runbook, SLOS, SYMPTOMS, facts, "# hand-made page\n")


def test_burn_rate_pages_state_every_tier_from_the_definitions(facts) -> None:  # type: ignore[no-untyped-def]
    for slo in SLOS:
        text = rp.generated_part(CATALOGUE[slo.runbook], SLOS, SYMPTOMS, facts)
        for tier in BURN_RATE_TIERS:
            row = next(line for line in text.splitlines() if line.startswith(f"| {tier.name} |"))
            assert f"{tier.long_window} / {tier.short_window}" in row and f"{tier.burn_rate:g}x" in row
            assert f"{burn_threshold(slo, tier):.4%}" in row and tier.severity in row
        for alert in rp.carried_alerts(slo.runbook, SLOS, SYMPTOMS):
            assert str(alert.rule["expr"]).rstrip() in text


def test_every_alert_shows_on_the_page_of_the_runbook_it_links(facts) -> None:  # type: ignore[no-untyped-def]
    for rid in CATALOGUE:
        text = rp.generated_part(CATALOGUE[rid], SLOS, SYMPTOMS, facts)
        for alert in rp.carried_alerts(rid, SLOS, SYMPTOMS):
            assert f"`{alert.name}`" in text and str(alert.rule["expr"]).rstrip() in text
            if "for" in alert.rule:
                assert f"For: {alert.rule['for']}" in text or alert.name == "SLOErrorBudgetBurn"
    # The routing follows each stack's paging switch.
    down = rp.generated_part(CATALOGUE[SYMPTOMS.service_down.runbook], SLOS, SYMPTOMS, facts)
    for f in facts:
        assert (f"{f.stack}: page" in down) == f.paging_enabled


def test_an_alarm_naming_a_runbook_in_its_description_is_listed_on_that_page(facts) -> None:  # type: ignore[no-untyped-def]
    alarm = sf.AlarmFact("akidb-prod-edge-cache-hit-rate-eu-west-1", "eu-west-1", "P2",
                         "[P2] cold containers (eu-west-1) [runbook:lambda-edge-cold-start]", "warm share < 0.9")
    with_alarm = [sf.StackFacts(**{**f.__dict__, "alarms": (*f.alarms, alarm)}) for f in facts]
    text = rp.generated_part(CATALOGUE["lambda-edge-cold-start"], SLOS, SYMPTOMS, with_alarm)
    assert "`akidb-prod-edge-cache-hit-rate-eu-west-1`" in text and "warm share < 0.9" in text
    other = rp.generated_part(CATALOGUE["service-down"], SLOS, SYMPTOMS, with_alarm)
    assert "cache-hit-rate" not in other


def test_every_link_on_every_page_reaches_a_provided_dashboard_or_page(facts) -> None:  # type: ignore[no-untyped-def]
    uids = sf.grafana_uids(DASHBOARDS_DIR / "grafana")
    problems, seen = [], 0
    for rid in CATALOGUE:
        text = CATALOGUE[rid].page.read_text(encoding="utf-8")
        generated, hand = text.split(rp.END_MARK)
        # The generated part's every address; in the hand-written part, its links (commands may name hosts).
        for url in sf.urls_in(generated) + re.findall(r"\]\((https?://[^)\s]+)\)|<(https?://[^>\s]+)>", hand):
            url = url if isinstance(url, str) else next(u for u in url if u)
            seen += 1
            # A link resolves for at least one stack (console links name one stack's board).
            if all(sf.link_problem(url, f.link_targets(uids, set(CATALOGUE))) for f in facts):
                problems.append(f"{rid}: {[sf.link_problem(url, f.link_targets(uids, set(CATALOGUE))) for f in facts]}")
    assert seen and problems == []
    # The resolver does refuse what the stack does not provide.
    staging = facts[0]
    assert sf.link_problem(f"{staging.grafana_base_url}/d/akidb-edge/", staging.link_targets(uids, set(CATALOGUE)))
    assert sf.link_problem(cloudwatch_dashboard_url("us-east-1", "akidb-nope-edge"), staging.link_targets(uids, set()))
    assert sf.link_problem(f"{staging.runbook_base_url}/no-such-runbook", staging.link_targets(uids, set(CATALOGUE)))
