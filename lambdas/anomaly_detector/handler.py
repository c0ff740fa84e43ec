"""Detector Lambda (every 5 minutes): per metric, latest value -> band -> score and confidence -> CloudWatch.

Per metric it publishes IsAnomaly, Score, Confidence (news x anomaly likelihood, see anomaly_core.scoring),
Actual, Predicted, UpperBound, LowerBound (dimension Metric) and ForecastAge; notifies the anomaly topic once
when an episode starts and once when it ends.
Missing data, NaN, a source error, a missing/flagged/stale forecast never notify: each is logged and counted
in DetectorErrors (published on every run, 0 included) and the detector's own alarm catches them.
One metric's failure of any kind (a NaN band, a malformed source answer, a throttled state write, an SNS error,
a state field of the wrong type) is that metric's error: the others are scored and DetectorErrors is published.
Notifications are idempotent: the episode and the notice it owes are saved before publishing, and each notice is
claimed with a create-only S3 write (If-None-Match: *), so neither a failed save nor a retry sends it twice.
Reads are batched: S3 objects in parallel, CloudWatch latest values in GetMetricData calls of 500 queries.
Standard library + boto3 only (no Prophet, no pandas): the package stays a few tens of kB.

Scale-out (issue 28): the dispatcher (lambdas/anomaly_dispatcher) sends the metrics every 5 minutes in batches to
the detection queue; `consume` scores one batch per SQS record (ReportBatchItemFailures: a failed batch alone is
redelivered, and after maxReceiveCount it lands in the dead-letter queue). Exactly once per (metric, point): the
state's `last_ts` (written with an ETag-conditional PUT) admits each point to the state once, so a redelivered or
duplicated batch feeds nothing twice and opens no second episode; its datums are the ones stored with the point
(`last_out`), so a replay publishes the same values again (every anomaly alarm reads Maximum) and the notices stay
claimed once. Each run reads only the band's day object covering the point it scores (anomaly_core.store).
`handler` (a direct invocation) still scores every configured metric in one run.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
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
from anomaly_core.store import (
    StoreError,
    band_day_key,
    band_key,
    claim_notice,
    day_of,
    get_json,
    get_json_tagged,
    notice_key,
    parse_band,
    put_json,
    put_json_if,
    sent_key,
    state_key,
)
from botocore.config import Config
from botocore.exceptions import ClientError
from logshape import stdlib as logshape

log = logging.getLogger()
log.setLevel(logging.INFO)
SHAPE = logshape.configure("anomaly-detector")


class DetectionSkipped(Exception):
    """This metric cannot be scored this run (the reason is the message); counted, never paged."""


class PublishFailed(RuntimeError):
    """PutMetricData failed for at least one batch (after every batch was tried)."""


PUT_METRIC_DATA_MAX = 1000  # PutMetricData: up to 1000 metrics per call (and 1 MB; 1000 datums are ~200 kB)
# PutMetricData refuses the whole request for one datum stamped more than two weeks back or two hours ahead (AWS
# API reference, "PutMetricData"; margins for the time the request takes) or valued beyond +-2^360: each datum is
# screened, and a request refused anyway is split until the refused datum is alone, so one bad point never sinks
# the others (DetectorErrors included). What is dropped is counted in DroppedPoints by Reason.
MAX_POINT_AGE_S = 14 * 86400 - 3600
MAX_POINT_LEAD_S = 2 * 3600 - 300
# A source point ahead of the detector's clock by more than this is a clock fault, not data: scoring it would also
# set the state's last_ts in the future and freeze the metric until the clock caught up.
SOURCE_SKEW_S = 300
REFUSED_CODES = frozenset({"InvalidParameterValue", "InvalidParameterCombination", "MissingParameter"})


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


@dataclass(frozen=True)
class Prefetched:
    """What one run reads for one metric, fetched for all metrics at once (S3 in parallel, sources batched)."""

    band: Any | StoreError | None
    state: tuple[Any | None, str | None] | StoreError
    latest: tuple[float, float] | SourceError | None


def _finite_datum(name: str, value: float, metric_name: str | None, at: datetime) -> dict[str, Any]:
    if not math.isfinite(value) or abs(value) > m.MAX_ABS_VALUE:
        raise DetectionSkipped(f"{name} = {value} cannot be published (CloudWatch takes finite values within "
                               f"+-2^360)")
    return _datum(name, value, metric_name, at)


def _last_ts(raw_state: dict[str, Any], now: float) -> float | None:
    last = raw_state.get("last_ts")
    if isinstance(last, int | float) and not isinstance(last, bool) and math.isfinite(last):
        if last > now + SOURCE_SKEW_S:  # left by a future-stamped point: it would freeze the metric
            log.warning("state last_ts %r is ahead of the clock (%.0f): ignored", last, now)
            return None
        return float(last)
    if last is not None:
        log.warning("state last_ts %r is not a number: ignored", last)
    return None


def detect_metric(metric: MetricSpec, cfg: Settings, clients: Clients, targets: Targets, now: float,
                  data: list[dict[str, Any]], pre: Prefetched) -> dict[str, Any]:
    """Score one metric; every datum is appended to `data` only once the metric is fully scored."""
    if isinstance(pre.band, StoreError):
        raise pre.band
    if pre.band is None:
        raise DetectionSkipped("no forecast yet (run the trainer)")
    meta, band = parse_band(pre.band, band_key(metric.name))
    age = max(0.0, now - float(meta["trained_at_epoch"]))
    mine = [_finite_datum(m.FORECAST_AGE, age, metric.name, datetime.fromtimestamp(now, UTC))]
    if meta.get("flagged"):
        data.extend(mine)
        raise DetectionSkipped(f"model flagged: validation error {meta.get('validation')} above its limit")
    if age > cfg.forecast_max_age_s:
        data.extend(mine)
        raise DetectionSkipped(f"forecast is {age / 3600:.1f} h old, limit {cfg.forecast_max_age_s / 3600:.0f} h")
    if isinstance(pre.latest, SourceError):
        raise pre.latest
    if pre.latest is None:
        raise DetectionSkipped("no data point in the last 15 minutes")
    ts, value = pre.latest
    if not math.isfinite(value):
        raise DetectionSkipped(f"latest value at {ts:.0f} is not a number ({value})")
    if ts > now + SOURCE_SKEW_S:
        raise DetectionSkipped(f"latest point is stamped {ts - now:.0f} s ahead of the clock (at most "
                               f"{SOURCE_SKEW_S} s of skew): a source clock fault, not scored")
    point = lookup(band, ts)
    if point is None:
        raise DetectionSkipped(f"timestamp {ts:.0f} is outside the forecast band")
    if isinstance(pre.state, StoreError):
        raise pre.state
    raw, etag = pre.state
    if raw is not None and not isinstance(raw, dict):
        log.warning("metric %s: state is a %s, not an object: starting a new state", metric.name, type(raw).__name__)
    raw_state: dict[str, Any] = raw if isinstance(raw, dict) else {}
    # A new (or reset) state starts from the trainer's in-sample residuals rather than half a day of silence (read
    # only then: a warm state never uses them).
    state = ConfidenceState.from_json(raw_state.get("confidence"))
    if state.wants_seed:
        state = state.seeded(ConfidenceState.from_json({"residuals": meta.get("seed_residuals") or []}).residuals)
    episode = Episode.from_json(raw_state.get("episode"))
    pending = _pending(raw_state.get("pending"))
    last_ts = _last_ts(raw_state, now)
    if last_ts is not None and ts <= last_ts:
        # Same point as the previous run (source lag, a redelivered batch) or a step back: publish it again, feed
        # the state nothing. The same point publishes the values stored when it was scored, not a rescore
        # against the state it already changed.
        assessment, _ = assess(value, point, state, ts)
        stored = raw_state.get("last_out")
        if isinstance(stored, dict) and stored.get("ts") == ts:
            try:
                assessment = dataclasses.replace(assessment, score=float(stored["score"]),
                                                 confidence=float(stored["confidence"]),
                                                 is_anomaly=bool(stored["is_anomaly"]))
            except (KeyError, TypeError, ValueError):
                log.warning("metric %s: stored last_out %r is malformed: rescored", metric.name, stored)
        new_state, new_episode, event = state, episode, None
    else:
        assessment, new_state = assess(value, point, state, ts)
        new_episode, event = step(episode, ts, assessment.confidence, assessment.is_anomaly,
                                  cfg.confidence_threshold)
    at = datetime.fromtimestamp(ts, UTC)
    for name, val in ((m.IS_ANOMALY, 1.0 if assessment.is_anomaly else 0.0), (m.SCORE, assessment.score),
                      (m.CONFIDENCE, assessment.confidence), (m.ACTUAL, value), (m.PREDICTED, point.yhat),
                      (m.UPPER_BOUND, point.upper), (m.LOWER_BOUND, point.lower)):
        mine.append(_finite_datum(name, val, metric.name, at))
    if event is not None:
        message = notice(metric, event, ts, value, point, assessment, new_episode, episode, cfg)
        pending = [*pending, {"event": event, "episode": (new_episode if event == "start" else episode).id,
                              "attempt": 0, "message": message}]
    fresh = last_ts is None or ts > last_ts
    doc = {"confidence": new_state.to_json(), "episode": new_episode.to_json(), "pending": pending,
           "last_ts": max(ts, last_ts or 0.0),
           "last_out": {"ts": ts, "score": assessment.score, "confidence": assessment.confidence,
                        "is_anomaly": assessment.is_anomaly} if fresh else raw_state.get("last_out")}
    # Idempotent notification: the episode (and the notice it owes) is stored BEFORE anything is published; the
    # notice is then claimed with a create-only write, so a failed save after publishing never sends it twice.
    if event is not None or pending != _pending(raw_state.get("pending")) or fresh:
        etag = put_json_if(clients.s3, targets.bucket, state_key(metric.name), doc, etag)
    data.extend(mine)
    sent, failed, held = deliver(clients, targets, metric, pending, now)
    if sent or failed:
        # A failed notice gets a new attempt number: its claim exists, so retrying under it would count as sent.
        retry = [{k: v for k, v in p.items() if k != "error"} | {"attempt": p["attempt"] + 1} for p in failed]
        put_json_if(clients.s3, targets.bucket, state_key(metric.name), {**doc, "pending": held + retry}, etag)
    if failed:
        raise DetectionSkipped(f"notification failed ({failed[0]['error']}); retried next run")
    return {"value": value, "score": assessment.score, "confidence": assessment.confidence,
            "is_anomaly": assessment.is_anomaly, "event": event}


MAX_PENDING = 4  # notices owed at most (a start and an end, twice): older ones are dropped with a warning


def _pending(raw: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        return []
    ok = [p for p in raw if isinstance(p, dict) and p.get("event") in ("start", "end")
          and isinstance(p.get("episode"), str) and isinstance(p.get("attempt"), int)
          and not isinstance(p.get("attempt"), bool) and isinstance(p.get("message"), dict)]
    if len(ok) > MAX_PENDING:
        log.warning("dropping %d undelivered notices: only the last %d are kept", len(ok) - MAX_PENDING, MAX_PENDING)
    return ok[-MAX_PENDING:]


def deliver(clients: Clients, targets: Targets, metric: MetricSpec, pending: list[dict[str, Any]],
            now: float) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """(delivered or already delivered, failed, in flight in another run) among the owed notices.

    Each notice is claimed (anomaly_core.store.claim_notice), published, then marked sent. A run that dies between
    claim and publish leaves a claim without its mark: once its lease has run out the notice is taken over and
    published, so it is not lost. A run that dies between publishing and the mark leaves the same trace: that
    notice goes out twice, with the same `dedupe_key`, which the ticket receiver keys on."""
    sent: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    held: list[dict[str, Any]] = []
    for p in pending:
        key = notice_key(metric.name, p["episode"], p["event"], p["attempt"])
        fields = {"metric": metric.name, "episode_id": p["episode"], "event": p["event"]}
        status = claim_notice(clients.s3, targets.bucket, key, {"metric": metric.name, "event": p["event"]}, now)
        if status == "sent":
            log.info("metric %s: notice %s already sent: not sent again", metric.name, key,
                     extra={"fields": {**fields, "decision": "notice-already-sent"}})
            sent.append(p)
            continue
        if status == "in-flight":
            log.info("metric %s: notice %s claimed by another run: left to it", metric.name, key,
                     extra={"fields": {**fields, "decision": "notice-in-flight"}})
            held.append(p)
            continue
        msg = p["message"]
        try:
            clients.sns.publish(TopicArn=targets.topic_arn, Subject=str(msg["subject"])[:100],
                                Message=json.dumps(msg["body"]),
                                MessageAttributes={"metric": {"DataType": "String", "StringValue": metric.name},
                                                   "event": {"DataType": "String", "StringValue": p["event"]}})
        except Exception as e:  # SNS throttled/unavailable: still owed, retried next run under a new attempt
            log.warning("metric %s: publishing %s failed: %s", metric.name, p["event"], e,
                        extra={"fields": {**fields, "decision": "notify-failed"}})
            failed.append({**p, "error": str(e)[:200]})
            continue
        sent.append(p)
        log.info("metric %s: notice %s sent", metric.name, p["event"], extra={"fields": {**fields,
                                                                                       "decision": "notified"}})
        try:
            put_json(clients.s3, targets.bucket, sent_key(key), {"metric": metric.name, "event": p["event"]})
        except Exception as e:  # the state drops the notice next: only a run dying before that resends it
            log.warning("metric %s: marking notice %s sent failed: %s", metric.name, key, e)
    return sent, failed, held


def notice(metric: MetricSpec, event: str, ts: float, value: float, point: Any, assessment: Any,
           new_episode: Episode, old_episode: Episode, cfg: Settings) -> dict[str, Any]:
    """The message of one episode event. `episode_id` and `dedupe_key` (metric/episode/event) let the ticket
    receiver open one ticket per episode and close that ticket on its end, whatever SNS or a retry repeats."""
    episode_id = (new_episode if event == "start" else old_episode).id
    when = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if event == "start":
        subject = f"Anomaly: {metric.name} outside its forecast band"
        text = (f"{metric.name} = {value:.6g} at {when}; expected {point.yhat:.6g} "
                f"(95% band {point.lower:.6g} .. {point.upper:.6g}); signal {assessment.signal}, score "
                f"{assessment.score:.2f}, confidence {assessment.confidence:.2f}. One message per episode; a recovery "
                f"message follows.")
    else:
        started = datetime.fromtimestamp(old_episode.started_at or ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        subject = f"Recovered: {metric.name} back inside its forecast band"
        text = (f"{metric.name} = {value:.6g} at {when} is back inside its band since three points; the episode "
                f"started {started} (peak confidence {old_episode.peak_confidence:.2f}).")
    return {"subject": subject, "body": {
        "event": "anomaly_start" if event == "start" else "anomaly_end", "metric": metric.name, "timestamp": when,
        "value": value, "predicted": point.yhat, "lower": point.lower, "upper": point.upper,
        "score": assessment.score, "confidence": assessment.confidence, "text": text,
        # Which signal opened the episode and its parts (anomaly_core.scoring): the reader sees why it is news.
        "signal": assessment.signal, "signals": {"news": assessment.news, "likelihood": assessment.likelihood,
                                                 "shape": assessment.shape, "range": assessment.spatial,
                                                 "context": assessment.context, "recurring": assessment.recurring},
        "episode_id": episode_id, "dedupe_key": f"anomaly/{metric.name}/{episode_id}",
        "started_at": datetime.fromtimestamp((new_episode if event == "start" else old_episode).started_at or ts,
                                             UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "threshold": cfg.confidence_threshold,
        "runbook": "anomaly-episode"}}


S3_READERS = 16  # parallel GetObject calls: S3 has no batch read, and each call waits ~10-30 ms


CHUNK_METRICS = 16  # metrics read and scored together (~1 MB each parsed): memory stays bounded at any count


def read_band(clients: Clients, targets: Targets, metric: MetricSpec, at: float) -> Any | None:
    """The band object covering `at`: its day object, else the 8-day object of a trainer before day objects."""
    doc = get_json(clients.s3, targets.bucket, band_day_key(metric.name, day_of(at)))
    return doc if doc is not None else get_json(clients.s3, targets.bucket, band_key(metric.name))


def prefetch(metrics: list[MetricSpec], clients: Clients, targets: Targets, now: float) -> dict[str, Prefetched]:
    # The latest values first: each names the day whose band object is read (no point: today's, for ForecastAge).
    try:
        latest = clients.sources.latest_many(metrics, now)
    except Exception as e:  # a bug in the batch reader must not cost the whole run: every metric counts it
        latest = {metric.name: SourceError(f"reading the sources failed: {type(e).__name__}: {e}")
                  for metric in metrics}

    def band(metric: MetricSpec) -> Any | StoreError | None:
        point = latest.get(metric.name)
        at = point[0] if isinstance(point, tuple) and math.isfinite(point[0]) else now
        try:
            return read_band(clients, targets, metric, at)
        except StoreError as e:
            return e
        except (OverflowError, ValueError, OSError) as e:  # a timestamp no calendar day holds
            return StoreError(f"no band day for timestamp {at!r}: {e}")

    def state(metric: MetricSpec) -> tuple[Any | None, str | None] | StoreError:
        try:
            return get_json_tagged(clients.s3, targets.bucket, state_key(metric.name))
        except StoreError as e:
            return e

    with ThreadPoolExecutor(max_workers=max(1, min(S3_READERS, 2 * len(metrics)))) as pool:
        bands = pool.map(band, metrics)
        states = pool.map(state, metrics)
        bands_l, states_l = list(bands), list(states)
    return {metric.name: Prefetched(b, s, latest.get(metric.name)) for metric, b, s in
            zip(metrics, bands_l, states_l, strict=True)}


def _chunked_prefetch(cfg: Settings, clients: Clients, targets: Targets,
                      now: float) -> Iterator[tuple[MetricSpec, Prefetched]]:
    metrics = list(cfg.metrics)
    for i in range(0, len(metrics), CHUNK_METRICS):
        chunk = metrics[i:i + CHUNK_METRICS]
        try:
            pre = prefetch(chunk, clients, targets, now)
        except Exception as e:  # e.g. the thread pool cannot start: each metric of the chunk counts it
            err = StoreError(f"reading the chunk failed: {type(e).__name__}: {e}")
            pre = {metric.name: Prefetched(err, err, None) for metric in chunk}
        for metric in chunk:
            yield metric, pre.pop(metric.name)


def run(cfg: Settings, clients: Clients, targets: Targets, now: float) -> dict[str, Any]:
    data: list[dict[str, Any]] = []
    results: dict[str, Any] = {}
    errors = 0
    for metric, pre in _chunked_prefetch(cfg, clients, targets, now):
        try:
            results[metric.name] = detect_metric(metric, cfg, clients, targets, now, data, pre)
            log.info("metric %s scored", metric.name, extra={"fields": {
                "metric": metric.name, "decision": "anomalous" if results[metric.name]["is_anomaly"] else "normal",
                **results[metric.name]}})
        except (DetectionSkipped, SourceError, StoreError) as e:
            errors += 1
            results[metric.name] = {"skipped": str(e)}
            log.warning("metric %s not scored: %s", metric.name, e,
                        extra={"fields": {"metric": metric.name, "decision": "skipped", "reason": str(e)}})
        except Exception as e:  # anything unforeseen in one metric's data: counted, the others still scored
            errors += 1
            results[metric.name] = {"skipped": f"unexpected {type(e).__name__}: {e}"}
            log.exception("metric %s not scored: unexpected error", metric.name,
                          extra={"fields": {"metric": metric.name, "decision": "skipped"}})
    # DetectorErrors goes first: if a later call fails, the health metric has already been published.
    data.insert(0, _datum(m.DETECTOR_ERRORS, errors, None, datetime.fromtimestamp(now, UTC)))
    data, dropped = screen(data, now)
    failures: list[str] = []
    for i in range(0, len(data), PUT_METRIC_DATA_MAX):
        _put(clients.cloudwatch, data[i:i + PUT_METRIC_DATA_MAX], dropped, failures)
    if dropped:
        at = datetime.fromtimestamp(now, UTC)
        _put(clients.cloudwatch, [{"MetricName": m.DROPPED_POINTS, "Unit": "Count", "Timestamp": at,
                                   "Value": float(n), "Dimensions": [{"Name": m.DROP_REASON_DIMENSION,
                                                                      "Value": reason}]}
                                  for reason, n in sorted(dropped.items())], Counter(), failures)
    if failures:
        raise PublishFailed("; ".join(failures))
    return {"errors": errors, "metrics": results, "dropped": dict(dropped)}


def screen(data: list[dict[str, Any]], now: float) -> tuple[list[dict[str, Any]], Counter[str]]:
    """The data PutMetricData accepts, and the count of the rest by reason (m.DROP_REASONS)."""
    kept, dropped = [], Counter[str]()
    for d in data:
        at, value = d["Timestamp"].timestamp(), d["Value"]
        reason = ("timestamp-future" if at > now + MAX_POINT_LEAD_S else
                  "timestamp-past" if at < now - MAX_POINT_AGE_S else
                  "value-range" if not math.isfinite(value) or abs(value) > m.MAX_ABS_VALUE else None)
        if reason is None:
            kept.append(d)
        else:
            dropped[reason] += 1
            log.warning("datum %s %s at %s = %r dropped: %s", d["MetricName"], d.get("Dimensions"), d["Timestamp"],
                        value, reason)
    return kept, dropped


def _put(cloudwatch: Any, batch: list[dict[str, Any]], dropped: Counter[str], failures: list[str]) -> None:
    """One PutMetricData; a request refused for its content is split in halves until the refused datum is alone
    (dropped, reason `refused`); any other failure is listed (the run then fails so Lambda Errors sees it)."""
    if not batch:
        return
    try:
        cloudwatch.put_metric_data(Namespace=m.NAMESPACE, MetricData=batch)
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") not in REFUSED_CODES:
            failures.append(f"PutMetricData ({len(batch)} datums): {e}")
            log.error("PutMetricData failed: %s", e)
        elif len(batch) == 1:
            dropped["refused"] += 1
            log.warning("datum %s %s refused by CloudWatch: %s", batch[0]["MetricName"], batch[0].get("Dimensions"), e)
        else:
            half = len(batch) // 2
            _put(cloudwatch, batch[:half], dropped, failures)
            _put(cloudwatch, batch[half:], dropped, failures)
    except Exception as e:  # the other batches are still sent; the run then fails so Lambda Errors sees it
        failures.append(f"PutMetricData ({len(batch)} datums): {e}")
        log.error("PutMetricData failed: %s", e)


def _init() -> tuple[Settings, Clients, Targets]:
    import boto3

    cfg = settings_mod.load(Path(__file__).parent)
    session = boto3.session.Session()
    # A pooled connection per parallel reader: botocore keeps 10 by default ("Config" reference,
    # max_pool_connections), and urllib3 discards the connections of the other 6 readers, so their next reads
    # would open new TLS sessions (and log "Connection pool is full" warnings).
    s3 = session.client("s3", config=Config(max_pool_connections=S3_READERS))
    clients = Clients(s3=s3, cloudwatch=session.client("cloudwatch"),
                      sns=session.client("sns"), sources=default_sources(cfg.prometheus_url, session))
    targets = Targets(bucket=settings_mod.env("ANOMALY_BUCKET"), topic_arn=settings_mod.env("ANOMALY_TOPIC_ARN"))
    return cfg, clients, targets


def handler(event: Any, context: Any) -> dict[str, Any]:
    """A direct invocation: every configured metric in this one run."""
    SHAPE.bind(context)
    cfg, clients, targets = _init()
    return run(cfg, clients, targets, time.time())


class BadBatch(ValueError):
    """An SQS record that is not a detection batch (the message says what is wrong)."""


def batch_metrics(body: str, cfg: Settings) -> tuple[MetricSpec, ...]:
    """The configured metrics a detection batch names (names no longer configured are dropped with a warning:
    a deploy between dispatch and delivery); BadBatch naming what is wrong and what is expected."""
    try:
        doc = json.loads(body)
    except (json.JSONDecodeError, TypeError) as e:
        raise BadBatch(f"record body is not JSON ({e}); expected {{\"job\": \"detect\", \"metrics\": [...]}}") \
            from None
    names = doc.get("metrics") if isinstance(doc, dict) else None
    if not isinstance(doc, dict) or doc.get("job") != "detect" or not isinstance(names, list) \
            or not all(isinstance(n, str) for n in names):
        raise BadBatch(f"record body {body[:200]!r} is not a detection batch; expected "
                       f"{{\"job\": \"detect\", \"cycle\": <epoch>, \"metrics\": [<metric names>]}}")
    wanted = set(names)
    specs = tuple(m for m in cfg.metrics if m.name in wanted)
    if len(specs) < len(wanted):
        log.warning("batch names %d metrics no longer configured: dropped", len(wanted) - len(specs),
                    extra={"fields": {"decision": "unknown-metrics-dropped",
                                      "metrics": sorted(wanted - {m.name for m in specs})[:20]}})
    return specs


# A record is started only with this much time left (a batch of the configured size takes a fraction of it); the
# rest are reported failed untouched and come back at once, instead of being cut at the timeout.
MIN_REMAINING_MS = 20_000
_CONSUMER: tuple[Settings, Clients, Targets] | None = None


def consume(event: Any, context: Any) -> dict[str, Any]:
    """SQS event of the detection queue: each record one batch of metrics, scored by `run`. A record whose run
    fails (PublishFailed, a bad body) is reported in batchItemFailures; a metric that cannot be scored is counted
    in DetectorErrors (the run's own health metric) and not retried: the next cycle scores it."""
    global _CONSUMER
    SHAPE.bind(context)
    if _CONSUMER is None:  # once per container: Lambda reuses the clients across the batches it is given
        _CONSUMER = _init()
    cfg, clients, targets = _CONSUMER
    records = (event or {}).get("Records") or []
    failed: list[str] = []
    scored = errors = 0
    for i, record in enumerate(records):
        mid = str(record.get("messageId"))
        if i and context is not None and context.get_remaining_time_in_millis() < MIN_REMAINING_MS:
            failed += [str(r.get("messageId")) for r in records[i:]]
            log.warning("%d batches left for a later invocation (time running out)", len(records) - i)
            break
        try:
            specs = batch_metrics(record.get("body", ""), cfg)
            if specs:
                out = run(dataclasses.replace(cfg, metrics=specs), clients, targets, time.time())
                scored, errors = scored + len(specs) - out["errors"], errors + out["errors"]
        except Exception as e:  # this batch comes back (the dead-letter queue after maxReceiveCount)
            failed.append(mid)
            log.error("batch %s failed: %s", mid, e, extra={"fields": {"decision": "batch-failed",
                                                                        "reason": str(e)[:500]}})
    return {"batchItemFailures": [{"itemIdentifier": f} for f in failed], "scored": scored, "errors": errors}
