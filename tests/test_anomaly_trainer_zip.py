"""The anomaly trainer from its built zip (Prophet and its wheels vendored for the runtime's Python), run in the
runtime's own interpreter with only the zip and boto3 on its path (infra/tools/drill/zip_runtime.py), against a
moto server holding its CloudWatch history, fed as its SQS event source mapping feeds it (one training batch per
record, stamped with the dispatcher's cycle). A throttled AWS call is injected at its calls in turn (the history
read, the model write, the first and last band days' writes: zip_env.fault_positions; every call under
`make exactly-once`); SQS then redelivers the failed batch, which runs clean.
Whatever the fault, the bucket ends exactly as a clean run leaves it: one model, one object per band day, every
day pointing at that model (the batch trains at its cycle, so a retry writes the same keys). The history and the
fits are kept small: this is about the path, tests/test_anomaly_handlers.py is about the fits."""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from anomaly_core.settings import SETTINGS_FILE, MetricSpec, Settings
from zip_env import client, fault_positions, function_env, moto  # noqa: F401  (moto: a fixture)

from infra.tools.drill import zip_runtime

pytestmark = pytest.mark.slow  # Prophet fits from the zip: one of the long modules

NAMESPACE, NAME, SERVICE = "AkiDB/TrainerZip", "Requests", "api"
BUCKET = "trainer-zip"
METRIC = MetricSpec(name="request_rate", source="cloudwatch", query=f"{NAMESPACE}|{NAME}|Average|Service={SERVICE}",
                    seasonality_mode="additive")
HISTORY_DAYS = 9  # the trainer holds out 7 days for validation and needs 24 points before them
STEP_S = 3600  # hourly history: a small fit


def _seed(url: str, now: float) -> None:
    cw = client(url, "cloudwatch")
    start = (int(now) // STEP_S - HISTORY_DAYS * 24 + 1) * STEP_S
    points = [(t, 100 + 20 * math.sin(2 * math.pi * (t % 86400) / 86400)) for t in range(start, int(now), STEP_S)]
    for i in range(0, len(points), 500):
        cw.put_metric_data(Namespace=NAMESPACE, MetricData=[
            {"MetricName": NAME, "Dimensions": [{"Name": "Service", "Value": SERVICE}],
             "Timestamp": datetime.fromtimestamp(t, UTC), "Value": v, "Unit": "Count"} for t, v in points[i:i + 500]])


def _objects(url: str, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in client(url, "s3").list_objects_v2(Bucket=bucket).get("Contents", []))


def _days(url: str, bucket: str) -> dict[str, dict[str, Any]]:
    s3 = client(url, "s3")
    return {key: json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
            for key in _objects(url, bucket) if key.startswith(f"bands/{METRIC.name}/")}


def _batch(cycle: int) -> dict[str, Any]:
    body = {"job": "train", "cycle": cycle, "metrics": [METRIC.name]}
    return {"Records": [{"messageId": "train-batch-1", "body": json.dumps(body)}]}


def test_a_fault_at_each_aws_call_then_the_redelivery_leaves_what_a_clean_run_leaves(
        moto: str, tmp_path: Path) -> None:  # noqa: F811
    now = time.time()
    _seed(moto, now)
    cycle = int(now // 60 * 60)
    cfg = Settings(metrics=(METRIC,), prometheus_url=None, confidence_threshold=0.7, history_days=HISTORY_DAYS,
                   forecast_max_age_s=192 * 3600)
    baked = {SETTINGS_FILE: json.dumps(cfg.to_json()).encode()}
    s3 = client(moto, "s3")
    s3.create_bucket(Bucket=BUCKET)
    with zip_runtime.packaged("anomaly_trainer", tmp_path, function_env(moto, ANOMALY_BUCKET=BUCKET),
                              baked=baked) as trainer:
        # One bucket (the container keeps its clients and settings across batches, as Lambda's does), emptied
        # between runs: the runs share a cycle, so they write the same keys.
        def attempt(fail_at: int = -1) -> zip_runtime.Invocation:
            return trainer.invoke(_batch(cycle), function="consume", fail_at=fail_at,
                                  context={"aws_request_id": f"train-{fail_at}"})

        def empty() -> None:
            for key in _objects(moto, BUCKET):
                s3.delete_object(Bucket=BUCKET, Key=key)

        clean = attempt()
        assert clean.error is None and clean.result == {"batchItemFailures": []}, (clean, trainer.tail())
        calls = clean.calls
        days = _days(moto, BUCKET)
        (model,) = {d["model_key"] for d in days.values()}
        assert "cloudwatch.GetMetricData" in calls and calls.count("s3.PutObject") == 1 + len(days), calls
        want = _objects(moto, BUCKET)
        assert want == sorted([model, *days]), want
        found, positions = [], fault_positions(calls)
        for at in positions:
            call = calls[at]
            empty()
            failed = attempt(at)
            assert failed.fired and failed.result == {"batchItemFailures": [{"itemIdentifier": "train-batch-1"}]}, \
                (at, call, failed)
            retried = attempt()  # SQS redelivers the same record after its visibility timeout
            assert retried.error is None and retried.result == {"batchItemFailures": []}, (at, call, retried)
            got = _objects(moto, BUCKET)
            if got != want or {d["model_key"] for d in _days(moto, BUCKET).values()} != {model}:
                found.append(f"fault at call {at} ({call}): objects {got}")
        print(f"trainer zip: {len(calls)} AWS calls in a clean run ({', '.join(calls)}); faults at {positions}, "
              f"each redelivered: {len(positions) - len(found)} ended as the clean run")
        assert found == []
