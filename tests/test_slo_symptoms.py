"""Symptom alerts from definitions only, and a promtool test of every alert both firing and not firing."""

from __future__ import annotations

import copy
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.core.paths import RULES_DIR
from infra.slo.alert_coverage import untested
from infra.slo.generate import generated_files
from infra.slo.spec import SloSpecError, load_slos
from infra.slo.symptoms import SYMPTOMS_FILE, parse_symptoms

SYMPTOMS_TEXT = SYMPTOMS_FILE.read_text(encoding="utf-8")


def _docs(sub: str) -> list[dict[str, Any]]:
    return [yaml.safe_load(p.read_text(encoding="utf-8")) for p in sorted((RULES_DIR / sub).glob("*.yml"))]


def test_every_alert_has_a_promtool_test_firing_and_one_not_firing() -> None:
    """Every alert rule the definitions generate (SLO tiers, meta, symptoms, defined alerts)."""
    assert untested(_docs("prometheus"), _docs("tests")) == []


def test_a_missing_case_is_reported() -> None:
    """Drop the silent checks of one alert (and, separately, its firing checks): the coverage test names it."""
    tests = _docs("tests")
    quiet_dropped = copy.deepcopy(tests)
    for doc in quiet_dropped:
        for case in doc["tests"]:
            case["alert_rule_test"] = [c for c in case.get("alert_rule_test", [])
                                       if not (c["alertname"] == "ProcessingBacklog" and not c["exp_alerts"])]
    assert untested(_docs("prometheus"), quiet_dropped) == [
        "ProcessingBacklog{service=akidb-rest,severity=P2}: no promtool test of it not firing"]
    fire_dropped = copy.deepcopy(tests)
    for doc in fire_dropped:
        for case in doc["tests"]:
            case["alert_rule_test"] = [c for c in case.get("alert_rule_test", [])
                                       if not (c["alertname"] == "TargetDown" and c["exp_alerts"])]
    assert untested(_docs("prometheus"), fire_dropped) == [
        "TargetDown{service=akidb-rest,severity=P2}: no promtool test of it firing"]


def _example() -> str:
    """The example of rules/symptoms.yaml, uncommented, as an `alerts:` list."""
    block = SYMPTOMS_TEXT.split("# example:\n", 1)[1].split("# end example", 1)[0]
    return "alerts:\n" + "".join(line[1:] + "\n" for line in block.splitlines())


def _with_example(old: str = "", new: str = "") -> str:
    """The file with the example as the first entry of `alerts:` (before the ones it defines)."""
    example = _example()
    assert old in example
    example = example.replace(old, new, 1) if old else example
    if "\nalerts: []\n" in SYMPTOMS_TEXT:
        return SYMPTOMS_TEXT.replace("\nalerts: []\n", "\n" + example, 1)
    assert "\nalerts:\n" in SYMPTOMS_TEXT
    return SYMPTOMS_TEXT.replace("\nalerts:\n", "\n" + example, 1)


def _write(files: dict[str, str], root: Path) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=300, check=False)


def test_a_new_symptom_alert_is_only_its_definition(tmp_path: Path) -> None:
    """The documented example added to the file: `make generate` writes a rule promtool accepts, a firing and a
    silent case that pass (and fail once the rule no longer matches its definition), and the inhibition."""
    slos = load_slos()
    spec = parse_symptoms(_with_example(), slos)
    in_file = [a.alert for a in parse_symptoms(SYMPTOMS_TEXT, slos).alerts]
    assert [a.alert for a in spec.alerts] == ["ContainerRestarting", *in_file]
    files = generated_files(slos, spec)
    _write(files, tmp_path)
    rules = yaml.safe_load(files["prometheus/symptoms.rules.yml"])
    assert untested([rules], [yaml.safe_load(t) for r, t in files.items() if r.startswith("tests/")]) == []
    check = _promtool("check", "rules", str(tmp_path / "prometheus/symptoms.rules.yml"))
    assert check.returncode == 0, check.stdout + check.stderr
    defined = sorted(str(p) for p in (tmp_path / "tests").glob("symptoms-defined-*.test.yml"))
    assert defined, sorted(files)
    run = _promtool("test", "rules", *defined)
    assert run.returncode == 0, run.stdout + run.stderr
    # The definition, not the generated text, is what the cases check: a rule that drifts from it fails them.
    path = tmp_path / "prometheus/symptoms.rules.yml"
    path.write_text(path.read_text().replace("[15m]) > 2", "[15m]) > 20"))
    assert _promtool("test", "rules", *defined).returncode != 0
    path.write_text(path.read_text().replace("[15m]) > 20", "[15m]) > 0"))
    assert _promtool("test", "rules", *defined).returncode != 0
    inhibit = yaml.safe_load(files["alertmanager/alertmanager-paging.yml"])["inhibit_rules"]
    by_service_down = next(r for r in inhibit if r["source_matchers"] == ['alertname="ServiceDown"'])
    assert re.search(r"\bContainerRestarting\b", by_service_down["target_matchers"][0])
    without = _with_example("    explainedBy: serviceDown\n", "")
    inhibit = yaml.safe_load(generated_files(slos, parse_symptoms(without, slos))[
        "alertmanager/alertmanager-paging.yml"])["inhibit_rules"]
    assert not any("ContainerRestarting" in str(r) for r in inhibit)


@pytest.mark.parametrize(("old", "new", "message"), [
    ("    severity: P2\n    expr: increase", "    severity: P5\n    expr: increase", "severity: must be one of"),
    ("    runbook: memory-pressure\n    explainedBy", "    runbook: nope\n    explainedBy", "'nope' is not in"),
    ("    explainedBy: serviceDown", "    explainedBy: everything", "explainedBy: must be one of none, serviceDown"),
    ("  - alert: ContainerRestarting", "  - alert: TargetDown", "is a built-in symptom alert"),
    ("    for: 5m\n", "", "for: required"),
    ("restarted more than", "restarted {{ $value }} times, more than", "give the firing value as test.fires.value"),
    ("restarted more than", "restarted {{ humanize $value }}, more than", "is not one the generated tests can"),
    ("      quiet:", "      silent:", "test: expected a mapping with `fires` and `quiet`"),
    ("    description:", "    descripton:", "descripton: unknown key"),
])
def test_a_bad_alert_definition_is_refused_by_name(old: str, new: str, message: str) -> None:
    with pytest.raises(SloSpecError) as err:
        parse_symptoms(_with_example(old, new), load_slos())
    assert message in str(err.value), str(err.value)
    assert "ContainerRestarting" in str(err.value) or "TargetDown" in str(err.value)
