"""`make dr-drill`: lose the anomaly detector's stored objects, restore them from S3 versions, check it resumes.

Runs the real trainer (Prophet) and the real detector (`lambdas/anomaly_*`) against moto, in a bucket versioned
like the stack's anomaly bucket (`infra/components/anomaly.py`):
1. train on 15 days of CloudWatch history; the detector runs a few 5-minute points (state written each run);
2. disaster: the band, the detector state and the model object are deleted (delete markers, as an operator's
   `aws s3 rm` or a bad deploy would leave), and a later write corrupts the state;
3. the next detector run cannot score (`DetectorErrors` = 1: the alarm that would page);
4. restore: each key's delete marker is removed / the last good version is copied back (`restore_key`);
5. the detector runs again: no error, its state continues from the pre-disaster memory (same residual history,
   `last_ts` advanced), and the model JSON loads with `prophet.serialize.model_from_json`.
Prints each step with the time it took; exit 1 if the detector does not resume.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from infra.core.paths import LAMBDAS_DIR

REGION = "us-east-1"
BUCKET = "akidb-drill-anomaly-us-east-1"
METRIC = "request_rate"
QUERY = "AkiDB/Drill|Requests|Average|Service=api"
STEP = 300
DAY = 86400


def seasonal(t: float) -> float:
    return 100 + 20 * math.sin(2 * math.pi * (t % DAY) / DAY) + 1.5 * math.sin(t / 777.0)


@dataclass
class DrillResult:
    steps: list[tuple[str, float, str]] = field(default_factory=list)  # (step, seconds, outcome)
    resumed: bool = False
    errors_while_lost: int = 0
    errors_after_restore: int = -1
    restore_seconds: float = 0.0

    def report(self) -> str:
        lines = ["DR drill (moto, real trainer and detector):"]
        lines += [f"  {secs:7.2f} s  {step}: {outcome}" for step, secs, outcome in self.steps]
        lines.append(f"Detector resumed after restore: {'yes' if self.resumed else 'NO'} "
                     f"(restore of the objects took {self.restore_seconds:.2f} s)")
        return "\n".join(lines)


def restore_key(s3: Any, bucket: str, key: str) -> str:
    """Make the newest good version of `key` current again; returns what was done.

    A delete marker on top is removed (the previous version becomes current); otherwise the version before the
    current one is copied over it (undoing a bad write). Raises LookupError when no earlier version exists."""
    listing = s3.list_object_versions(Bucket=bucket, Prefix=key)
    markers = [m for m in listing.get("DeleteMarkers", []) if m["Key"] == key]
    versions = sorted((v for v in listing.get("Versions", []) if v["Key"] == key),
                      key=lambda v: v["LastModified"], reverse=True)
    latest_marker = next((m for m in markers if m["IsLatest"]), None)
    if latest_marker is not None:
        s3.delete_object(Bucket=bucket, Key=key, VersionId=latest_marker["VersionId"])
        return f"removed delete marker {latest_marker['VersionId']}"
    if len(versions) < 2:
        raise LookupError(f"s3://{bucket}/{key} has no earlier version to restore")
    previous = versions[1]
    s3.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": key,
                                                       "VersionId": previous["VersionId"]})
    return f"copied back version {previous['VersionId']}"


@contextmanager
def _moto() -> Iterator[None]:
    from moto import mock_aws

    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
    os.environ.update(AWS_ACCESS_KEY_ID="drill", AWS_SECRET_ACCESS_KEY="drill", AWS_DEFAULT_REGION=REGION)
    try:
        with mock_aws():
            yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_drill(log: Callable[[str], None] = lambda _line: None) -> DrillResult:
    if str(LAMBDAS_DIR) not in sys.path:
        sys.path.insert(0, str(LAMBDAS_DIR))
    import boto3
    from anomaly_core.settings import MetricSpec, Settings
    from anomaly_core.sources import Sources
    from anomaly_core.store import band_key, get_json, state_key
    from anomaly_detector import handler as detector
    from anomaly_trainer import handler as trainer
    from prophet.serialize import model_from_json

    result = DrillResult()

    def step(name: str, fn: Callable[[], str]) -> None:
        started = time.perf_counter()
        outcome = fn()
        result.steps.append((name, time.perf_counter() - started, outcome))
        log(f"{name}: {outcome}")

    now = (int(time.time()) // STEP) * STEP
    with _moto():
        s3 = boto3.client("s3", region_name=REGION)
        cw = boto3.client("cloudwatch", region_name=REGION)
        sns = boto3.client("sns", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        topic = sns.create_topic(Name="drill-anomaly")["TopicArn"]
        cfg = Settings(metrics=(MetricSpec(name=METRIC, source="cloudwatch", query=QUERY),),
                       prometheus_url=None, confidence_threshold=0.7, history_days=15,
                       forecast_max_age_s=192 * 3600)
        sources = Sources(cloudwatch=cw, prometheus_url=None)
        det_clients = detector.Clients(s3=s3, cloudwatch=cw, sns=sns, sources=sources)
        targets = detector.Targets(BUCKET, topic)

        def put_point(t: float) -> None:
            cw.put_metric_data(Namespace="AkiDB/Drill", MetricData=[{
                "MetricName": "Requests", "Dimensions": [{"Name": "Service", "Value": "api"}],
                "Timestamp": datetime.fromtimestamp(t, UTC), "Value": seasonal(t)}])

        def history() -> str:
            data = [{"MetricName": "Requests", "Dimensions": [{"Name": "Service", "Value": "api"}],
                     "Timestamp": datetime.fromtimestamp(t, UTC), "Value": seasonal(t)}
                    for t in range(now - 15 * DAY, now, STEP)]
            for i in range(0, len(data), 1000):
                cw.put_metric_data(Namespace="AkiDB/Drill", MetricData=data[i:i + 1000])
            return f"{len(data)} points of history"

        step("seed CloudWatch history", history)
        step("train (real Prophet)", lambda: json.dumps(
            trainer.run({}, cfg, trainer.Clients(s3=s3, sources=sources), BUCKET, now)))

        t = now
        for _ in range(3):
            t += STEP
            put_point(t)
            out = detector.run(cfg, det_clients, targets, t + 30)
            if out["errors"]:
                raise RuntimeError(f"detector failed before the disaster: {out}")
        before = get_json(s3, BUCKET, state_key(METRIC))
        if before is None:
            raise RuntimeError(f"the detector wrote no state to s3://{BUCKET}/{state_key(METRIC)} before the disaster")
        result.steps.append(("detector, 3 runs before the disaster", 0.0,
                             f"state last_ts={before['last_ts']:.0f}, "
                             f"{len(before['confidence']['residuals'])} residuals"))
        model_keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=f"models/{METRIC}/")["Contents"]]
        lost = [band_key(METRIC), state_key(METRIC), *model_keys]

        def disaster() -> str:
            for key in lost:
                s3.delete_object(Bucket=BUCKET, Key=key)
            return f"deleted {', '.join(lost)}"

        step("disaster", disaster)
        t += STEP
        put_point(t)
        lost_run = detector.run(cfg, det_clients, targets, t + 30)
        result.errors_while_lost = int(lost_run["errors"])
        result.steps.append(("detector while lost", 0.0, f"DetectorErrors={lost_run['errors']} "
                             f"({lost_run['metrics'][METRIC].get('skipped')})"))

        def restore() -> str:
            return "; ".join(f"{k}: {restore_key(s3, BUCKET, k)}" for k in lost)

        started = time.perf_counter()
        step("restore from versions", restore)
        result.restore_seconds = time.perf_counter() - started

        t += STEP
        put_point(t)
        after_run = detector.run(cfg, det_clients, targets, t + 30)
        result.errors_after_restore = int(after_run["errors"])
        after = get_json(s3, BUCKET, state_key(METRIC))
        if after is None:
            raise RuntimeError(f"the detector wrote no state to s3://{BUCKET}/{state_key(METRIC)} after the restore")
        # The restored memory continues (its residuals plus this run's), instead of a fresh seeded state.
        old, new = before["confidence"]["residuals"], after["confidence"]["residuals"]
        # (the history is a bounded window: the oldest residual may have rolled out.)
        memory_kept = bool(new) and new[:-1] == old[len(old) - (len(new) - 1):]
        model = model_from_json(s3.get_object(Bucket=BUCKET, Key=model_keys[0])["Body"].read().decode())
        result.resumed = (after_run["errors"] == 0 and float(after["last_ts"]) > float(before["last_ts"])
                          and memory_kept and model is not None)
        result.steps.append(("detector after restore", 0.0,
                             f"DetectorErrors={after_run['errors']}, last_ts {before['last_ts']:.0f} -> "
                             f"{after['last_ts']:.0f}, residuals {len(before['confidence']['residuals'])} -> "
                             f"{len(after['confidence']['residuals'])}, model JSON loads"))

        # A bad write (not a delete): the previous version is copied back.
        s3.put_object(Bucket=BUCKET, Key=state_key(METRIC), Body=b"{not json")
        step("corrupt state, restore previous version", lambda: restore_key(s3, BUCKET, state_key(METRIC)))
        t += STEP
        put_point(t)
        healed = detector.run(cfg, det_clients, targets, t + 30)
        result.steps.append(("detector after undoing the bad write", 0.0, f"DetectorErrors={healed['errors']}"))
        result.resumed = result.resumed and healed["errors"] == 0
    return result


def main(argv: list[str] | None = None) -> int:
    result = run_drill()
    print(result.report())
    return 0 if result.resumed and result.errors_while_lost == 1 else 1


if __name__ == "__main__":
    sys.exit(main())
