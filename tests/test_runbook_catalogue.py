"""The runbook catalogue (rules/runbooks.yaml) against its consumers: the automation dispatches exactly its
automated ids, every definition names a catalogued id, and bad entries are refused with the entry named."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.slo.runbooks import AUTOMATIONS, RunbookCatalogueError, load_runbooks
from infra.slo.spec import load_slos
from infra.slo.symptoms import load_symptoms
from lambdas.runbook_automation.runbook_ids import MANUAL_RUNBOOK_IDS, RUNBOOK_IDS
from lambdas.runbook_automation.runbooks import RUNBOOKS


def test_the_automation_dispatches_exactly_the_automated_runbooks() -> None:
    catalogue = load_runbooks()
    assert {r.id for r in catalogue.values() if r.automated} == set(RUNBOOK_IDS) == set(RUNBOOKS)


def test_the_webhook_knows_exactly_the_manual_runbooks() -> None:
    """The Lambda cannot read rules/ at run time: its baked-in manual ids must be the catalogue's."""
    catalogue = load_runbooks()
    assert sorted(r.id for r in catalogue.values() if not r.automated) == sorted(MANUAL_RUNBOOK_IDS)


def test_every_definition_names_a_catalogued_runbook() -> None:
    catalogue = load_runbooks()
    named = {s.runbook for s in load_slos()}
    symptoms = load_symptoms(load_slos())
    named |= {section.runbook for section in (symptoms.service_down, symptoms.traffic_drop, symptoms.memory_leak,
                                              symptoms.memory_pressure, symptoms.backlog)}
    assert named <= set(catalogue)


@pytest.mark.parametrize(("text", "expected"), [
    ("runbooks: {}\n", "expected a mapping"),
    ("runbooks: {Bad_Id: {title: x, automation: manual}}\n", "runbooks.Bad_Id: a runbook id matches"),
    ("runbooks: {a: {title: x, automation: reboot}}\n", f"'reboot' is not one of {', '.join(AUTOMATIONS)}"),
    ("runbooks: {a: {title: '', automation: manual}}\n", "runbooks.a.title: a non-empty string"),
    ("runbooks: {a: {title: x, automation: manual, owner: me}}\n", "exactly the keys title and automation"),
    ("runbooks: [\n", "cannot read the runbook catalogue"),
])
def test_bad_catalogue_entries_are_refused_with_the_entry_named(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "runbooks.yaml"
    path.write_text(text)
    with pytest.raises(RunbookCatalogueError, match=expected.replace("(", r"\(").replace(".", r"\.")):
        load_runbooks(path)
