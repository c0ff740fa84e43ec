"""The anomaly fan-out from its built zips against a moto server (issue 28): the dispatcher, then the detector
over the detection queue as its SQS event source mapping would run it (infra/tools/lambda_pool.py), for any
number of metrics. `tests/test_anomaly_fanout.py` runs a few batches with faults; `make bench-detector` 10,000
metrics.

The world is the stack's, scaled down to what the functions touch: the bucket, the anomaly topic (with an SQS inbox
subscribed, to count the notices), the detection queue, and per metric a CloudWatch source point, the band's day
object in the trainer's format (anomaly_core.store.band_days) and a detector state a week old (every memory list
at its full length, so the reads are the size they are in production).
"""

from __future__ import annotations

import json
import math
import threading
import urllib.parse
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3

from infra.artifacts.packaging import LambdaPackage, build_lambda
from infra.components.anomaly import DETECTOR_TIMEOUT_S, settings_json
from infra.config.anomaly import AnomalyConfig, AnomalyMetricSettings
from lambdas.anomaly_core.store import band_day_key, band_days, state_key

REGION = "us-east-1"
BUCKET = "fleet-anomaly"
TOPIC = "fleet-anomaly"
DETECT_QUEUE = "fleet-anomaly-detect"
INBOX = "fleet-anomaly-inbox"
SOURCE_NAMESPACE = "Fleet/Source"
STEP = 300
DAY = 86400
LAST_SEEN_S = 1800


def metric_name(i: int) -> str:
    return f"m{i:05d}"


def fleet_config(n: int, prometheus_url: str | None = None) -> AnomalyConfig:
    """The shipped settings with `n` metrics (one source point each): CloudWatch ones, or with `prometheus_url`
    Prometheus ones (the shipped metrics' source) answered by `prometheus_stand_in`."""
    if prometheus_url is None:
        return AnomalyConfig(metrics=[AnomalyMetricSettings(
            name=metric_name(i), source="cloudwatch", query=f"{SOURCE_NAMESPACE}|Value|Average|Id={metric_name(i)}")
            for i in range(n)])
    return AnomalyConfig(prometheus_url=prometheus_url, metrics=[AnomalyMetricSettings(
        name=metric_name(i), source="prometheus", query=f'fleet_value{{id="{metric_name(i)}"}}') for i in range(n)])


PROM_QUERY_ID = "id=\""


class _PromAPI(BaseHTTPRequestHandler):
    """Prometheus's instant-query API for the fleet's series: `fleet_value{id="<metric>"}` of a seeded metric
    answers its latest sample, a minute before the query's evaluation time, as a live Prometheus would (the
    seeded value, else the band's centre); any other query an empty vector."""

    values: dict[str, float | None] = {}

    def do_GET(self) -> None:
        url = urllib.parse.urlparse(self.path)
        params = dict(urllib.parse.parse_qsl(url.query))
        query = params.get("query", "")
        name = query.split(PROM_QUERY_ID, 1)[-1].split('"', 1)[0] if PROM_QUERY_ID in query else ""
        at = float(params.get("time", "0")) - 60
        result = [] if name not in _PromAPI.values or url.path != "/api/v1/query" else [
            {"metric": {"id": name}, "value": [at, repr(_PromAPI.values[name] or seasonal(at))]}]
        body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def prometheus_stand_in() -> Iterator[str]:
    """A Prometheus HTTP API stand-in on 127.0.0.1 (threaded), answering each metric's seeded point at once: the
    bench's source, because moto's GetMetricData scans every stored datum for each query (its time grows with
    metrics x datums) and would be what the bench measures. Yields its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _PromAPI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def seasonal(t: float) -> float:
    return 100 + 20 * math.sin(2 * math.pi * (t % DAY) / DAY)


def week_old_state(now: float) -> dict[str, Any]:
    """A state as the detector holds it after a week of normal points: every memory list at its full length."""
    from lambdas.anomaly_core.scoring import WEEK_POINTS, BandPoint, ConfidenceState, assess

    state = ConfidenceState()
    for i in range(WEEK_POINTS + 300):
        t = now - (WEEK_POINTS + 300 - i) * STEP
        base = seasonal(t)
        _, state = assess(base + 3 * math.sin(i * 1.7), BandPoint(t, base, base - 10, base + 10), state, t)
    return {"confidence": state.to_json(), "episode": {}, "pending": [], "last_ts": now - STEP}


@dataclass(frozen=True)
class World:
    s3: Any
    sqs: Any
    cloudwatch: Any
    topic_arn: str
    detect_queue_url: str
    inbox_url: str


def create_world() -> World:
    """Clients from the environment (daemons.aws_env of the moto server)."""
    s3, sqs, sns = boto3.client("s3"), boto3.client("sqs"), boto3.client("sns")
    s3.create_bucket(Bucket=BUCKET)
    topic = str(sns.create_topic(Name=TOPIC)["TopicArn"])
    inbox = str(sqs.create_queue(QueueName=INBOX)["QueueUrl"])
    inbox_arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=inbox_arn, Attributes={"RawMessageDelivery": "true"})
    detect = str(sqs.create_queue(QueueName=DETECT_QUEUE, Attributes={
        "VisibilityTimeout": str(6 * DETECTOR_TIMEOUT_S)})["QueueUrl"])
    return World(s3=s3, sqs=sqs, cloudwatch=boto3.client("cloudwatch"), topic_arn=topic,
                 detect_queue_url=detect, inbox_url=inbox)


def band_objects(name: str, now: float, trained_ago_s: float = 3600.0) -> dict[str, dict[str, Any]]:
    """The day objects the trainer writes for a metric trained `trained_ago_s` before `now` (8 days ahead)."""
    trained = now - trained_ago_s
    start = int(trained // STEP) * STEP
    rows = [[float(t), round(seasonal(t), 4), round(seasonal(t) - 10, 4), round(seasonal(t) + 10, 4)]
            for t in range(start, start + 8 * DAY, STEP)]
    meta = {"metric": name, "trained_at": "fleet", "trained_at_epoch": trained, "flagged": False,
            "validation": {"mape": 0.01}, "error_limit": 0.15, "seed_residuals": [0.3] * 576}
    return band_days(meta, rows)


def seed(world: World, names: list[str], now: float, values: dict[str, float] | None = None,
         state: dict[str, Any] | None = None, threads: int = 16) -> None:
    """Per metric: the band's day object covering `now`, a week-old state and a source point a minute old
    (its value from `values`, else the band's centre)."""
    # The state last saw a point half an hour back: the new point (within the detector's 15-minute lookback,
    # stamped by CloudWatch on its period's grid) is news to it.
    state_body = json.dumps({**(state if state is not None else week_old_state(now)),
                             "last_ts": now - LAST_SEEN_S}).encode()
    today = datetime.fromtimestamp(now - 60, UTC).strftime("%Y-%m-%d")
    bodies = {day: doc for day, doc in band_objects("fleet", now).items() if day == today}

    def put(name: str) -> None:
        for day, doc in bodies.items():
            world.s3.put_object(Bucket=BUCKET, Key=band_day_key(name, day),
                                Body=json.dumps({**doc, "metric": name}).encode())
        world.s3.put_object(Bucket=BUCKET, Key=state_key(name), Body=state_body)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(put, names))
    put_points(world, names, now - 60, values or {})
    _PromAPI.values = {n: (values or {}).get(n) for n in names}


def put_points(world: World, names: list[str], at: float, values: dict[str, float]) -> None:
    data = [{"MetricName": "Value", "Dimensions": [{"Name": "Id", "Value": n}],
             "Timestamp": datetime.fromtimestamp(at, UTC), "Value": values.get(n, seasonal(at))} for n in names]
    for i in range(0, len(data), 1000):
        world.cloudwatch.put_metric_data(Namespace=SOURCE_NAMESPACE, MetricData=data[i:i + 1000])


def packages(cfg: AnomalyConfig, out_dir: Path) -> dict[str, LambdaPackage]:
    """The dispatcher and detector zips with `cfg` baked in, as the stack bakes them (settings_json)."""
    baked = {"settings.json": settings_json(cfg)}
    return {fn: build_lambda(fn, kind="lambda", baked=baked, out_dir=out_dir)
            for fn in ("anomaly_dispatcher", "anomaly_detector")}


def function_env(world: World, batch_metrics: int) -> dict[str, str]:
    """The environment infra/components/anomaly.py gives the dispatcher and the detector."""
    return {"ANOMALY_BUCKET": BUCKET, "ANOMALY_TOPIC_ARN": world.topic_arn,
            "ANOMALY_DETECT_QUEUE_URL": world.detect_queue_url, "DETECT_BATCH_METRICS": str(batch_metrics),
            "ANOMALY_TRAIN_QUEUE_URL": world.detect_queue_url, "TRAIN_BATCH_METRICS": "1"}


def notices(world: World) -> list[dict[str, Any]]:
    """Every notice the anomaly topic delivered since the last call (read and deleted from the inbox)."""
    out: list[dict[str, Any]] = []
    while True:
        msgs = world.sqs.receive_message(QueueUrl=world.inbox_url, MaxNumberOfMessages=10,
                                         WaitTimeSeconds=0).get("Messages", [])
        if not msgs:
            return out
        out += [json.loads(m["Body"]) for m in msgs]
        world.sqs.delete_message_batch(QueueUrl=world.inbox_url, Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(msgs)])


def state_of(world: World, name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(world.s3.get_object(Bucket=BUCKET, Key=state_key(name))["Body"].read())
    return doc
