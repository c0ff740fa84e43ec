"""No blind spots (issue 25): the coverage map's rule on both plans, a resource of each watched type stripped of
its alarms (and of its widgets) refused, the price-class config rule, and the CloudWatch alarms' noise budget."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from infra.config.coverage import (
    PRICE_CLASS_REGIONS,
    WAIVER_TAG,
    CoverageMapError,
    load_coverage_map,
    parse_coverage_map,
)
from infra.offline import alarm_noise
from infra.offline.plan import PlanResult
from infra.plan.model import Plan, PlannedResource
from infra.plan.types import DASHBOARD
from infra.plan.types import METRIC_ALARM as ALARM
from infra.validation import coverage
from infra.validation.coverage import every_resource_is_covered, needs

pytestmark = pytest.mark.slow  # one of the long modules: handed out first to the test workers

RULE = "every_resource_is_covered"
CMAP = load_coverage_map()
# Types the map requires CloudWatch alarms of (Kubernetes workloads: Prometheus alerts, tested below).
ALARMED_TYPES = sorted(t for t, c in CMAP.types.items() if c.alarms or c.edge_alarms)
DISTRIBUTION = {"emfEdge": {"createDistribution": True, "originDomain": "origin.staging.akidb.internal",
                            "edgeRegions": list(PRICE_CLASS_REGIONS["PriceClass_All"])}}


@pytest.fixture(scope="module")
def with_distribution(run_stack: Any) -> PlanResult:
    return run_stack("staging", overrides=DISTRIBUTION)


@pytest.fixture(scope="module")
def run_stack() -> Any:  # module-scoped twin of conftest's (one distribution plan for the module)
    from infra.offline.plan import run_plan
    from infra.offline.stackfile import read_stack_file, with_offline_secrets, with_overrides

    def run(stack: str, overrides: dict[str, Any]) -> PlanResult:
        stack_file, _ = with_offline_secrets(with_overrides(read_stack_file(stack), overrides))
        return run_plan(stack, stack_file=stack_file, quiet=True, write=False)

    return run


def _plans(planned: dict[str, PlanResult], with_distribution: PlanResult) -> list[Plan]:
    plans = [r.plan for r in (*planned.values(), with_distribution)]
    assert all(p is not None for p in plans)
    return [p for p in plans if p is not None]


def _rule(plan: Plan) -> list[str]:
    return [str(v) for v in every_resource_is_covered(plan)]


def _covering(plan: Plan, res: PlannedResource, kind: str) -> set[str]:
    """URNs of the alarms (or dashboards) that meet any of the resource's needs of `kind`."""
    wanted = [n for n in needs(plan, res, CMAP.types[res.type]) or [] if n.kind == kind]
    urns = set()
    for r in plan.of_type(ALARM if kind == "alarm" else DASHBOARD):
        single = Plan(resources=[r], config=plan.config)
        seen = coverage.alarmed(single) if kind == "alarm" else coverage.drawn(single)
        if any(coverage._met(n, seen or set()) for n in wanted):
            urns.add(r.urn)
    return urns


def _without(plan: Plan, urns: set[str]) -> Plan:
    return Plan(resources=[r for r in plan.resources if r.urn not in urns], config=plan.config)


def test_the_rule_passes_on_both_stacks_and_with_the_stacks_own_distribution(
        planned: dict[str, PlanResult], with_distribution: PlanResult) -> None:
    for plan in _plans(planned, with_distribution):
        assert _rule(plan) == []
        judged = [j for j in coverage.judge(plan) if not isinstance(j, str)]
        assert {j.resource.type for j in judged if j.met} >= {"aws:lambda/function:Function",
                                                               "aws:dynamodb/table:Table", "aws:sqs/queue:Queue"}
    assert with_distribution.violations == []


@pytest.mark.parametrize("token", ALARMED_TYPES)
def test_a_resource_stripped_of_its_alarms_is_refused(token: str, planned: dict[str, PlanResult],
                                                      with_distribution: PlanResult) -> None:
    plan = next(p for p in _plans(planned, with_distribution) if p.of_type(token))
    res = plan.of_type(token)[0]
    alarms = _covering(plan, res, "alarm")
    assert alarms, f"{res.label}: no alarm meets the map in the real plan"
    found = _rule(_without(plan, alarms))
    expected = {r.label for r in CMAP.types[token].alarms or CMAP.types[token].edge_alarms}
    mine = [v for v in found if res.label in v and "no alarm on" in v]
    assert mine and {label for label in expected if any(label in v for v in mine)} == expected


@pytest.mark.parametrize("token", sorted(t for t, c in CMAP.types.items() if c.widgets))
def test_a_resource_without_its_widgets_is_refused(token: str, planned: dict[str, PlanResult],
                                                   with_distribution: PlanResult) -> None:
    plan = next(p for p in _plans(planned, with_distribution) if p.of_type(token))
    res = plan.of_type(token)[0]
    boards = _covering(plan, res, "widget")
    assert boards
    assert any(res.label in v and "no widget on" in v for v in _rule(_without(plan, boards)))


def _without_alerts_on(plan: Plan, series: str, name: str) -> Plan:
    """The plan with every Prometheus alert reading `series` of workload `name` taken out of its PrometheusRule."""
    def reads(r: dict[str, Any]) -> bool:
        return bool(r.get("alert")) and series in str(r.get("expr")) and name in str(r.get("expr"))

    def strip(pr: PlannedResource) -> PlannedResource:
        groups = [{**g, "rules": [r for r in g.get("rules") or [] if not reads(r)]}
                  for g in pr.get("spec.groups") or []]
        return dataclasses.replace(pr, inputs={**pr.inputs, "spec": {**pr.inputs["spec"], "groups": groups}})
    return Plan(resources=[strip(r) if r.type == coverage.PROMETHEUS_RULE else r for r in plan.resources],
                config=plan.config)


@pytest.mark.parametrize("token", sorted(t for t, c in CMAP.types.items() if c.alerts))
def test_a_workload_without_its_alerts_is_refused(token: str, planned: dict[str, PlanResult]) -> None:
    """The trace collectors (Deployment adot-gateway, DaemonSet adot-agent) are covered by their own alerts
    (rules/symptoms.yaml), not waived: take those alerts out of the plan's PrometheusRules and the rule refuses."""
    assert not CMAP.waivers
    for stack in ("staging", "prod"):
        plan = planned[stack].plan
        assert plan is not None and plan.of_type(token)
        assert _rule(plan) == []
        series = CMAP.types[token].alerts[0]
        for res in plan.of_type(token):
            judged = next(j for j in coverage.judge(plan) if not isinstance(j, str) and j.resource.urn == res.urn)
            assert judged.waived is None and [n.required.metrics[0] for n in judged.met] == [series]
            name = str(res.get("metadata.name"))
            found = _rule(_without_alerts_on(plan, series, name))
            assert [v for v in found if res.label in v and series in v], found


def test_the_resources_own_definition_can_say_why_not(planned: dict[str, PlanResult]) -> None:
    plan = planned["staging"].plan
    assert plan is not None
    table = plan.of_type("aws:dynamodb/table:Table")[0]
    stripped = _without(plan, _covering(plan, table, "alarm"))
    assert any(table.label in v for v in _rule(stripped))
    waived = dataclasses.replace(table, inputs={**table.inputs, "tags": {WAIVER_TAG: "scratch table"}})
    plan2 = Plan(resources=[waived if r.urn == table.urn else r for r in stripped.resources], config=plan.config)
    assert not any(table.label in v for v in _rule(plan2))


def test_a_type_the_map_does_not_know_is_refused(planned: dict[str, PlanResult]) -> None:
    plan = planned["staging"].plan
    assert plan is not None
    odd = PlannedResource(urn="urn:pulumi:staging::p::aws:rds/instance:Instance::db", type="aws:rds/instance:Instance",
                          name="db", parent=None, region="us-east-1", inputs={}, custom=True)
    found = _rule(Plan(resources=[*plan.resources, odd], config=plan.config))
    assert found == [f"[{RULE}] aws:rds/instance:Instance: this resource type has no entry in rules/coverage.yaml: "
                     "add the alarms and widgets it needs (or `waived: <reason>` if it has no runtime signal of "
                     "its own)"]


def test_the_map_refuses_what_it_cannot_read() -> None:
    with pytest.raises(CoverageMapError, match=r"types.aws:x/y:Z: unknown keys \['alarm'\]"):
        parse_coverage_map({"types": {"aws:x/y:Z": {"alarm": []}}})
    with pytest.raises(CoverageMapError, match="severity: 'P9' is not one of P0, P1, P2"):
        parse_coverage_map({"types": {"aws:x/y:Z": {"identity": {"N": "inputs.name"},
                                                    "alarms": [{"namespace": "A", "metric": "M", "severity": "P9"}]}}})
    with pytest.raises(CoverageMapError, match="widgets need an identity known at a preview"):
        parse_coverage_map({"types": {"aws:x/y:Z": {"identity": {"I": "outputs.id"},
                                                    "widgets": [{"namespace": "A", "metric": "M"}]}}})
    with pytest.raises(CoverageMapError, match="need an `identity`"):
        parse_coverage_map({"types": {"aws:x/y:Z": {"alarms": [{"namespace": "A", "metric": "M"}]}}})


def test_edge_regions_must_cover_the_distributions_price_class(run_stack: Any) -> None:
    regions = ["us-east-1", "eu-west-1"]
    result = run_stack("staging", {"emfEdge": {**DISTRIBUTION["emfEdge"], "edgeRegions": regions}})
    missing = [r for r in PRICE_CLASS_REGIONS["PriceClass_All"] if r not in regions]
    assert result.exit_code == 2
    assert [p for p in result.config_problems if "price" in p.lower()] == [
        f'akidb-observability:emfEdge.edgeRegions = ["us-east-1", "eu-west-1"]: the distribution\'s PriceClass_All '
        f"runs Lambda@Edge replicas in {', '.join(missing)} too: add them (replicas there would have no log group "
        "settings, metrics or alarms), or leave emfEdge.createDistribution off"]


# ---- noise budget --------------------------------------------------------------------------------------------

def test_every_stack_stays_under_the_plans_weekly_alert_budget_on_a_healthy_history(
        planned: dict[str, PlanResult]) -> None:
    for result in planned.values():
        assert result.plan is not None
        per_alarm = alarm_noise.noise(result.plan, seed=0, weeks=4)
        assert len(per_alarm) == len(result.plan.of_type(ALARM))
        assert sum(per_alarm.values()) < alarm_noise.PLAN_WEEKLY_ALERTS


def _alarm(**inputs: Any) -> PlannedResource:
    return PlannedResource(urn="urn:pulumi:s::p::aws:cloudwatch/metricAlarm:MetricAlarm::a", type=ALARM, name="a",
                           parent=None, region="us-east-1", inputs=inputs, custom=True)


def test_the_noise_follows_each_alarms_own_definition() -> None:
    base = {"namespace": "AWS/Lambda", "metricName": "Errors", "period": 60, "threshold": 0,
            "comparisonOperator": "GreaterThanThreshold"}
    # Missing data as breaching on a metric published with traffic only: it fires whenever traffic stops.
    noisy = alarm_noise.weekly_firings(_alarm(**base, evaluationPeriods=1, treatMissingData="breaching"))
    quiet = alarm_noise.weekly_firings(_alarm(**base, evaluationPeriods=1, treatMissingData="notBreaching"))
    calmer = alarm_noise.weekly_firings(_alarm(**base, evaluationPeriods=3, datapointsToAlarm=2,
                                               treatMissingData="notBreaching"))
    assert noisy > alarm_noise.PLAN_WEEKLY_ALERTS > quiet >= calmer
    with pytest.raises(alarm_noise.UnknownMetric, match="no healthy model for metric 'Bogus'"):
        alarm_noise.weekly_firings(_alarm(**{**base, "metricName": "Bogus"}))
