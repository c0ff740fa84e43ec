"""The anomaly fan-out (issue 28) from the built zips against a moto server: the dispatcher queues the metrics in
batches, the detector consumes them as its SQS event source mapping does (ReportBatchItemFailures, several
invocations at once; infra/tools/lambda_pool.py). Every metric is scored once per cycle; a fault injected before
an AWS call of a batch (a throttled call, or the time running out; each kind of call: zip_env.fault_positions,
every call under `make exactly-once`), then the redeliveries and a duplicated
batch, leave each metric's state as a clean run leaves it (each point admitted once) and one notice per episode.
`make bench-detector` runs the same fleet at 10,000 metrics."""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from log_shape import shape_problems
from zip_env import fault_positions

from infra.components.anomaly import DETECTOR_TIMEOUT_S, DISPATCHER_TIMEOUT_S
from infra.tools import anomaly_fleet as fleet
from infra.tools import daemons
from infra.tools.lambda_pool import LambdaPool, drain, lambda_pool
from lambdas.anomaly_core import metrics as contract
from lambdas.anomaly_core.store import NOTICE_LEASE_S

pytestmark = pytest.mark.slow  # moto server, three zips' interpreters and some sixty interleavings

METRICS = 50
BATCH = 20  # 50 metrics: batches of 20, 20 and 10
KINDS = ("fail", "die")


@dataclass
class Fleet:
    url: str
    workdir: Path
    dispatcher: LambdaPool
    detector: LambdaPool
    state: dict[str, Any]
    world: fleet.World | None = None

    def reset(self) -> fleet.World:
        """A clean moto (its reset endpoint) with the fleet's world; the functions keep their warm clients."""
        urllib.request.urlopen(urllib.request.Request(f"{self.url}/moto-api/reset", method="POST"), timeout=30)
        self.world = fleet.create_world()
        return self.world


@pytest.fixture(scope="module")
def fleet_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    workdir = tmp_path_factory.mktemp("fanout")
    saved = dict(os.environ)
    with daemons.moto_server() as moto:
        os.environ.update(daemons.aws_env(moto.url))
        try:
            world = fleet.create_world()
            pkgs = fleet.packages(fleet.fleet_config(METRICS), workdir)
            env = daemons.aws_env(moto.url) | fleet.function_env(world, BATCH)
            with lambda_pool(pkgs["anomaly_dispatcher"].path, "anomaly_dispatcher.handler.handler", workers=1,
                             timeout_s=DISPATCHER_TIMEOUT_S, env=env, workdir=workdir) as dispatcher, \
                    lambda_pool(pkgs["anomaly_detector"].path, "anomaly_detector.handler.consume", workers=3,
                                timeout_s=DETECTOR_TIMEOUT_S, env=env, workdir=workdir) as detector:
                yield Fleet(moto.url, workdir, dispatcher, detector, fleet.week_old_state(time.time()), world)
        finally:
            os.environ.clear()
            os.environ.update(saved)


def names(n: int) -> list[str]:
    return [fleet.metric_name(i) for i in range(n)]


def test_a_cycle_scores_every_metric_once_in_batches(fleet_env: Fleet) -> None:
    world = fleet_env.reset()
    now = time.time()
    fleet.seed(world, names(METRICS), now, state=fleet_env.state)
    sent = fleet_env.dispatcher.invoke({"job": "detect"})
    assert sent["ok"]["batches"] == -(-METRICS // BATCH) and sent["ok"]["metrics"] == METRICS
    done = drain(fleet_env.detector, world.sqs, world.detect_queue_url)
    assert len(done.invocations) == -(-METRICS // BATCH) and done.redelivered == 0
    assert all(inv["ok"]["batchItemFailures"] == [] and inv["ok"]["errors"] == 0 for inv in done.invocations)
    assert sum(inv["ok"]["scored"] for inv in done.invocations) == METRICS
    states = {n: fleet.state_of(world, n) for n in names(METRICS)}
    # Each state admitted the new point (CloudWatch stamps it on its period's grid, after the seeded last_ts).
    assert all(now - fleet.LAST_SEEN_S < s["last_ts"] <= now and s["last_out"]["ts"] == s["last_ts"]
               for s in states.values())
    # The same cycle dispatched again (EventBridge delivers at least once): nothing is scored twice.
    fleet_env.dispatcher.invoke({"job": "detect"})
    again = drain(fleet_env.detector, world.sqs, world.detect_queue_url)
    assert len(again.invocations) == len(done.invocations)
    assert {n: fleet.state_of(world, n) for n in names(METRICS)} == states
    assert fleet.notices(world) == []


def test_bad_events_and_batches_say_what_is_wrong(fleet_env: Fleet) -> None:
    fleet_env.reset()
    refused = fleet_env.dispatcher.invoke({"job": "nope"})
    assert "event.job 'nope' is not a job; allowed: detect, train" in refused["error"]
    bad = {"Records": [{"messageId": "m-1", "body": "not json"},
                       {"messageId": "m-2", "body": json.dumps({"job": "train", "metrics": ["m00000"]})}]}
    out = fleet_env.detector.invoke(bad)["ok"]
    assert out["batchItemFailures"] == [{"itemIdentifier": "m-1"}, {"itemIdentifier": "m-2"}]
    log = "".join(p.read_text() for p in fleet_env.workdir.glob("anomaly_detector*.log"))
    assert "record body is not JSON" in log and "is not a detection batch" in log
    # The dispatcher writes the one log shape (lambdas/logshape) with its own service.
    lines = [ln for p in fleet_env.workdir.glob("anomaly_dispatcher*.log") for ln in p.read_text().splitlines()
             if ln.startswith("{")]
    assert lines and all(shape_problems(ln, frozenset({"anomaly-dispatcher"})) == [] for ln in lines)


FAULT_METRICS = names(3)
ANOMALOUS = FAULT_METRICS[1]


def one_batch(fleet_env: Fleet, now: float, fault: dict[str, Any] | None) -> dict[str, Any]:
    """One batch of three metrics (one far outside its band: an episode starts) through a fault, its redeliveries
    and then a duplicate of the batch; what the bucket, the topic and CloudWatch hold afterwards. Every run seeds
    the same world at the same `now` (its point stays within the detector's 15-minute lookback for the test)."""
    world = fleet_env.reset()
    fleet.seed(world, FAULT_METRICS, now, values={ANOMALOUS: 10_000.0}, state=fleet_env.state)
    body = json.dumps({"job": "detect", "cycle": int(now // 300 * 300), "metrics": FAULT_METRICS})
    world.sqs.send_message(QueueUrl=world.detect_queue_url, MessageBody=body)
    first = drain(fleet_env.detector, world.sqs, world.detect_queue_url,
                  fault_for=lambda i: fault if i == 0 else None)
    age_claims(world)
    world.sqs.send_message(QueueUrl=world.detect_queue_url, MessageBody=body)  # a duplicate delivery
    drain(fleet_env.detector, world.sqs, world.detect_queue_url)
    confidence = world.cloudwatch.get_metric_statistics(
        Namespace=contract.NAMESPACE, MetricName=contract.CONFIDENCE, Statistics=["Minimum", "Maximum"],
        Dimensions=[{"Name": contract.METRIC_DIMENSION, "Value": ANOMALOUS}], Period=60,
        StartTime=datetime.fromtimestamp(now - 600, UTC), EndTime=datetime.fromtimestamp(now + 600, UTC))
    return {"states": {n: fleet.state_of(world, n) for n in FAULT_METRICS}, "notices": fleet.notices(world),
            "confidence": confidence["Datapoints"], "calls": first.invocations[0]["calls"],
            "fired": first.invocations[0]["fired"]}


def age_claims(world: fleet.World) -> None:
    """The notice lease runs out before the next delivery (as the next cycles would): each claim is dated back."""
    listed = world.s3.list_objects_v2(Bucket=fleet.BUCKET, Prefix="state/notices/").get("Contents", [])
    for obj in listed:
        if not obj["Key"].endswith(".sent.json"):
            doc = json.loads(world.s3.get_object(Bucket=fleet.BUCKET, Key=obj["Key"])["Body"].read())
            doc["claimed_at"] -= NOTICE_LEASE_S + 1
            world.s3.put_object(Bucket=fleet.BUCKET, Key=obj["Key"], Body=json.dumps(doc).encode())


def test_faults_then_redelivery_score_and_notify_once(fleet_env: Fleet) -> None:
    now = time.time()
    clean = one_batch(fleet_env, now, None)
    assert clean["states"][ANOMALOUS]["episode"]["open"] is True
    assert [n["event"] for n in clean["notices"]] == ["anomaly_start"]
    calls = clean["calls"]
    problems, runs = [], 0
    # The notice's seam (dying between the publish and marking it sent) always; the rest as zip_env says.
    positions = fault_positions(calls, calls.index("sns.Publish") + 1)
    for kind in KINDS:
        for at in positions:
            got = one_batch(fleet_env, now, {"kind": kind, "at": at})
            runs += 1
            assert got["fired"], f"{kind}@{at}: the fault did not fire"
            if got["states"] != clean["states"]:
                problems.append(f"{kind}@{at} ({calls[at]}): states differ from a clean run's "
                                f"{[n for n in FAULT_METRICS if got['states'][n] != clean['states'][n]]}")
            # One notice; twice only when the run died between publishing it and marking it sent (SNS cannot
            # take a publish back): both copies then carry the same dedupe_key, which the ticket receiver keys on.
            events = [n["event"] for n in got["notices"]]
            twice = kind == "die" and at == calls.index("sns.Publish") + 1
            if {(n["dedupe_key"], n["event"]) for n in got["notices"]} != {
                    (n["dedupe_key"], n["event"]) for n in clean["notices"]} \
                    or events != ["anomaly_start"] * (2 if twice else 1):
                problems.append(f"{kind}@{at} ({calls[at]}): notices {events}")
            # A replayed point publishes the values stored when it was scored: one Confidence value per point.
            if any(p["Minimum"] != p["Maximum"] for p in got["confidence"]):
                problems.append(f"{kind}@{at}: Confidence published with different values {got['confidence']}")
    print(f"{len(calls)} AWS calls in a clean batch ({', '.join(calls)}); faults at {positions}: {runs} interleavings")
    assert problems == []
