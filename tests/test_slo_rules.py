"""SLO definitions -> generated files: drift, promtool check/test, amtool check-config and routes, refusals."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from infra.core.paths import RULES_DIR
from infra.slo.alertmanager import (
    RECEIVER_HEARTBEAT,
    RECEIVER_P0,
    RECEIVER_P1,
    RECEIVER_TICKETS,
    ROUTING_KEY_FILE,
    alertmanager_config,
    expected_receiver,
)
from infra.slo.generate import generated_files
from infra.slo.rules import rule_files
from infra.slo.spec import (
    BURN_RATE_TIERS,
    HEARTBEAT_ALERT,
    SloSpecError,
    error_budget_remaining_metric,
    load_slos,
    parse_slos,
    sli_error_ratio_metric,
    to_openslo,
)

SLO_TEXT = (RULES_DIR / "slos.yaml").read_text()


def run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=600, check=False)


# ------------------------------------------------------------------------------------------- definitions
def test_definitions_are_the_two_slos_of_the_issue() -> None:
    slos = {s.name: s for s in load_slos()}
    assert set(slos) == {"availability", "latency"}
    a, lat = slos["availability"], slos["latency"]
    assert (a.objective, a.window_days, a.service) == (0.9995, 30, "akidb-rest")
    assert str(a.bad_selector) == 'akidb_requests_total{job="akidb-rest",status=~"5.."}'
    assert (lat.objective, lat.threshold_seconds) == (0.999, 0.03)
    assert str(lat.good_selector) == 'akidb_request_duration_seconds_bucket{job="akidb-rest",le="0.03"}'
    assert str(lat.total_selector) == 'akidb_request_duration_seconds_count{job="akidb-rest"}'


def test_openslo_round_trip() -> None:
    docs = [d for d in yaml.safe_load_all(SLO_TEXT) if d]
    assert [to_openslo(s) for s in load_slos()] == docs


@pytest.mark.parametrize(("old", "new", "message"), [
    ('le="0.03"', 'le="0.02"', "threshold 0.02 s is not a bucket"),
    ('le="0.03"', 'le="0.030"', 'export that bucket as le="0.03"'),
    ('"0.005,0.01,0.025,0.03,', '"0.005,0.01,0.025,', "is not a bucket"),
    ("value: 0.03", "value: 0.05", "op: lte and value: 0.03"),
    ("target: 0.9995", "target: 1.5", "target in [0.5, 1)"),
    ("budgetingMethod: Occurrences\n  timeWindow:\n    - duration: 30d\n      isRolling: true\n  indicator:\n"
     "    metadata:\n      name: akidb-rest-non-5xx",
     "budgetingMethod: Timeslices\n  timeWindow:\n    - duration: 30d\n      isRolling: true\n  indicator:\n"
     "    metadata:\n      name: akidb-rest-non-5xx", "budgetingMethod must be Occurrences"),
    ('query: akidb_requests_total{job="akidb-rest"}', 'query: sum(rate(akidb_requests_total[5m]))',
     "is not a plain selector"),
    ("akidb.io/runbook: error-budget-fast-burn", "akidb.io/runbok: x", "unknown annotation"),
    ("name: latency\n", "name: availability\n", "defined more than once"),
])
def test_generator_refuses_bad_definitions(old: str, new: str, message: str) -> None:
    assert old in SLO_TEXT
    with pytest.raises(SloSpecError) as err:
        parse_slos(SLO_TEXT.replace(old, new, 1))
    assert any(message in p for p in err.value.problems), err.value.problems


# ------------------------------------------------------------------------------------------- generated files
def test_checked_in_files_match_the_generator() -> None:
    files = generated_files(load_slos())
    for rel, text in files.items():
        path = RULES_DIR / rel
        assert path.exists(), f"{rel} missing: run `make rules`"
        assert path.read_text() == text, f"{rel} drifted from rules/slos.yaml: run `make rules`"
    for sub in ("prometheus", "alertmanager", "tests"):
        extra = {f"{sub}/{p.name}" for p in (RULES_DIR / sub).glob("*.yml")} - set(files)
        assert not extra, f"stale generated files {extra}: run `make rules`"


def test_rules_are_ratios_of_summed_rates_with_the_shared_names() -> None:
    slos = load_slos()
    groups = [g for f in rule_files(slos).values() for g in f["groups"]]
    records = {r["record"]: r for g in groups for r in g["rules"] if "record" in r}
    assert sli_error_ratio_metric("1h") in records and error_budget_remaining_metric() in records
    for r in (r for g in groups for r in g["rules"] if r.get("record", "").startswith("slo:sli_error")):
        assert "avg" not in r["expr"] and "sum(rate(" in r["expr"] and "> 0)" in r["expr"]
        assert set(r["labels"]) == {"service", "slo"}
    alerts = [r for g in groups for r in g["rules"] if "alert" in r]
    burn = [a for a in alerts if a["alert"] == "SLOErrorBudgetBurn"]
    assert len(burn) == len(slos) * len(BURN_RATE_TIERS)
    for a in burn:
        assert {"severity", "service", "slo", "tier", "long_window", "short_window"} <= set(a["labels"])
        assert {"summary", "burn_rate", "budget_consumed", "runbook_url", "dashboard"} <= set(a["annotations"])
        assert ">= 1000" in a["expr"]  # low-traffic guard
        assert "for" not in a
    assert any(a["alert"] == HEARTBEAT_ALERT and a["expr"] == "vector(1)" for a in alerts)


def test_promtool_check_rules() -> None:
    out = run("promtool", "check", "rules", *map(str, sorted((RULES_DIR / "prometheus").glob("*.yml"))))
    assert out.returncode == 0, out.stdout + out.stderr


def test_promtool_unit_tests_for_every_slo_and_tier() -> None:
    tests = sorted((RULES_DIR / "tests").glob("*.test.yml"))
    names = {p.name for p in tests}
    assert {f"tier-{t.name}.test.yml" for t in BURN_RATE_TIERS} <= names
    out = run("promtool", "test", "rules", *map(str, tests))
    assert out.returncode == 0, out.stdout + out.stderr


def test_promtool_unit_tests_can_fail(tmp_path: Path) -> None:
    """A wrong threshold in the rules makes the generated tests fail (they check behaviour, not text)."""
    (tmp_path / "prometheus").mkdir()
    (tmp_path / "tests").mkdir()
    for p in (RULES_DIR / "prometheus").glob("*.yml"):
        (tmp_path / "prometheus" / p.name).write_text(p.read_text().replace("> 14.4", "> 30"))
    test = RULES_DIR / "tests" / "tier-page-quick.test.yml"
    (tmp_path / "tests" / test.name).write_text(test.read_text())
    out = run("promtool", "test", "rules", str(tmp_path / "tests" / test.name))
    assert out.returncode != 0 and "FAILED" in out.stdout + out.stderr


# ------------------------------------------------------------------------------------------- Alertmanager
AM = {True: RULES_DIR / "alertmanager" / "alertmanager-paging.yml",
      False: RULES_DIR / "alertmanager" / "alertmanager-tickets-only.yml"}


@pytest.mark.parametrize("paging", [True, False])
def test_amtool_check_config(paging: bool) -> None:
    out = run("amtool", "check-config", str(AM[paging]))
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("paging", [True, False])
@pytest.mark.parametrize("severity", ["P0", "P1", "P2", "heartbeat"])
def test_amtool_routes_each_severity(paging: bool, severity: str) -> None:
    receiver = expected_receiver(severity, paging=paging)
    labels = [f"severity={severity}", "service=akidb-rest", "slo=availability",
              f"alertname={HEARTBEAT_ALERT if severity == 'heartbeat' else 'SLOErrorBudgetBurn'}"]
    out = run("amtool", "config", "routes", "test", f"--config.file={AM[paging]}",
              f"--verify.receivers={receiver}", *labels)
    assert out.returncode == 0, out.stdout + out.stderr
    wrong = RECEIVER_TICKETS if receiver != RECEIVER_TICKETS else RECEIVER_P0
    bad = run("amtool", "config", "routes", "test", f"--config.file={AM[paging]}", f"--verify.receivers={wrong}",
              *labels)
    assert bad.returncode != 0


def test_alertmanager_config_shape() -> None:
    cfg = alertmanager_config(load_slos(), paging=True)
    text = yaml.safe_dump(cfg)
    assert "match:" not in text and "routing_key:" not in text and ROUTING_KEY_FILE in text
    assert cfg["route"]["group_by"] == ["alertname", "service", "slo"]
    p0 = next(r for r in cfg["route"]["routes"] if r["receiver"] == RECEIVER_P0)
    assert p0["group_wait"] == "5s"
    severities = {r["name"]: r["pagerduty_configs"][0]["severity"]
                  for r in cfg["receivers"] if "pagerduty_configs" in r}
    assert severities == {RECEIVER_P0: "critical", RECEIVER_P1: "error"}
    assert cfg["inhibit_rules"] == [{"source_matchers": ['severity="P0"'], "target_matchers": ['severity=~"P1|P2"'],
                                     "equal": ["service", "slo"]}]
    assert "name" not in cfg["inhibit_rules"][0]  # Alertmanager 0.25 rejects named inhibit rules
    staging = alertmanager_config(load_slos(), paging=False)
    assert {r["name"] for r in staging["receivers"]} == {RECEIVER_TICKETS, RECEIVER_HEARTBEAT}


def test_pagerduty_templates_parse(tmp_path: Path) -> None:
    """Every template of the PagerDuty receivers renders (amtool parses it the way Alertmanager will)."""
    cfg = alertmanager_config(load_slos(), paging=True)
    texts: set[str] = set()
    for r in cfg["receivers"]:
        for pd in r.get("pagerduty_configs", []):
            texts |= {pd["description"], *pd["details"].values(), *(link["href"] for link in pd["links"])}
    (tmp_path / "none.tmpl").write_text("")
    for text in sorted(texts):
        out = run("amtool", "template", "render", f"--template.glob={tmp_path / 'none.tmpl'}",
                  f"--template.text={text}")
        assert out.returncode == 0, (text, out.stderr)
    broken = run("amtool", "template", "render", f"--template.glob={tmp_path / 'none.tmpl'}",
                 "--template.text={{ range $i $a := .Alerts }}")
    assert broken.returncode != 0
