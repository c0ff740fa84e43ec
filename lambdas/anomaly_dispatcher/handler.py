"""Dispatcher Lambda (issue 28): fans the anomaly work out over SQS, one message per batch of metrics.

Scheduled twice: every 5 minutes with {"job": "detect"} (the detection queue, consumed by the detector) and weekly
with {"job": "train"} (the training queue, consumed by the trainer). Each message is
{"job", "cycle", "metrics": [names]}: `cycle` is the start of the 5-minute period (or the training run's minute),
for the logs and the consumers' warnings; the consumers' own guards make a repeated message harmless (the
detector's state admits each point once, a retraining writes the same band), so a dispatcher retried by
EventBridge, or SQS's at-least-once delivery, never scores or notifies twice.
Batch sizes come from the environment (DETECT_BATCH_METRICS, TRAIN_BATCH_METRICS; infra/config/anomaly.py says
why each default). Standard library + boto3 only.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from anomaly_core import settings as settings_mod
from logshape import stdlib as logshape

log = logging.getLogger()
log.setLevel(logging.INFO)
SHAPE = logshape.configure("anomaly-dispatcher")

JOBS = {"detect": ("ANOMALY_DETECT_QUEUE_URL", "DETECT_BATCH_METRICS", 300),
        "train": ("ANOMALY_TRAIN_QUEUE_URL", "TRAIN_BATCH_METRICS", 60)}
SEND_BATCH_MAX = 10  # SendMessageBatch takes up to 10 entries (and 256 KB in all)
SEND_ATTEMPTS = 3  # entries SQS refused (throttled, internal error) are sent again; then the run fails


class DispatchFailed(RuntimeError):
    """Some batches could not be queued (the message names them); EventBridge retries the whole dispatch."""


def batches(names: list[str], size: int) -> list[list[str]]:
    if size < 1:
        raise settings_mod.SettingsError(f"batch size {size} must be at least 1")
    return [names[i:i + size] for i in range(0, len(names), size)]


def _batch_size(variable: str) -> int:
    raw = settings_mod.env(variable)
    try:
        size = int(raw)
    except ValueError:
        raise settings_mod.SettingsError(f"{variable}={raw!r} must be a whole number of metrics (>= 1)") from None
    if size < 1:
        raise settings_mod.SettingsError(f"{variable}={raw!r} must be a whole number of metrics (>= 1)")
    return size


def dispatch(job: str, names: list[str], sqs: Any, queue_url: str, size: int, now: float,
             period_s: int) -> dict[str, Any]:
    cycle = int(now // period_s * period_s)
    bodies = [json.dumps({"job": job, "cycle": cycle, "metrics": b}, separators=(",", ":"))
              for b in batches(names, size)]
    entries = [{"Id": str(i), "MessageBody": body} for i, body in enumerate(bodies)]
    for attempt in range(SEND_ATTEMPTS):
        refused: list[dict[str, Any]] = []
        for i in range(0, len(entries), SEND_BATCH_MAX):
            chunk = entries[i:i + SEND_BATCH_MAX]
            resp = sqs.send_message_batch(QueueUrl=queue_url, Entries=chunk)
            failed_ids = {f["Id"] for f in resp.get("Failed", [])}
            refused += [e for e in chunk if e["Id"] in failed_ids]
        if not refused:
            break
        log.warning("%d batches refused by SQS (attempt %d): sent again", len(refused), attempt + 1)
        entries = refused
    else:
        raise DispatchFailed(f"{len(entries)} of {len(bodies)} {job} batches could not be queued after "
                             f"{SEND_ATTEMPTS} attempts (ids {[e['Id'] for e in entries][:10]})")
    log.info("%s: %d metrics in %d batches of up to %d queued", job, len(names), len(bodies), size,
             extra={"fields": {"decision": "dispatched", "job": job, "cycle": cycle, "metrics": len(names),
                               "batches": len(bodies)}})
    return {"job": job, "cycle": cycle, "metrics": len(names), "batches": len(bodies)}


def handler(event: Any, context: Any) -> dict[str, Any]:
    import boto3

    SHAPE.bind(context)
    job = event.get("job") if isinstance(event, dict) else None
    if job not in JOBS:
        raise settings_mod.SettingsError(f"event.job {job!r} is not a job; allowed: {', '.join(JOBS)}")
    queue_var, size_var, period_s = JOBS[job]
    cfg = settings_mod.load(Path(__file__).parent)
    sqs = boto3.session.Session().client("sqs")
    return dispatch(job, [m.name for m in cfg.metrics], sqs, settings_mod.env(queue_var), _batch_size(size_var),
                    time.time(), period_s)

