"""SLO definitions -> generated files: drift, promtool check/test, amtool check-config and routes, refusals."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
import yaml

from infra.core.paths import RULES_DIR
from infra.slo.alertmanager import (
    CHART_ALWAYS_FIRING,
    CHART_SEVERITIES,
    EXAMPLE_MAINTENANCE,
    RECEIVER_CHAT,
    RECEIVER_HEARTBEAT,
    RECEIVER_NULL,
    RECEIVER_P0,
    RECEIVER_P1,
    RECEIVER_TICKETS,
    RECEIVER_UNROUTED,
    ROUTING_KEY_FILE,
    SLACK_URL_FILE,
    alertmanager_config,
    expected_receivers,
    maintenance_interval_name,
)
from infra.slo.generate import generated_files
from infra.slo.rules import rule_files
from infra.slo.spec import (
    BURN_ALERT,
    BURN_RATE_TIERS,
    HEARTBEAT_ALERT,
    PAGE_BURST_BUDGET_SHARE,
    REFERENCE_PERIOD_DAYS,
    SloSpecError,
    error_budget_remaining_metric,
    load_slos,
    parse_slos,
    sli_error_ratio_metric,
    to_openslo,
)
from infra.slo.symptoms import SERVICE_DOWN_ALERT, load_symptoms

pytestmark = pytest.mark.slow  # one of the long modules: handed out first to the test workers

SLO_TEXT = (RULES_DIR / "slos.yaml").read_text()


def run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=600, check=False)


# ------------------------------------------------------------------------------------------- definitions
def test_definitions_are_read_from_the_file() -> None:
    """The loaded objects are what the YAML says (read from the text, not from today's numbers)."""
    docs = {d["metadata"]["name"]: d for d in yaml.safe_load_all(SLO_TEXT) if d}
    slos = {s.name: s for s in load_slos()}
    assert set(slos) == set(docs)
    for name, slo in slos.items():
        spec = docs[name]["spec"]
        assert slo.objective == spec["objectives"][0]["target"] and slo.service == spec["service"]
        assert slo.window == spec["timeWindow"][0]["duration"]
        ratio = spec["indicator"]["spec"]["ratioMetric"]
        assert str(slo.total_selector) == ratio["total"]["metricSource"]["spec"]["query"]
        if slo.kind == "latency":
            assert slo.threshold_seconds == spec["objectives"][0]["value"]
            assert str(slo.good_selector) == ratio["good"]["metricSource"]["spec"]["query"]
        else:
            assert str(slo.bad_selector) == ratio["bad"]["metricSource"]["spec"]["query"]


def test_tiers_come_from_budget_shares_and_no_page_fires_below_the_burst_share() -> None:
    """SRE Workbook, "Alerting on SLOs": a tier whose long window reaches burn B has spent B x long / period of the
    budget; every paging tier needs at least PAGE_BURST_BUDGET_SHARE, so a burst spending less cannot page whatever
    its shape."""
    for t in BURN_RATE_TIERS:
        assert t.budget_consumed(REFERENCE_PERIOD_DAYS) == pytest.approx(t.budget_share)
        if t.severity in ("P0", "P1"):
            assert t.budget_share >= PAGE_BURST_BUDGET_SHARE
    assert PAGE_BURST_BUDGET_SHARE >= 0.005  # issue 14: a burst under 0.5% of the monthly budget never pages


def test_openslo_round_trip() -> None:
    """Import then export gives the file's documents; export then import gives the same SLOs back."""
    docs = [d for d in yaml.safe_load_all(SLO_TEXT) if d]
    slos = load_slos()
    assert [to_openslo(s) for s in slos] == docs
    assert parse_slos(yaml.safe_dump_all([to_openslo(s) for s in slos], sort_keys=False), "exported.yaml") == slos


@pytest.mark.parametrize(("old", "new", "field"), [
    # OpenSLO v1 fields the compiler has no Prometheus rule for: refused by name, never dropped.
    ("spec:\n  description:", "spec:\n  alertPolicies: [page]\n  description:", "spec.alertPolicies"),
    ("    counter: true", "    counter: true\n        rawType: success", "spec.indicator.spec.ratioMetric.rawType"),
    ("      target: 0.", "      timeSliceTarget: 0.9\n      target: 0.", "spec.objectives[0].timeSliceTarget"),
    ("  displayName: AkiDB REST availability", "  displayName: x\n  labels: {team: db}", "metadata.labels"),
])
def test_openslo_fields_that_cannot_be_mapped_are_named(old: str, new: str, field: str) -> None:
    assert old in SLO_TEXT, old
    with pytest.raises(SloSpecError) as err:
        parse_slos(SLO_TEXT.replace(old, new, 1))
    assert any(p.startswith("document 0 ") and f": {field} cannot be mapped" in p
               for p in err.value.problems), err.value.problems


@pytest.mark.parametrize(("old", "new", "message"), [
    ('le="0.03"', 'le="0.02"', "threshold 0.02 s is not a bucket"),
    ('le="0.03"', 'le="0.030"', 'export that bucket as le="0.03"'),
    ('"0.005,0.01,0.025,0.03,', '"0.005,0.01,0.025,', "is not a bucket"),
    ("value: 0.03", "value: 0.05", "op: lte and value: 0.03"),
    ("target: 0.", "target: 1.", "target in [0.5, 1)"),
    ("budgetingMethod: Occurrences\n  timeWindow:\n    - duration: 30d\n      isRolling: true\n  indicator:\n"
     "    metadata:\n      name: akidb-rest-non-5xx",
     "budgetingMethod: Timeslices\n  timeWindow:\n    - duration: 30d\n      isRolling: true\n  indicator:\n"
     "    metadata:\n      name: akidb-rest-non-5xx", "budgetingMethod must be Occurrences"),
    ('query: akidb_requests_total{job="akidb-rest"}', 'query: sum(rate(akidb_requests_total[5m]))',
     "is not a plain selector"),
    ("akidb.io/runbook: error-budget-fast-burn", "akidb.io/runbok: x", "unknown annotation"),
    ("akidb.io/runbook: error-budget-fast-burn", "akidb.io/runbook: error-budget-fastburn",
     "is not in rules/runbooks.yaml"),
    ("name: latency\n", "name: availability\n", "defined more than once"),
])
def test_generator_refuses_bad_definitions(old: str, new: str, message: str) -> None:
    assert old in SLO_TEXT
    with pytest.raises(SloSpecError) as err:
        parse_slos(SLO_TEXT.replace(old, new, 1))
    assert any(message in p for p in err.value.problems), err.value.problems


# ------------------------------------------------------------------------------------------- generated files
def test_checked_in_files_match_the_generator() -> None:
    slos = load_slos()
    files = generated_files(slos, load_symptoms(slos))
    for rel, text in files.items():
        path = RULES_DIR / rel
        assert path.exists(), f"{rel} missing: run `make generate`"
        assert path.read_text() == text, f"{rel} drifted from rules/slos.yaml: run `make generate`"
    for sub in ("prometheus", "alertmanager", "tests"):
        extra = {f"{sub}/{p.name}" for p in (RULES_DIR / sub).glob("*.yml")} - set(files)
        assert not extra, f"stale generated files {extra}: run `make generate`"


def test_rules_are_ratios_of_summed_counts_with_the_shared_names() -> None:
    slos = load_slos()
    groups = [g for f in rule_files(slos).values() for g in f["groups"]]
    records = {r["record"]: r for g in groups for r in g["rules"] if "record" in r}
    assert sli_error_ratio_metric("1h") in records and error_budget_remaining_metric() in records
    for r in (r for g in groups for r in g["rules"] if r.get("record", "").startswith("slo:sli_error")):
        if "sloth_id" in r["labels"]:  # Sloth's series (infra/slo/sloth.py): a copy of ours, or computed as ours
            assert set(r["labels"]) == {"sloth_id", "sloth_service", "sloth_slo", "sloth_window"}
            if r["expr"].startswith("sum without(service, slo) ("):
                assert r["expr"].startswith(f"sum without(service, slo) ({r['record']}{{service=")
                continue
        # A ratio of the window's summed counts (infra.slo.spec.window_count), never an average of ratios.
        assert "avg" not in r["expr"] and "sum(\n" in r["expr"] and " offset " in r["expr"] and "> 0)" in r["expr"]
        assert set(r["labels"]) in ({"service", "slo"}, {"sloth_id", "sloth_service", "sloth_slo", "sloth_window"})
    alerts = [r for g in groups for r in g["rules"] if "alert" in r]
    burn = [a for a in alerts if a["alert"] == "SLOErrorBudgetBurn"]
    assert len(burn) == len(slos) * len(BURN_RATE_TIERS)
    for a in burn:
        assert {"severity", "service", "slo", "tier", "long_window", "short_window"} <= set(a["labels"])
        assert {"summary", "burn_rate", "budget_consumed", "runbook_url", "dashboard"} <= set(a["annotations"])
        slo = next(s for s in slos if s.name == a["labels"]["slo"])
        assert f">= {slo.min_events}" in a["expr"]  # low-traffic guard
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
        quick = BURN_RATE_TIERS[0]
        (tmp_path / "prometheus" / p.name).write_text(
            p.read_text().replace(f"> {quick.burn_rate:g}\n", f"> {2 * quick.burn_rate:g}\n"))
    test = RULES_DIR / "tests" / f"tier-{BURN_RATE_TIERS[0].name}.test.yml"
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


# Our severities, kube-prometheus-stack's, its always-firing alerts, and typos that must not become silent tickets.
SEVERITIES = ["P0", "P1", "P2", "info", "heartbeat", *CHART_SEVERITIES, *CHART_ALWAYS_FIRING, "p0", "Critical"]


def _labels(severity: str, service: str) -> list[str]:
    alertname = HEARTBEAT_ALERT if severity == "heartbeat" else (
        severity if severity in CHART_ALWAYS_FIRING else "SLOErrorBudgetBurn")
    sev = "none" if severity in CHART_ALWAYS_FIRING else severity
    return [f"severity={sev}", f"service={service}", "slo=availability", f"alertname={alertname}"]


@pytest.mark.parametrize("paging", [True, False])
@pytest.mark.parametrize("severity", SEVERITIES)
@pytest.mark.parametrize("service", ["akidb-rest", "other-service"])  # with and without maintenance windows
def test_amtool_routes_each_severity_to_every_receiver(paging: bool, severity: str, service: str) -> None:
    receivers = ",".join(expected_receivers(severity, paging=paging))
    labels = _labels(severity, service)
    out = run("amtool", "config", "routes", "test", f"--config.file={AM[paging]}",
              f"--verify.receivers={receivers}", *labels)
    assert out.returncode == 0, out.stdout + out.stderr
    wrong = RECEIVER_TICKETS if receivers != RECEIVER_TICKETS else RECEIVER_P0
    bad = run("amtool", "config", "routes", "test", f"--config.file={AM[paging]}", f"--verify.receivers={wrong}",
              *labels)
    assert bad.returncode != 0


def test_a_misspelt_severity_key_reaches_the_unrouted_catch_all() -> None:
    """`sevrity: P0` carries no severity at all: it must land on the visible catch-all, not on a silent ticket."""
    for service in ("akidb-rest", "other-service"):
        out = run("amtool", "config", "routes", "test", f"--config.file={AM[True]}",
                  f"--verify.receivers={RECEIVER_UNROUTED}", "sevrity=P0", f"service={service}",
                  "alertname=SLOErrorBudgetBurn")
        assert out.returncode == 0, out.stdout + out.stderr


def test_every_receiver_is_reached_by_some_route() -> None:
    for paging in (True, False):
        cfg = alertmanager_config(load_slos(), paging=paging)
        reached = {r for sev in SEVERITIES for r in expected_receivers(sev, paging=paging)}
        assert {r["name"] for r in cfg["receivers"]} == reached


def test_alertmanager_config_shape() -> None:
    cfg = alertmanager_config(load_slos(), paging=True)
    text = yaml.safe_dump(cfg)
    assert "match:" not in text and "routing_key:" not in text and ROUTING_KEY_FILE in text
    assert cfg["route"]["group_by"] == ["alertname", "service", "slo"]
    p0 = next(r for r in cfg["route"]["routes"] if r.get("receiver") == RECEIVER_P0)
    assert p0["group_wait"] == "5s"
    severities = {r["name"]: r["pagerduty_configs"][0]["severity"]
                  for r in cfg["receivers"] if "pagerduty_configs" in r}
    assert severities == {RECEIVER_P0: "critical", RECEIVER_P1: "error"}
    assert cfg["inhibit_rules"][0] == {"source_matchers": ['severity="P0"', 'slo=~".+"'],
                                       "target_matchers": ['severity=~"P1|P2"'], "equal": ["service", "slo"]}
    down = cfg["inhibit_rules"][1]
    assert down["source_matchers"] == [f'alertname="{SERVICE_DOWN_ALERT}"'] and down["equal"] == ["service"]
    assert BURN_ALERT in down["target_matchers"][0]
    assert all("name" not in r for r in cfg["inhibit_rules"])  # Alertmanager 0.25 rejects named inhibit rules
    staging = alertmanager_config(load_slos(), paging=False)
    assert {r["name"] for r in staging["receivers"]} == {RECEIVER_TICKETS, RECEIVER_HEARTBEAT, RECEIVER_CHAT,
                                                         RECEIVER_NULL, RECEIVER_UNROUTED}
    slack = next(r for r in cfg["receivers"] if r["name"] == RECEIVER_CHAT)["slack_configs"][0]
    assert slack["api_url_file"] == SLACK_URL_FILE and "api_url" not in slack
    no_chat = alertmanager_config(load_slos(), paging=True, chat=False)
    assert RECEIVER_CHAT not in {r["name"] for r in no_chat["receivers"]}
    # Maintenance: one muted branch per service with windows, never around the heartbeat.
    services = {w.service for w in EXAMPLE_MAINTENANCE}
    assert {i["name"] for i in cfg["time_intervals"]} == {maintenance_interval_name(s) for s in services}
    muted = [r for r in cfg["route"]["routes"] if "mute_time_intervals" in r]
    assert [r["matchers"] for r in muted] == [[f'service="{s}"'] for s in sorted(services)]
    # Alertmanager 0.25 does not inherit a parent's mute (alertmanager#2833): every child carries it.
    for branch in muted:
        assert all(child["mute_time_intervals"] == branch["mute_time_intervals"] for child in branch["routes"])
    assert "mute_time_intervals" not in cfg["route"]["routes"][0]


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


def test_pagerduty_details_carry_what_the_incident_timeline_correlates_on() -> None:
    """Without severity and the condition start in the details, MTTD is never published for Alertmanager pages."""
    from lambdas.runbook_automation import timeline

    cfg = alertmanager_config(load_slos(), paging=True)
    for receiver in cfg["receivers"]:
        for pd in receiver.get("pagerduty_configs", []):
            details = pd["details"]
            assert "severity" in details and ".CommonLabels.severity" in details["severity"]
            (start_key,) = [k for k in details if k in timeline.CONDITION_START_KEYS]
            assert "StartsAt" in details[start_key]


def test_the_page_title_carries_the_condition_start_the_timeline_reads(tmp_path: Path) -> None:
    """A V3 webhook's incident has its title, not the event's details: the description Alertmanager renders (amtool,
    on its example alerts) ends with the first alert's start, and the timeline reads it back from the title."""
    from lambdas.runbook_automation import timeline

    cfg = alertmanager_config(load_slos(), paging=True)
    (tmp_path / "none.tmpl").write_text("")
    descriptions = {pd["description"] for r in cfg["receivers"] for pd in r.get("pagerduty_configs", [])}
    assert descriptions
    for text in descriptions:
        before = time.time()
        out = run("amtool", "template", "render", f"--template.glob={tmp_path / 'none.tmpl'}",
                  f"--template.text={text}")
        assert out.returncode == 0, out.stderr
        found = timeline.correlate({"title": out.stdout.strip()})
        assert "correlation_problem" not in found, found
        # amtool's example alerts started minutes ago (whole seconds).
        assert before - 3600 <= found["condition_started_at"] <= time.time() + 1, (out.stdout, found)


def test_every_alert_that_reaches_a_person_names_its_runbook_in_the_incident_title() -> None:
    """The summary is the page's incident title (the PagerDuty description), and the webhook runs the runbook the
    title names: an alert whose summary lacks `[runbook:<id>]` of its runbook_url pages with no runbook (a
    TrafficDrop page was answered 'ignored' in the drill)."""
    from infra.slo.runbooks import load_runbooks, marked_runbook

    catalogue = load_runbooks()
    alerts = [r for doc in rule_files(load_slos()).values() for g in doc["groups"] for r in g["rules"]
              if "alert" in r and r["labels"].get("severity") != "heartbeat"]
    assert alerts
    for alert in alerts:
        named = marked_runbook(alert["annotations"]["summary"])
        assert named is not None, f"{alert['alert']}: its summary names no runbook"
        assert named in catalogue and alert["annotations"]["runbook_url"].endswith(f"/{named}"), alert["alert"]
