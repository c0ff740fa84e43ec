"""Trainer Lambda: for each configured metric, fetch history, fit and validate Prophet, write model and band.

Events:
- SQS (the weekly fan-out, issue 28): the dispatcher (lambdas/anomaly_dispatcher) sends the metrics in batches to
  the training queue; each record is one batch {"job": "train", "cycle": ..., "metrics": [...]}, trained by
  `consume`. A batch that fails is reported in batchItemFailures (ReportBatchItemFailures), so SQS redelivers that
  batch only, and after the queue's maxReceiveCount it lands in the dead-letter queue (alarmed). Retraining a
  metric is idempotent (the same history gives the same model and band), so a redelivery is harmless.
- {} or {"metrics": ["request_rate", ...]} (on demand: `aws lambda invoke`): those metrics in this invocation.
Each metric is trained independently; if any fails, the others are still written and the invocation (or the
batch) then fails with every reason listed.
The band is written as one object per UTC day (anomaly_core.store.band_days): the detector reads only the day it
scores.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anomaly_core import settings as settings_mod
from anomaly_core.settings import MetricSpec, Settings, SettingsError
from anomaly_core.sources import SourceError, Sources, default_sources
from anomaly_core.store import band_day_key, band_days, model_key, put_json
from logshape import stdlib as logshape

from .forecast import ModelSettings, TrainingError, train, utc_iso

log = logging.getLogger()
log.setLevel(logging.INFO)
SHAPE = logshape.configure("anomaly-trainer")
HORIZON_DAYS = 8  # the 7 days until the next weekly run, plus a day of slack for a late or failed run


class TrainerFailed(RuntimeError):
    """At least one metric could not be trained (the message lists them)."""


CYCLE_LEAD_S = 300  # clock skew tolerated between the dispatcher and a consumer


@dataclass
class Clients:
    s3: Any
    sources: Sources


def train_metric(metric: MetricSpec, cfg: Settings, clients: Clients, bucket: str, now: float) -> dict[str, Any]:
    start = now - cfg.history_days * 86400
    history = [(t, v) for t, v in clients.sources.history(metric, start, now) if v == v]  # drop NaN
    if not history:
        raise TrainingError(f"the source returned no data for the last {cfg.history_days} days")
    ts, values = [t for t, _ in history], [v for _, v in history]
    t0 = time.perf_counter()
    result = train(ts, values, ModelSettings(seasonality_mode=metric.seasonality_mode,
                                             hourly=metric.hourly_seasonality), now, HORIZON_DAYS)
    fit_s = time.perf_counter() - t0
    trained_at = utc_iso(now)
    flagged = result.errors.headline > metric.mape_limit
    meta = {
        "metric": metric.name, "trained_at": trained_at, "trained_at_epoch": now,
        "history_points": result.history_points, "history_days": round(result.history_days, 3),
        "validation": result.errors.to_json(), "error_limit": metric.mape_limit, "flagged": flagged,
        "seasonality_mode": metric.seasonality_mode, "hourly": result.hourly, "interval_width": 0.95,
        "model_key": model_key(metric.name, trained_at), "fit_seconds": round(fit_s, 2),
    }
    clients.s3.put_object(Bucket=bucket, Key=meta["model_key"], Body=result.model_json.encode(),
                          ContentType="application/json")
    days = band_days({**meta, "seed_residuals": result.seed_residuals}, [list(r) for r in result.band])
    for day, doc in days.items():
        put_json(clients.s3, bucket, band_day_key(metric.name, day), doc)
    meta["band_days"] = sorted(days)
    if flagged:
        log.warning("metric %s flagged: validation error %.3f exceeds its limit %.3f; the detector will not "
                    "score it until a model passes", metric.name, result.errors.headline, metric.mape_limit,
                    extra={"fields": {"metric": metric.name, "decision": "flagged"}})
    return meta


def run(event: Any, cfg: Settings, clients: Clients, bucket: str, now: float) -> dict[str, Any]:
    if not isinstance(event, dict):
        raise TrainerFailed(f"event must be a JSON object, got {type(event).__name__}")
    wanted = event.get("metrics")
    if wanted is None:
        metrics = list(cfg.metrics)
    elif isinstance(wanted, list) and all(isinstance(w, str) for w in wanted) and wanted:
        try:
            metrics = [cfg.metric(w) for w in wanted]
        except SettingsError as e:
            raise TrainerFailed(str(e)) from None
    else:
        raise TrainerFailed("event.metrics must be a non-empty list of configured metric names")
    trained: dict[str, Any] = {}
    failures: dict[str, str] = {}
    for metric in metrics:
        try:
            trained[metric.name] = train_metric(metric, cfg, clients, bucket, now)
            log.info("trained %s", metric.name, extra={"fields": {"decision": "trained", **trained[metric.name]}})
        except (SourceError, TrainingError) as e:
            failures[metric.name] = str(e)
            log.error("training %s failed: %s", metric.name, e,
                      extra={"fields": {"metric": metric.name, "decision": "failed", "reason": str(e)}})
    if failures:
        raise TrainerFailed("; ".join(f"{k}: {v}" for k, v in failures.items()))
    return {"trained": sorted(trained), "flagged": sorted(k for k, v in trained.items() if v["flagged"])}


def training_time(cycle: Any, now: float) -> float:
    """The batch's training time: the dispatcher's cycle, not the clock. A redelivered batch (SQS retries a failed
    one) then trains on the same history and writes the same model and band keys, overwriting its own partial
    work instead of leaving a second model beside the band (models/<metric>/<trained_at>.json)."""
    if isinstance(cycle, bool) or not isinstance(cycle, int) or not 0 < cycle <= now + CYCLE_LEAD_S:
        raise TrainerFailed(f"record body's cycle must be the epoch second the dispatcher stamped, at most "
                            f"{CYCLE_LEAD_S} s ahead of this clock, got {str(cycle)[:40]!r}")
    return float(cycle)


def consume(event: Any, context: Any) -> dict[str, Any]:
    """SQS batch of the training queue: each record one batch of metrics; failed records reported by id."""
    SHAPE.bind(context)
    global _CACHED
    if _CACHED is None:  # once per container: Lambda reuses the clients across the batches it is given
        _CACHED = _init()
    cfg, clients, bucket = _CACHED
    failures: list[dict[str, str]] = []
    for record in (event or {}).get("Records", []):
        try:
            body = json.loads(record["body"])
            if not isinstance(body, dict) or body.get("job") != "train":
                raise TrainerFailed(f"record body must be a training batch {{\"job\": \"train\", \"metrics\": "
                                    f"[...]}}, got {str(record.get('body'))[:200]!r}")
            # Names the settings no longer hold (a deploy between dispatch and delivery) are dropped, not retried.
            known = {m.name for m in cfg.metrics}
            names = [n for n in body.get("metrics") or [] if n in known]
            if len(names) < len(body.get("metrics") or []):
                log.warning("training batch names metrics no longer configured: dropped",
                            extra={"fields": {"decision": "unknown-metrics-dropped"}})
            if names:
                run({"metrics": names}, cfg, clients, bucket, training_time(body.get("cycle"), time.time()))
        except Exception as e:  # this batch failed: SQS redelivers it (the DLQ after maxReceiveCount)
            log.error("training batch %s failed: %s", record.get("messageId"), e,
                      extra={"fields": {"decision": "batch-failed", "reason": str(e)[:500]}})
            failures.append({"itemIdentifier": str(record.get("messageId"))})
    return {"batchItemFailures": failures}


_CACHED: tuple[Settings, Clients, str] | None = None


def _init() -> tuple[Settings, Clients, str]:
    import boto3

    cfg = settings_mod.load(Path(__file__).parent)
    session = boto3.session.Session()
    return (cfg, Clients(s3=session.client("s3"), sources=default_sources(cfg.prometheus_url, session)),
            settings_mod.env("ANOMALY_BUCKET"))


def handler(event: Any, context: Any) -> dict[str, Any]:
    SHAPE.bind(context)
    cfg, clients, bucket = _init()
    return run(event, cfg, clients, bucket, time.time())
