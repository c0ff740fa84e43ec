"""The emf-edge component in both stacks, and the edge validation rules (each shown to fail on a bad input)."""

from __future__ import annotations

import dataclasses
import io
import json
import zipfile
from typing import Any

import pytest

from infra.artifacts.edge_probe import run_sample
from infra.artifacts.packaging import MiB, read_package
from infra.components.emf_edge import log_group_name
from infra.config.coverage import DISTRIBUTION_PRICE_CLASS, PRICE_CLASS_REGIONS
from infra.offline.plan import run_plan
from infra.offline.stackfile import read_stack_file, with_overrides
from infra.validation import Plan, PlannedResource
from infra.validation import edge as edge_rules
from infra.validation.edge import edge_emf_alarms_match, edge_function_restrictions, edge_regions_covered
from lambdas.edge_inference import emf

FUNCTION = "aws:lambda/function:Function"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
# Other components are planned by their own tests; here only the foundation and emf-edge run.
ONLY_EDGE = {"xray": {"enabled": False}, "anomaly": {"enabled": False}, "sloAlerting": {"enabled": False},
             "dashboards": {"enabled": False}, "synthetics": {"enabled": False}, "alertingPath": {"enabled": False},
             "costWatch": {"enabled": False}}


def plan_stack(stack: str, extra: dict[str, Any] | None = None):
    overrides = json.loads(json.dumps(ONLY_EDGE))
    for key, value in (extra or {}).items():
        overrides.setdefault(key, {}).update(value)
    return run_plan(stack, stack_file=with_overrides(read_stack_file(stack), overrides), quiet=True, write=False,
                    offline_secrets=True)


@pytest.fixture(scope="module")
def stacks():
    return {stack: plan_stack(stack) for stack in ("staging", "prod")}


def edge_resources(result, token: str) -> list[PlannedResource]:
    return [r for r in result.plan.of_type(token) if r.parent == "emf-edge"]


def edge_violations(result) -> list[str]:
    return [str(v) for v in result.violations if v.rule.startswith("edge_") or "emf-edge" in v.resource]


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_stack_plans_without_violations(stacks, stack):
    result = stacks[stack]
    assert not result.config_problems
    assert result.violations == [], [str(v) for v in result.violations]


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_alarms_in_every_edge_region_with_own_region_topics(stacks, stack):
    result = stacks[stack]
    cfg = result.plan.config.emf_edge
    alarms = edge_resources(result, ALARM)
    assert {a.region for a in alarms} == set(cfg.edge_regions)
    names = result.outputs["edgeAlarmNames"]
    assert set(names) == set(cfg.edge_regions)
    for region in cfg.edge_regions:
        here = [a for a in alarms if a.region == region]
        assert len(here) == 4 and sorted(a.inputs["name"] for a in here) == sorted(names[region])
        for a in here:
            i = a.inputs
            assert i["evaluationPeriods"] == cfg.alarms.evaluation_periods
            assert i["datapointsToAlarm"] == cfg.alarms.datapoints_to_alarm < i["evaluationPeriods"] + 1
            assert i["treatMissingData"] == "notBreaching"
            for arn in i["alarmActions"] + i["okActions"]:
                assert arn.startswith(f"arn:aws:sns:{region}:")
        by_metric = {(a.inputs.get("metricName"), a.inputs.get("extendedStatistic") or a.inputs.get("statistic")): a
                     for a in here}
        p95 = by_metric[("InferenceLatency", "p95")].inputs
        assert p95["threshold"] == cfg.alarms.inference_latency_p95_ms
        assert p95["dimensions"] == {"EdgeRegion": region} and p95["namespace"] == cfg.namespace
        assert by_metric[("InferenceLatency", "Average")].inputs["threshold"] == cfg.alarms.inference_latency_avg_ms
        errors = by_metric[("ErrorCount", "Sum")].inputs
        # Regional alarms ticket; the Region's edge-outage composite pages (infra/components/edge_composite.py).
        assert errors["threshold"] == cfg.alarms.error_count and errors["alarmActions"][0].endswith("-p2")
        rate = by_metric[(None, None)].inputs
        expr = next(q for q in rate["metricQueries"] if q.get("expression"))
        assert expr["returnData"] is True and f">= {cfg.alarms.cache_hit_min_requests}" in expr["expression"]
        assert rate["threshold"] == cfg.alarms.cache_hit_rate_min and rate["comparisonOperator"] == "LessThanThreshold"


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_log_groups_in_every_edge_region(stacks, stack):
    result = stacks[stack]
    cfg = result.plan.config.emf_edge
    fn_name = result.outputs["edgeFunctionName"]
    groups = edge_resources(result, "aws:cloudwatch/logGroup:LogGroup")
    assert {(g.region, g.inputs["name"]) for g in groups} == {(r, f"/aws/lambda/us-east-1.{fn_name}")
                                                              for r in cfg.edge_regions}
    assert all(g.inputs["retentionInDays"] == cfg.log_retention_days for g in groups)
    assert result.outputs["edgeLogGroups"] == {r: log_group_name(fn_name) for r in cfg.edge_regions}


def test_function_is_a_valid_edge_function(stacks):
    result = stacks["prod"]
    (fn,) = edge_resources(result, FUNCTION)
    i = fn.inputs
    assert fn.region == "us-east-1" and i["publish"] is True and i["skipDestroy"] is True
    assert i["architectures"] == ["x86_64"] and i["runtime"] == "python3.12"
    for absent in ("environment", "layers", "vpcConfig", "tracingConfig", "deadLetterConfig"):
        assert absent not in i
    assert result.outputs["edgeFunctionQualifiedArn"].endswith(f":function:{i['name']}:1")
    role = next(r for r in result.plan.of_type("aws:iam/role:Role") if r.outputs.get("arn") == i["role"])
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]["Principal"]["Service"]
    assert set(trust) == {"lambda.amazonaws.com", "edgelambda.amazonaws.com"}


def test_policy_is_scoped_to_the_model_object_and_the_replica_log_groups(stacks):
    result = stacks["prod"]
    cfg = result.plan.config.emf_edge
    (policy,) = edge_resources(result, "aws:iam/rolePolicy:RolePolicy")
    doc = json.loads(policy.inputs["policy"])
    stmts = {s["Sid"]: s for s in doc["Statement"]}
    (obj,) = edge_resources(result, "aws:s3/bucketObjectv2:BucketObjectv2")
    assert stmts["ReadModel"]["Action"] == ["s3:GetObject"]
    assert stmts["ReadModel"]["Resource"] == [f"arn:aws:s3:::{obj.inputs['bucket']}/{obj.inputs['key']}"]
    fn_name = result.outputs["edgeFunctionName"]
    assert sorted(stmts["ReplicaLogs"]["Resource"]) == sorted(
        f"arn:aws:logs:{r}:222222222222:log-group:/aws/lambda/us-east-1.{fn_name}:*" for r in cfg.edge_regions)


def test_model_bucket_is_private_encrypted_versioned_and_holds_the_model(stacks):
    result = stacks["staging"]
    (bucket,) = edge_resources(result, "aws:s3/bucket:Bucket")
    name = bucket.inputs["bucket"]
    versioning = edge_resources(result, "aws:s3/bucketVersioning:BucketVersioning")[0].inputs
    assert versioning["bucket"] == name and versioning["versioningConfiguration"]["status"] == "Enabled"
    (obj,) = edge_resources(result, "aws:s3/bucketObjectv2:BucketObjectv2")
    assert obj.inputs["source"]["path"].endswith("model.int8.onnx")
    (tls,) = edge_resources(result, "aws:s3/bucketPolicy:BucketPolicy")
    assert '"aws:SecureTransport": "false"' in tls.inputs["policy"]


def _zip_settings(result) -> tuple[dict[str, Any], Any]:
    (fn,) = edge_resources(result, FUNCTION)
    pkg = read_package(fn.inputs["code"]["path"])
    with zipfile.ZipFile(pkg.path) as zf:
        names = set(zf.namelist())
        return json.loads(zf.read("edge_inference/settings.json")), (pkg, names)


def test_settings_are_baked_into_the_package_and_follow_config():
    result = plan_stack("staging", {"emfEdge": {"namespace": "AkiDB/EdgeCustom", "modelName": "minilm-test"}})
    assert result.violations == [], [str(v) for v in result.violations]
    settings, (pkg, names) = _zip_settings(result)
    (obj,) = edge_resources(result, "aws:s3/bucketObjectv2:BucketObjectv2")
    assert settings["namespace"] == "AkiDB/EdgeCustom" and settings["model_name"] == "minilm-test"
    assert settings["bucket"] == obj.inputs["bucket"] and settings["model_key"] == obj.inputs["key"]
    assert settings["max_tokens"] == 128 and settings["normalize"] is True
    assert {a.inputs.get("namespace") for a in edge_resources(result, ALARM)} - {None} == {"AkiDB/EdgeCustom"}
    assert "edge_inference/tokenizer.json" in names
    assert not any(n.endswith(".onnx") for n in names), "the model belongs in S3, not in the zip"
    assert pkg.kind == "edge-origin" and pkg.compressed_bytes <= 50 * MiB


def test_distribution_when_configured():
    # The distribution's price class runs replicas in every Regional Edge Cache Region: all are edge regions.
    result = plan_stack("staging", {"emfEdge": {"createDistribution": True, "originDomain": "api.akidb.example",
                                                "edgeRegions": list(PRICE_CLASS_REGIONS[DISTRIBUTION_PRICE_CLASS])}})
    assert result.violations == [], [str(v) for v in result.violations]
    (dist,) = edge_resources(result, "aws:cloudfront/distribution:Distribution")
    (embed,) = dist.inputs["orderedCacheBehaviors"]
    assert embed["pathPattern"] == "/embed" and "POST" in embed["allowedMethods"]
    (assoc,) = embed["lambdaFunctionAssociations"]
    assert assoc["eventType"] == "origin-request" and assoc["includeBody"] is True
    assert assoc["lambdaArn"] == result.outputs["edgeFunctionQualifiedArn"]
    assert result.outputs["edgeDistributionDomain"].endswith(".cloudfront.net")


def test_no_distribution_by_default_only_the_qualified_arn(stacks):
    assert not edge_resources(stacks["staging"], "aws:cloudfront/distribution:Distribution")
    assert ":function:" in stacks["staging"].outputs["edgeFunctionQualifiedArn"]


def test_disabled_component_creates_nothing():
    result = plan_stack("staging", {"emfEdge": {"enabled": False}})
    assert not result.plan.of_type("akidb:emf-edge:EmfEdge") and "edgeFunctionQualifiedArn" not in result.outputs


def test_config_rejects_out_of_range_edge_settings():
    fields = plan_stack("staging", {"emfEdge": {"timeoutS": 31, "memoryMb": 20000, "namespace": "bad ns"}})
    cross = plan_stack("staging", {"emfEdge": {"alarms": {"periodS": 45, "datapointsToAlarm": 5}}})
    text = "\n".join(fields.config_problems + cross.config_problems)
    for key in ("emfEdge.timeoutS", "emfEdge.memoryMb", "emfEdge.namespace", "emfEdge.alarms.periodS",
                "emfEdge.alarms.datapointsToAlarm"):
        assert key in text, text


# ---------------------------------------------------------------------------------------------- the rules fail
def _replace(plan: Plan, target: PlannedResource, **inputs: Any) -> Plan:
    changed = dataclasses.replace(target, inputs={**target.inputs, **inputs})
    return Plan([changed if r is target else r for r in plan.resources], plan.config, plan.outputs)


def _remove(plan: Plan, drop: list[PlannedResource]) -> Plan:
    return Plan([r for r in plan.resources if all(r is not d for d in drop)], plan.config, plan.outputs)


def _alarm(plan: Plan, region: str, metric: str) -> PlannedResource:
    return next(a for a in plan.of_type(ALARM) if a.region == region and a.inputs.get("metricName") == metric)


@pytest.mark.parametrize(("change", "expected"), [
    ({"dimensions": {"EdgeLocation": "EDFDVBD6EXAMPLE"}},
     "emits ErrorCount with: {EdgeRegion=eu-west-1}, {Model=all-MiniLM-L6-v2-INT8}, {}"),
    ({"dimensions": {"EdgeRegion": "us-east-1"}}, "handler in eu-west-1 emits"),  # another region's value
    ({"dimensions": {"Model": "another-model"}}, "{Model=all-MiniLM-L6-v2-INT8}"),
    ({"dimensions": {"EdgeRegion": "eu-west-1", "Model": "all-MiniLM-L6-v2-INT8"}}, "watches"),  # not a set
    ({"metricName": "Errors"}, "emits Errors with: nothing"),
])
def test_alarm_on_a_metric_the_handler_does_not_emit_fails(stacks, change, expected):
    plan = stacks["staging"].plan
    bad = _replace(plan, _alarm(plan, "eu-west-1", "ErrorCount"), **change)
    found = [str(v) for v in edge_emf_alarms_match(bad)]
    assert len(found) == 1 and expected in found[0], found


def test_alarm_query_on_a_wrong_dimension_fails(stacks):
    plan = stacks["staging"].plan
    rate = next(a for a in plan.of_type(ALARM) if a.region == "eu-west-1" and a.inputs.get("metricQueries"))
    queries = json.loads(json.dumps(rate.inputs["metricQueries"]))
    queries[0]["metric"]["dimensions"] = {"DistributionId": "EDFDVBD6EXAMPLE"}
    found = [str(v) for v in edge_emf_alarms_match(_replace(plan, rate, metricQueries=queries))]
    assert len(found) == 1 and "CacheHit" in found[0]


def test_alarm_in_the_edge_namespace_without_a_function_fails(stacks):
    plan = stacks["staging"].plan
    (fn,) = plan.of_type(FUNCTION)
    found = [str(v) for v in edge_emf_alarms_match(_remove(plan, [fn]))]
    assert found and all("no edge function" in v for v in found)


def test_alarm_check_agrees_with_the_emf_the_handler_emits(stacks):
    plan = stacks["staging"].plan
    (fn,) = plan.of_type(FUNCTION)
    docs = run_sample(read_package(fn.inputs["code"]["path"]).path, "eu-west-1")
    assert len(docs) == 3 and all(emf.problems(d) == [] for d in docs)
    assert docs[0]["CacheHit"] == 0 and "ModelLoadTime" in docs[0] and docs[1]["CacheHit"] == 1
    assert docs[2]["ClientErrorCount"] == 1 and all(d["EdgeRegion"] == "eu-west-1" for d in docs)


@pytest.mark.parametrize(("change", "expected"), [
    ({"environment": {"variables": {"BUCKET": "x"}}}, "environment variables"),
    ({"layers": ["arn:aws:lambda:us-east-1:1:layer:x:1"]}, "layers"),
    ({"vpcConfig": {"subnetIds": ["s"], "securityGroupIds": ["g"]}}, "a VPC"),
    ({"tracingConfig": {"mode": "Active"}}, "active tracing"),
    ({"architectures": ["arm64"]}, "x86_64 only"),
    ({"memorySize": 10241}, "memorySize"),
    ({"timeout": 31}, "timeout"),
    ({"publish": False}, "publish"),
    ({"skipDestroy": False}, "skipDestroy"),
    ({"deadLetterConfig": {"targetArn": "arn:aws:sqs:us-east-1:1:q"}}, "dead-letter"),
    ({"role": "arn:aws:iam::111111111111:role/other"}, "role must trust"),
])
def test_edge_restrictions_fail_on_each_unsupported_setting(stacks, change, expected):
    plan = stacks["staging"].plan
    (fn,) = plan.of_type(FUNCTION)
    found = [str(v) for v in edge_function_restrictions(_replace(plan, fn, **change))]
    assert len(found) == 1 and expected in found[0], found


def test_edge_restrictions_fail_outside_us_east_1_and_with_provisioned_concurrency(stacks):
    plan = stacks["staging"].plan
    (fn,) = plan.of_type(FUNCTION)
    moved = Plan([dataclasses.replace(r, region="eu-west-1") if r is fn else r for r in plan.resources],
                  plan.config, plan.outputs)
    assert any("must be in us-east-1" in str(v) for v in edge_function_restrictions(moved))
    pc = PlannedResource(urn="urn:pc", type="aws:lambda/provisionedConcurrencyConfig:ProvisionedConcurrencyConfig",
                         name="pc", parent=None, region="us-east-1", custom=True, provider="p",
                         inputs={"functionName": fn.inputs["name"], "qualifier": "1",
                                 "provisionedConcurrentExecutions": 2})
    with_pc = Plan([*plan.resources, pc], plan.config, plan.outputs)
    assert any("provisioned concurrency" in str(v) for v in edge_function_restrictions(with_pc))


def test_edge_restrictions_fail_on_a_package_built_for_plain_lambda(stacks, monkeypatch):
    plan = stacks["staging"].plan
    (fn,) = plan.of_type(FUNCTION)
    path = fn.inputs["code"]["path"]
    built = read_package(path)
    monkeypatch.setattr(edge_rules, "read_package", lambda p: dataclasses.replace(built, kind="lambda"))
    assert any("'edge-origin'" in str(v) for v in edge_function_restrictions(plan))


def test_missing_region_alarm_or_log_group_fails(stacks):
    plan = stacks["prod"].plan
    gone = [a for a in plan.of_type(ALARM) if a.region == "ap-southeast-1"
            and a.inputs.get("extendedStatistic") == "p95"]
    gone += [g for g in plan.of_type("aws:cloudwatch/logGroup:LogGroup") if g.region == "ap-northeast-1"
             and g.parent == "emf-edge"]
    found = [str(v) for v in edge_regions_covered(_remove(plan, gone))]
    assert len(found) == 2, found
    assert any("ap-southeast-1" in v and "InferenceLatency (p95)" in v for v in found)
    assert any("ap-northeast-1" in v and "log group" in v for v in found)


def test_rules_pass_on_the_real_plan(stacks):
    for result in stacks.values():
        plan = result.plan
        for check in (edge_emf_alarms_match, edge_function_restrictions, edge_regions_covered):
            assert list(check(plan)) == [], check.__name__


def test_emf_output_goes_to_stdout_as_one_line_per_request(stacks):
    from lambdas.edge_inference.handler import App

    out = io.StringIO()
    app = App(out=out)
    app.emit({"RequestCount": 1}, {"Status": 200})
    assert out.getvalue().count("\n") == 1 and json.loads(out.getvalue())["RequestCount"] == 1
