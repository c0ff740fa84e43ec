"""The anomaly path in the drill: the detector from the zip the stack deploys, run as Lambda runs it (a fresh
interpreter with only the zip and the runtime's boto3 on its path, invoked per event), against the drill's
Prometheus and moto; the episode it publishes to the anomaly topic reaches the ticket stand-in through that
topic's HTTP subscription, as infra/components/anomaly.py wires it (an HTTPS subscription to the ticket webhook).

What is the drill's and not the stack's:
- the forecast band, written in the trainer's format (flat at the healthy request rate, a 10% band, the
  trainer's seed residuals): Prophet training is tests/test_anomaly_handlers.py's subject, the path is this one's;
- the schedule: the detector runs every DETECTOR_EVERY_S instead of `anomaly.detectSchedule` (5 minutes), so the
  report gives the detection time of the drill's runs and the schedule's delay separately;
- the page: moto does not evaluate alarms, so the P1 page alarm's breach (IsAnomaly x Confidence >=
  `anomaly.pageConfidence` in `pageAfterMinutes / 5` consecutive 5-minute periods) is computed from the
  datapoints the detector published, as for the missing-heartbeat alarm.
The baked settings differ from the shipped ones in `prometheusUrl` only (checked).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.components.anomaly import settings_json
from infra.config.anomaly import AnomalyConfig
from infra.tools.drill import zip_runtime
from infra.tools.drill.webhook import client
from lambdas.anomaly_core.store import band_day_key, band_days

DETECTOR = "anomaly_detector"
# The shipped defaults (the stacks set only prometheusUrl: their AMP workspace, which the drill replaces).
SHIPPED = AnomalyConfig()
METRIC = "request_rate"  # the shipped metric the synthetic akidb-rest serves (sum(rate(akidb_requests_total[5m])))
DETECTOR_EVERY_S = 15.0
BAND_HALF_WIDTH = 0.1  # of the healthy rate
STEP_S = 300
BUCKET = "akidb-drill-anomaly"
TOPIC = "akidb-drill-anomaly"

@dataclass(frozen=True)
class Shipped:
    """The detector's baked settings as the stack bakes them, and the drill's copy."""

    shipped: dict[str, Any]
    drill: dict[str, Any]

    def differences(self) -> list[str]:
        return sorted(k for k in set(self.shipped) | set(self.drill)
                      if k != "prometheusUrl" and self.shipped.get(k) != self.drill.get(k))


def drill_settings(prometheus_url: str) -> Shipped:
    shipped = json.loads(settings_json(SHIPPED))
    return Shipped(shipped, {**shipped, "prometheusUrl": prometheus_url})


def create_world(ticket_url: str) -> str:
    """The detector's bucket and the anomaly topic, the topic's HTTP subscription to the ticket stand-in (the
    stack's is HTTPS to the ticket webhook). Returns the topic ARN."""
    client("s3").create_bucket(Bucket=BUCKET)
    sns = client("sns")
    topic = str(sns.create_topic(Name=TOPIC)["TopicArn"])
    sns.subscribe(TopicArn=topic, Protocol="http", Endpoint=ticket_url)
    return topic


def seed_band(rate: float, now: float) -> None:
    """A band in the trainer's format around the healthy `rate`, a day either side of `now` on the 5-minute grid,
    trained an hour ago; the trainer's in-sample residuals (in band half-widths, all inside the band)."""
    start = (int(now) // STEP_S - 288) * STEP_S
    band = [[float(t), rate, rate * (1 - BAND_HALF_WIDTH), rate * (1 + BAND_HALF_WIDTH)]
            for t in range(start, start + 2 * 288 * STEP_S, STEP_S)]
    seed = [round(0.4 + 0.3 * math.sin(i), 6) for i in range(2 * 288)]
    doc = {"metric": METRIC, "trained_at": "drill", "trained_at_epoch": now - 3600, "history_points": 0,
           "validation": {"mape": 0.01}, "error_limit": 0.15, "flagged": False, "seasonality_mode": "multiplicative",
           "interval_width": 0.95, "seed_residuals": seed}
    # One object per UTC day, as the trainer writes them (the detector reads the day of the point it scores).
    for day, part in band_days(doc, band, STEP_S).items():
        client("s3").put_object(Bucket=BUCKET, Key=band_day_key(METRIC, day), Body=json.dumps(part).encode())


class Detector:
    """The deployed detector zip, extracted, its settings' prometheusUrl pointed at the drill's Prometheus, run in
    the runtime's own interpreter (zip_runtime: only the zip and boto3 on its path); `invoke()` is one scheduled
    run. Its log lines go to detector.log."""

    def __init__(self, out_dir: Path, prometheus_url: str, topic_arn: str) -> None:
        self.out_dir, self.prometheus_url, self.topic_arn = out_dir, prometheus_url, topic_arn
        self._proc: zip_runtime.ZipProcess | None = None

    def __enter__(self) -> Detector:
        env = {**os.environ, "ANOMALY_BUCKET": BUCKET, "ANOMALY_TOPIC_ARN": self.topic_arn}
        proc = zip_runtime.packaged(DETECTOR, self.out_dir, env, baked={"settings.json": settings_json(SHIPPED)})
        settings_file = proc.root / proc.module.split(".")[0] / "settings.json"  # anomaly_detector.handler
        settings = drill_settings(self.prometheus_url)
        if json.loads(settings_file.read_text()) != settings.shipped or settings.differences():
            raise RuntimeError(f"{settings_file}: the baked settings are not the shipped ones")
        settings_file.write_text(json.dumps(settings.drill, sort_keys=True, indent=1))
        proc.log_path = self.out_dir / "detector.log"
        self._proc = proc.__enter__()
        return self

    def invoke(self) -> dict[str, Any]:
        """One run (the scheduled event's content is not read by the detector): {"ok": result} or {"error": ...}."""
        if self._proc is None:
            raise RuntimeError("the detector is not running")
        run = self._proc.invoke({"source": "aws.events", "detail-type": "Scheduled Event"})
        return {"error": run.error} if run.error else {"ok": run.result}

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            self._proc.__exit__(*exc)
            self._proc = None


def page_alarm_at(points: list[tuple[float, float]], cfg: AnomalyConfig = SHIPPED) -> float | None:
    """When the P1 page alarm (infra/components/anomaly.py) breaches on (timestamp, IsAnomaly x Confidence)
    datapoints: the end of the `pageAfterMinutes / 5`-th consecutive 5-minute period whose maximum is at or
    above pageConfidence; None when the datapoints never hold that long."""
    periods = -(-cfg.page_after_minutes // 5)
    maxima: dict[int, float] = {}
    for ts, v in points:
        maxima[int(ts) // STEP_S] = max(v, maxima.get(int(ts) // STEP_S, 0.0))
    run = 0
    for p in range(min(maxima, default=0), max(maxima, default=-1) + 1):
        run = run + 1 if maxima.get(p, 0.0) >= cfg.page_confidence else 0
        if run == periods:
            return float((p + 1) * STEP_S)
    return None


def first_breaching_period(points: list[tuple[float, float]], cfg: AnomalyConfig = SHIPPED) -> float | None:
    """The end of the first 5-minute period at or above pageConfidence (the page follows `pageAfterMinutes`
    later if the episode lasts)."""
    hits = [int(ts) // STEP_S for ts, v in points if v >= cfg.page_confidence]
    return float((min(hits) + 1) * STEP_S) if hits else None
