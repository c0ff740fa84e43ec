"""The offline plan: the real program for each stack file, plan.json shape, redaction, foundation rules."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from infra.core.paths import BUILD_DIR, ROOT
from infra.offline.plan import plan_entries, run_plan
from infra.offline.stackfile import SECRET_PLACEHOLDER_PREFIX
from infra.validation import Plan, PlannedResource, validate
from infra.validation.foundation import alarm_settings, iam_least_privilege, valid_period


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_plan_command_writes_plan_json(stack):
    proc = subprocess.run([sys.executable, "-m", "infra.offline.plan", "--stack", stack, "--offline-secrets"],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Resources per component:" in proc.stdout and "Total:" in proc.stdout
    doc = json.loads((BUILD_DIR / stack / "plan.json").read_text())
    assert doc["stack"] == stack and doc["violations"] == []
    assert doc["resources"], "no resources planned"
    for entry in doc["resources"]:
        assert {"type", "name", "parent", "inputs"} <= set(entry)
        if entry["type"].startswith("aws:") and not entry["type"].startswith(("aws:iam/", "aws:cloudfront/")):
            assert entry.get("region"), entry
    text = json.dumps(doc) + proc.stdout
    assert SECRET_PLACEHOLDER_PREFIX not in text, "a secret placeholder leaked into the plan"


def test_every_aws_resource_has_a_region_and_an_explicit_provider(planned):
    for stack, result in planned.items():
        for r in result.resources:
            if r.custom and r.type.startswith("aws:"):
                assert r.provider and not r.provider.startswith("default"), (stack, r.label)


def test_severity_topics_exist_in_every_alarm_region(planned):
    for result in planned.values():
        regions = result.plan.config.alarm_regions
        topics = result.plan.of_type("aws:sns/topic:Topic")
        for region in regions:
            names = {t.inputs["name"] for t in topics if t.region == region}
            env = result.plan.config.environment
            assert {f"akidb-{env}-alerts-p0", f"akidb-{env}-alerts-p1", f"akidb-{env}-alerts-p2"} <= names


def test_secrets_are_redacted_in_entries(planned):
    result = planned["prod"]
    text = json.dumps(plan_entries(result)) + json.dumps(result.outputs)
    assert SECRET_PLACEHOLDER_PREFIX not in text


def _res(type_: str, inputs: dict, region: str | None = "us-east-1") -> PlannedResource:
    return PlannedResource(urn=f"urn:{type_}:x", type=type_, name="x", parent=None, region=region,
                           inputs=inputs, custom=True, provider="aws-test")


def test_alarm_rules_catch_what_cloudwatch_rejects(planned):
    cfg = planned["staging"].plan.config
    bad = _res("aws:cloudwatch/metricAlarm:MetricAlarm", {
        "period": 45, "evaluationPeriods": 2, "datapointsToAlarm": 3, "statistic": "Average",
        "extendedStatistic": "p95", "alarmActions": []})
    msgs = [v.message for v in alarm_settings(Plan([bad], cfg))]
    assert any("period 45" in m for m in msgs)
    assert any("datapointsToAlarm" in m for m in msgs)
    assert any("exclusive" in m for m in msgs)
    assert any("treatMissingData" in m for m in msgs)
    assert any("notifies nobody" in m for m in msgs)
    assert valid_period(10) and valid_period(120) and not valid_period(90)


def test_alarm_action_in_another_region_is_a_violation(planned):
    cfg = planned["staging"].plan.config
    alarm = _res("aws:cloudwatch/metricAlarm:MetricAlarm", {
        "period": 60, "evaluationPeriods": 1, "statistic": "Sum", "treatMissingData": "notBreaching",
        "alarmActions": ["arn:aws:sns:us-east-1:111111111111:t"]}, region="eu-west-1")
    assert any(v.rule == "alarm_actions_in_region" for v in validate(Plan([alarm], cfg)))


def test_iam_rule_refuses_wildcards_and_unconditioned_put_metric_data(planned):
    cfg = planned["staging"].plan.config
    doc = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:*"], "Resource": "*"},
        {"Effect": "Allow", "Action": ["cloudwatch:PutMetricData"], "Resource": "*"},
        {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "*"},
    ]}
    pol = _res("aws:iam/rolePolicy:RolePolicy", {"policy": json.dumps(doc)}, region=None)
    msgs = [v.message for v in iam_least_privilege(Plan([pol], cfg))]
    assert any("wildcard action s3:*" in m for m in msgs)
    assert any("namespace condition" in m for m in msgs)
    assert any("s3:GetObject" in m for m in msgs)


def test_plan_of_both_stacks_is_clean(planned):
    for stack, result in planned.items():
        assert result.violations == [], (stack, [str(v) for v in result.violations])


def test_unknown_stack_is_a_clear_error():
    result = run_plan("nope", quiet=True, write=False)
    assert result.exit_code == 2 and "known stacks: prod, staging" in result.config_problems[0]


def test_kubernetes_manifests_written_for_scanners(planned, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`make checkov` input: one YAML file per Kubernetes object of the plan, each the object's inputs."""
    import yaml

    from infra.offline.manifests import write_manifests
    from infra.validation.kubernetes import k8s_objects

    plan = planned["prod"].plan
    written = write_manifests(plan, tmp_path / "m")
    objects = k8s_objects(plan)
    assert len(written) == len(objects) == len({p.name for p in written})
    kinds = sorted(yaml.safe_load(p.read_text())["kind"] for p in written)
    assert kinds == sorted(o.inputs["kind"] for o in objects)
