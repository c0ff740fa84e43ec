"""Detector Lambda (every 5 minutes): per metric, latest value -> band -> score and confidence -> CloudWatch.

Per metric it publishes IsAnomaly, Score, Confidence (news x anomaly likelihood, see anomaly_core.scoring),
Actual, Predicted, UpperBound, LowerBound (dimension Metric) and ForecastAge; notifies the anomaly topic once
when an episode starts and once when it ends.
Missing data, NaN, a source error, a missing/flagged/stale forecast never notify: each is logged and counted
in DetectorErrors (published on every run, 0 included) and the detector's own alarm catches them.
Standard library + boto3 only (no Prophet, no pandas): the package stays a few tens of kB.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from anomaly_core import metrics as m
from anomaly_core import settings as settings_mod
from anomaly_core.episodes import Episode, step
from anomaly_core.scoring import ConfidenceState, assess, lookup
from anomaly_core.settings import MetricSpec, Settings
from anomaly_core.sources import SourceError, Sources, default_sources
from anomaly_core.store import StoreError, band_key, get_json, parse_band, put_json, state_key

log = logging.getLogger()
log.setLevel(logging.INFO)


class DetectionSkipped(Exception):
    """This metric cannot be scored this run (the reason is the message); counted, never paged."""


@dataclass
class Clients:
    s3: Any
    cloudwatch: Any
    sns: Any
    sources: Sources


@dataclass(frozen=True)
class Targets:
    bucket: str
    topic_arn: str


def _datum(name: str, value: float, metric_name: str | None, at: datetime) -> dict[str, Any]:
    return {"MetricName": name, "Dimensions": m.dimensions(name, metric_name), "Value": float(value),
            "Unit": m.unit_of(name), "Timestamp": at}


def detect_metric(metric: MetricSpec, cfg: Settings, clients: Clients, targets: Targets, now: float,
                  data: list[dict[str, Any]]) -> dict[str, Any]:
    doc = get_json(clients.s3, targets.bucket, band_key(metric.name))
    if doc is None:
        raise DetectionSkipped("no forecast yet (run the trainer)")
    meta, band = parse_band(doc, band_key(metric.name))
    age = max(0.0, now - float(meta["trained_at_epoch"]))
    data.append(_datum(m.FORECAST_AGE, age, metric.name, datetime.fromtimestamp(now, UTC)))
    if meta.get("flagged"):
        raise DetectionSkipped(f"model flagged: validation error {meta.get('validation')} above its limit")
    if age > cfg.forecast_max_age_s:
        raise DetectionSkipped(f"forecast is {age / 3600:.1f} h old, limit {cfg.forecast_max_age_s / 3600:.0f} h")
    latest = clients.sources.latest(metric, now)
    if latest is None:
        raise DetectionSkipped("no data point in the last 15 minutes")
    ts, value = latest
    if not math.isfinite(value):
        raise DetectionSkipped(f"latest value at {ts:.0f} is not a number ({value})")
    point = lookup(band, ts)
    if point is None:
        raise DetectionSkipped(f"timestamp {ts:.0f} is outside the forecast band")
    raw_state = get_json(clients.s3, targets.bucket, state_key(metric.name)) or {}
    # A new (or reset) state starts from the trainer's in-sample residuals rather than half a day of silence.
    seed = ConfidenceState.from_json({"residuals": meta.get("seed_residuals") or []}).residuals
    state = ConfidenceState.from_json(raw_state.get("confidence")).seeded(seed)
    episode = Episode.from_json(raw_state.get("episode"))
    if raw_state.get("last_ts") is not None and ts <= float(raw_state["last_ts"]):
        # Same point as the previous run (source lag): publish it again, but do not feed the state twice.
        assessment, _ = assess(value, point, state)
        new_state, new_episode, event = state, episode, None
    else:
        assessment, new_state = assess(value, point, state)
        new_episode, event = step(episode, ts, assessment.confidence, assessment.is_anomaly,
                                  cfg.confidence_threshold)
    at = datetime.fromtimestamp(ts, UTC)
    for name, val in ((m.IS_ANOMALY, 1.0 if assessment.is_anomaly else 0.0), (m.SCORE, assessment.score),
                      (m.CONFIDENCE, assessment.confidence), (m.ACTUAL, value), (m.PREDICTED, point.yhat),
                      (m.UPPER_BOUND, point.upper), (m.LOWER_BOUND, point.lower)):
        data.append(_datum(name, val, metric.name, at))
    if event is not None:
        notify(clients.sns, targets.topic_arn, metric, event, ts, value, point, assessment, new_episode, episode)
    put_json(clients.s3, targets.bucket, state_key(metric.name),
             {"confidence": new_state.to_json(), "episode": new_episode.to_json(),
              "last_ts": max(ts, float(raw_state.get("last_ts") or 0))})
    return {"value": value, "score": assessment.score, "confidence": assessment.confidence,
            "is_anomaly": assessment.is_anomaly, "event": event}


def notify(sns: Any, topic_arn: str, metric: MetricSpec, event: str, ts: float, value: float, point: Any,
           assessment: Any, new_episode: Episode, old_episode: Episode) -> None:
    when = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if event == "start":
        subject = f"Anomaly: {metric.name} outside its forecast band"
        text = (f"{metric.name} = {value:.6g} at {when}; expected {point.yhat:.6g} "
                f"(95% band {point.lower:.6g} .. {point.upper:.6g}); score {assessment.score:.2f}, "
                f"confidence {assessment.confidence:.2f}. One message per episode; a recovery message follows.")
    else:
        started = datetime.fromtimestamp(old_episode.started_at or ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        subject = f"Recovered: {metric.name} back inside its forecast band"
        text = (f"{metric.name} = {value:.6g} at {when} is back inside its band since three points; the episode "
                f"started {started} (peak confidence {old_episode.peak_confidence:.2f}).")
    sns.publish(TopicArn=topic_arn, Subject=subject[:100], Message=json.dumps({
        "event": "anomaly_start" if event == "start" else "anomaly_end", "metric": metric.name, "timestamp": when,
        "value": value, "predicted": point.yhat, "lower": point.lower, "upper": point.upper,
        "score": assessment.score, "confidence": assessment.confidence, "text": text}),
        MessageAttributes={"metric": {"DataType": "String", "StringValue": metric.name},
                           "event": {"DataType": "String", "StringValue": event}})


def run(cfg: Settings, clients: Clients, targets: Targets, now: float) -> dict[str, Any]:
    data: list[dict[str, Any]] = []
    results: dict[str, Any] = {}
    errors = 0
    for metric in cfg.metrics:
        try:
            results[metric.name] = detect_metric(metric, cfg, clients, targets, now, data)
        except (DetectionSkipped, SourceError, StoreError) as e:
            errors += 1
            results[metric.name] = {"skipped": str(e)}
            log.warning("metric %s not scored: %s", metric.name, e)
    data.append(_datum(m.DETECTOR_ERRORS, errors, None, datetime.fromtimestamp(now, UTC)))
    for i in range(0, len(data), 500):  # PutMetricData takes up to 1000 datums per call
        clients.cloudwatch.put_metric_data(Namespace=m.NAMESPACE, MetricData=data[i:i + 500])
    return {"errors": errors, "metrics": results}


def handler(event: Any, context: Any) -> dict[str, Any]:
    import boto3

    cfg = settings_mod.load(Path(__file__).parent)
    session = boto3.session.Session()
    clients = Clients(s3=session.client("s3"), cloudwatch=session.client("cloudwatch"),
                      sns=session.client("sns"), sources=default_sources(cfg.prometheus_url, session))
    targets = Targets(bucket=settings_mod.env("ANOMALY_BUCKET"), topic_arn=settings_mod.env("ANOMALY_TOPIC_ARN"))
    return run(cfg, clients, targets, time.time())
