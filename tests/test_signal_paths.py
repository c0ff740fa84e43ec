"""The signal paths as data (infra/plan/signal_paths.py) and the rule over them (infra/validation/paths.py): both
real plans reach a person on every path, and each dead end of issue 23 is built and refused, naming the resource.

Runbook pages are read from a temporary directory generated from the catalogue, so these tests do not depend on
the pages written under docs/runbooks/."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from infra.components.slo_alerting import config_alertmanager
from infra.plan.model import Plan, PlannedResource
from infra.plan.signal_paths import build_paths, route_receivers
from infra.slo.alertmanager import (
    CHART_ALWAYS_FIRING,
    RECEIVER_NULL,
    RECEIVER_P0,
    RECEIVER_UNROUTED,
    expected_receivers,
)
from infra.slo.chart_alerts import CHART_ALERTS, CHART_SEVERITY_SCALE
from infra.slo.runbooks import Runbook, load_runbooks
from infra.tools.signal_paths_report import main as report_main
from infra.validation.paths import Catalogue, path_violations, plan_paths, stack_alertmanager
from lambdas.runbook_automation.runbook_ids import RUNBOOK_IDS

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
SUB = "aws:sns/topicSubscription:TopicSubscription"


@pytest.fixture
def catalogue(tmp_path: Path) -> Catalogue:
    runbooks = load_runbooks()
    for rid in runbooks:
        (tmp_path / f"{rid}.md").write_text(f"# {rid}\n")
    return Catalogue(runbooks, tmp_path, RUNBOOK_IDS)


def _replace(plan: Plan, old: PlannedResource, new: PlannedResource | None) -> Plan:
    resources = [new if r is old else r for r in plan.resources]
    return dataclasses.replace(plan, resources=[r for r in resources if r is not None])


def _with_description(plan: Plan, alarm: PlannedResource, description: str) -> Plan:
    return _replace(plan, alarm, dataclasses.replace(alarm, inputs={**alarm.inputs, "alarmDescription": description}))


def _messages(plan: Plan, catalogue: Catalogue, **kw: Any) -> list[tuple[str, str]]:
    return [(v.resource, v.message) for v in path_violations(plan, catalogue, **kw)]


def _alarm(plan: Plan, name_part: str) -> PlannedResource:
    return next(a for a in plan.of_type(ALARM) if name_part in str(a.inputs.get("name")))


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_every_signal_of_the_real_plans_reaches_a_person_with_a_runbook(planned: dict[str, Any], stack: str,
                                                                        catalogue: Catalogue) -> None:
    plan = planned[stack].plan
    graph = plan_paths(plan)
    assert _messages(plan, catalogue) == []
    kinds = {p.kind for p in graph.paths}
    assert {"alarm", "composite alarm", "budget", "cost anomaly", "publisher", "alert"} <= kinds
    # every alarm with an action names a catalogued runbook; the edge cold-start alarm the automation's one
    alarms = [p for p in graph.paths if p.kind in ("alarm", "composite alarm")]
    assert alarms and all(p.people and p.runbook in catalogue.runbooks for p in alarms)
    cold = [p for p in alarms if "-edge-cache-hit-rate-" in p.signal]
    assert cold and {p.runbook for p in cold} == {"lambda-edge-cold-start"}
    # the topics Lambdas publish to: anomaly episodes and the runbook audit reach the ticket webhook
    published = {p.targets[0].split()[2]: p.people for p in graph.paths if p.kind == "publisher"}
    env = plan.config.environment
    assert "https ticket webhook" in published[f"akidb-{env}-anomaly"]
    assert published[f"akidb-{env}-runbook-audit"] == ("https ticket webhook (filtered)",)


def test_a_page_route_reaches_pagerduty_by_the_alertmanager_tree(planned: dict[str, Any]) -> None:
    config = stack_alertmanager(planned["prod"].plan)
    assert config is not None
    assert route_receivers(config["route"], {"alertname": "ServiceDown", "service": "akidb-rest",
                                             "severity": "P0"}) == [RECEIVER_P0]
    assert route_receivers(config["route"], {"alertname": "X", "service": "akidb-rest", "severity": "P2"}) == [
        "tickets"]


def test_a_stripped_subscription_leaves_its_topic_and_every_alarm_on_it_dead(planned: dict[str, Any],
                                                                             catalogue: Catalogue) -> None:
    plan = planned["prod"].plan
    sub = next(s for s in plan.of_type(SUB) if str(s.inputs["topic"]).endswith(":akidb-prod-alerts-p1")
               and s.region == "eu-west-1")
    found = _messages(_replace(plan, sub, None), catalogue)
    topic = "SNS topic akidb-prod-alerts-p1 (eu-west-1)"
    assert any(r == topic and "nobody subscribes" in m for r, m in found)
    on_it = [p.signal for p in plan_paths(plan).paths if p.kind != "publisher" and topic in p.targets]
    dead = {r for r, m in found if "reaches no person" in m}
    assert on_it and dead == set(on_it)


@pytest.mark.parametrize("topic", ["anomaly", "runbook-audit"])
def test_the_dead_ends_found_on_main_are_refused(planned: dict[str, Any], catalogue: Catalogue, topic: str) -> None:
    """On main the anomaly and audit topics had publishers (the detector, the runbook functions) and no
    subscriber: taking the subscription away again is refused, naming the topic."""
    plan = planned["staging"].plan
    sub = next(s for s in plan.of_type(SUB) if str(s.inputs["topic"]).endswith(f":akidb-staging-{topic}"))
    found = _messages(_replace(plan, sub, None), catalogue)
    assert [r for r, m in found if "nobody subscribes" in m] == [f"SNS topic akidb-staging-{topic} (us-east-1)"]


def test_a_new_topic_a_function_publishes_to_without_subscriber(planned: dict[str, Any],
                                                                catalogue: Catalogue) -> None:
    plan = planned["staging"].plan
    policy = next(p for p in plan.of_type("aws:iam/rolePolicy:RolePolicy") if "sns:Publish" in str(p.inputs))
    doc = json.loads(policy.inputs["policy"])
    doc["Statement"].append({"Effect": "Allow", "Action": ["sns:Publish"],
                             "Resource": ["arn:aws:sns:us-east-1:111111111111:akidb-staging-orphan"]})
    topic = dataclasses.replace(plan.of_type("aws:sns/topic:Topic")[0], urn="urn:orphan", name="orphan",
                                region="us-east-1", inputs={"name": "akidb-staging-orphan"})
    plan = _replace(plan, policy, dataclasses.replace(policy, inputs={**policy.inputs, "policy": json.dumps(doc)}))
    plan = dataclasses.replace(plan, resources=[*plan.resources, topic])
    found = _messages(plan, catalogue)
    assert [r for r, _ in found] == ["SNS topic akidb-staging-orphan (us-east-1)"]
    assert f"role {policy.inputs['role']}" in found[0][1]


def test_a_path_to_a_person_is_the_subscription_kind_not_a_key(planned: dict[str, Any],
                                                             catalogue: Catalogue) -> None:
    """PagerDuty as code may give the endpoint as an output unknown at preview, under another resource name."""
    plan = planned["prod"].plan
    for sub in [s for s in plan.of_type(SUB) if s.inputs.get("endpoint") == "[secret]"]:
        plan = _replace(plan, sub, dataclasses.replace(sub, name=sub.name.replace("pagerduty", "pd-service"),
                                                       inputs={**sub.inputs, "endpoint": None}))
    assert _messages(plan, catalogue) == []
    # ... but a subscriber that is no person (a Lambda) does not count as one
    sub = next(s for s in plan.of_type(SUB) if s.region == "eu-west-1" and str(s.inputs["topic"]).endswith("-p1"))
    plan = _replace(plan, sub, dataclasses.replace(sub, inputs={
        **sub.inputs, "protocol": "lambda", "endpoint": "arn:aws:lambda:eu-west-1:222222222222:function:relay"}))
    assert any("reaches no person" in m for _, m in _messages(plan, catalogue))


@pytest.mark.parametrize(("description", "expected"), [
    ("edge errors [runbook:no-such-runbook]", "runbook id 'no-such-runbook' is not in rules/runbooks.yaml"),
    ("edge errors, no runbook named", "names no runbook"),
    ("edge errors: see https://grafana.akidb.internal/d/akidb-edge/ [runbook:edge-errors]",
     "no Grafana dashboard of this stack or the repository has that uid"),
    ("edge errors: see https://console.aws.amazon.com/cloudwatch/home?region=us-east-1#dashboards/dashboard/"
     "akidb-prod-nothing [runbook:edge-errors]", "no CloudWatch dashboard akidb-prod-nothing in us-east-1"),
    ("edge errors: see https://wiki.example.com/edge [runbook:edge-errors]", "not a runbook"),
])
def test_an_alarm_naming_what_does_not_exist(planned: dict[str, Any], catalogue: Catalogue, description: str,
                                             expected: str) -> None:
    plan = planned["prod"].plan
    alarm = _alarm(plan, "-edge-errors-eu-west-1")
    found = _messages(_with_description(plan, alarm, description), catalogue)
    assert len(found) == 1 and found[0][0] == f"CloudWatch alarm {alarm.inputs['name']} (eu-west-1)"
    assert expected in found[0][1]


def test_the_deployed_edge_board_resolves(planned: dict[str, Any], catalogue: Catalogue) -> None:
    plan = planned["prod"].plan
    alarm = _alarm(plan, "-edge-errors-eu-west-1")
    board = ("https://console.aws.amazon.com/cloudwatch/home?region=us-east-1#dashboards/dashboard/akidb-prod-edge "
             "[runbook:edge-errors]")
    assert _messages(_with_description(plan, alarm, board), catalogue) == []


def test_the_cold_start_runbook_links_a_board_the_stack_deploys(planned: dict[str, Any],
                                                              catalogue: Catalogue) -> None:
    plan = planned["prod"].plan
    fn = next(f for f in plan.of_type("aws:lambda/function:Function") if "runbook-worker" in f.inputs["name"])
    settings = json.loads(fn.inputs["environment"]["variables"]["RUNBOOK_SETTINGS"])
    assert settings["edge_dashboard_url"].endswith("#dashboards/dashboard/akidb-prod-edge")
    settings["edge_dashboard_url"] = "https://grafana.akidb.internal/d/akidb-edge/"  # what main linked
    broken = dataclasses.replace(fn, inputs={**fn.inputs, "environment": {"variables": {
        "RUNBOOK_SETTINGS": json.dumps(settings)}}})
    found = _messages(_replace(plan, fn, broken), catalogue)
    assert [r for r, _ in found] == [f"function {fn.inputs['name']} (RUNBOOK_SETTINGS)"]
    assert "akidb-edge" in found[0][1]


def test_a_runbook_without_its_page(planned: dict[str, Any], catalogue: Catalogue) -> None:
    plan = planned["prod"].plan
    (catalogue.pages_dir / "edge-errors.md").unlink()
    found = _messages(plan, catalogue)
    assert found and all("'edge-errors' has no page edge-errors.md" in m for _, m in found)
    assert {r for r, _ in found} == {p.signal for p in plan_paths(plan).paths if p.runbook == "edge-errors"}


def test_an_automated_runbook_the_automation_does_not_dispatch(planned: dict[str, Any],
                                                               catalogue: Catalogue) -> None:
    """Manual ids are fine; an id marked automated must be one the webhook's worker dispatches."""
    plan = planned["prod"].plan
    runbooks = dict(catalogue.runbooks)
    runbooks["service-down"] = Runbook("service-down", "down", "scale-out")
    found = _messages(plan, dataclasses.replace(catalogue, runbooks=runbooks))
    assert found and all("'service-down' is catalogued as automated" in m for _, m in found)


def test_an_alert_routed_to_a_receiver_without_integration(planned: dict[str, Any], catalogue: Catalogue) -> None:
    plan = planned["prod"].plan
    config = copy.deepcopy(config_alertmanager(plan.config, "222222222222"))
    for receiver in config["receivers"]:
        if receiver["name"] == RECEIVER_P0:
            receiver.pop("pagerduty_configs")
    found = _messages(plan, catalogue, graph=build_paths(plan, config))
    p0 = {p.signal for p in plan_paths(plan).paths if p.kind == "alert" and RECEIVER_P0 in p.targets}
    assert p0 and {r for r, m in found if "reaches no person" in m} == p0


def test_with_slo_alerting_off_the_topics_are_read_outside_the_stack(planned: dict[str, Any],
                                                                    catalogue: Catalogue) -> None:
    """No subscription at all is then the operator's declared choice; runbooks and links are still judged."""
    plan = planned["staging"].plan
    config = dataclasses.replace(plan.config, slo_alerting=dataclasses.replace(plan.config.slo_alerting,
                                                                               enabled=False))
    plan = dataclasses.replace(plan, config=config, resources=[r for r in plan.resources if r.type != SUB])
    assert _messages(plan, catalogue) == []
    alarm = _alarm(plan, "-edge-errors-eu-west-1")
    assert [m for _, m in _messages(_with_description(plan, alarm, "x [runbook:nope]"), catalogue)
            if "'nope' is not in rules/runbooks.yaml" in m]


def test_the_report_prints_the_paths_of_a_stack(capsys: pytest.CaptureFixture[str]) -> None:
    assert report_main(["--stack", "staging"]) == 0
    out = capsys.readouterr().out
    assert "| publisher | 1 | SNS topic akidb-staging-anomaly (us-east-1) | https ticket webhook |" in out
    assert "Dead ends: 0" in out


# ------------------------------------------------------------------- kube-prometheus-stack's own alerts
def _chart_paths(graph: Any) -> dict[str, Any]:
    return {p.signal: p for p in graph.paths if p.kind == "chart alert"}


def _chart_signal(alertname: str) -> str:
    alert = next(a for a in CHART_ALERTS if a.alertname == alertname)
    return f"kube-prometheus-stack alert {alert.alertname} (severity {alert.severity})"


def _without_routes(node: dict[str, Any], matcher: str) -> None:
    node["routes"] = [r for r in node.get("routes") or [] if matcher not in (r.get("matchers") or [])]
    for child in node["routes"]:
        _without_routes(child, matcher)


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_every_chart_alert_shape_is_routed_as_the_generator_says(planned: dict[str, Any], stack: str) -> None:
    plan = planned[stack].plan
    assert {a.severity for a in CHART_ALERTS} == set(CHART_SEVERITY_SCALE)
    paths = _chart_paths(plan_paths(plan))
    assert len(paths) == len(CHART_ALERTS)
    chat = plan.config.secrets.slack_webhook_url is not None
    for alert in CHART_ALERTS:
        p = paths[_chart_signal(alert.alertname)]
        shape = alert.alertname if alert.alertname in CHART_ALWAYS_FIRING else alert.severity
        assert list(p.targets) == expected_receivers(shape, paging=plan.config.slo_alerting.paging_enabled,
                                                     chat=chat), alert
        assert not p.by_default
        assert p.silenced == alert.may_silence and bool(p.people) != alert.may_silence


def test_a_missing_critical_route_names_the_chart_alert(planned: dict[str, Any], catalogue: Catalogue) -> None:
    plan = planned["prod"].plan
    config = copy.deepcopy(config_alertmanager(plan.config, "222222222222"))
    _without_routes(config["route"], 'severity="critical"')
    found = _messages(plan, catalogue, graph=build_paths(plan, config))
    critical = {_chart_signal(a.alertname) for a in CHART_ALERTS if a.severity == "critical"}
    assert critical and {r for r, _ in found} == critical
    assert all("matches no route" in m and RECEIVER_UNROUTED in m for _, m in found)


def test_a_critical_receiver_without_integration_names_the_chart_alert(planned: dict[str, Any],
                                                                      catalogue: Catalogue) -> None:
    plan = planned["prod"].plan
    config = copy.deepcopy(config_alertmanager(plan.config, "222222222222"))
    receiver = expected_receivers("critical", paging=True)[0]
    for r in config["receivers"]:
        if r["name"] == receiver:
            r.pop("pagerduty_configs")
    found = _messages(plan, catalogue, graph=build_paths(plan, config))
    critical = {_chart_signal(a.alertname) for a in CHART_ALERTS if a.severity == "critical"}
    assert critical and critical <= {r for r, m in found if "reaches no person" in m}


def test_a_silenced_critical_or_an_unrouted_watchdog_is_refused(planned: dict[str, Any],
                                                                catalogue: Catalogue) -> None:
    plan = planned["prod"].plan
    silenced = copy.deepcopy(config_alertmanager(plan.config, "222222222222"))
    routes = silenced["route"]["routes"]
    routes.insert(0, {"receiver": RECEIVER_NULL, "matchers": ['alertname="KubeletDown"']})
    found = _messages(plan, catalogue, graph=build_paths(plan, silenced))
    assert [r for r, m in found if "is silenced" in m] == [_chart_signal("KubeletDown")]
    # the always-firing alerts without their null routes fall to the catch-all, which would notify every 12h
    loud = copy.deepcopy(config_alertmanager(plan.config, "222222222222"))
    _without_routes(loud["route"], f'alertname=~"{"|".join(CHART_ALWAYS_FIRING)}"')
    _without_routes(loud["route"], 'severity="none"')
    found = _messages(plan, catalogue, graph=build_paths(plan, loud))
    assert {r for r, m in found if "matches no route" in m} == {
        _chart_signal(a) for a in CHART_ALWAYS_FIRING}
