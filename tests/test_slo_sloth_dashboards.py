"""Sloth's Grafana dashboard "SLO / Detail" (grafana.com/grafana/dashboards/14348) on the shipped rules: each of
its queries, its template variables substituted as Grafana substitutes them, evaluated by promtool against
rules/prometheus/ on the SLOs' own input series, gives the values the definitions (rules/slos.yaml) imply.
And no alert carries a sloth_* label (they would reach Alertmanager's grouping and routing).

The queries are the dashboard's own (its JSON, revision of Sloth's README link; every `expr` below, verbatim but
for the two ALERTS stat panels: those read `ALERTS{sloth_severity=...}`, i.e. Sloth's alerts' labels, which
ours deliberately do not carry, so those two panels read "OK" (their `or on() vector(0)`) on our rules; our own
SLO board shows the alerts). "High level Sloth SLOs" (14643) reads the same series (slo:current_burn_rate:ratio,
slo:period_error_budget_remaining:ratio by sloth_service/sloth_slo); its JSON is not checked here.
"""

from __future__ import annotations

import calendar
import dataclasses
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.core.paths import RULES_DIR
from infra.slo.render import dump
from infra.slo.rules import RULE_FILES, rule_files
from infra.slo.sloth import SLOTH_WINDOWS, sloth_labels
from infra.slo.spec import BURN_ALERT, BURN_RATE_TIERS, Slo, SloSpecError, load_slos, parse_slos

# 14348's queries, as in its JSON (panel title -> expr).
OBJECTIVE = 'slo:objective:ratio{sloth_service="${service}", sloth_slo="${slo}"}'
SLI = ('1 - (max(slo:sli_error:ratio_rate${sli_window}{sloth_service="${service}", sloth_slo="${slo}"}) '
       'OR on() vector(0))')
CURRENT_BURN = 'slo:current_burn_rate:ratio{sloth_service="${service}", sloth_slo="${slo}"} or on() vector(0)'
BURN_HEATMAP = 'slo:current_burn_rate:ratio{sloth_service="${service}", sloth_slo="${slo}"} > 0'
PERIOD_REMAINING = ('slo:period_error_budget_remaining:ratio{sloth_service="${service}", sloth_slo="${slo}"} '
                    'or on() vector(1)')
MONTH_REMAINING = """1-(
  sum_over_time(
    (
       slo:sli_error:ratio_rate1h{sloth_service="${service}",sloth_slo="${slo}"}
       * on() group_left() (
         month() == bool vector(${__to:date:M})
       )
    )[32d:1h]
  )
  / on(sloth_id)
  (
    slo:error_budget:ratio{sloth_service="${service}",sloth_slo="${slo}"} *on() group_left() (24 * days_in_month())
  )
)"""
EXCEEDED = "slo:current_burn_rate:ratio > ${min_burning_rate}"  # the "General" table and timeseries
# Its template variables: service = label_values(slo:objective:ratio, sloth_service), slo =
# label_values(slo:objective:ratio{sloth_service="${service}"}, sloth_slo), sli_window in these, min_burning_rate 1.
SLI_WINDOW_OPTIONS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d")
MIN_BURNING_RATE = "1"

EVAL_H = 3  # evaluated 3 hours into the input series
PER_MIN = 600.0  # requests per minute
# The error ratio of each SLO's input: above its budget (so the "exceeded" table lists it), different per SLO.
ERROR_RATIO = {"availability": 0.002, "latency": 0.003}


def grafana(expr: str, variables: dict[str, str]) -> str:
    """Grafana's interpolation of ${name}, ${name:format} and $name (the forms these queries use)."""
    def one(m: re.Match[str]) -> str:
        return variables[m.group(1) or m.group(2)]
    return re.sub(r"\$\{([a-zA-Z_]+(?::[a-zA-Z:]+)?)\}|\$([a-zA-Z_]+)", one, expr)


def _series(slo: Slo, error_ratio: float) -> list[dict[str, str]]:
    good, bad = PER_MIN * (1 - error_ratio), PER_MIN * error_ratio
    steps = EVAL_H * 60
    if slo.kind == "availability":
        assert slo.bad_selector is not None and ("status", "=~", "5..") in slo.bad_selector.matchers
        total = str(slo.total_selector)[:-1]
        return [{"series": total + ',status="200"}', "values": f"0+{good:g}x{steps}"},
                {"series": total + ',status="500"}', "values": f"0+{bad:g}x{steps}"}]
    assert slo.good_selector is not None
    return [{"series": str(slo.good_selector), "values": f"0+{good:g}x{steps}"},
            {"series": str(slo.total_selector), "values": f"0+{PER_MIN:g}x{steps}"}]


def _close(expr: str, value: float, labels: dict[str, str]) -> dict[str, Any]:
    """One sample with exactly these labels whose value is `value` (to 1e-9, relative)."""
    text = "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
    return {"expr": f"abs(({expr}) - {value!r}) <= bool {abs(value) * 1e-9 + 1e-12!r}", "eval_time": f"{EVAL_H}h",
            "exp_samples": [{"labels": text, "value": 1}]}


def _promtool(tmp_path: Path, rule_paths: list[Path], tests: list[dict[str, Any]]) -> None:
    doc = {"rule_files": [str(p) for p in rule_paths], "evaluation_interval": "1m", "tests": tests}
    (tmp_path / "t.test.yml").write_text(dump(doc))
    run = subprocess.run(["promtool", "test", "rules", str(tmp_path / "t.test.yml")],
                         capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]


def _shipped() -> list[Path]:
    return [RULES_DIR / "prometheus" / name for name in RULE_FILES]


def test_sloth_detail_dashboard_queries_give_the_definitions_values(tmp_path: Path) -> None:
    slos = [s for s in load_slos() if s.sloth_compatible]
    assert slos, "no SLO of rules/slos.yaml is sloth-compatible: the shipped rules carry no Sloth series"
    assert {s.name for s in slos} <= set(ERROR_RATIO)
    to = datetime.fromtimestamp(EVAL_H * 3600, UTC)  # promtool's clock starts at the epoch
    checks: list[dict[str, Any]] = []
    for slo in slos:
        e, budget = ERROR_RATIO[slo.name], slo.error_budget
        assert e > budget * float(MIN_BURNING_RATE)
        ids = sloth_labels(slo)
        var = {"service": slo.service, "slo": slo.name, "min_burning_rate": MIN_BURNING_RATE,
               "__to:date:M": str(to.month)}
        checks.append(_close(grafana(OBJECTIVE, var), slo.objective, ids))
        # The SLI panel at each of its windows: Sloth's SLI windows and the SLO's period, all recorded.
        assert set(SLI_WINDOW_OPTIONS) == {*SLOTH_WINDOWS, slo.window}
        for w in SLI_WINDOW_OPTIONS:
            checks.append(_close(grafana(SLI, var | {"sli_window": w}), 1 - e, {}))
        checks.append(_close(grafana(CURRENT_BURN, var), e / budget, {**ids, "sloth_window": "5m"}))
        checks.append(_close(grafana(BURN_HEATMAP, var), e / budget, {**ids, "sloth_window": "5m"}))
        # Sloth's burn rates keep the sloth_window of the ratio they divide (as its own generated rules do).
        checks.append(_close(grafana(PERIOD_REMAINING, var), 1 - e / budget, {**ids, "sloth_window": slo.window}))
        # The month's budget: one 1h ratio per hour of the month so far (the first at 1h), over its whole budget.
        days = calendar.monthrange(to.year, to.month)[1]
        checks.append(_close(grafana(MONTH_REMAINING, var), 1 - EVAL_H * e / (budget * 24 * days),
                             {"sloth_id": ids["sloth_id"]}))
        # The "General" table lists every SLO above the rate (one query for all): this SLO's row.
        row = f'({grafana(EXCEEDED, var)}) and on(sloth_id) sloth_slo_info{{sloth_id="{ids["sloth_id"]}"}}'
        checks.append(_close(row, e / budget, {**ids, "sloth_window": "5m"}))
        # The variables: label_values() lists the values of the series that have the label.
        checks.append({"expr": f'count by (sloth_slo) (slo:objective:ratio{{sloth_service="{slo.service}"}})',
                       "eval_time": f"{EVAL_H}h", "exp_samples": [
                           {"labels": f'{{sloth_slo="{s.name}"}}', "value": 1}
                           for s in sorted(slos, key=lambda s: s.name) if s.service == slo.service]})
    exceeded = grafana(EXCEEDED, {"min_burning_rate": MIN_BURNING_RATE})
    checks.append({"expr": f"count by (sloth_service, sloth_slo) ({exceeded})",
                   "eval_time": f"{EVAL_H}h", "exp_samples": [
                       {"labels": f'{{sloth_service="{s.service}", sloth_slo="{s.name}"}}', "value": 1}
                       for s in sorted(slos, key=lambda s: (s.service, s.name))]})
    services = sorted({s.service for s in slos})
    checks.append({"expr": 'count by (sloth_service) (slo:objective:ratio{sloth_service!=""})',
                   "eval_time": f"{EVAL_H}h", "exp_samples": [
                       {"labels": f'{{sloth_service="{svc}"}}', "value": sum(s.service == svc for s in slos)}
                       for svc in services]})
    series = [x for s in slos for x in _series(s, ERROR_RATIO[s.name])]
    _promtool(tmp_path, _shipped(), [{"interval": "1m", "input_series": series, "promql_expr_test": checks}])


def test_with_the_option_off_no_sloth_series_exist(tmp_path: Path) -> None:
    """The option decides: without it the same SLOs record no sloth_* series (the dashboards' queries are empty)."""
    slos = load_slos()
    off = [dataclasses.replace(s, sloth_compatible=False) for s in slos]
    paths = []
    for name, doc in rule_files(off).items():
        (tmp_path / name).write_text(dump(doc))
        paths.append(tmp_path / name)
    series = [x for s in slos for x in _series(s, ERROR_RATIO.get(s.name, 0.002))]
    checks = [{"expr": '{__name__=~"slo:.+|sloth_.+", sloth_id!=""}', "eval_time": f"{EVAL_H}h", "exp_samples": []},
              {"expr": "count(slo:objective:ratio)", "eval_time": f"{EVAL_H}h",
               "exp_samples": [{"labels": "{}", "value": len(slos)}]}]
    _promtool(tmp_path, paths, [{"interval": "1m", "input_series": series, "promql_expr_test": checks}])


@pytest.mark.parametrize("name", ["availability", "latency"])
def test_no_alert_carries_a_sloth_label(tmp_path: Path, name: str) -> None:
    """A full outage of one SLO fires every tier it can reach (derived from the definitions); no firing or pending
    alert, nor its `for` state, carries any sloth_* label; and no alert rule sets one."""
    slos = load_slos()
    slo = next(s for s in slos if s.name == name)
    assert slo.sloth_compatible
    for path in _shipped():
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    assert not [k for k in rule.get("labels", {}) if k.startswith("sloth_")], rule["alert"]
    tiers = sorted(t.name for t in BURN_RATE_TIERS if slo.reaches(t))
    checks = [
        {"expr": f'count by (tier) (ALERTS{{alertname="{BURN_ALERT}",alertstate="firing",slo="{slo.name}"}})',
         "eval_time": f"{EVAL_H}h", "exp_samples": [{"labels": f'{{tier="{t}"}}', "value": 1} for t in tiers]},
        {"expr": '{__name__=~"ALERTS|ALERTS_FOR_STATE", sloth_id!=""} or {__name__=~"ALERTS|ALERTS_FOR_STATE", '
                 'sloth_service!=""} or {__name__=~"ALERTS|ALERTS_FOR_STATE", sloth_slo!=""} or '
                 '{__name__=~"ALERTS|ALERTS_FOR_STATE", sloth_window!=""}',
         "eval_time": f"{EVAL_H}h", "exp_samples": []},
    ]
    series = [x for s in slos for x in _series(s, 1.0 if s is slo else 0.0)]
    _promtool(tmp_path, _shipped(), [{"interval": "1m", "input_series": series, "promql_expr_test": checks}])


@pytest.mark.parametrize("value", ["yes", "True", "1"])
def test_a_bad_option_value_is_refused_naming_the_allowed_ones(value: str) -> None:
    text = (RULES_DIR / "slos.yaml").read_text()
    option = '\n    akidb.io/sloth-compatible: "true"\n'  # the first SLO's annotation
    assert option in text
    with pytest.raises(SloSpecError) as e:
        parse_slos(text.replace(option, option.replace('"true"', f'"{value}"'), 1))
    assert e.value.problems == [f"document 0 (availability): annotation akidb.io/sloth-compatible must be \"true\" "
                                f"or \"false\", got {value!r}"]
