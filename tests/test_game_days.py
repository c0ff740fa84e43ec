"""Game days in both planned stacks (staging holds the templates, prod none), their config rules, and the
plan-time rules, each made to fail on a plan with the violation built in."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from infra.components import game_days as component
from infra.offline.plan import PlanResult
from infra.plan.cost import action_minutes, estimate, price_table
from infra.validation import Plan, PlannedResource
from infra.validation import game_days as rules

TEMPLATE = rules.TEMPLATE


def templates(result: PlanResult) -> dict[str, PlannedResource]:
    return {t.inputs["tags"][component.EXPERIMENT_TAG]: t for t in result.plan.of_type(TEMPLATE)}


def replaced(plan: Plan, target: PlannedResource, **inputs: Any) -> Plan:
    changed = dataclasses.replace(target, inputs={**target.inputs, **inputs})
    return Plan([changed if r is target else r for r in plan.resources], plan.config, plan.outputs)


def messages(check: Any, plan: Plan) -> list[str]:
    return [v.message for v in check(plan)]


def test_staging_holds_every_enabled_experiment_and_prod_none(planned: dict[str, PlanResult]) -> None:
    staging, prod = planned["staging"], planned["prod"]
    assert staging.violations == [] and prod.violations == []
    cfg = staging.plan.config.game_days
    assert cfg.enabled and not prod.plan.config.game_days.enabled
    assert prod.plan.of_type(TEMPLATE) == [] and "gameDayExperiments" not in prod.outputs
    found = templates(staging)
    assert sorted(found) == sorted(staging.outputs["gameDayExperiments"])
    assert set(found) == {"rest-spot-interruption", "anomaly-detector-errors", "anomaly-detector-delay",
                          "rest-pod-latency"}
    spot = found["rest-spot-interruption"]
    (target,) = spot.inputs["targets"]
    assert target["selectionMode"] == f"COUNT({cfg.spot_interruption.instance_count})"
    assert target["resourceTags"] == [{"key": component.ASG_TAG, "value": cfg.spot_interruption.asg_name}]
    assert spot.inputs["tags"][component.EXPECT_TAG] == cfg.spot_interruption.expect
    assert spot.inputs["tags"][component.RUNBOOK_TAG] == cfg.spot_interruption.expected_runbook
    assert spot.inputs["tags"][component.FAULT_DELAY_TAG] == str(60 * cfg.spot_interruption.notice_minutes)
    pods = found["rest-pod-latency"]
    assert pods.inputs["targets"][0]["parameters"]["namespace"] == cfg.pod_faults.namespace
    assert pods.inputs["targets"][0]["selectionMode"] == f"PERCENT({cfg.pod_faults.target_percent})"
    detector = staging.outputs["anomalyFunctions"]["detector"]
    for key in ("anomaly-detector-errors", "anomaly-detector-delay"):
        assert found[key].inputs["targets"][0]["resourceArns"][0].endswith(f":function:{detector}")
    # Every template: stop conditions on the home Region's user-facing alarms, logs to the KMS log group.
    alarms = {a.inputs.get("alarmName") or a.inputs.get("name") for a in staging.plan.of_type(*rules.ALARM_TYPES)}
    for t in found.values():
        names = [c["value"].rsplit(":alarm:", 1)[1] for c in t.inputs["stopConditions"]]
        assert names and set(names) <= alarms and any(n.endswith("-edge-outage") for n in names)
        assert t.inputs["logConfiguration"]["cloudwatchLogsConfiguration"]["logGroupArn"].endswith(
            f"log-group:{staging.outputs['gameDayLogGroup']}:*")
    (log_group,) = [g for g in staging.plan.of_type("aws:cloudwatch/logGroup:LogGroup")
                    if g.inputs["name"] == staging.outputs["gameDayLogGroup"]]
    assert log_group.inputs["kmsKeyId"] and log_group.inputs["retentionInDays"] == cfg.log_retention_days


def test_pod_access_is_namespace_scoped(planned: dict[str, PlanResult]) -> None:
    plan = planned["staging"].plan
    ns = plan.config.game_days.pod_faults.namespace
    (role,) = plan.of_type("kubernetes:rbac.authorization.k8s.io/v1:Role")
    (binding,) = plan.of_type("kubernetes:rbac.authorization.k8s.io/v1:RoleBinding")
    assert not plan.of_type("kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding")
    assert role.get("metadata.namespace") == ns == binding.get("metadata.namespace")
    assert "*" not in json.dumps(role.inputs["rules"])
    assert {s["kind"] for s in binding.inputs["subjects"]} == {"ServiceAccount", "Group"}
    (entry,) = plan.of_type("aws:eks/accessEntry:AccessEntry")
    assert entry.inputs["kubernetesGroups"] == [component.FIS_GROUP]
    assert not plan.of_type("aws:eks/accessPolicyAssociation:AccessPolicyAssociation")  # no cluster-wide policy


def test_cost_counts_action_minutes(planned: dict[str, PlanResult]) -> None:
    plan = planned["staging"].plan
    lines = [line for line in estimate(plan, stack="staging").lines if line.kind == "fis experiment runs"]
    found = plan.of_type(TEMPLATE)
    price = price_table()["prices"]["fis"]["action_minute"]
    expected = sum(action_minutes(t) for t in found) * price * (730 / 24 / 7) / len(found)
    assert len(lines) == len(found) and sum(line.usd for line in lines) == pytest.approx(expected)
    assert action_minutes(templates(planned["staging"])["anomaly-detector-errors"]) == \
        plan.config.game_days.lambda_faults.error_duration_minutes


@pytest.mark.parametrize(("override", "message"), [
    ({"spotInterruption": {"asgName": None}}, "gameDays.spotInterruption.asgName"),
    ({"podFaults": {"clusterName": None}}, "gameDays.podFaults.clusterName"),
    ({"podFaults": {"namespace": "kube-system"}}, "not a system one"),
    ({"spotInterruption": {"instanceCount": 0}}, "gameDays.spotInterruption.instanceCount"),
    ({"lambdaFaults": {"errorDurationMinutes": 120}}, "gameDays.lambdaFaults.errorDurationMinutes"),
    ({"allowedEnvironments": ["prod"]}, "may only exist in"),
    ({"spotInterruption": {"expect": "maybe"}}, "gameDays.spotInterruption.expect"),
])
def test_config_problems(run_stack: Any, override: dict[str, Any], message: str) -> None:
    result = run_stack("staging", overrides={"gameDays": override})
    assert any(message in p for p in result.config_problems), result.config_problems


def test_experiments_of_switched_off_components_are_skipped_and_said(run_stack: Any) -> None:
    result = run_stack("staging", overrides={"anomaly": {"enabled": False}, "kubernetes": {"enabled": False},
                                             "xray": {"enabled": False}})
    assert result.config_problems == [] and result.violations == []
    assert result.outputs["gameDayExperiments"] == ["rest-spot-interruption"]
    assert set(result.outputs["gameDaySkipped"]) == {"anomaly-detector-errors", "anomaly-detector-delay",
                                                     "rest-pod-latency"}
    blind = run_stack("staging", overrides={"emfEdge": {"enabled": False}, "synthetics": {"enabled": False}})
    assert blind.plan.of_type(TEMPLATE) == [] and not blind.plan.of_type(component.TOKEN)
    assert set(blind.outputs["gameDaySkipped"]) == set(component.EXPERIMENT_KEYS)


def test_prod_refuses_game_days_unless_allowed(run_stack: Any) -> None:
    result = run_stack("prod", overrides={"gameDays": {"enabled": True, "spotInterruption": {
        "asgName": "akidb-prod-rest-spot"}}})
    assert any("may only exist in ['staging']" in p for p in result.config_problems), result.config_problems


# ---------------------------------------------------------------------------------------------- rules fail
def test_rules_pass_on_the_plans(planned: dict[str, PlanResult]) -> None:
    for result in planned.values():
        for check in (rules.game_days_only_in_allowed_stacks, rules.game_days_stop_on_existing_alarms,
                      rules.game_days_bounded, rules.game_days_roles_scoped):
            assert list(check(result.plan)) == []


def test_experiment_outside_the_allowed_stacks(planned: dict[str, PlanResult]) -> None:
    staging = planned["staging"].plan
    spot = templates(planned["staging"])["rest-spot-interruption"]
    prod_cfg = planned["prod"].plan.config
    in_prod = Plan([*planned["prod"].plan.resources, spot], prod_cfg)
    assert "allowed only with gameDays.enabled" in messages(rules.game_days_only_in_allowed_stacks, in_prod)[0]
    off = Plan(staging.resources, dataclasses.replace(
        staging.config, game_days=dataclasses.replace(staging.config.game_days, enabled=False)))
    assert messages(rules.game_days_only_in_allowed_stacks, off)


def test_stop_conditions_missing_none_or_not_planned(planned: dict[str, PlanResult]) -> None:
    plan = planned["staging"].plan
    t = templates(planned["staging"])["anomaly-detector-errors"]
    check = rules.game_days_stop_on_existing_alarms
    assert "no stop condition" in messages(check, replaced(plan, t, stopConditions=[]))[0]
    assert "not a CloudWatch alarm ARN" in messages(check, replaced(plan, t, stopConditions=[{"source": "none"}]))[0]
    ghost = [{"source": "aws:cloudwatch:alarm",
              "value": "arn:aws:cloudwatch:us-east-1:111111111111:alarm:akidb-staging-no-such-alarm"}]
    assert "not in this plan" in messages(check, replaced(plan, t, stopConditions=ghost))[0]
    too_many = t.inputs["stopConditions"] * 2
    assert any("at most 5" in m for m in messages(check, replaced(plan, t, stopConditions=too_many)))


def test_unbounded_targets_and_durations(planned: dict[str, PlanResult]) -> None:
    plan = planned["staging"].plan
    found = templates(planned["staging"])
    check = rules.game_days_bounded
    spot = found["rest-spot-interruption"]
    target = spot.inputs["targets"][0]
    assert "never ALL" in messages(check, replaced(plan, spot, targets=[{**target, "selectionMode": "ALL"}]))[0]
    assert "COUNT from 1" in messages(check, replaced(plan, spot, targets=[{**target, "selectionMode": "COUNT(0)"}]))[0]
    bare = {k: v for k, v in target.items() if k not in ("resourceTags",)}
    assert "match everything" in messages(check, replaced(plan, spot, targets=[bare]))[0]
    errors = found["anomaly-detector-errors"]
    action = errors.inputs["actions"][0]
    long = {**action, "parameters": [{"key": "duration", "value": "PT2H"}]}
    assert "at most 60" in messages(check, replaced(plan, errors, actions=[long]))[0]
    none = {**action, "parameters": [p for p in action["parameters"] if p["key"] != "duration"]}
    assert "has no duration" in messages(check, replaced(plan, errors, actions=[none]))[0]


def test_roles_wider_than_their_targets(planned: dict[str, PlanResult]) -> None:
    plan = planned["staging"].plan
    spot = templates(planned["staging"])["rest-spot-interruption"]
    role_name = spot.inputs["roleArn"].rsplit("/", 1)[1]
    (policy,) = [p for p in plan.of_type("aws:iam/rolePolicy:RolePolicy") if p.inputs["role"] == role_name]
    doc = json.loads(policy.inputs["policy"])
    check = rules.game_days_roles_scoped

    def with_statements(fn: Any) -> Plan:
        stmts = [fn(dict(s)) for s in doc["Statement"]]
        return replaced(plan, policy, policy=json.dumps({**doc, "Statement": stmts}))

    def untagged(s: dict[str, Any]) -> dict[str, Any]:
        s.pop("Condition", None) if s.get("Sid") == "InterruptRestSpot" else None
        return s

    def star(s: dict[str, Any]) -> dict[str, Any]:
        return {**s, "Resource": "*"} if s.get("Sid") == "InterruptRestSpot" else s

    def other_asg(s: dict[str, Any]) -> dict[str, Any]:
        if s.get("Sid") == "InterruptRestSpot":
            s["Condition"] = {"StringEquals": {f"aws:ResourceTag/{component.ASG_TAG}": "akidb-staging-other"}}
        return s

    assert "without an aws:ResourceTag condition" in messages(check, with_statements(untagged))[0]
    assert messages(check, with_statements(lambda s: untagged(star(s))))
    assert "does not match the template's target tags" in messages(check, with_statements(other_asg))[0]
    (role,) = [r for r in plan.of_type("aws:iam/role:Role") if r.inputs["name"] == role_name]
    trust = json.loads(role.inputs["assumeRolePolicy"])
    trust["Statement"][0]["Principal"] = {"Service": ["fis.amazonaws.com", "lambda.amazonaws.com"]}
    assert "only fis.amazonaws.com" in messages(check, replaced(plan, role, assumeRolePolicy=json.dumps(trust)))[0]
    # IAM reads "x" and ["x"] alike: the string spelling is FIS only too.
    trust["Statement"][0]["Principal"] = {"Service": "fis.amazonaws.com"}
    assert not messages(check, replaced(plan, role, assumeRolePolicy=json.dumps(trust)))
    trust["Statement"][0]["Principal"] = {"AWS": "arn:aws:iam::111111111111:root"}
    assert "only fis.amazonaws.com" in messages(check, replaced(plan, role, assumeRolePolicy=json.dumps(trust)))[0]
    assert "not planned" in messages(check, replaced(plan, spot, roleArn="arn:aws:iam::111111111111:role/x"))[0]


def test_the_workflow_offers_every_experiment_and_runs_the_report(planned: dict[str, PlanResult]) -> None:
    import yaml

    from infra.core.paths import ROOT
    doc = yaml.safe_load((ROOT / ".github" / "workflows" / "game-day.yml").read_text())
    on = doc[True] if True in doc else doc["on"]  # YAML 1.1 reads the key `on` as true
    options = on["workflow_dispatch"]["inputs"]["experiment"]["options"]
    assert options == ["", *component.EXPERIMENT_KEYS] and "schedule" in on
    assert set(templates(planned["staging"])) <= set(component.EXPERIMENT_KEYS)
    runs = "\n".join(str(s.get("run", "")) for s in doc["jobs"]["game-day"]["steps"])
    for needed in ("aws fis start-experiment", "aws fis stop-experiment", "python -m infra.tools.game_day_report",
                   f'tags."{component.EXPERIMENT_TAG}"', f"tags.{component.EXPECT_TAG}",
                   f'tags."{component.RUNBOOK_TAG}"', f'tags."{component.FAULT_DELAY_TAG}"'):
        assert needed in runs, needed
