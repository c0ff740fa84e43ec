"""Trainer Lambda: for each configured metric, fetch history, fit and validate Prophet, write model and band.

Event: {} (the weekly schedule) or {"metrics": ["request_rate", ...]} (on demand: `aws lambda invoke`).
Each metric is trained independently; if any fails, the others are still written and the invocation then
fails with every reason listed, so the error alarm and the on-failure destination see it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anomaly_core import settings as settings_mod
from anomaly_core.settings import MetricSpec, Settings, SettingsError
from anomaly_core.sources import SourceError, Sources, default_sources
from anomaly_core.store import band_key, model_key, put_json
from logshape import stdlib as logshape

from .forecast import ModelSettings, TrainingError, train, utc_iso

log = logging.getLogger()
log.setLevel(logging.INFO)
SHAPE = logshape.configure("anomaly-trainer")
HORIZON_DAYS = 8  # the 7 days until the next weekly run, plus a day of slack for a late or failed run


class TrainerFailed(RuntimeError):
    """At least one metric could not be trained (the message lists them)."""


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
    put_json(clients.s3, bucket, band_key(metric.name), {**meta, "seed_residuals": result.seed_residuals,
                                                         "band": [list(r) for r in result.band]})
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


def handler(event: Any, context: Any) -> dict[str, Any]:
    import boto3

    SHAPE.bind(context)

    cfg = settings_mod.load(Path(__file__).parent)
    session = boto3.session.Session()
    clients = Clients(s3=session.client("s3"), sources=default_sources(cfg.prometheus_url, session))
    return run(event, cfg, clients, settings_mod.env("ANOMALY_BUCKET"), time.time())
