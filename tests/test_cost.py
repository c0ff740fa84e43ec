"""The monthly cost estimate: counts from the plan, prices from the checked-in table, usage from config."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from infra.config.synthetics import schedule_minutes
from infra.core.paths import ROOT
from infra.offline.cost_report import main as cost_report_main
from infra.plan import cost
from infra.validation.cost import cost_within_ceiling


def price(service: str, item: str) -> float:
    return float(cost.price_table()["prices"][service][item])


def test_price_table_names_its_source_and_date() -> None:
    doc = cost.price_table()
    assert doc["source"] and doc["date"] and doc["currency"] == "USD"
    for service, items in doc["prices"].items():
        assert str(items["page"]), service
        assert all(isinstance(v, int | float) for k, v in items.items() if k != "page"), service


def test_unknown_price_is_named() -> None:
    with pytest.raises(KeyError, match=r"no price lambda\.nope"):
        cost._price("lambda", "nope")


def test_schedules_to_runs_per_month() -> None:
    assert cost.runs_per_month("rate(5 minutes)") == pytest.approx(cost.MINUTES_PER_MONTH / 5)
    assert cost.runs_per_month("rate(1 hour)") == pytest.approx(cost.HOURS_PER_MONTH)
    assert cost.runs_per_month("cron(0 3 ? * SUN *)") == pytest.approx(cost.WEEKS_PER_MONTH)
    assert cost.runs_per_month("cron(0,30 * * * ? *)") == pytest.approx(48 * cost.DAYS_PER_MONTH)
    with pytest.raises(ValueError, match="expected rate"):
        cost.runs_per_month("every day")


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_lines_follow_the_plan_counts_and_the_table(planned: dict[str, Any], stack: str) -> None:
    plan = planned[stack].plan
    est = cost.estimate(plan, stack=stack)
    alarms = plan.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
    alarm_lines = [line for line in est.lines if line.kind == "cloudwatch alarm"]
    assert len(alarm_lines) == len(alarms)
    assert sum(line.usd for line in alarm_lines) == pytest.approx(
        sum(cost._alarm_metrics(a) for a in alarms) * price("cloudwatch", "alarm_metric_standard"))
    canaries = plan.of_type("aws:synthetics/canary:Canary")
    runs = sum(cost.MINUTES_PER_MONTH / schedule_minutes(c.get("schedule.expression")) for c in canaries)
    assert est.by("kind")["synthetics canary"] == pytest.approx(runs * price("synthetics", "canary_run"))
    dashboards = plan.of_type("aws:cloudwatch/dashboard:Dashboard")
    assert est.by("kind")["cloudwatch dashboard"] == pytest.approx(len(dashboards) * price("cloudwatch", "dashboard"))
    keys = plan.of_type("aws:kms/key:Key")
    assert est.by("kind")["kms key"] == pytest.approx(len(keys) * price("kms", "key_month"))
    # per component and per type add up to the same total
    assert sum(est.by("component").values()) == pytest.approx(est.total)
    assert sum(est.by("kind").values()) == pytest.approx(est.total)
    assert est.total <= plan.config.cost_watch.ceiling_usd
    assert list(cost_within_ceiling(plan)) == []


def test_usage_assumptions_scale_their_lines(planned: dict[str, Any]) -> None:
    plan = planned["prod"].plan
    usage = plan.config.cost_watch.usage
    base = cost.estimate(plan, usage).by("kind")
    more = dataclasses.replace(usage, traces_recorded_per_month=2 * usage.traces_recorded_per_month,
                               edge_requests_per_month=2 * usage.edge_requests_per_month)
    doubled = cost.estimate(plan, more).by("kind")
    assert doubled["x-ray traces recorded"] == pytest.approx(2 * base["x-ray traces recorded"])
    assert doubled["lambda@edge function"] == pytest.approx(2 * base["lambda@edge function"])
    assert doubled["cloudwatch alarm"] == base["cloudwatch alarm"]


def test_estimate_above_the_ceiling_fails_the_plan(run_stack: Any) -> None:
    result = run_stack("staging", overrides={"costWatch": {"ceilingUsd": 5}})
    found = [v for v in result.violations if v.rule == "cost_within_ceiling"]
    assert len(found) == 1 and "exceeds costWatch.ceilingUsd $5.00" in found[0].message


def test_report_prints_the_comparison_with_the_plan(planned: dict[str, Any], capsys: pytest.CaptureFixture[str],
                                                    tmp_path: Path) -> None:
    from infra.offline.plan import write_plan

    path = write_plan(planned["staging"])
    assert cost_report_main(["--stack", "staging", "--plan", str(path)]) == 0
    out = capsys.readouterr().out
    est = cost.estimate(planned["staging"].plan, stack="staging")
    assert f"Total: ${est.total:,.2f}/month vs the plan's +${cost.PLAN_TARGET_USD:.0f}/month" in out
    assert "Per component:" in out and "Per resource type" in out
    assert cost_report_main(["--stack", "staging", "--plan", str(tmp_path / "missing.json")]) == 2


def test_the_docs_table_of_estimates_is_current(planned: dict[str, Any]) -> None:
    """docs/components/cost.md shows the `Total:` of each stack's estimate and its ceiling: recomputed, not copied."""
    table = {}
    for line in (ROOT / "docs" / "components" / "cost.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0] in planned:
            table[cells[0]] = (cells[1], cells[2])
    for stack in ("staging", "prod"):
        plan = planned[stack].plan
        figures = (f"${cost.estimate(plan, stack=stack).total:,.2f}",
                   f"${plan.config.cost_watch.ceiling_usd:,.2f}")
        assert table.get(stack) == figures, (
            f"docs/components/cost.md, {stack}: {table.get(stack)} but `make plan` prints {figures}")
