"""The alerting path watched: every alarm action target and every other notification path in the plan has an
alarm of its own, and the rule fails when one is missing."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest

from infra.components.alerting_path import FAILURE_ROUTE
from infra.components.severity_topics import SEVERITIES
from infra.validation.alerting_path import PATH_METRICS, alerting_path_watched, notification_paths

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"


def action_targets(plan: Any) -> set[tuple[str | None, str]]:
    """Every SNS topic any alarm notifies (region, topic name), read straight from the plan."""
    out = set()
    for a in plan.of_type(ALARM, "aws:cloudwatch/compositeAlarm:CompositeAlarm"):
        for key in ("alarmActions", "okActions", "insufficientDataActions"):
            for arn in a.inputs.get(key) or []:
                parts = str(arn).split(":")
                out.add((parts[3], parts[5]))
    return out


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_every_action_target_and_path_has_its_own_alarm(planned: dict[str, Any], stack: str) -> None:
    plan = planned[stack].plan
    paths = notification_paths(plan)
    topics = {(region, ident) for kind, _, region, ident in paths if kind == "topic"}
    assert action_targets(plan) <= topics
    # every severity topic of every alarm region (P0 has subscriptions even if no CloudWatch alarm pages it)
    assert {(r, f"{plan.config.service}-{plan.config.environment}-alerts-{s.lower()}")
            for r in plan.config.alarm_regions for s in SEVERITIES} <= topics
    kinds = {kind for kind, *_ in paths}
    assert {"topic", "queue", "function", "api", "canary", "published"} <= kinds
    assert list(alerting_path_watched(plan)) == []


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_delivery_failures_leave_by_another_severity(planned: dict[str, Any], stack: str) -> None:
    plan = planned[stack].plan
    failed = [a for a in plan.of_type(ALARM) if a.inputs.get("metricName") == "NumberOfNotificationsFailed"
              and re.search(r"-alerts-p[0-2]$", str(a.inputs["dimensions"]["TopicName"]))]
    assert len(failed) == len(SEVERITIES) * len(plan.config.alarm_regions)
    for a in failed:
        watched = a.inputs["dimensions"]["TopicName"]
        severity = watched.rsplit("-", 1)[-1].upper()
        target = a.inputs["alarmActions"][0].rsplit(":", 1)[-1]
        assert target.endswith(FAILURE_ROUTE[severity].lower()) and target != watched


def _without(plan: Any, predicate: Any) -> Any:
    return dataclasses.replace(plan, resources=[r for r in plan.resources if not predicate(r)])


@pytest.mark.parametrize("kind", sorted(PATH_METRICS))
def test_rule_fails_when_a_path_loses_its_alarm(planned: dict[str, Any], kind: str) -> None:
    plan = planned["prod"].plan
    _, label, region, ident = next(p for p in notification_paths(plan) if p[0] == kind)
    namespace, metrics, dim = PATH_METRICS[kind]

    def watches_it(r: Any) -> bool:
        return (r.type == ALARM and r.region == region and r.inputs.get("namespace") == namespace
                and r.inputs.get("metricName") in metrics and str((r.inputs.get("dimensions") or {}).get(dim)) == ident)

    found = list(alerting_path_watched(_without(plan, watches_it)))
    assert [v.resource for v in found] == [label]


def test_a_new_unwatched_subscriber_is_found(planned: dict[str, Any]) -> None:
    plan = planned["staging"].plan
    sub = plan.of_type("aws:sns/topicSubscription:TopicSubscription")[0]
    extra = dataclasses.replace(sub, name="extra", urn=sub.urn + "-extra", inputs={
        **sub.inputs, "protocol": "lambda", "endpoint": "arn:aws:lambda:us-east-1:111111111111:function:pager-relay"})
    found = list(alerting_path_watched(dataclasses.replace(plan, resources=[*plan.resources, extra])))
    assert [v.resource for v in found] == ["function pager-relay (us-east-1)"]


def _alarms_named(plan: Any, part: str) -> list[Any]:
    return [a for a in plan.of_type(ALARM) if part in str(a.inputs.get("name"))]


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_the_anomaly_and_audit_topics_have_delivery_alarms_to_another_path(planned: dict[str, Any],
                                                                           stack: str) -> None:
    plan = planned[stack].plan
    env = plan.config.environment
    for topic, severity in ((f"akidb-{env}-anomaly", "p1"), (f"akidb-{env}-runbook-audit", "p2")):
        (alarm,) = [a for a in plan.of_type(ALARM) if a.inputs.get("metricName") == "NumberOfNotificationsFailed"
                    and a.inputs["dimensions"]["TopicName"] == topic]
        assert alarm.inputs["alarmActions"][0].endswith(f"-alerts-{severity}")


def test_a_wrong_webhook_secret_pages_and_4xx_tickets(planned: dict[str, Any]) -> None:
    plan = planned["prod"].plan
    cfg = plan.config.alerting_path
    (unauthorized,) = _alarms_named(plan, "runbook-api-401")
    (rejected,) = _alarms_named(plan, "runbook-api-4xx")
    assert unauthorized.inputs["alarmActions"][0].endswith("-alerts-p1")
    assert rejected.inputs["alarmActions"][0].endswith("-alerts-p2")
    assert unauthorized.inputs["threshold"] == cfg.webhook_401_share and rejected.inputs["threshold"] == \
        cfg.webhook_4xx_share
    # the 401 count comes from the API's access log, by a metric filter on the status the log format writes
    (log_filter,) = [f for f in plan.of_type("aws:cloudwatch/logMetricFilter:LogMetricFilter")
                     if f.inputs["logGroupName"].startswith("/aws/apigateway/")]  # the logs component's count too
    api_logs = next(s for s in plan.of_type("aws:apigatewayv2/stage:Stage"))
    assert '"status": "$context.status"' in api_logs.inputs["accessLogSettings"]["format"]
    assert log_filter.inputs["pattern"] == '{ $.status = "401" }'
    metric = log_filter.inputs["metricTransformation"]
    used = [q["metric"] for q in unauthorized.inputs["metricQueries"] if q.get("metric")]
    assert {"namespace": metric["namespace"], "metricName": metric["name"]}.items() <= next(
        m for m in used if m["metricName"] == metric["name"]).items()
    assert "[runbook:runbook-webhook-rejected]" in unauthorized.inputs["alarmDescription"]


@pytest.mark.parametrize("table", ["runbook-state", "incident-timeline"])
def test_the_runbook_tables_alarm_on_throttles_and_system_errors(planned: dict[str, Any], table: str) -> None:
    plan = planned["prod"].plan
    name = f"akidb-prod-{table}"
    for kind, metrics in (("throttles", {"ReadThrottleEvents", "WriteThrottleEvents"}), ("system-errors",
                                                                                        {"SystemErrors"})):
        (alarm,) = _alarms_named(plan, f"-{table}-{kind}-")
        queried = [q["metric"] for q in alarm.inputs["metricQueries"] if q.get("metric")]
        assert {m["metricName"] for m in queried} == metrics
        assert {m["dimensions"]["TableName"] for m in queried} == {name}
        assert alarm.inputs["alarmActions"][0].endswith("-alerts-p2")
