"""Alertmanager's dead-man's switch, received by the stack: the deployed route and receiver (amtool), the publish
Alertmanager makes (rendered by amtool from real-shaped template data, sent to moto), the missing-heartbeat alarm,
and the rules that fail when any of it is missing, too broad or blind to silence."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.core import set_initial_no_auth_action_count

from infra.blocks.context import StackContext
from infra.components.alerting_path import HEARTBEAT_TOPIC, PERIOD_S, heartbeat_topic_name, stack_heartbeat
from infra.components.slo_alerting import stack_alertmanager_config
from infra.core.naming import Naming
from infra.slo.alertmanager import HEARTBEAT_TIMING, RECEIVER_HEARTBEAT
from infra.slo.render import dump
from infra.slo.spec import HEARTBEAT_ALERT, duration_seconds
from infra.validation import Plan, PlannedResource
from infra.validation.alerting_path import alerting_path_watched, alertmanager_heartbeat_received

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


def _parts(plan: Plan) -> tuple[PlannedResource, PlannedResource, PlannedResource, PlannedResource]:
    cfg = plan.config
    topic_name = heartbeat_topic_name(Naming(cfg.service, cfg.environment))
    topic = next(t for t in plan.of_type("aws:sns/topic:Topic") if t.inputs["name"] == topic_name)
    role = next(r for r in plan.of_type("aws:iam/role:Role") if r.inputs["name"].endswith(f"-{HEARTBEAT_TOPIC}"))
    policy = next(p for p in plan.of_type("aws:iam/rolePolicy:RolePolicy") if p.inputs["role"] == role.inputs["name"])
    alarm = next(a for a in plan.of_type(ALARM) if (a.inputs.get("dimensions") or {}).get("TopicName") == topic_name
                 and a.inputs["metricName"] == "NumberOfMessagesPublished")
    return topic, role, policy, alarm


def _replace(plan: Plan, old: PlannedResource, **inputs: Any) -> Plan:
    new = dataclasses.replace(old, inputs={**old.inputs, **inputs})
    return dataclasses.replace(plan, resources=[new if r is old else r for r in plan.resources])


def _problems(plan: Plan) -> list[str]:
    return [f"{v.resource}: {v.message}" for v in [*alertmanager_heartbeat_received(plan),
                                                    *alerting_path_watched(plan)]]


def _deployed_config(plan: Plan) -> dict[str, Any]:
    """What the stack writes into the Alertmanager's config Secret (redacted in the plan): the same function."""
    account = plan.config.aws.allowed_account_ids[0]
    return stack_alertmanager_config(StackContext(plan.config), account)


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_the_stack_owns_the_heartbeat_topic_its_publisher_and_the_missing_heartbeat_page(planned, stack):
    plan = planned[stack].plan
    cfg = plan.config
    topic, role, policy, alarm = _parts(plan)
    assert topic.region == cfg.aws.region and topic.inputs["kmsMasterKeyId"]
    issuer = cfg.kubernetes.oidc_provider_arn.split(":oidc-provider/", 1)[1]
    (trust,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert trust["Condition"]["StringEquals"][f"{issuer}:sub"] == (
        f"system:serviceaccount:{cfg.kubernetes.namespace}:{cfg.alerting_path.heartbeat.service_account}")
    statements = json.loads(policy.inputs["policy"])["Statement"]
    assert {a for s in statements for a in s["Action"]} == {"sns:Publish", "kms:Decrypt", "kms:GenerateDataKey"}
    assert next(s for s in statements if s["Action"] == ["sns:Publish"])["Resource"] == [topic.outputs["arn"]]
    periods = cfg.alerting_path.heartbeat.missing_periods
    i = alarm.inputs
    assert (i["statistic"], i["comparisonOperator"], i["threshold"], i["treatMissingData"]) == (
        "Sum", "LessThanThreshold", 1, "breaching")
    assert (i["period"], i["evaluationPeriods"], i["datapointsToAlarm"]) == (PERIOD_S, periods, periods)
    p1 = f"arn:aws:sns:{cfg.aws.region}:{cfg.aws.allowed_account_ids[0]}:akidb-{stack}-alerts-p1"
    assert i["alarmActions"] == [p1] and i["okActions"] == [p1]
    assert _problems(plan) == []


def test_alertmanager_resends_the_heartbeat_well_inside_an_alarm_period():
    """Re-sent every repeat_interval at a group_interval tick: at most two intervals apart, so every 5-minute
    period holds at least two heartbeats and one lost publish does not page."""
    gap = duration_seconds(HEARTBEAT_TIMING["repeat_interval"]) + duration_seconds(HEARTBEAT_TIMING["group_interval"])
    assert 2 * gap <= PERIOD_S


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_the_deployed_alertmanager_config_publishes_the_heartbeat_to_that_topic(planned, stack, tmp_path: Path):
    plan = planned[stack].plan
    topic, *_ = _parts(plan)
    config = _deployed_config(plan)
    receiver = next(r for r in config["receivers"] if r["name"] == RECEIVER_HEARTBEAT)
    assert list(receiver) == ["name", "sns_configs"]  # no webhook left to a receiver the stack does not own
    (sns,) = receiver["sns_configs"]
    assert sns["topic_arn"] == topic.outputs["arn"] and sns["sigv4"] == {"region": plan.config.aws.region}
    assert sns["send_resolved"] is False  # a "resolved" publish would count as a heartbeat at the moment it stops
    path = tmp_path / "alertmanager.yaml"
    path.write_text(dump(config))
    out = run("amtool", "check-config", str(path))
    assert out.returncode == 0, out.stdout + out.stderr
    labels = [f"alertname={HEARTBEAT_ALERT}", "severity=heartbeat"]
    ok = run("amtool", "config", "routes", "test", f"--config.file={path}",
             f"--verify.receivers={RECEIVER_HEARTBEAT}", *labels)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    route = next(r for r in config["route"]["routes"] if r.get("receiver") == RECEIVER_HEARTBEAT)
    assert {k: route[k] for k in HEARTBEAT_TIMING} == HEARTBEAT_TIMING


def test_switched_off_the_heartbeat_goes_to_the_external_webhook(run_stack):
    result = run_stack("staging", overrides={"alertingPath": {"heartbeat": {"enabled": False}}})
    plan = result.plan
    assert result.config_problems == [] and _problems(plan) == []
    assert not [t for t in plan.of_type("aws:sns/topic:Topic") if t.inputs["name"].endswith(HEARTBEAT_TOPIC)]
    assert stack_heartbeat(plan.config, "111111111111") is None
    receiver = next(r for r in _deployed_config(plan)["receivers"] if r["name"] == RECEIVER_HEARTBEAT)
    assert receiver["webhook_configs"][0]["url"] == plan.config.slo_alerting.heartbeat_webhook_url


# ------------------------------------------------------------------------------------ what Alertmanager sends

def _template_data() -> dict[str, Any]:
    """Alertmanager's template data for the heartbeat group (template.Data: group_by alertname/service/slo, and
    the heartbeat carries neither service nor slo)."""
    alert = {"status": "firing", "labels": {"alertname": HEARTBEAT_ALERT, "severity": "heartbeat"},
             "annotations": {"summary": "Always firing: the dead-man's switch pages when these notifications stop"},
             "startsAt": "2026-11-23T10:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
             "generatorURL": "http://prometheus:9090/graph",
             "fingerprint": "5c6d1a6f6bd4c3e1"}  # pragma: allowlist secret
    return {"receiver": RECEIVER_HEARTBEAT, "status": "firing", "alerts": [alert],
            "groupLabels": {"alertname": HEARTBEAT_ALERT}, "commonLabels": alert["labels"],
            "commonAnnotations": alert["annotations"], "externalURL": "http://alertmanager.observability:9093"}


def _render(template: str, tmp_path: Path) -> str:
    (tmp_path / "none.tmpl").write_text("")
    (tmp_path / "data.json").write_text(json.dumps(_template_data()))
    out = run("amtool", "template", "render", f"--template.glob={tmp_path / 'none.tmpl'}",
              f"--template.text={template}", f"--template.data={tmp_path / 'data.json'}")
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.fixture
def aws_iam_enforced(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for k, v in {"AWS_ACCESS_KEY_ID": "admin", "AWS_SECRET_ACCESS_KEY": "admin",
                 "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    with mock_aws():
        yield


def test_the_publish_alertmanager_makes_reaches_the_topic_and_a_stranger_is_refused(planned, aws_iam_enforced,
                                                                                 tmp_path):
    """The subject and message as Alertmanager renders them (amtool, real-shaped template data) are a valid SNS
    publish on the heartbeat topic; a caller without credentials of the account is refused (a refused publish is
    never counted in NumberOfMessagesPublished, so it cannot keep the heartbeat alive). Which identity may publish
    (the role of Alertmanager's service account, to this topic only) is the plan rule's to check: moto evaluates
    identity policies without their Resource element."""
    plan = planned["staging"].plan
    topic, *_ = _parts(plan)
    (sns_conf,) = next(r for r in _deployed_config(plan)["receivers"]
                       if r["name"] == RECEIVER_HEARTBEAT)["sns_configs"]
    subject, message = _render(sns_conf["subject"], tmp_path), _render(sns_conf["message"], tmp_path)
    assert subject == f"akidb heartbeat {HEARTBEAT_ALERT}" and len(subject) <= 100 and subject.isascii()
    assert message == f"firing {HEARTBEAT_ALERT} from http://alertmanager.observability:9093"

    @set_initial_no_auth_action_count(4)  # topic, queue, subscription, publish as the account; then IAM enforced
    def check() -> str:
        sns, sqs = boto3.client("sns"), boto3.client("sqs")
        arn = sns.create_topic(Name=topic.inputs["name"])["TopicArn"]
        queue = sqs.create_queue(QueueName="heartbeat-copy")["QueueUrl"]
        sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint="arn:aws:sqs:us-east-1:123456789012:heartbeat-copy")
        assert sns.publish(TopicArn=arn, Subject=subject, Message=message)["MessageId"]
        stranger = boto3.client("sns", aws_access_key_id="AKIAUNKNOWN000000000", aws_secret_access_key="x")
        with pytest.raises(ClientError, match=r"InvalidClientTokenId|security token"):
            stranger.publish(TopicArn=arn, Subject=subject, Message=message)
        return queue

    queue = check()
    (received,) = boto3.client("sqs").receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    body = json.loads(received["Body"])
    assert (body["Subject"], body["Message"]) == (subject, message)  # exactly one publish got through


# ------------------------------------------------------------------------------------------------ the rules

def test_rules_fail_without_the_alarm_or_with_one_that_ignores_silence(planned):
    plan = planned["prod"].plan
    *_, alarm = _parts(plan)
    without = dataclasses.replace(plan, resources=[r for r in plan.resources if r is not alarm])
    msgs = _problems(without)
    assert any("missing data breaching" in m for m in msgs)
    assert any("published to by a cluster workload" in m and "fires when it drops" in m for m in msgs)
    quiet = _problems(_replace(plan, alarm, treatMissingData="notBreaching"))
    assert any("no alarm on akidb-prod-alertmanager-heartbeat" in m for m in quiet)
    wrong_target = alarm.inputs["alarmActions"][0].replace("-p1", "-p2")
    assert any("not the P1 topic" in m for m in _problems(_replace(plan, alarm, alarmActions=[wrong_target])))


def test_rules_fail_on_a_publisher_that_can_do_more_or_is_someone_else(planned):
    plan = planned["prod"].plan
    topic, role, policy, _ = _parts(plan)
    doc = json.loads(policy.inputs["policy"])
    publish = next(s for s in doc["Statement"] if s["Action"] == ["sns:Publish"])
    publish["Resource"].append(topic.outputs["arn"].replace("alertmanager-heartbeat", "alerts-p0"))
    doc["Statement"].append({"Effect": "Allow", "Action": ["sns:Subscribe"], "Resource": topic.outputs["arn"]})
    msgs = _problems(_replace(plan, policy, policy=json.dumps(doc)))
    assert any("may publish to" in m and "alerts-p0" in m for m in msgs)
    assert any("also allows sns:Subscribe" in m for m in msgs)
    trust = json.loads(role.inputs["assumeRolePolicy"])
    cond = trust["Statement"][0]["Condition"]["StringEquals"]
    cond[next(k for k in cond if k.endswith(":sub"))] = "system:serviceaccount:observability:default"
    msgs = _problems(_replace(plan, role, assumeRolePolicy=json.dumps(trust)))
    assert any("kube-prometheus-stack-alertmanager" in m for m in msgs)
    gone = dataclasses.replace(plan, resources=[r for r in plan.resources if r is not topic])
    assert any("no heartbeat topic" in m for m in _problems(gone))


def test_checked_in_configs_carry_the_sns_receiver_amtool_accepts():
    from infra.core.paths import RULES_DIR
    for name in ("alertmanager-paging.yml", "alertmanager-tickets-only.yml"):
        doc = yaml.safe_load((RULES_DIR / "alertmanager" / name).read_text())
        receiver = next(r for r in doc["receivers"] if r["name"] == RECEIVER_HEARTBEAT)
        assert "sns_configs" in receiver and "access_key" not in json.dumps(receiver)
