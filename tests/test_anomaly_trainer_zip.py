"""The anomaly trainer from its built zip (Prophet and its wheels vendored for the runtime's Python), run in the
runtime's own interpreter with only the zip and boto3 on its path (infra/tools/drill/zip_runtime.py), against a
moto server holding its CloudWatch history. A throttled AWS call is injected at each of its calls in turn (the
history read, the model write, the band write); Lambda's retry of the failed asynchronous invocation then runs
clean. Whatever the fault, the retry ends with one band, written by the retry, pointing at the model the retry
wrote. A model the failed attempt wrote before its band write failed stays beside it under its own key
(models/<metric>/<trained_at>.json, one per attempt): counted and printed, not yet refused (the trainer's model key
would have to be the same across a retry). The history and the fits are kept small: this is about the path,
tests/test_anomaly_handlers.py is about the fits."""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from anomaly_core.settings import SETTINGS_FILE, MetricSpec, Settings
from anomaly_core.store import band_key
from zip_env import client, function_env, moto  # noqa: F401  (moto: a fixture)

from infra.tools.drill import zip_runtime

pytestmark = pytest.mark.slow  # Prophet fits from the zip: one of the long modules

NAMESPACE, NAME, SERVICE = "AkiDB/TrainerZip", "Requests", "api"
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


def _band(url: str, bucket: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(client(url, "s3").get_object(Bucket=bucket, Key=band_key(METRIC.name))["Body"]
                                     .read())
    return doc


def retried_at(run: zip_runtime.Invocation) -> str:
    """The retry's training time, from its log line (the band must be the retry's, not the failed attempt's)."""
    return str(next(r["trained_at"] for r in run.records() if r.get("decision") == "trained"))


def test_a_fault_at_each_aws_call_then_the_retry_writes_the_band_once(
        moto: str, tmp_path: Path) -> None:  # noqa: F811
    _seed(moto, time.time())
    cfg = Settings(metrics=(METRIC,), prometheus_url=None, confidence_threshold=0.7, history_days=HISTORY_DAYS,
                   forecast_max_age_s=192 * 3600)
    baked = {SETTINGS_FILE: json.dumps(cfg.to_json()).encode()}
    s3 = client(moto, "s3")
    with zip_runtime.packaged("anomaly_trainer", tmp_path, function_env(moto), baked=baked) as trainer:
        def attempt(bucket: str, fail_at: int = -1) -> zip_runtime.Invocation:
            return trainer.invoke({}, env={"ANOMALY_BUCKET": bucket}, fail_at=fail_at,
                                  context={"aws_request_id": f"{bucket}-{fail_at}"})

        s3.create_bucket(Bucket="clean")
        clean = attempt("clean")
        assert clean.error is None and clean.result == {"trained": [METRIC.name], "flagged": []}, \
            (clean, trainer.tail())
        calls = clean.calls
        assert calls.count("s3.PutObject") == 2 and "cloudwatch.GetMetricData" in calls, calls
        assert _objects(moto, "clean") == sorted([band_key(METRIC.name), _band(moto, "clean")["model_key"]])
        found, orphans = [], {}
        for at, call in enumerate(calls):
            bucket = f"fault-{at}"
            s3.create_bucket(Bucket=bucket)
            failed = attempt(bucket, at)
            assert failed.fired and failed.error is not None, (at, call, failed)
            time.sleep(1.1)  # Lambda retries an asynchronous invocation a minute later at the soonest
            retried = attempt(bucket)
            assert retried.error is None, (at, call, retried)
            band, objects = _band(moto, bucket), _objects(moto, bucket)
            if band["trained_at"] != retried_at(retried) or band["model_key"] not in objects \
                    or objects.count(band_key(METRIC.name)) != 1:
                found.append(f"fault at call {at} ({call}): band {band['model_key']} of {band['trained_at']}, "
                             f"objects {objects}")
            orphans[f"{at} ({call})"] = len([o for o in objects if o.startswith("models/")]) - 1
        print(f"trainer zip: {len(calls)} AWS calls in a clean run ({', '.join(calls)}); {len(calls)} faults, "
              f"each retried; models left by the failed attempt, per fault: {orphans}")
        assert found == []
