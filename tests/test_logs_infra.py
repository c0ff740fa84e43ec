"""Logs in both plans (issue 32): every log group archived to an encrypted, expiring bucket of its Region, the
Logs Insights queries per concern, the log-based alarms through the stack's alarm definitions, and the plan rule
that refuses a log group without an archive."""

from __future__ import annotations

import dataclasses
import json

import pytest

from infra.components.logs import (
    ARCHIVE_FILTER,
    ARCHIVE_RUNBOOK,
    FIREHOSE,
    FRESHNESS,
    FRESHNESS_BUFFERS,
    NAMESPACE,
    REFUSED_ACTIONS,
    SIGNATURE_FAILURES,
    SUCCESS,
)
from infra.dashboard_defs.cloudwatch import widget_parts
from infra.dashboard_defs.log_queries import queries
from infra.offline.runbook_facts import log_queries, stack_facts
from infra.slo import stack_facts as sf
from infra.slo.runbooks import marked_runbook
from infra.slo.spec import logs_insights_of, logs_insights_url
from infra.validation.logs import log_widgets_are_saved_queries

STACKS = ("staging", "prod")


@pytest.mark.parametrize("stack", STACKS)
def test_every_log_group_is_archived_encrypted_and_expiring(planned, stack: str) -> None:
    plan = planned[stack].plan
    assert plan is not None
    cfg = plan.config
    groups = {(g.region, g.inputs["name"]) for g in plan.of_type("aws:cloudwatch/logGroup:LogGroup")}
    subs = plan.of_type("aws:cloudwatch/logSubscriptionFilter:LogSubscriptionFilter")
    assert {(s.region, s.inputs["logGroup"]) for s in subs} == groups and len(subs) == len(groups)
    assert all(s.inputs["name"].startswith(ARCHIVE_FILTER) and s.inputs["filterPattern"] == "" for s in subs)
    streams = {s.region: s for s in plan.of_type("aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream")}
    assert set(streams) == {r for r, _ in groups}
    for region, stream in streams.items():
        assert stream.inputs["serverSideEncryption"]["keyType"] == "CUSTOMER_MANAGED_CMK"
        bucket = stream.inputs["extendedS3Configuration"]["bucketArn"].rpartition(":")[2]
        assert bucket == f"{cfg.service}-{cfg.environment}-logs-archive-{region}"
        life = next(r for r in plan.of_type("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")
                    if r.inputs["bucket"] == bucket)
        assert life.inputs["rules"][0]["expiration"]["days"] == cfg.logs.archive_days
        sse = next(r for r in plan.of_type(
            "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")
            if r.inputs["bucket"] == bucket)
        assert sse.inputs["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "aws:kms"


@pytest.mark.parametrize("stack", STACKS)
def test_archive_roles_are_least_privilege(planned, stack: str) -> None:
    plan = planned[stack].plan
    assert plan is not None
    policies = {p.name: json.loads(p.inputs["policy"]) for p in plan.of_type("aws:iam/rolePolicy:RolePolicy")
                if p.name.startswith("logs-")}
    assert policies
    for name, doc in policies.items():
        for st in doc["Statement"]:
            assert "*" not in json.dumps(st["Action"]), (name, st)
            resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
            assert all(r != "*" for r in resources), (name, st)
            if name.startswith("logs-logs-policy"):
                assert st["Action"] == ["firehose:PutRecord", "firehose:PutRecordBatch"]
            if any("kms:" in a for a in st["Action"]):
                assert "kms:ViaService" in json.dumps(st["Condition"]), (name, st)
    trusts = {r.name: json.loads(r.inputs["assumeRolePolicy"]) for r in plan.of_type("aws:iam/role:Role")
              if r.name.startswith("logs-")}
    assert trusts and all(s["Condition"] for doc in trusts.values() for s in doc["Statement"])


@pytest.mark.parametrize("stack", STACKS)
def test_queries_per_concern_on_the_functions_log_groups(planned, stack: str) -> None:
    plan = planned[stack].plan
    assert plan is not None
    cfg = plan.config
    defs = plan.of_type("aws:cloudwatch/queryDefinition:QueryDefinition")
    by_key: dict[str, list] = {}
    for d in defs:
        by_key.setdefault(d.inputs["name"].rpartition("/")[2], []).append(d)
    assert set(by_key) == {q.key for q in queries(cfg.xray.latency_threshold_ms)}
    edge_regions = set(cfg.emf_edge.edge_regions)
    for key in ("edge-errors-by-region", "edge-slow-requests"):
        assert {d.region for d in by_key[key]} == edge_regions
        assert all(all("edge-inference" in g for g in d.inputs["logGroupNames"]) for d in by_key[key])
    assert f"TotalLatency > {cfg.xray.latency_threshold_ms}" in by_key["edge-slow-requests"][0].inputs["queryString"]
    (audit,) = by_key["runbook-audit-trail"]
    assert sorted(g.rsplit("-", 1)[1] for g in audit.inputs["logGroupNames"]) == ["webhook", "worker"]
    (detector,) = by_key["detector-decisions-by-metric"]
    assert detector.inputs["logGroupNames"] == [f"/aws/lambda/{cfg.service}-{cfg.environment}-anomaly-detector"]
    # each query reads fields the functions write (lambdas/logshape and the call sites)
    for q in queries(100):
        assert "request_id" in q.text or "metric" in q.text


@pytest.mark.parametrize("stack", STACKS)
def test_log_events_alarm_through_the_stacks_alarm_definitions(planned, stack: str) -> None:
    plan = planned[stack].plan
    assert plan is not None
    filters = {f.inputs["metricTransformation"]["name"]: f for f in plan.of_type(
        "aws:cloudwatch/logMetricFilter:LogMetricFilter") if f.inputs["metricTransformation"]["namespace"] == NAMESPACE}
    assert set(filters) == {SIGNATURE_FAILURES, REFUSED_ACTIONS}
    assert filters[SIGNATURE_FAILURES].inputs["logGroupName"].endswith("runbook-webhook")
    assert '"unauthenticated"' in filters[SIGNATURE_FAILURES].inputs["pattern"]
    assert filters[REFUSED_ACTIONS].inputs["logGroupName"].endswith("runbook-worker")
    alarms = {a.inputs["metricName"]: a for a in plan.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
              if a.inputs.get("namespace") == NAMESPACE}
    assert set(alarms) == set(filters)
    for alarm in alarms.values():
        assert marked_runbook(alarm.inputs["alarmDescription"]) in {"runbook-webhook-rejected",
                                                                    "alerting-path-failure"}
        assert all(str(t).endswith("alerts-p2") for t in alarm.inputs["alarmActions"])


def test_a_log_group_without_archive_is_refused(run_stack) -> None:
    result = run_stack("staging", overrides={"logs": {"enabled": False}})
    refused = [v for v in result.violations if v.rule == "log_groups_archived"]
    assert result.plan is not None
    groups = result.plan.of_type("aws:cloudwatch/logGroup:LogGroup")
    assert groups and len(refused) == len(groups)
    assert all("is not archived" in v.message for v in refused)


def test_a_bad_redaction_pattern_is_refused_by_name(run_stack) -> None:
    result = run_stack("staging", overrides={"logs": {"redactPatterns": ["cust-[0-9"]}})
    assert [v.message for v in result.violations if v.rule == "log_redaction_patterns"] == [
        "'cust-[0-9' is not a regular expression (unterminated character set at position 5); the functions "
        "would refuse to start"]


def test_redaction_settings_reach_every_function_that_has_an_environment(run_stack) -> None:
    result = run_stack("staging", overrides={"logs": {"redactFields": ["customer_id"],
                                                      "redactPatterns": ["cust-[0-9]+"]}})
    assert result.plan is not None
    functions = [f for f in result.plan.of_type("aws:lambda/function:Function") if f.inputs.get("environment")]
    assert functions
    for f in functions:
        env = f.inputs["environment"]["variables"]
        assert json.loads(env["LOG_REDACT_FIELDS"]) == ["customer_id"], f.name
        assert json.loads(env["LOG_REDACT_PATTERNS"]) == ["cust-[0-9]+"], f.name


def test_insights_link_opens_the_query_on_its_log_groups() -> None:
    text = "fields @timestamp, a\n| filter b = \"x\" or c >= 4 # (note) 'q' ~ é\n| stats count(*) by d"
    url = logs_insights_url("eu-west-1", ["/aws/lambda/us-east-1.a-b", "/g/c"], text)
    assert url.startswith("https://eu-west-1.console.aws.amazon.com/cloudwatch/home?region=eu-west-1#logsV2:"
                          "logs-insights$3FqueryDetail$3D$257E$2528end$257E0$257Estart$257E-3600")
    assert sf.urls_in(f"see <{url}>.") == [url]  # nothing in it ends a link in Markdown or text
    assert logs_insights_of(url) == ("eu-west-1", ("/aws/lambda/us-east-1.a-b", "/g/c"), text)
    assert logs_insights_of(url.replace("https://eu-west-1.", "https://us-east-1.")) is None


@pytest.mark.parametrize("stack", STACKS)
def test_each_board_shows_its_concerns_saved_query_on_the_same_log_groups(planned, stack: str) -> None:
    plan = planned[stack].plan
    assert plan is not None
    saved = {(q.region, q.log_groups, q.text): q.key for q in log_queries(plan)}
    shown: dict[str, list[tuple[str, str]]] = {}
    for dash in plan.of_type("aws:cloudwatch/dashboard:Dashboard"):
        for w in json.loads(dash.inputs["dashboardBody"])["widgets"]:
            if w["type"] == "log":
                groups, text = widget_parts(w["properties"]["query"])
                key = saved.get((w["properties"]["region"], groups, text))
                assert key is not None, (dash.name, w["properties"]["title"])
                shown.setdefault(dash.inputs["dashboardName"].rsplit("-", 1)[1], []).append(
                    (key, w["properties"]["region"]))
    cfg = plan.config
    assert shown == {"edge": [("edge-errors-by-region", r) for r in cfg.emf_edge.edge_regions],
                     "anomaly": [("detector-decisions-by-metric", cfg.aws.region)],
                     "outcomes": [("runbook-audit-trail", cfg.aws.region)]}
    assert not [v for v in planned[stack].violations if v.rule == "log_widgets_are_saved_queries"]


def test_a_log_widget_that_is_no_saved_query_is_refused(planned) -> None:
    plan = planned["staging"].plan  # read-only: the edited dashboard is a copy in a copy of the plan
    assert plan is not None
    body = next(d for d in plan.of_type("aws:cloudwatch/dashboard:Dashboard")
                if d.inputs["dashboardName"].endswith("-edge"))
    doc = json.loads(body.inputs["dashboardBody"])
    widget = next(w for w in doc["widgets"] if w["type"] == "log")
    widget["properties"]["query"] = widget["properties"]["query"].replace("Status >= 400", "Status >= 500")
    edited = dataclasses.replace(body, inputs={**body.inputs, "dashboardBody": json.dumps(doc)})
    refused = list(log_widgets_are_saved_queries(dataclasses.replace(
        plan, resources=[edited if r is body else r for r in plan.resources])))
    assert [v.message.split(" shows ")[0] for v in refused] == [
        f"log widget '{widget['properties']['title']}' in {widget['properties']['region']}"]


@pytest.mark.parametrize("stack", STACKS)
def test_runbook_links_open_the_saved_queries_and_nothing_else(planned, stack: str) -> None:
    plan = planned[stack].plan
    assert plan is not None
    facts = stack_facts(stack, plan)
    targets = facts.link_targets(set(), set())
    assert facts.log_queries and all(sf.link_problem(q.url, targets) is None for q in facts.log_queries)
    q = facts.log_queries[0]
    for wrong in (logs_insights_url(q.region, q.log_groups, q.text + "\n| limit 1"),
                  logs_insights_url(q.region, (*q.log_groups, "/aws/lambda/other"), q.text),
                  logs_insights_url("sa-east-1" if q.region != "sa-east-1" else "us-west-2", q.log_groups, q.text)):
        assert "opens no saved Logs Insights query" in str(sf.link_problem(wrong, targets))


@pytest.mark.parametrize("stack", STACKS)
def test_each_archive_stream_tickets_when_it_stops_delivering(planned, stack: str) -> None:
    plan = planned[stack].plan
    assert plan is not None
    cfg = plan.config
    alarms = [a for a in plan.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
              if a.inputs.get("namespace") == FIREHOSE]
    streams = plan.of_type("aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream")
    assert streams
    for stream in streams:
        mine = {a.inputs["metricName"]: a for a in alarms
                if a.inputs["dimensions"] == {"DeliveryStreamName": stream.inputs["name"]}}
        assert set(mine) == {FRESHNESS, SUCCESS}, stream.label
        assert all(a.region == stream.region for a in mine.values())
        assert mine[FRESHNESS].inputs["threshold"] == FRESHNESS_BUFFERS * cfg.logs.archive_buffer_s
        assert (mine[SUCCESS].inputs["threshold"], mine[SUCCESS].inputs["comparisonOperator"]) == (
            1, "LessThanThreshold")
        for a in mine.values():
            assert marked_runbook(a.inputs["alarmDescription"]) == ARCHIVE_RUNBOOK
            assert [str(t).rsplit(":", 1)[1] for t in a.inputs["alarmActions"]] == [f"{cfg.service}-"
                                                                                     f"{cfg.environment}-alerts-p2"]
