"""The detector's fault isolation and idempotent notifications, against moto (S3 conditional writes, SNS, SQS,
CloudWatch) with hand-made bands (no Prophet: these tests are fast).

- Property (Hypothesis, fixed budget, derandomized): whatever one metric's band, state or source answer holds, and
  whether its state write or its notification fails, the run returns, the healthy metric is scored, DetectorErrors
  is published first and no non-finite value reaches PutMetricData.
- Idempotency: an episode notifies once even when the save after publishing fails, when SNS fails (retried once),
  or when the save before publishing fails (nothing sent, sent on the next run).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
from anomaly_core import metrics as contract
from anomaly_core import sources as sources_mod
from anomaly_core.scoring import HISTORY_POINTS
from anomaly_core.settings import MetricSpec, Settings
from anomaly_core.sources import SourceError, Sources
from anomaly_core.store import band_key, state_key
from anomaly_detector import handler as detector
from anomaly_env import anomaly_aws
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

REGION = "us-east-1"
BUCKET = "anomaly-props"
STEP = 300
NOW = 1_800_000_000.0
HEALTHY = MetricSpec(name="healthy", source="prometheus", query="sum(up)")
FUZZED = MetricSpec(name="fuzzed", source="prometheus", query="sum(rate(x[5m]))")
# The suite's fixed budget; a longer fuzz pass: ANOMALY_FUZZ_EXAMPLES=400 pytest tests/test_anomaly_properties.py
FUZZ_EXAMPLES = int(os.environ.get("ANOMALY_FUZZ_EXAMPLES", "60"))
CFG = Settings(metrics=(HEALTHY, FUZZED), prometheus_url="http://prometheus.invalid", confidence_threshold=0.7)


def band_doc(yhat: float = 100.0, half: float = 10.0) -> dict[str, Any]:
    rows = [[NOW - 86400 + i * STEP, yhat, yhat - half, yhat + half] for i in range(2 * 288)]
    return {"metric": "m", "trained_at_epoch": NOW - 3600, "flagged": False,
            "seed_residuals": [0.3 + 0.2 * math.sin(i) for i in range(HISTORY_POINTS)], "band": rows}


class ScriptedSources(Sources):
    """The healthy metric reads a normal value; the fuzzed one parses `answer` with the real Prometheus code."""

    def __init__(self) -> None:
        super().__init__(cloudwatch=None, prometheus_url="http://prometheus.invalid")
        self.answer: Any = None
        self.value = 100.0

    def latest(self, metric: MetricSpec, now: float) -> tuple[float, float] | None:
        if metric.name == HEALTHY.name:
            return now - 60, 100.0
        with mock.patch.object(sources_mod, "_prom_get", return_value=self.answer):
            return super().latest(metric, now)


class Faulty:
    """A boto3 client wrapper failing chosen calls (throttling, SNS outage) and recording PutMetricData."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.fail_put_keys: set[str] = set()
        self.fail_put_after: int | None = None  # fail state writes after this many succeeded
        self.fail_publish = False
        self.metric_calls: list[list[dict[str, Any]]] = []
        self.puts = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def put_object(self, **kwargs: Any) -> Any:
        key = kwargs["Key"]
        if key in self.fail_put_keys:
            raise self._client.exceptions.ClientError(
                {"Error": {"Code": "SlowDown", "Message": "Please reduce your request rate."}}, "PutObject")
        if key.startswith("state/") and not key.startswith("state/notices/"):
            if self.fail_put_after is not None and self.puts >= self.fail_put_after:
                raise self._client.exceptions.ClientError(
                    {"Error": {"Code": "SlowDown", "Message": "throttled"}}, "PutObject")
            self.puts += 1
        return self._client.put_object(**kwargs)

    def publish(self, **kwargs: Any) -> Any:
        if self.fail_publish:
            raise self._client.exceptions.InternalErrorException(
                {"Error": {"Code": "InternalError", "Message": "SNS unavailable"}}, "Publish")
        return self._client.publish(**kwargs)

    def put_metric_data(self, **kwargs: Any) -> Any:
        self.metric_calls.append(kwargs["MetricData"])
        return self._client.put_metric_data(**kwargs)


@pytest.fixture(scope="module")
def aws() -> Iterator[dict[str, Any]]:
    with anomaly_aws(REGION, BUCKET) as env:
        yield env

def reset(aws: dict[str, Any]) -> None:
    s3 = aws["s3"]
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for obj in page.get("Contents", []):
            s3.delete_object(Bucket=BUCKET, Key=obj["Key"])
    for metric in CFG.metrics:
        s3.put_object(Bucket=BUCKET, Key=band_key(metric.name), Body=json.dumps(band_doc()).encode())
    drain(aws)


def drain(aws: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    while True:
        got = aws["sqs"].receive_message(QueueUrl=aws["queue"], MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            return out
        for msg in got:
            out.append(json.loads(json.loads(msg["Body"])["Message"]))
            aws["sqs"].delete_message(QueueUrl=aws["queue"], ReceiptHandle=msg["ReceiptHandle"])


def clients(aws: dict[str, Any], src: ScriptedSources) -> tuple[detector.Clients, Faulty, Faulty, Faulty]:
    s3, sns, cw = Faulty(aws["s3"]), Faulty(aws["sns"]), Faulty(aws["cloudwatch"])
    return detector.Clients(s3=s3, cloudwatch=cw, sns=sns, sources=src), s3, sns, cw


# ---------------------------------------------------------------------------------------------- strategies
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), st.text(max_size=8),
                      st.floats(allow_nan=True, allow_infinity=True))
json_any = st.recursive(json_leaf, lambda kids: st.one_of(st.lists(kids, max_size=4),
                                                          st.dictionaries(st.text(max_size=6), kids, max_size=4)),
                        max_leaves=12)
number = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**30, 10**30), st.text(max_size=5),
                   st.none())


@st.composite
def bands(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from(["json", "rows", "valid-with-bad-values"]))
    if kind == "json":
        return draw(json_any)
    doc = band_doc()
    if kind == "rows":
        doc["band"] = draw(st.lists(st.lists(number, max_size=5), max_size=5))
    else:
        i = draw(st.integers(0, len(doc["band"]) - 1))
        doc["band"][i] = [doc["band"][i][0], *draw(st.lists(number, min_size=3, max_size=3))]
        doc["trained_at_epoch"] = draw(st.one_of(st.just(NOW - 3600), number))
        doc["seed_residuals"] = draw(st.one_of(st.just(doc["seed_residuals"]), json_any))
        doc["flagged"] = draw(st.one_of(st.just(False), json_leaf))
    return doc


states = st.one_of(st.none(), json_any, st.fixed_dictionaries(
    {}, optional={"confidence": json_any, "episode": st.one_of(json_any, st.fixed_dictionaries(
        {}, optional={"open": json_leaf, "started_at": number, "peak_confidence": number, "inside_run": number})),
        "pending": json_any, "last_ts": number}))
answers = st.one_of(json_any, st.builds(
    lambda value: {"result": [{"metric": {}, "value": value}]},
    st.one_of(json_any, st.lists(number, min_size=2, max_size=2).map(lambda v: [NOW - 30, *v[1:]]))))


def put_raw(aws: dict[str, Any], key: str, doc: Any) -> None:
    if doc is None:
        aws["s3"].delete_object(Bucket=BUCKET, Key=key)
        return
    aws["s3"].put_object(Bucket=BUCKET, Key=key, Body=json.dumps(doc).encode())  # NaN written as JSON NaN


@settings(max_examples=FUZZ_EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(band=bands(), state=states, answer=answers, value=number, fail_state_write=st.booleans(),
       fail_publish=st.booleans())
def test_any_band_state_or_source_answer_leaves_the_other_metrics_scored(
        aws: dict[str, Any], band: Any, state: Any, answer: Any, value: Any, fail_state_write: bool,
        fail_publish: bool) -> None:
    reset(aws)
    put_raw(aws, band_key(FUZZED.name), band)
    put_raw(aws, state_key(FUZZED.name), state)
    src = ScriptedSources()
    src.answer = answer if not isinstance(value, float) else {"result": [{"metric": {}, "value": [NOW - 30,
                                                                                                   str(value)]}]}
    c, s3, sns, cw = clients(aws, src)
    if fail_state_write:
        s3.fail_put_keys.add(state_key(FUZZED.name))
    sns.fail_publish = fail_publish
    out = detector.run(CFG, c, detector.Targets(BUCKET, aws["topic"]), NOW)
    assert "skipped" not in out["metrics"][HEALTHY.name], out["metrics"][HEALTHY.name]
    assert set(out["metrics"]) == {HEALTHY.name, FUZZED.name}
    first = cw.metric_calls[0][0]
    assert first["MetricName"] == contract.DETECTOR_ERRORS and first["Value"] == out["errors"]
    sent = [d["Value"] for call in cw.metric_calls for d in call]
    assert all(math.isfinite(v) and abs(v) <= contract.MAX_ABS_VALUE for v in sent)
    assert out["errors"] == (1 if "skipped" in out["metrics"][FUZZED.name] else 0)


def test_malformed_prometheus_answers_are_source_errors_naming_the_query() -> None:
    src = ScriptedSources()
    for answer in ({"result": [{"value": "x"}]}, {"result": ["x"]}, {"result": [{"value": [None, "1"]}]},
                   {"result": [{"value": ["nan", "1"]}]}, {"result": [{"value": [1, {"a": 1}]}]}):
        src.answer = answer
        with pytest.raises(SourceError, match=r"sum\(rate\(x\[5m\]\)\)"):
            src.latest(FUZZED, NOW)


# ---------------------------------------------------------------------------------------------- idempotency
def run_at(aws: dict[str, Any], c: detector.Clients, src: ScriptedSources, at: float,
           value: float) -> dict[str, Any]:
    src.answer = {"result": [{"metric": {}, "value": [at, str(value)]}]}
    return detector.run(CFG, c, detector.Targets(BUCKET, aws["topic"]), at + 30)


def starts(sent: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in sent if m["event"] == "anomaly_start" and m["metric"] == FUZZED.name]


def test_a_failed_save_after_publishing_never_sends_a_second_start(aws: dict[str, Any]) -> None:
    reset(aws)
    src = ScriptedSources()
    c, s3, _, _ = clients(aws, src)
    # The state write before publishing succeeds, the one after it (clearing the owed notice) is throttled.
    s3.fail_put_after = 2  # healthy, fuzzed before publishing: then the fuzzed clearing write fails
    first = run_at(aws, c, src, NOW, 10_000.0)
    assert "writing s3://" in first["metrics"][FUZZED.name]["skipped"]
    assert len(starts(drain(aws))) == 1
    s3.fail_put_after = None
    for i in range(1, 4):  # the anomaly goes on: the stored episode and the claim keep it one notification
        run_at(aws, c, src, NOW + i * STEP, 10_000.0)
    assert starts(drain(aws)) == []


def test_an_sns_failure_is_counted_and_the_start_is_sent_once_on_the_next_run(aws: dict[str, Any]) -> None:
    reset(aws)
    src = ScriptedSources()
    c, _, sns, _ = clients(aws, src)
    sns.fail_publish = True
    out = run_at(aws, c, src, NOW, 10_000.0)
    assert out["errors"] == 1 and "notification failed" in out["metrics"][FUZZED.name]["skipped"]
    assert drain(aws) == []
    sns.fail_publish = False
    run_at(aws, c, src, NOW + STEP, 10_000.0)
    run_at(aws, c, src, NOW + 2 * STEP, 10_000.0)
    sent = starts(drain(aws))
    assert len(sent) == 1 and sent[0]["value"] == 10_000.0


def test_a_failed_save_before_publishing_sends_nothing_then_once(aws: dict[str, Any]) -> None:
    reset(aws)
    src = ScriptedSources()
    c, s3, _, _ = clients(aws, src)
    s3.fail_put_keys.add(state_key(FUZZED.name))
    out = run_at(aws, c, src, NOW, 10_000.0)
    assert out["errors"] == 1 and "writing s3://" in out["metrics"][FUZZED.name]["skipped"]
    assert drain(aws) == []
    s3.fail_put_keys.clear()
    run_at(aws, c, src, NOW + STEP, 10_000.0)
    run_at(aws, c, src, NOW + 2 * STEP, 10_000.0)
    assert len(starts(drain(aws))) == 1


def test_a_band_holding_nan_is_skipped_and_never_reaches_put_metric_data(aws: dict[str, Any]) -> None:
    reset(aws)
    doc = band_doc()
    for row in doc["band"]:
        row[1] = math.nan
    put_raw(aws, band_key(FUZZED.name), doc)
    src = ScriptedSources()
    c, _, _, cw = clients(aws, src)
    out = run_at(aws, c, src, NOW, 100.0)
    assert out["errors"] == 1 and "outside the forecast band" in out["metrics"][FUZZED.name]["skipped"]
    assert "skipped" not in out["metrics"][HEALTHY.name]
    assert all(math.isfinite(d["Value"]) for call in cw.metric_calls for d in call)
