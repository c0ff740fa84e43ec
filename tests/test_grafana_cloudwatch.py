"""Grafana reads CloudWatch: the provisioned datasource (no keys), its read-only IRSA role, the outcomes board drawn
from the same definitions as the CloudWatch outcomes board, and the rule that every panel's datasource exists."""

from __future__ import annotations

import copy
import dataclasses
import json
from typing import Any

import pytest
import yaml
from runbook_automation import timeline

from infra.components.dashboards import GRAFANA_CLOUDWATCH_ACTIONS
from infra.dashboard_defs import outcomes
from infra.dashboard_defs.grafana import CLOUDWATCH_UID, cloudwatch_targets
from infra.validation import Plan, PlannedResource
from infra.validation.dashboards import (
    datasource_config_maps,
    grafana_config_maps,
    grafana_datasources_exist,
)

RULE = "grafana_datasources_exist"


def _board(plan: Plan, key: str = "outcomes") -> tuple[PlannedResource, dict[str, Any]]:
    cm = next(c for c in grafana_config_maps(plan) if f"{key}.json" in c.inputs["data"])
    return cm, json.loads(cm.inputs["data"][f"{key}.json"])


def _with_board(plan: Plan, board: dict[str, Any], key: str = "outcomes") -> Plan:
    cm, _ = _board(plan, key)
    changed = dataclasses.replace(cm, inputs={**cm.inputs, "data": {f"{key}.json": json.dumps(board)}})
    return dataclasses.replace(plan, resources=[changed if r is cm else r for r in plan.resources])


def _replace(plan: Plan, old: PlannedResource, inputs: dict[str, Any]) -> Plan:
    new = dataclasses.replace(old, inputs=inputs)
    return dataclasses.replace(plan, resources=[new if r is old else r for r in plan.resources])


def _messages(plan: Plan) -> list[str]:
    return [f"{v.resource}: {v.message}" for v in grafana_datasources_exist(plan)]


def _role_and_policy(plan: Plan) -> tuple[PlannedResource, PlannedResource]:
    role = next(r for r in plan.of_type("aws:iam/role:Role") if r.inputs["name"].endswith("-grafana-cloudwatch"))
    policy = next(r for r in plan.of_type("aws:iam/rolePolicy:RolePolicy") if r.inputs["role"] == role.inputs["name"])
    return role, policy


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_each_stack_provisions_a_keyless_cloudwatch_datasource_and_its_read_only_role(planned, stack):
    plan = planned[stack].plan
    cfg = plan.config
    (cm,) = datasource_config_maps(plan)
    meta = cm.inputs["metadata"]
    assert meta["labels"][cfg.dashboards.grafana_cloudwatch.datasource_label] == "1"
    assert meta["namespace"] == cfg.kubernetes.namespace
    (text,) = cm.inputs["data"].values()
    (ds,) = yaml.safe_load(text)["datasources"]
    assert (ds["type"], ds["uid"]) == ("cloudwatch", CLOUDWATCH_UID)
    assert ds["jsonData"] == {"authType": "default", "defaultRegion": cfg.aws.region} and "secureJsonData" not in ds
    role, policy = _role_and_policy(plan)
    issuer = cfg.kubernetes.oidc_provider_arn.split(":oidc-provider/", 1)[1]
    (trust,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert trust["Condition"]["StringEquals"][f"{issuer}:sub"] == (
        f"system:serviceaccount:{cfg.kubernetes.namespace}:{cfg.dashboards.grafana_cloudwatch.service_account}")
    (stmt,) = json.loads(policy.inputs["policy"])["Statement"]
    assert stmt["Action"] == sorted(GRAFANA_CLOUDWATCH_ACTIONS)
    assert stmt["Condition"]["StringEquals"]["aws:RequestedRegion"] == cfg.alarm_regions
    assert _messages(plan) == []


def test_the_grafana_board_draws_what_the_cloudwatch_board_draws(planned):
    """Same figures, statistics, period, region and target lines on both boards (one definition)."""
    plan = planned["prod"].plan
    _, board = _board(plan)
    cw = json.loads(next(d for d in plan.of_type("aws:cloudwatch/dashboard:Dashboard")
                         if d.inputs["dashboardName"].endswith("-outcomes")).inputs["dashboardBody"])
    cw_lines = {(m[1], m[-1]["stat"], m[-1]["period"], m[-1]["region"], tuple(m[2:-1]))
                for w in cw["widgets"] if w["type"] == "metric"
                for m in w["properties"]["metrics"] if isinstance(m[-1], dict) and "expression" not in m[-1]}
    targets = cloudwatch_targets(board)
    grafana_lines = {(t["metricName"], t["statistic"], int(t["period"]), t["region"],
                      tuple(x for k, v in t["dimensions"].items() for x in (k, "prod" if v == "*" else v)))
                     for _, t in targets if t["metricName"] == outcomes.DEPLOY_METRIC or not t["dimensions"]}
    # The weekly figures and the deploy markers (one line per phase; Grafana's board, shared by the stacks, draws
    # every stack's with a wildcard on Stack, the stack's CloudWatch board its own).
    assert grafana_lines == cw_lines and len(cw_lines) == sum(len(outcomes.weekly_statistics(t))
                                                              for t in outcomes.TARGETS) + len(outcomes.DEPLOY_PHASES)
    for t in outcomes.TARGETS:
        panels = [p for p in board["panels"] if p["title"].startswith(t.title)]
        assert len(panels) == 2  # stack-wide and per service and severity
        steps = [[s["value"] for s in p["fieldConfig"]["defaults"]["thresholds"]["steps"]] for p in panels]
        assert steps == ([[None, t.limit]] * 2 if t.limit else [[None]] * 2)
        per_service = [q for _, q in targets if q["metricName"] == t.metric and q["dimensions"]]
        assert [(q["statistic"], q["dimensions"]) for q in per_service] == [
            (t.statistic, {d: "*" for d in timeline.DIMENSIONS})]
    assert {p["datasource"]["uid"] for p in board["panels"] if p["type"] != "row"} == {CLOUDWATCH_UID}
    assert board["templating"]["list"] == []  # no Prometheus selector on a CloudWatch-only board


@pytest.mark.parametrize(("mutate", "expected"), [
    (lambda b: b["panels"][1].update(datasource={"type": "cloudwatch", "uid": "someone-elses"}),
     "datasource uid 'someone-elses' is not provisioned by the stack"),
    (lambda b: b["panels"][1]["targets"][0].update(datasource={"type": "prometheus", "uid": "${datasource}"}),
     "datasource variable $datasource is not defined on the board"),
    (lambda b: b["panels"][1]["targets"][0].update(datasource={"type": "prometheus", "uid": CLOUDWATCH_UID}),
     "is a cloudwatch datasource, not prometheus"),
    (lambda b: b["panels"][1]["targets"][0].update(metricName="TimeToDetekt"),
     "TimeToDetekt is emitted by nothing in this stack"),
    (lambda b: b["panels"][1]["targets"][0].update(region="eu-west-1"),
     "is emitted in us-east-1, not eu-west-1"),
    (lambda b: next(p for p in b["panels"] if "per service" in p["title"])["targets"][0].update(
        dimensions={"Service": "*"}), "a wildcard over {'Service': '*'}"),
])
def test_rule_fails_on_a_panel_whose_datasource_or_metric_does_not_exist(planned, mutate, expected):
    plan = planned["staging"].plan
    _, board = _board(plan)
    broken = copy.deepcopy(board)
    mutate(broken)
    msgs = _messages(_with_board(plan, broken))
    assert any(expected in m for m in msgs), msgs


def test_rule_follows_a_datasource_variable_to_its_type(planned):
    plan = planned["staging"].plan
    _, board = _board(plan, "slo")
    assert _messages(plan) == []
    board["templating"]["list"][0]["query"] = "loki"
    msgs = _messages(_with_board(plan, board, "slo"))
    assert msgs and all("variable $datasource lists loki datasources, the query is prometheus" in m for m in msgs)


@pytest.mark.parametrize(("change", "expected"), [
    ({"authType": "keys"}, "authType 'keys'"),
    ({"accessKey": "AKIA..."}, "static credentials accessKey"),
    ({"defaultRegion": "eu-west-1"}, "not the stack's home region us-east-1"),
    ({"defaultRegion": "mars-1"}, "is not an AWS region"),
])
def test_rule_refuses_keys_and_wrong_regions_in_the_datasource(planned, change, expected):
    plan = planned["staging"].plan
    (cm,) = datasource_config_maps(plan)
    (key, text), = cm.inputs["data"].items()
    doc = yaml.safe_load(text)
    doc["datasources"][0]["jsonData"].update(change)
    msgs = _messages(_replace(plan, cm, {**cm.inputs, "data": {key: yaml.safe_dump(doc)}}))
    assert any(expected in m for m in msgs), msgs


def test_rule_refuses_a_role_that_writes_or_trusts_another_service_account(planned):
    plan = planned["staging"].plan
    role, policy = _role_and_policy(plan)
    doc = json.loads(policy.inputs["policy"])
    doc["Statement"][0]["Action"].append("cloudwatch:PutDashboard")
    msgs = _messages(_replace(plan, policy, {**policy.inputs, "policy": json.dumps(doc)}))
    assert any("also allows cloudwatch:PutDashboard" in m for m in msgs), msgs
    trust = json.loads(role.inputs["assumeRolePolicy"])
    cond = trust["Statement"][0]["Condition"]["StringEquals"]
    sub = next(k for k in cond if k.endswith(":sub"))
    cond[sub] = "system:serviceaccount:default:default"
    msgs = _messages(_replace(plan, role, {**role.inputs, "assumeRolePolicy": json.dumps(trust)}))
    assert any("expected system:serviceaccount:observability:kube-prometheus-stack-grafana" in m for m in msgs)
    without = dataclasses.replace(plan, resources=[r for r in plan.resources if r is not role])
    assert any("no IAM role akidb-staging-grafana-cloudwatch" in m for m in _messages(without))


def test_switched_off_there_is_no_datasource_role_or_board(run_stack):
    result = run_stack("staging", overrides={"dashboards": {"grafanaCloudwatch": {"enabled": False}}})
    assert result.config_problems == [] and _messages(result.plan) == []
    assert datasource_config_maps(result.plan) == []
    assert not [r for r in result.plan.of_type("aws:iam/role:Role") if "grafana" in r.inputs["name"]]
    assert {k for cm in grafana_config_maps(result.plan) for k in cm.inputs["data"]} == {"golden-signals.json",
                                                                                      "slo.json"}


def test_without_the_timeline_the_datasource_stays_but_the_board_goes(run_stack):
    result = run_stack("staging", overrides={"sloAlerting": {"runbooks": {"enabled": False}}})
    assert result.config_problems == [] and _messages(result.plan) == []
    assert len(datasource_config_maps(result.plan)) == 1
    assert "outcomes.json" not in {k for cm in grafana_config_maps(result.plan) for k in cm.inputs["data"]}


def test_a_cluster_without_oidc_provider_is_a_config_error(run_stack):
    result = run_stack("staging", overrides={"kubernetes": {"oidcProviderArn": None}, "xray": {"enabled": False},
                                             "alertingPath": {"heartbeat": {"enabled": False}}})
    assert result.exit_code == 2
    (problem,) = result.config_problems
    assert "dashboards.grafanaCloudwatch.enabled" in problem and "kubernetes.oidcProviderArn" in problem
