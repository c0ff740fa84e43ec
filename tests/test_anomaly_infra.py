"""The anomaly component in both planned stacks, its config rules, and its plan-time rules (each made to fail)."""

from __future__ import annotations

import dataclasses
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from infra.artifacts.packaging import LIMITS, read_package
from infra.offline.plan import PlanResult
from infra.validation import Plan, PlannedResource
from infra.validation import anomaly as rules
from lambdas.anomaly_core import metrics as contract

FN = "aws:lambda/function:Function"


def mine(result: PlanResult, token: str) -> list[PlannedResource]:
    comp = {r.name for r in result.plan.of_type(rules.COMPONENT_TYPE)}
    return [r for r in result.plan.of_type(token) if r.parent in comp]


def policies(result: PlanResult) -> dict[str, dict[str, Any]]:
    return {r.name: json.loads(r.inputs["policy"]) for r in mine(result, "aws:iam/rolePolicy:RolePolicy")}


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_stack_has_the_component_and_passes_validation(planned: dict[str, PlanResult], stack: str) -> None:
    result = planned[stack]
    assert result.violations == []
    fns = {r.inputs["name"]: r for r in mine(result, FN)}
    assert set(fns) == {f"akidb-{stack}-anomaly-trainer", f"akidb-{stack}-anomaly-detector",
                        f"akidb-{stack}-anomaly-dispatcher"}
    for fn in fns.values():
        assert fn.inputs["runtime"] == "python3.12" and fn.inputs["tracingConfig"]["mode"] == "Active"
    trainer = fns[f"akidb-{stack}-anomaly-trainer"]
    # The trainer ships through S3 (lambda-s3) from an object whose source is the built zip.
    assert trainer.inputs["s3Bucket"] and trainer.inputs["s3Key"].startswith("packages/anomaly_trainer")
    assert trainer.inputs["ephemeralStorage"]["size"] >= 512 and trainer.inputs["environment"]["variables"][
        "TMPDIR"] == "/tmp"
    (obj,) = mine(result, "aws:s3/bucketObjectv2:BucketObjectv2")
    pkg = read_package(obj.inputs["source"]["path"])
    assert pkg.kind == "lambda-s3" and pkg.unpacked_bytes < LIMITS["lambda-s3"]["unpacked"]
    with zipfile.ZipFile(pkg.path) as zf:
        names = set(zf.namelist())
        baked = json.loads(zf.read("anomaly_trainer/settings.json"))
    assert "prophet/stan_model/prophet_model.bin" in names and "anomaly_core/scoring.py" in names
    assert not any(n.startswith(("matplotlib/", "pandas/tests/")) for n in names)
    assert [m["name"] for m in baked["metrics"]] == [m.name for m in result.plan.config.anomaly.metrics]
    # The detector package is tiny: no Prophet, no pandas, no numpy.
    detector = fns[f"akidb-{stack}-anomaly-detector"]
    det_pkg = read_package(detector.inputs["code"]["path"])
    with zipfile.ZipFile(det_pkg.path) as zf:
        assert not any(n.startswith(("prophet/", "pandas/", "numpy/")) for n in zf.namelist())
    assert det_pkg.compressed_bytes < 100_000
    # Schedules (both to the dispatcher), on-failure destinations, encrypted topic and queues.
    schedules = {r.inputs["scheduleExpression"] for r in mine(result, "aws:cloudwatch/eventRule:EventRule")}
    assert schedules == {"rate(5 minutes)", "cron(0 3 ? * SUN *)"}
    dispatcher = fns[f"akidb-{stack}-anomaly-dispatcher"]
    targets = mine(result, "aws:cloudwatch/eventTarget:EventTarget")
    assert sorted(json.loads(t.inputs["input"])["job"] for t in targets) == ["detect", "train"]
    assert all(t.inputs["arn"].endswith(f":function:{dispatcher.inputs['name']}") for t in targets)
    assert len(mine(result, "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig")) == 3
    (topic,) = mine(result, "aws:sns/topic:Topic")
    assert topic.inputs["kmsMasterKeyId"].startswith("arn:aws:kms:us-east-1:")
    queues = {q.inputs["name"].removeprefix(f"akidb-{stack}-anomaly-"): q
              for q in mine(result, "aws:sqs/queue:Queue")}
    assert set(queues) == {"failures", "detect", "detect-dlq", "train", "train-dlq"}
    assert queues["failures"].inputs["sqsManagedSseEnabled"] is True
    # The fan-out (issue 28): each batch queue KMS-encrypted, redriving to its DLQ, visible again only after six
    # times its consumer's timeout; one batch per invocation, failures reported per batch, bounded concurrency.
    cfg = result.plan.config.anomaly
    for kind, fn_kind, most in (("detect", "detector", cfg.detect_max_concurrency),
                                ("train", "trainer", cfg.train_max_concurrency)):
        q, fn = queues[kind], fns[f"akidb-{stack}-anomaly-{fn_kind}"]
        assert q.inputs["kmsMasterKeyId"] == topic.inputs["kmsMasterKeyId"]
        assert q.inputs["visibilityTimeoutSeconds"] >= 6 * fn.inputs["timeout"]
        assert json.loads(q.inputs["redrivePolicy"])["deadLetterTargetArn"].endswith(f"-anomaly-{kind}-dlq")
        (esm,) = [e for e in mine(result, "aws:lambda/eventSourceMapping:EventSourceMapping")
                  if e.inputs["eventSourceArn"].endswith(q.inputs["name"])]
        assert esm.inputs["functionName"].endswith(f":function:{fn.inputs['name']}")
        assert esm.inputs["functionResponseTypes"] == ["ReportBatchItemFailures"] and esm.inputs["batchSize"] == 1
        assert esm.inputs["scalingConfig"]["maximumConcurrency"] == most == fn.inputs["reservedConcurrentExecutions"]
        assert fn.inputs["handler"].endswith(".consume")
    env = dispatcher.inputs["environment"]["variables"]
    assert (env["DETECT_BATCH_METRICS"], env["TRAIN_BATCH_METRICS"]) == (str(cfg.detect_batch_metrics),
                                                                        str(cfg.train_batch_metrics))
    assert dispatcher.inputs["reservedConcurrentExecutions"] == 1


def test_least_privilege_policies(planned: dict[str, PlanResult]) -> None:
    docs = policies(planned["staging"])
    detector = docs["anomaly-detector-policy"]["Statement"]
    put = [s for s in detector if "cloudwatch:PutMetricData" in s["Action"]]
    assert put == [{"Action": ["cloudwatch:PutMetricData"], "Condition": {"StringEquals": {
        "cloudwatch:namespace": contract.NAMESPACE}}, "Effect": "Allow", "Resource": "*",
        "Sid": "PublishAnomalyMetrics"}]
    kms = next(s for s in detector if s["Sid"] == "EncryptedTopic")
    assert kms["Action"] == ["kms:Decrypt", "kms:GenerateDataKey"] and kms["Resource"][0].startswith("arn:aws:kms:")
    # The dispatcher only queues; each consumer only reads and deletes on its own queue (issue 28).
    dispatcher = docs["anomaly-dispatcher-policy"]["Statement"]
    (send,) = [s for s in dispatcher if s["Sid"] == "QueueBatches"]
    assert send["Action"] == ["sqs:SendMessage"] and sorted(r.rsplit(":", 1)[-1] for r in send["Resource"]) == [
        "akidb-staging-anomaly-detect", "akidb-staging-anomaly-train"]
    assert not any(a.startswith(("s3:", "sns:", "cloudwatch:")) for s in dispatcher for a in s["Action"])
    for fn, queue in (("detector", "detect"), ("trainer", "train")):
        (take,) = [s for s in docs[f"anomaly-{fn}-policy"]["Statement"] if "sqs:ReceiveMessage" in s["Action"]]
        assert take["Resource"] == [f"arn:aws:sqs:us-east-1:111111111111:akidb-staging-anomaly-{queue}"]
        assert sorted(take["Action"]) == ["sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"]
    trainer = docs["anomaly-trainer-policy"]["Statement"]
    assert not any("cloudwatch:PutMetricData" in s["Action"] or "sns:Publish" in s["Action"] for s in trainer)
    amp = next(s for s in trainer if s["Sid"] == "ReadPrometheus")
    assert amp["Resource"] == ["arn:aws:aps:us-east-1:111111111111:workspace/ws-0a1b2c3d-staging"] or \
        amp["Resource"][0].endswith(":workspace/ws-0a1b2c3d-staging")


def test_alarm_names_output_and_alarm_targets(planned: dict[str, PlanResult]) -> None:
    result = planned["staging"]
    names = result.outputs["anomalyAlarmNames"]
    alarms = {r.inputs["name"]: r for r in mine(result, "aws:cloudwatch/metricAlarm:MetricAlarm")}
    assert set(names) == {"us-east-1"} and set(names["us-east-1"]) == set(alarms)
    pages = {n: a for n, a in alarms.items() if "metricQueries" in a.inputs}
    health_alarms = {n: a for n, a in alarms.items() if n not in pages}
    kinds = {(a.inputs["namespace"], a.inputs["metricName"]) for a in health_alarms.values()}
    assert {("AWS/Lambda", "Errors"), ("AWS/Lambda", "Throttles"), (contract.NAMESPACE, contract.DETECTOR_ERRORS),
            (contract.NAMESPACE, contract.FORECAST_AGE)} <= kinds
    health = next(a for a in health_alarms.values() if a.inputs["metricName"] == contract.DETECTOR_ERRORS)
    assert health.inputs["treatMissingData"] == "breaching"  # a detector that stops running is caught too
    topics = result.outputs["alertTopicArns"]["us-east-1"]
    assert all(a.inputs["alarmActions"] == [topics["P2"]] for a in health_alarms.values())
    # One page alarm per watched metric, to P1 (item 4 of issue 23).
    cfg = result.plan.config.anomaly
    assert len(pages) == len(cfg.metrics) and all(a.inputs["alarmActions"] == [topics["P1"]] for a in pages.values())
    for a in pages.values():
        periods = cfg.page_after_minutes // 5
        assert (a.inputs["threshold"], a.inputs["evaluationPeriods"], a.inputs["datapointsToAlarm"]) == (
            cfg.page_confidence, periods, periods)
        assert a.inputs["comparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert {q["metric"]["metricName"] for q in a.inputs["metricQueries"] if q.get("metric")} == {
            contract.IS_ANOMALY, contract.CONFIDENCE}
        assert "[runbook:anomaly-episode]" in a.inputs["alarmDescription"]


def test_episodes_reach_the_ticket_webhook(planned: dict[str, PlanResult]) -> None:
    result = planned["prod"]
    subs = mine(result, "aws:sns/topicSubscription:TopicSubscription")
    assert [(s.inputs["topic"], s.inputs["protocol"], s.inputs["endpoint"]) for s in subs] == [
        (result.outputs["anomalyTopicArn"], "https", result.plan.config.slo_alerting.ticket_webhook_url)]


def test_episode_pages_follow_the_settings(run_stack: Any) -> None:
    result = run_stack("staging", overrides={"anomaly": {"pageConfidence": 0.8, "pageAfterMinutes": 15}})
    pages = [a for a in mine(result, "aws:cloudwatch/metricAlarm:MetricAlarm") if "metricQueries" in a.inputs]
    assert pages and {(a.inputs["threshold"], a.inputs["evaluationPeriods"]) for a in pages} == {(0.8, 3)}


@pytest.mark.parametrize(("override", "message"), [
    ({"detectSchedule": "every 5 minutes"}, "an EventBridge schedule"),
    ({"forecastMaxAgeHours": 500}, "anomaly.forecastMaxAgeHours"),
    ({"logRetentionDays": 10}, "anomaly.logRetentionDays"),
    ({"metrics": [{"name": "x", "source": "cloudwatch", "query": "only-a-name"}]}, "Namespace|MetricName|Stat"),
    ({"pageConfidence": 0.5}, "anomaly.pageConfidence"),
    ({"pageAfterMinutes": 12}, "must be a multiple of 5"),
])
def test_config_problems(run_stack: Any, override: dict[str, Any], message: str) -> None:
    result = run_stack("staging", overrides={"anomaly": override})
    assert any(message in p for p in result.config_problems), result.config_problems


def test_disabled_component_creates_nothing(run_stack: Any) -> None:
    result = run_stack("staging", overrides={"anomaly": {"enabled": False}})
    assert not result.plan.of_type(rules.COMPONENT_TYPE) and "anomalyAlarmNames" not in result.outputs


# ---------------------------------------------------------------------------------------------- rules fail
def replaced(plan: Plan, target: PlannedResource, **inputs: Any) -> Plan:
    changed = dataclasses.replace(target, inputs={**target.inputs, **inputs})
    return Plan([changed if r is target else r for r in plan.resources], plan.config, plan.outputs)


def test_rules_fail_on_bad_inputs(planned: dict[str, PlanResult]) -> None:
    plan = planned["staging"].plan
    for check in (rules.anomaly_alarms_follow_the_contract, rules.anomaly_functions_traced_and_bounded,
                  rules.anomaly_bucket_keeps_bounded_history):
        assert list(check(plan)) == []
    alarm = next(a for a in mine(planned["staging"], "aws:cloudwatch/metricAlarm:MetricAlarm")
                 if a.inputs.get("metricName") == contract.FORECAST_AGE)
    assert "not published" in next(iter(rules.anomaly_alarms_follow_the_contract(
        replaced(plan, alarm, metricName="ForecastAgeSeconds")))).message
    assert "dimensions" in next(iter(rules.anomaly_alarms_follow_the_contract(
        replaced(plan, alarm, dimensions={"Name": "x"})))).message
    page = next(a for a in mine(planned["staging"], "aws:cloudwatch/metricAlarm:MetricAlarm")
                if "metricQueries" in a.inputs)
    queries = [dict(q, metric={**q["metric"], "metricName": "Confidance"}) if q.get("metric") else q
               for q in page.inputs["metricQueries"]]
    assert "'Confidance' is not published" in next(iter(rules.anomaly_alarms_follow_the_contract(
        replaced(plan, page, metricQueries=queries)))).message
    fns = {f.inputs["name"].rsplit("-", 1)[-1]: f for f in mine(planned["staging"], FN)}
    assert "Active" in next(iter(rules.anomaly_functions_traced_and_bounded(
        replaced(plan, fns["detector"], tracingConfig={"mode": "PassThrough"})))).message
    assert "must be 1 for a scheduled function" in next(iter(rules.anomaly_functions_traced_and_bounded(
        replaced(plan, fns["dispatcher"], reservedConcurrentExecutions=5)))).message
    assert "at least the event source mapping's maximumConcurrency" in next(iter(
        rules.anomaly_functions_traced_and_bounded(replaced(plan, fns["detector"], reservedConcurrentExecutions=1)))
    ).message
    assert list(rules.anomaly_queues_fit_their_consumers(plan)) == []
    queue = next(q for q in mine(planned["staging"], "aws:sqs/queue:Queue") if q.inputs["name"].endswith("-detect"))
    assert "must be at least 6 x 60 s" in next(iter(rules.anomaly_queues_fit_their_consumers(
        replaced(plan, queue, visibilityTimeoutSeconds=300)))).message
    assert "kmsMasterKeyId" in next(iter(rules.anomaly_queues_fit_their_consumers(
        replaced(plan, queue, kmsMasterKeyId=None)))).message
    assert "redrivePolicy" in next(iter(rules.anomaly_queues_fit_their_consumers(
        replaced(plan, queue, redrivePolicy=None)))).message
    esm = mine(planned["staging"], "aws:lambda/eventSourceMapping:EventSourceMapping")[0]
    assert "ReportBatchItemFailures" in next(iter(rules.anomaly_queues_fit_their_consumers(
        replaced(plan, esm, functionResponseTypes=[])))).message
    lifecycle = mine(planned["staging"], "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")[0]
    assert "noncurrent" in next(iter(rules.anomaly_bucket_keeps_bounded_history(
        replaced(plan, lifecycle, rules=[{"status": "Enabled", "id": "x"}])))).message
    versioning = mine(planned["staging"], "aws:s3/bucketVersioning:BucketVersioning")[0]
    assert "versioning" in next(iter(rules.anomaly_bucket_keeps_bounded_history(
        replaced(plan, versioning, versioningConfiguration={"status": "Suspended"})))).message


def test_contract_module_is_importable_from_infra() -> None:
    assert contract.NAMESPACE == "AkiDB/AnomalyDetection"
    assert list(contract.PER_METRIC) == ["IsAnomaly", "Score", "Confidence", "Actual", "Predicted", "UpperBound",
                                         "LowerBound"]
    assert contract.HEALTH == {"DetectorErrors": ("Count", ()), "ForecastAge": ("Seconds", ("Metric",))}
    assert contract.dimensions(contract.SCORE, "cpu") == [{"Name": "Metric", "Value": "cpu"}]
    with pytest.raises(ValueError, match="not a metric"):
        contract.unit_of("Nope")
    assert Path(contract.__file__).parent.name == "anomaly_core"
