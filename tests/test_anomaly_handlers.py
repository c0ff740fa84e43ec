"""Trainer and detector handlers on real Prophet fits, against moto (S3, CloudWatch, SNS, SQS) and a real local
Prometheus-API HTTP server: the training outputs, the episode/no-renotify/recovery logic and every failure path.
"""

from __future__ import annotations

import json
import math
import threading
import time
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from anomaly_core import metrics as contract
from anomaly_core.episodes import RECOVERY_POINTS
from anomaly_core.scoring import HISTORY_POINTS, LIKELIHOOD_WINDOW, RESIDUAL_MEMORY, ROUNDED_LISTS, ConfidenceState
from anomaly_core.settings import MetricSpec, Settings
from anomaly_core.sources import Sources
from anomaly_core.store import band_day_key, day_of, state_key
from anomaly_detector import handler as detector
from anomaly_env import anomaly_aws
from anomaly_trainer import handler as trainer
from botocore.exceptions import ClientError
from prophet.serialize import model_from_json

REGION = "us-east-1"
BUCKET = "anomaly-test"
STEP = 300
DAY = 86400
NOW = (int(time.time()) // STEP) * STEP
CW_QUERY = "AkiDB/Test|Requests|Average|Service=api"


def seasonal(t: float) -> float:
    """A daily + weekly pattern around 100, with a little deterministic wiggle."""
    day = 2 * math.pi * (t % DAY) / DAY
    week = 2 * math.pi * (t % (7 * DAY)) / (7 * DAY)
    return 100 + 20 * math.sin(day) + 5 * math.sin(week) + 1.5 * math.sin(t / 777.0)


# ---------------------------------------------------------------------------------------------- fixtures
class PromAPI(BaseHTTPRequestHandler):
    """A minimal Prometheus HTTP API (query_range, query) serving the seasonal series; `mode` injects failures."""

    mode = "ok"
    latest: tuple[float, float] | None = None

    def do_GET(self) -> None:
        url = urllib.parse.urlparse(self.path)
        q = dict(urllib.parse.parse_qsl(url.query))
        if PromAPI.mode == "error":
            self._send(500, {"status": "error", "error": "overloaded"})
            return
        if url.path == "/api/v1/query_range":
            start, end, step = float(q["start"]), float(q["end"]), float(q["step"])
            values, t = [], start
            while t <= end:
                values.append([t, str(seasonal(t))])
                t += step
            self._send(200, {"status": "success", "data": {"resultType": "matrix",
                                                             "result": [{"metric": {}, "values": values}]}})
        elif url.path == "/api/v1/query":
            result = [] if PromAPI.latest is None else [{"metric": {}, "value": [PromAPI.latest[0],
                                                                                 str(PromAPI.latest[1])]}]
            self._send(200, {"status": "success", "data": {"resultType": "vector", "result": result}})
        else:
            self._send(404, {"status": "error", "error": "not found"})

    def _send(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def prometheus() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), PromAPI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(autouse=True)
def _prom_mode() -> Iterator[None]:
    PromAPI.mode, PromAPI.latest = "ok", None
    yield
    PromAPI.mode, PromAPI.latest = "ok", None


@pytest.fixture
def aws() -> Iterator[dict[str, Any]]:
    with anomaly_aws(REGION, BUCKET) as env:
        yield env

def put_history(cw: Any, days: int) -> None:
    start = NOW - days * DAY
    data = [{"MetricName": "Requests", "Dimensions": [{"Name": "Service", "Value": "api"}],
             "Timestamp": datetime.fromtimestamp(t, UTC), "Value": seasonal(t)}
            for t in range(start, NOW, STEP)]
    for i in range(0, len(data), 1000):
        cw.put_metric_data(Namespace="AkiDB/Test", MetricData=data[i:i + 1000])


def settings(*metrics: MetricSpec, prometheus_url: str | None = None, max_age_s: int = 192 * 3600) -> Settings:
    return Settings(metrics=metrics, prometheus_url=prometheus_url, confidence_threshold=0.7, history_days=22,
                    forecast_max_age_s=max_age_s)


CW_METRIC = MetricSpec(name="request_rate", source="cloudwatch", query=CW_QUERY, seasonality_mode="multiplicative")


def prom_metric(name: str = "latency", hourly: bool = False, limit: float = 0.15) -> MetricSpec:
    return MetricSpec(name=name, source="prometheus", query="sum(rate(x[5m]))", hourly_seasonality=hourly,
                      mape_limit=limit)


def trainer_clients(aws: dict[str, Any], url: str | None = None) -> trainer.Clients:
    return trainer.Clients(s3=aws["s3"], sources=Sources(cloudwatch=aws["cloudwatch"], prometheus_url=url))


def detector_clients(aws: dict[str, Any], url: str | None = None) -> detector.Clients:
    return detector.Clients(s3=aws["s3"], cloudwatch=aws["cloudwatch"], sns=aws["sns"],
                            sources=Sources(cloudwatch=aws["cloudwatch"], prometheus_url=url))


def get(aws: dict[str, Any], key: str) -> Any:
    return json.loads(aws["s3"].get_object(Bucket=BUCKET, Key=key)["Body"].read())


def band_at(aws: dict[str, Any], metric: str, ts: float = NOW) -> Any:
    """The band's day object covering `ts` (the trainer writes one per UTC day)."""
    return get(aws, band_day_key(metric, day_of(ts)))


def whole_band(aws: dict[str, Any], metric: str) -> list[list[float]]:
    """Every day object of `metric`, each checked to hold its own day (plus one step either side), joined."""
    rows: dict[float, list[float]] = {}
    listed = aws["s3"].list_objects_v2(Bucket=BUCKET, Prefix=f"bands/{metric}/")["Contents"]
    for obj in listed:
        doc = get(aws, obj["Key"])
        start = datetime.strptime(doc["day"], "%Y-%m-%d").replace(tzinfo=UTC).timestamp()
        assert obj["Key"] == band_day_key(metric, doc["day"])
        assert all(start - STEP <= r[0] <= start + DAY for r in doc["band"])
        rows.update({r[0]: r for r in doc["band"]})
    return [rows[t] for t in sorted(rows)]


def messages(aws: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    while True:
        got = aws["sqs"].receive_message(QueueUrl=aws["queue"], MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            return out
        for msg in got:
            out.append(json.loads(json.loads(msg["Body"])["Message"]))
            aws["sqs"].delete_message(QueueUrl=aws["queue"], ReceiptHandle=msg["ReceiptHandle"])


# ---------------------------------------------------------------------------------------------- trainer
def test_trainer_fits_cloudwatch_history_and_writes_model_and_band(aws: dict[str, Any]) -> None:
    put_history(aws["cloudwatch"], 22)
    out = trainer.run({}, settings(CW_METRIC), trainer_clients(aws), BUCKET, NOW)
    assert out == {"trained": ["request_rate"], "flagged": []}
    band = {**band_at(aws, "request_rate"), "band": whole_band(aws, "request_rate")}
    assert band["history_points"] == 22 * 288
    assert band["validation"]["mape"] < 0.05 and band["validation"]["smape"] < 0.05
    assert band["flagged"] is False and band["seasonality_mode"] == "multiplicative"
    assert band["interval_width"] == 0.95
    assert len(band["band"]) == trainer.HORIZON_DAYS * 288
    assert band["band"][0][0] == NOW and band["band"][1][0] - band["band"][0][0] == STEP
    assert all(lo <= yhat <= hi for _, yhat, lo, hi in band["band"])
    # The model is Prophet JSON (never pickle), loadable, with weekly seasonality from 2 weeks of history.
    model = model_from_json(aws["s3"].get_object(Bucket=BUCKET, Key=band["model_key"])["Body"].read().decode())
    assert set(model.seasonalities) == {"daily", "weekly"}
    assert model.interval_width == 0.95


def test_trainer_on_demand_prometheus_hourly_only_where_it_helps_and_flagging(
        aws: dict[str, Any], prometheus: str) -> None:
    cfg = settings(prom_metric("latency", hourly=True), prom_metric("strict", limit=1e-6), prometheus_url=prometheus)
    out = trainer.run({"metrics": ["latency", "strict"]}, cfg, trainer_clients(aws, prometheus), BUCKET, NOW)
    assert out["trained"] == ["latency", "strict"] and out["flagged"] == ["strict"]
    latency = band_at(aws, "latency")
    # The series has no hourly component: the hourly term does not lower the validation error, so it is dropped.
    model = model_from_json(aws["s3"].get_object(Bucket=BUCKET, Key=latency["model_key"])["Body"].read().decode())
    assert latency["hourly"] is ("hourly" in model.seasonalities)
    strict = band_at(aws, "strict")
    assert strict["flagged"] is True and strict["validation"]["headline"] > strict["error_limit"]


def test_trainer_failures_are_listed_and_other_metrics_still_trained(aws: dict[str, Any], prometheus: str) -> None:
    put_history(aws["cloudwatch"], 22)
    cfg = settings(CW_METRIC, prom_metric("latency"), prometheus_url=prometheus)
    PromAPI.mode = "error"
    with pytest.raises(trainer.TrainerFailed, match=r"latency: Prometheus /api/v1/query_range answered HTTP 500"):
        trainer.run({}, cfg, trainer_clients(aws, prometheus), BUCKET, NOW)
    assert band_at(aws, "request_rate")["metric"] == "request_rate"  # the healthy one was written


def test_trainer_consumes_training_batches_and_reports_the_failed_one(
        aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """The fan-out's trainer entry point (issue 28): one SQS record per batch of metrics; a name no longer
    configured is dropped, a record that is not a training batch is reported failed (SQS redelivers it alone)."""
    put_history(aws["cloudwatch"], 22)
    monkeypatch.setenv("ANOMALY_BUCKET", BUCKET)
    baked = tmp_path / "settings.json"
    baked.write_text(json.dumps(settings(CW_METRIC).to_json()))
    monkeypatch.setattr(trainer, "__file__", str(baked.parent / "handler.py"))
    monkeypatch.setattr(trainer, "_CACHED", None)
    batch = {"job": "train", "cycle": NOW, "metrics": ["request_rate", "no_longer_configured"]}
    out = trainer.consume({"Records": [{"messageId": "ok", "body": json.dumps(batch)},
                                       {"messageId": "bad", "body": json.dumps({"job": "detect"})}]}, None)
    assert out == {"batchItemFailures": [{"itemIdentifier": "bad"}]}
    assert len(whole_band(aws, "request_rate")) == trainer.HORIZON_DAYS * 288


@pytest.mark.parametrize("cycle", [None, "1796600000", True, 0, -5, 1.5, NOW + 3600])
def test_a_training_batch_without_a_sane_cycle_is_refused_naming_it(cycle: Any) -> None:
    with pytest.raises(trainer.TrainerFailed, match="record body's cycle must be the epoch second"):
        trainer.training_time(cycle, float(NOW))


def test_a_redelivered_training_batch_trains_at_its_cycle_not_the_clock() -> None:
    """Same cycle, same keys: a retry overwrites its own partial work (no second model beside the band)."""
    assert trainer.training_time(NOW - 900, float(NOW)) == trainer.training_time(NOW - 900, float(NOW + 60))
    assert trainer.training_time(NOW + 60, float(NOW)) == NOW + 60  # a dispatcher clock a minute ahead


@pytest.mark.parametrize(("event", "message"), [
    ([], "event must be a JSON object"),
    ({"metrics": "request_rate"}, "event.metrics must be a non-empty list"),
    ({"metrics": ["nope"]}, "unknown metric 'nope'"),
])
def test_trainer_rejects_bad_events(aws: dict[str, Any], event: Any, message: str) -> None:
    with pytest.raises(trainer.TrainerFailed, match=message):
        trainer.run(event, settings(CW_METRIC), trainer_clients(aws), BUCKET, NOW)


def test_trainer_short_or_empty_history_fails_clearly(aws: dict[str, Any]) -> None:
    with pytest.raises(trainer.TrainerFailed, match="request_rate: the source returned no data"):
        trainer.run({}, settings(CW_METRIC), trainer_clients(aws), BUCKET, NOW)
    put_history(aws["cloudwatch"], 3)
    with pytest.raises(trainer.TrainerFailed, match="too short to hold out 7 days"):
        trainer.run({}, settings(CW_METRIC), trainer_clients(aws), BUCKET, NOW)


# ---------------------------------------------------------------------------------------------- detector
@pytest.fixture(scope="module")
def trained_objects(prometheus: str) -> dict[str, bytes]:
    """What the trainer writes for the Prometheus metric (its model and band days: S3 is all it writes), from one
    real Prophet fit per module: every detector test starts from these in its own fresh bucket, where each used to
    fit the same model again (4-6 s apiece)."""
    with anomaly_aws(REGION, BUCKET) as env:
        trainer.run({}, settings(prom_metric("latency"), prometheus_url=prometheus),
                    trainer_clients(env, prometheus), BUCKET, NOW)
        keys = [o["Key"] for o in env["s3"].list_objects_v2(Bucket=BUCKET)["Contents"]]
        return {key: env["s3"].get_object(Bucket=BUCKET, Key=key)["Body"].read() for key in keys}


@pytest.fixture
def trained(aws: dict[str, Any], prometheus: str, trained_objects: dict[str, bytes]) -> Settings:
    """A real Prophet band for a Prometheus metric, and a detector state that has seen a normal day."""
    cfg = settings(prom_metric("latency"), prometheus_url=prometheus)
    for key, body in trained_objects.items():
        aws["s3"].put_object(Bucket=BUCKET, Key=key, Body=body, ContentType="application/json")
    state = ConfidenceState(residuals=[0.4 + 0.3 * math.sin(i) for i in range(HISTORY_POINTS)])
    aws["s3"].put_object(Bucket=BUCKET, Key=state_key("latency"),
                         Body=json.dumps({"confidence": state.to_json(), "episode": {}}).encode())
    return cfg


def detect(aws: dict[str, Any], cfg: Settings, url: str, at: float, value: float | None) -> dict[str, Any]:
    PromAPI.latest = None if value is None else (at, value)
    return detector.run(cfg, detector_clients(aws, url), detector.Targets(BUCKET, aws["topic"]), at + 30)


def published(aws: dict[str, Any]) -> dict[tuple[str, tuple[tuple[str, str], ...]], list[float]]:
    cw = aws["cloudwatch"]
    out = {}
    for metric in cw.list_metrics(Namespace=contract.NAMESPACE)["Metrics"]:
        dims = tuple(sorted((d["Name"], d["Value"]) for d in metric["Dimensions"]))
        resp = cw.get_metric_data(MetricDataQueries=[{"Id": "m", "MetricStat": {"Metric": metric, "Period": 60,
                                                                                "Stat": "Maximum"}}],
                                  StartTime=datetime.fromtimestamp(NOW - 3 * DAY, UTC),
                                  EndTime=datetime.fromtimestamp(NOW + 10 * DAY, UTC))
        out[(metric["MetricName"], dims)] = resp["MetricDataResults"][0]["Values"]
    return out


def test_detector_normal_value_publishes_the_contract_and_does_not_notify(
        aws: dict[str, Any], prometheus: str, trained: Settings) -> None:
    t = NOW + STEP
    out = detect(aws, trained, prometheus, t, seasonal(t))
    assert out["errors"] == 0 and out["metrics"]["latency"]["is_anomaly"] is False
    seen = published(aws)
    dim = ((contract.METRIC_DIMENSION, "latency"),)
    for name in contract.PER_METRIC:
        assert (name, dim) in seen, name
    assert (contract.FORECAST_AGE, dim) in seen
    assert seen[(contract.DETECTOR_ERRORS, ())] == [0.0]
    assert seen[(contract.IS_ANOMALY, dim)] == [0.0]
    lower, actual, upper = (seen[(name, dim)][0] for name in (contract.LOWER_BOUND, contract.ACTUAL,
                                                              contract.UPPER_BOUND))
    assert lower <= actual <= upper
    assert messages(aws) == []


def test_detector_notifies_once_per_episode_then_recovers(
        aws: dict[str, Any], prometheus: str, trained: Settings) -> None:
    t = NOW + STEP
    events = []
    # Five anomalous points (the value triples), then normal values until the episode ends.
    for i in range(5 + RECOVERY_POINTS):
        at = t + i * STEP
        value = seasonal(at) * (3 if i < 5 else 1)
        events.append(detect(aws, trained, prometheus, at, value)["metrics"]["latency"]["event"])
    assert events == ["start", None, None, None, None, None, None, "end"]
    sent = messages(aws)
    assert [m["event"] for m in sent] == ["anomaly_start", "anomaly_end"]
    assert sent[0]["metric"] == "latency" and sent[0]["confidence"] > 0.7 and sent[0]["value"] > sent[0]["upper"]
    # The episode's context: which signal opened it (the one whose part reached the confidence) and the band.
    parts = sent[0]["signals"]
    assert sent[0]["signal"] == ("range" if parts["range"] >= sent[0]["confidence"] else "level"), parts
    assert f"signal {sent[0]['signal']}" in sent[0]["text"] and f"{sent[0]['upper']:.6g}" in sent[0]["text"]
    # One episode id for its start and end: the ticket receiver opens and closes one ticket on `dedupe_key`.
    assert sent[0]["episode_id"] == sent[1]["episode_id"] != "none"
    assert sent[0]["dedupe_key"] == sent[1]["dedupe_key"] == f"anomaly/latency/{sent[0]['episode_id']}"
    assert sent[0]["runbook"] == "anomaly-episode" and sent[0]["threshold"] == trained.confidence_threshold
    # The same timestamp read again (source lag) neither notifies nor advances the episode.
    state = get(aws, state_key("latency"))
    again = detect(aws, trained, prometheus, t + (4 + RECOVERY_POINTS) * STEP, seasonal(t) * 3)
    assert again["metrics"]["latency"]["event"] is None and get(aws, state_key("latency")) == state


def test_detector_below_threshold_does_not_notify(aws: dict[str, Any], prometheus: str, trained: Settings) -> None:
    strict = Settings(metrics=trained.metrics, prometheus_url=prometheus, confidence_threshold=1.0)
    t = NOW + STEP
    out = detect(aws, strict, prometheus, t, seasonal(t) * 3)
    assert out["metrics"]["latency"]["is_anomaly"] is True and out["metrics"]["latency"]["event"] is None
    assert messages(aws) == []


def errors_published(aws: dict[str, Any]) -> list[float]:
    return published(aws)[(contract.DETECTOR_ERRORS, ())]


@pytest.mark.parametrize(("case", "reason"), [
    ("missing", "no data point in the last 15 minutes"),
    ("nan", "is not a number"),
    ("source-error", "answered HTTP 500"),
    ("stale", "forecast is"),
    ("outside-band", "outside the forecast band"),
    ("flagged", "model flagged"),
    ("malformed", "not a band document"),
    ("no-forecast", "no forecast yet"),
])
def test_detector_failures_never_notify_and_count_as_errors(
        aws: dict[str, Any], prometheus: str, trained: Settings, case: str, reason: str) -> None:
    cfg, at, value = trained, NOW + STEP, 10_000.0  # a value far outside the band: would notify if scored
    if case == "missing":
        value = None
    elif case == "nan":
        value = math.nan
    elif case == "source-error":
        PromAPI.mode = "error"
    elif case == "stale":
        cfg = settings(*trained.metrics, prometheus_url=prometheus, max_age_s=60)
        at = NOW + 3600
    elif case == "outside-band":
        # Just before the band (which starts at the training time) in the day object holding its start; at a
        # day's first minutes that point falls in the day before, which has no band object at all.
        at = NOW - 2 * STEP
        cfg = settings(*trained.metrics, prometheus_url=prometheus, max_age_s=10 * DAY)
        if day_of(at) != day_of(NOW):
            reason = "no forecast yet"
    elif case in ("flagged", "malformed", "no-forecast"):
        key = band_day_key("latency", day_of(at))  # the one band object the detector reads for this point
        doc = get(aws, key)
        if case == "flagged":
            aws["s3"].put_object(Bucket=BUCKET, Key=key, Body=json.dumps({**doc, "flagged": True}))
        elif case == "malformed":
            aws["s3"].put_object(Bucket=BUCKET, Key=key, Body=b'{"trained_at_epoch": 1}')
        else:
            aws["s3"].delete_object(Bucket=BUCKET, Key=key)
    if case == "stale":
        PromAPI.latest = (at, value)
        out = detector.run(cfg, detector_clients(aws, prometheus), detector.Targets(BUCKET, aws["topic"]), at)
    else:
        out = detect(aws, cfg, prometheus, at, value)
    assert out["errors"] == 1
    assert reason in out["metrics"]["latency"]["skipped"]
    assert errors_published(aws) == [1.0]
    assert messages(aws) == []


def _sent_timestamps(aws: dict[str, Any]) -> list[float]:
    """Every datum timestamp the detector hands to PutMetricData (observed on the real client's calls)."""
    sent: list[float] = []
    aws["cloudwatch"].meta.events.register(
        "before-parameter-build.cloudwatch.PutMetricData",
        lambda params, **_: sent.extend(d["Timestamp"].timestamp() for d in params["MetricData"]))
    return sent


def test_a_future_stamped_source_point_is_not_scored_and_never_sinks_the_batch(
        aws: dict[str, Any], prometheus: str, trained: Settings) -> None:
    """CloudWatch refuses a whole PutMetricData request for one datum more than 2 h ahead: the point is a clock
    fault, counted in DetectorErrors (which is published), and no datum leaves outside the accepted span."""
    now = NOW + STEP + 30
    sent = _sent_timestamps(aws)
    PromAPI.latest = (now + 3 * 3600, 10_000.0)
    out = detector.run(trained, detector_clients(aws, prometheus), detector.Targets(BUCKET, aws["topic"]), now)
    assert "ahead of the clock" in out["metrics"]["latency"]["skipped"]
    assert out["errors"] == 1 and errors_published(aws) == [1.0] and messages(aws) == []
    assert sent and all(now - detector.MAX_POINT_AGE_S <= t <= now + detector.MAX_POINT_LEAD_S for t in sent)
    # The next real point is scored (a future last_ts would have frozen the metric).
    t = NOW + 2 * STEP
    assert "is_anomaly" in detect(aws, trained, prometheus, t, seasonal(t))["metrics"]["latency"]


def test_a_state_left_ahead_of_the_clock_does_not_freeze_the_metric(
        aws: dict[str, Any], prometheus: str, trained: Settings) -> None:
    doc = get(aws, state_key("latency"))
    aws["s3"].put_object(Bucket=BUCKET, Key=state_key("latency"),
                         Body=json.dumps({**doc, "last_ts": NOW + 30 * DAY}).encode())
    t = NOW + STEP
    detect(aws, trained, prometheus, t, seasonal(t))
    assert get(aws, state_key("latency"))["last_ts"] == t  # fed, not held at the future stamp


def test_one_datum_cloudwatch_refuses_is_dropped_alone_and_counted_with_its_reason(
        aws: dict[str, Any], prometheus: str, trained: Settings) -> None:
    """A refusal the screen did not foresee (CloudWatch answers InvalidParameterValue for the request): the
    request is split until the refused datum is alone; everything else is published, the drop counted."""
    def refuse_actual(params: dict[str, Any], **_: Any) -> None:
        if any(d["MetricName"] == contract.ACTUAL for d in params["MetricData"]):
            raise ClientError({"Error": {"Code": "InvalidParameterValue", "Message": "The value ... is invalid"}},
                              "PutMetricData")

    aws["cloudwatch"].meta.events.register("before-parameter-build.cloudwatch.PutMetricData", refuse_actual)
    t = NOW + STEP
    out = detect(aws, trained, prometheus, t, seasonal(t))
    assert out["dropped"] == {"refused": 1}
    seen = published(aws)
    dim = ((contract.METRIC_DIMENSION, "latency"),)
    assert seen[(contract.DETECTOR_ERRORS, ())] == [0.0]
    assert {name for name in contract.PER_METRIC if (name, dim) in seen} == set(contract.PER_METRIC) - {contract.ACTUAL}
    assert seen[(contract.DROPPED_POINTS, ((contract.DROP_REASON_DIMENSION, "refused"),))] == [1.0]


def test_the_screen_drops_each_datum_cloudwatch_would_refuse_with_its_reason() -> None:
    now = float(NOW)
    data = [{"MetricName": contract.SCORE, "Value": v, "Timestamp": datetime.fromtimestamp(now + dt, UTC)}
            for v, dt in ((1.0, 0), (1.0, 3 * 3600), (1.0, -15 * DAY), (2.0 ** 361, 0), (math.inf, 0),
                          (1.0, detector.MAX_POINT_LEAD_S), (1.0, -detector.MAX_POINT_AGE_S))]
    kept, dropped = detector.screen(data, now)
    assert len(kept) == 3 and all(d["Value"] == 1.0 for d in kept)
    assert dropped == {"timestamp-future": 1, "timestamp-past": 1, "value-range": 2}
    assert set(dropped) <= set(contract.DROP_REASONS)


def test_detector_handler_reads_baked_settings_and_env(aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Any) -> None:
    """The Lambda entry point: settings.json next to the handler, bucket and topic from the environment."""
    monkeypatch.setenv("ANOMALY_BUCKET", BUCKET)
    monkeypatch.setenv("ANOMALY_TOPIC_ARN", aws["topic"])
    baked = tmp_path / "settings.json"
    baked.write_text(json.dumps(settings(CW_METRIC).to_json()))
    monkeypatch.setattr(detector, "__file__", str(baked.parent / "handler.py"))
    out = detector.handler({"source": "aws.events"}, None)
    assert out["errors"] == 1 and "no forecast yet" in out["metrics"]["request_rate"]["skipped"]
    monkeypatch.delenv("ANOMALY_TOPIC_ARN")
    with pytest.raises(Exception, match="ANOMALY_TOPIC_ARN is not set"):
        detector.handler({}, None)


def test_new_detector_state_starts_from_the_trainers_residuals(aws: dict[str, Any], prometheus: str) -> None:
    """Right after the first training (no state yet) a clear anomaly notifies: no half-day blind period."""
    cfg = settings(prom_metric("latency"), prometheus_url=prometheus)
    trainer.run({}, cfg, trainer_clients(aws, prometheus), BUCKET, NOW)
    seed = band_at(aws, "latency")["seed_residuals"]
    assert len(seed) == RESIDUAL_MEMORY and all(r >= 0 for r in seed)
    t = NOW + STEP
    out = detect(aws, cfg, prometheus, t, seasonal(t) * 3)
    assert out["metrics"]["latency"]["event"] == "start"
    assert [m["event"] for m in messages(aws)] == ["anomaly_start"]
    kept = ConfidenceState.from_json(get(aws, state_key("latency"))["confidence"])
    assert len(kept.residuals) == RESIDUAL_MEMORY
    # The anomaly-likelihood memory lives in the same state object: seeded window means + this point's mean.
    assert len(kept.means) == RESIDUAL_MEMORY + 1 and len(kept.scores) == LIKELIHOOD_WINDOW - 1
    assert kept.scores[-1] > 0.5  # this point's band score (3x the seasonal value)


def test_detector_reads_a_state_stored_before_the_memory_was_packed(
        aws: dict[str, Any], prometheus: str, trained: Settings) -> None:
    """A state the detector stored before issue 28 packed its memory lists (JSON numbers, each rounded to 6
    places) is read with no migration step: the run scores the point as from the packed copy of that state, and
    saves the same memory, packed."""
    t = NOW + STEP
    detect(aws, trained, prometheus, t, seasonal(t))  # a state of this detector's own (packed)
    doc = get(aws, state_key("latency"))
    state = ConfidenceState.from_json(doc["confidence"])
    before = {**doc, "confidence": {**doc["confidence"], **{k: [round(x, 6) for x in getattr(state, k)]
                                                            for k in ROUNDED_LISTS}}}
    assert isinstance(doc["confidence"]["residuals"], str) and isinstance(before["confidence"]["residuals"], list)
    runs = []
    for stored in (before, doc):
        aws["s3"].put_object(Bucket=BUCKET, Key=state_key("latency"), Body=json.dumps(stored).encode())
        at = t + STEP
        out = detect(aws, trained, prometheus, at, seasonal(at) * 3)["metrics"]["latency"]
        saved = get(aws, state_key("latency"))
        runs.append((out, ConfidenceState.from_json(saved["confidence"]), saved["confidence"]["means"]))
    (out_old, saved_old, raw_old), (out_new, saved_new, raw_new) = runs
    assert {k: v for k, v in out_old.items() if k != "event"} == {k: v for k, v in out_new.items() if k != "event"}
    assert saved_old == saved_new and raw_old == raw_new and isinstance(raw_old, str)


def test_detector_storage_error_is_counted_not_raised(aws: dict[str, Any], prometheus: str) -> None:
    """An S3 error other than a missing key (here: the bucket is gone) skips the metric and counts it."""
    cfg = settings(prom_metric("latency"), prometheus_url=prometheus)
    out = detector.run(cfg, detector_clients(aws, prometheus), detector.Targets("no-such-bucket", aws["topic"]),
                       NOW + 30)
    assert out["errors"] == 1 and f"reading s3://no-such-bucket/{band_day_key('latency', day_of(NOW + 30))} " \
        "failed" in out["metrics"]["latency"]["skipped"]
    assert errors_published(aws) == [1.0] and messages(aws) == []
