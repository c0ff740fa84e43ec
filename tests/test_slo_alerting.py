"""The slo-alerting component in the offline plan of both stacks, and its validation rules failing on bad input."""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Callable

import pytest

from infra.slo.rules import rule_files
from infra.slo.spec import load_slos
from infra.validation import Plan, PlannedResource
from infra.validation import slo as rules

SUB = "aws:sns/topicSubscription:TopicSubscription"
PROM_RULE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"


def _mine(result) -> list[str]:
    return [f"{v.rule}: {v.resource}: {v.message}" for v in result.violations
            if (v.rule in {"slo_rules_match_definitions", "slo_paging_routes", "runbook_scaling_scoped",
                          "no_secret_in_function_environment", "iam_least_privilege", "encryption_at_rest",
                          "k8s_openapi_schema", "log_retention"} and "slo" in (v.resource + v.message).lower())
            or "runbook" in v.resource or "alerting" in v.resource]


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_both_stacks_plan_the_component_cleanly(planned, stack: str) -> None:
    result = planned[stack]
    assert result.config_problems == []
    assert _mine(result) == []
    plan = result.plan
    s = plan.config.slo_alerting
    assert len(plan.of_type(PROM_RULE)) == len(rule_files(list(s.slos), symptoms=s.symptoms))
    for r in plan.of_type(PROM_RULE):
        assert r.inputs["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    for token in ("aws:apigatewayv2/api:Api", "aws:apigatewayv2/route:Route", "aws:apigatewayv2/stage:Stage",
                  "aws:dynamodb/table:Table", "aws:secretsmanager/secretVersion:SecretVersion",
                  "aws:lambda/eventSourceMapping:EventSourceMapping"):
        assert plan.of_type(token), token
    route = plan.of_type("aws:apigatewayv2/route:Route")[0]
    assert route.inputs["routeKey"] == "POST /pagerduty"
    assert result.outputs["runbookWebhookUrl"].endswith("/pagerduty")


def test_prod_pages_p0_p1_through_secret_endpoints_in_every_region(planned) -> None:
    result = planned["prod"]
    cfg = result.plan.config
    subs = result.plan.of_type(SUB)
    paged = {(s.region, s.inputs["topic"].rsplit("-", 1)[-1]) for s in subs if s.inputs["endpoint"] == "[secret]"}
    assert paged == {(r, sev) for r in cfg.alarm_regions for sev in ("p0", "p1")}
    tickets = [s for s in subs if s.inputs["endpoint"] == cfg.slo_alerting.ticket_webhook_url]
    # P2 of every region; the anomaly episodes and the runbook audit's refusals/errors are tickets too.
    assert {s.inputs["topic"].rsplit("-", 1)[-1] for s in tickets} == {"p2", "anomaly", "audit"}
    secrets = [r for r in result.plan.of_type("kubernetes:core/v1:Secret")
               if r.inputs["metadata"]["name"] == "alertmanager-pagerduty"]
    assert secrets and secrets[0].inputs["stringData"] == "[secret]"
    assert "REPLACE" not in json.dumps([r.inputs for r in result.plan.resources])
    assert result.outputs["sloAlertmanagerRoutes"] == {"P0": "pagerduty-critical", "P1": "pagerduty-error",
                                                       "P2": "tickets", "heartbeat": "deadmans-switch"}


def test_staging_routes_everything_to_tickets(planned) -> None:
    result = planned["staging"]
    subs = result.plan.of_type(SUB)
    assert subs and all(s.inputs["endpoint"] == result.plan.config.slo_alerting.ticket_webhook_url for s in subs)
    assert not [r for r in result.plan.of_type("kubernetes:core/v1:Secret")
                if r.inputs["metadata"]["name"] == "alertmanager-pagerduty"]
    assert set(result.outputs["sloSeverityRouting"]["us-east-1"].values()) == {"tickets"}


def test_deployed_rules_are_the_generated_ones_with_the_stack_links(run_stack) -> None:
    result = run_stack("staging", overrides={"sloAlerting": {"runbookBaseUrl": "https://rb.example.org"}})
    assert result.exit_code in (0, 1) and not _mine(result)
    text = json.dumps([r.inputs["spec"] for r in result.plan.of_type(PROM_RULE)])
    assert "https://rb.example.org/error-budget-fast-burn" in text
    s = result.plan.config.slo_alerting
    assert s.slos == tuple(load_slos())  # loaded once with the config, the same definitions
    assert len(rule_files(list(s.slos), symptoms=s.symptoms)) == len(result.plan.of_type(PROM_RULE))


def test_worker_may_scale_only_the_named_asgs(planned) -> None:
    plan = planned["prod"].plan
    docs = [json.loads(p.inputs["policy"]) for p in plan.of_type("aws:iam/rolePolicy:RolePolicy")
            if "runbook" in p.name or "slo-alerting" in p.name]
    scaling = [s for d in docs for s in d["Statement"] if "autoscaling:SetDesiredCapacity" in s["Action"]]
    assert len(scaling) == 1
    names = sorted(r.rsplit("/", 1)[-1] for r in scaling[0]["Resource"])
    # The one group the worker scales; an allow-listed group it never acts on gets no permission.
    assert names == [plan.config.slo_alerting.runbooks.scale_out_asg]
    describe = [s for d in docs for s in d["Statement"] if "autoscaling:DescribeAutoScalingGroups" in s["Action"]]
    assert describe[0]["Resource"] == "*" and describe[0]["Action"] == ["autoscaling:DescribeAutoScalingGroups"]


def test_webhook_secret_never_in_the_function_environment(planned) -> None:
    for fn in planned["prod"].plan.of_type("aws:lambda/function:Function"):
        if "runbook" in str(fn.inputs.get("name")):
            env = json.loads(fn.inputs["environment"]["variables"]["RUNBOOK_SETTINGS"])
            # The secret by name (GetSecretValue takes it as SecretId): its ARN ends in a suffix AWS picks.
            secrets = [s.inputs["name"] for s in planned["prod"].plan.of_type("aws:secretsmanager/secret:Secret")]
            assert env["secret_id"] in secrets
            assert not any("secret" in k and k != "secret_id" for k in env)


def test_config_rules_for_runbooks(run_stack) -> None:
    result = run_stack("prod", overrides={"sloAlerting": {"runbooks": {"scaleOutAsg": "akidb-other"}}})
    assert any("scaleOutAsg" in p and "allowedAsgs" in p for p in result.config_problems), result.config_problems
    result = run_stack("prod", overrides={"pagerduty": {"manage": False}},
                       remove=("pagerdutyRoutingKey", "pagerdutyCloudwatchKey"))
    assert any("pagerdutyRoutingKey" in p for p in result.config_problems)
    assert any("pagerdutyCloudwatchKey" in p and "CloudWatch integration key" in p for p in result.config_problems)


# ------------------------------------------------------------------------------------ rules fail on bad input
def _mutate(plan: Plan, match: Callable[[PlannedResource], bool], change: Callable[[dict], object]) -> Plan:
    out, hit = [], False
    for r in plan.resources:
        if match(r):
            inputs = copy.deepcopy(r.inputs)
            change(inputs)
            r, hit = dataclasses.replace(r, inputs=inputs), True
        out.append(r)
    assert hit, "the mutation matched nothing"
    return Plan(resources=out, config=plan.config, outputs=plan.outputs)


def _messages(rule, plan: Plan) -> list[str]:
    return [v.message for v in rule(plan)]


def test_rules_pass_on_the_real_plans(planned) -> None:
    for stack in ("staging", "prod"):
        plan = planned[stack].plan
        for rule in (rules.slo_rules_match_definitions, rules.slo_paging_routes, rules.runbook_scaling_scoped,
                     rules.no_secret_in_function_environment):
            assert _messages(rule, plan) == [], (stack, rule.__name__)


def test_edited_prometheus_rule_is_caught(planned) -> None:
    plan = planned["prod"].plan

    def edit(inputs: dict) -> None:
        inputs["spec"]["groups"][0]["rules"][0]["expr"] = "vector(0)"

    bad = _mutate(plan, lambda r: r.type == PROM_RULE and r.inputs["metadata"]["name"] == "akidb-slo", edit)
    assert any("differ from the generated rules" in m for m in _messages(rules.slo_rules_match_definitions, bad))
    unlabeled = _mutate(plan, lambda r: r.type == PROM_RULE,
                        lambda i: i["metadata"]["labels"].pop("release"))
    assert any("ruleSelector" in m for m in _messages(rules.slo_rules_match_definitions, unlabeled))


def test_plain_pagerduty_endpoint_and_paging_in_staging_are_caught(planned) -> None:
    prod = planned["prod"].plan
    leaked = _mutate(prod, lambda r: r.type == SUB and r.inputs["endpoint"] == "[secret]",
                     lambda i: i.update(endpoint="https://events.pagerduty.com/integration/abc/enqueue"))
    msgs = _messages(rules.slo_paging_routes, leaked)
    assert any("plain text" in m for m in msgs) and any("no PagerDuty subscription" in m for m in msgs)
    staging = planned["staging"].plan
    paging = _mutate(staging, lambda r: r.type == SUB and r.inputs["topic"].endswith("-p0"),
                     lambda i: i.update(endpoint="[secret]"))
    assert any("paging is off" in m for m in _messages(rules.slo_paging_routes, paging))


def test_scaling_an_unlisted_asg_is_caught(planned) -> None:
    plan = planned["prod"].plan

    def widen(inputs: dict) -> None:
        doc = json.loads(inputs["policy"])
        for s in doc["Statement"]:
            if "autoscaling:SetDesiredCapacity" in s["Action"]:
                s["Resource"] = ["*"]
        inputs["policy"] = json.dumps(doc)

    bad = _mutate(plan, lambda r: r.type == "aws:iam/rolePolicy:RolePolicy" and "worker" in r.name, widen)
    assert any("allow-listed" in m for m in _messages(rules.runbook_scaling_scoped, bad))


def test_secret_in_function_environment_is_caught(planned) -> None:
    plan = planned["prod"].plan
    bad = _mutate(plan, lambda r: r.type == "aws:lambda/function:Function" and "webhook" in r.name,
                  lambda i: i["environment"]["variables"].update(WEBHOOK_SECRET="[secret]"))
    assert _messages(rules.no_secret_in_function_environment, bad)


def test_chat_receiver_and_maintenance_windows_from_the_stack(run_stack) -> None:
    """With a Slack webhook secret the Alertmanager gets a chat receiver reading the mounted Secret; with a
    Chatbot channel every region's P2 topic reaches chat; maintenance windows become time_intervals."""
    import yaml

    from infra.slo.alertmanager import (
        RECEIVER_CHAT,
        SLACK_SECRET,
        SLACK_URL_FILE,
        Maintenance,
        alertmanager_config,
        maintenance_interval_name,
    )

    # Alertmanager refuses a range that does not ascend from sunday to saturday (`saturday:sunday`): two entries.
    window = {"service": "akidb-rest", "weekdays": ["saturday", "sunday"], "start": "01:00", "end": "03:00"}
    result = run_stack("prod", overrides={"sloAlerting": {
        "chatbot": {"slackTeamId": "T0123ABCD", "slackChannelId": "C0123ABCD"}, "maintenanceWindows": [window]}},
        secrets={"slackWebhookUrl": "https://hooks.slack.com/services/T0/B0/secret-part"})
    assert result.config_problems == [] and not _mine(result)
    plan = result.plan
    secret = next(r for r in plan.of_type("kubernetes:core/v1:Secret") if r.inputs["metadata"]["name"] == SLACK_SECRET)
    assert secret.inputs["stringData"] == "[secret]"
    assert result.outputs["sloAlertmanagerRoutes"]["P2"] == f"tickets,{RECEIVER_CHAT}"
    # The deployed config is a Secret (redacted in the plan): rebuild it from the parsed stack config.
    s = plan.config.slo_alerting
    am = alertmanager_config(list(s.slos), paging=True, chat=True, maintenance=[
        Maintenance(w.service, tuple(w.weekdays), w.start, w.end) for w in s.maintenance_windows])
    chat = next(r for r in am["receivers"] if r["name"] == RECEIVER_CHAT)["slack_configs"][0]
    assert chat["api_url_file"] == SLACK_URL_FILE and "secret-part" not in yaml.safe_dump(am)
    assert am["time_intervals"] == [{"name": maintenance_interval_name("akidb-rest"), "time_intervals": [
        {"weekdays": ["saturday", "sunday"], "times": [{"start_time": "01:00", "end_time": "03:00"}]}]}]
    bots = plan.of_type("aws:chatbot/slackChannelConfiguration:SlackChannelConfiguration")
    assert len(bots) == 1 and bots[0].inputs["guardrailPolicyArns"] == ["arn:aws:iam::aws:policy/AWSDenyAll"]
    topics = bots[0].inputs["snsTopicArns"]
    assert len(topics) == len(plan.config.alarm_regions) and all(t.endswith("-alerts-p2") for t in topics)


def test_edge_outage_pages_once_per_region_through_a_suppressible_composite(planned) -> None:
    from infra.components.edge_composite import MAINTENANCE_METRIC

    plan = planned["prod"].plan
    composites = plan.of_type("aws:cloudwatch/compositeAlarm:CompositeAlarm")
    regions = plan.config.emf_edge.edge_regions
    assert sorted(str(c.region) for c in composites) == sorted(regions)
    for c in composites:
        assert "errors" in c.inputs["alarmRule"] and c.inputs["alarmActions"][0].endswith("-alerts-p1")
        assert "maintenance" in c.inputs["actionsSuppressor"]["alarm"]
    edge_alarms = [a for a in plan.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
                   if "-edge-" in a.inputs["name"]]
    suppressors = [a for a in edge_alarms if a.inputs.get("metricName") == MAINTENANCE_METRIC]
    assert len(suppressors) == len(regions)
    assert all(a.inputs["alarmActions"][0].endswith("-alerts-p2") for a in edge_alarms)  # regional: tickets


def test_bad_maintenance_window_is_caught(planned) -> None:
    from infra.config.slo_alerting import MaintenanceWindow

    plan = planned["prod"].plan
    s = plan.config.slo_alerting
    windows = [MaintenanceWindow("akidb-rest", ["monday"], "04:00", "03:00"),
               MaintenanceWindow("no-such-service", ["monday"], "01:00", "02:00")]
    bad = dataclasses.replace(plan, config=dataclasses.replace(
        plan.config, slo_alerting=dataclasses.replace(s, maintenance_windows=windows)))
    msgs = _messages(rules.maintenance_windows_valid, bad)
    assert any("is not after start" in m for m in msgs) and any("has no alerts" in m for m in msgs)
    assert _messages(rules.maintenance_windows_valid, plan) == []


def test_webhook_route_has_its_own_throttle_and_the_state_table_resists_deletion(planned) -> None:  # type: ignore[no-untyped-def]
    """Issue 12: one shared throttle let an unrelated flood starve deliveries; the prod table lacked
    deletion protection (Pulumi's protect only guards `pulumi destroy`)."""
    from infra.components import runbook_automation

    for result in planned.values():
        (stage,) = result.plan.of_type("aws:apigatewayv2/stage:Stage")
        (route,) = stage.inputs["routeSettings"]
        assert route["routeKey"] == runbook_automation.WEBHOOK_ROUTE
        assert route["throttlingRateLimit"] == runbook_automation.WEBHOOK_ROUTE_RPS
        assert stage.inputs["defaultRouteSettings"]["throttlingRateLimit"] < route["throttlingRateLimit"]
        tables = result.plan.of_type("aws:dynamodb/table:Table")
        assert tables and all(t.inputs.get("deletionProtectionEnabled", False) is result.plan.config.protect_stateful
                              for t in tables)
