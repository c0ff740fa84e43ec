"""Scoring one observation against a forecast band: the detector, the offline scorer and the tests share this.

Pure Python (no numpy): the detector package must stay tiny. A band is a sorted list of 5-minute points
(epoch seconds, yhat, lower, upper) from the trainer's Prophet forecast.

- score: how far outside the 95% band the value is, in units of the band's half-width, squashed to [0, 1):
  z / (1 + z), so a value as far outside the band as the band is wide (z = 1) scores 0.5.
- confidence: how unusual the excursion is FOR THIS SERIES: the residual (in half-widths) compared with the largest
  of the last two days. A metric whose forecast misses by 3 band widths every day is not news when it does again;
  one that never left its band is. Inside the band the confidence stays at or below 0.25, up to the usual largest
  excursion at or below 0.5, and beyond it rises towards 1.
- onset: the confidence when it beats every confidence of the last day, else 0: the first point of an episode.
  The offline scorer outputs it (NAB counts only the earliest detection in a window; every later point above the
  threshold is a false positive), and it mirrors the detector's one-notification-per-episode rule.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

STEP_S = 300  # the 5-minute grid of bands and detections
# A relative floor for the band half-width: a perfectly flat series has a zero-width band, and any rounding would
# otherwise be an infinitely large excursion.
MIN_HALF_WIDTH_REL = 1e-3
MIN_HALF_WIDTH_ABS = 1e-9


@dataclass(frozen=True)
class BandPoint:
    ts: float  # epoch seconds
    yhat: float
    lower: float
    upper: float


def lookup(band: Sequence[BandPoint], ts: float, tolerance_s: float = STEP_S) -> BandPoint | None:
    """The band point nearest to `ts` if it lies within `tolerance_s`, else None (outside the forecast)."""
    if not band:
        return None
    keys = [p.ts for p in band]
    i = bisect.bisect_left(keys, ts)
    best = min((band[j] for j in (i - 1, i) if 0 <= j < len(band)), key=lambda p: abs(p.ts - ts))
    return best if abs(best.ts - ts) <= tolerance_s else None


def half_width(point: BandPoint) -> float:
    raw = (point.upper - point.lower) / 2.0
    return max(raw, MIN_HALF_WIDTH_REL * abs(point.yhat), MIN_HALF_WIDTH_ABS)


def excess(value: float, point: BandPoint) -> float:
    """Distance outside the band in half-widths (0 inside the band)."""
    outside = max(0.0, value - point.upper, point.lower - value)
    return outside / half_width(point)


def score(value: float, point: BandPoint) -> float:
    z = excess(value, point)
    return z / (1.0 + z)


# One parameter set for every series (chosen on shared/nab-dev as a whole, not per file).
HISTORY_POINTS = 576  # two days of 5-minute residuals: what "usual" excursions look like for this series
MIN_HISTORY_POINTS = 144  # half a day before any confidence is given
ONSET_POINTS = 288  # an onset must beat every confidence of the last day (one alert per episode)
NEWS_MARGIN = 1.2  # an excursion must exceed the recent largest one by 20% to be news


@dataclass
class ConfidenceState:
    """Per-metric memory (JSON-serialisable: the detector keeps it in S3 between runs)."""

    residuals: list[float] = field(default_factory=list)  # |actual - yhat| / half-width, oldest first
    confidences: list[float] = field(default_factory=list)  # last ONSET_POINTS confidences

    def to_json(self) -> dict[str, list[float]]:
        return {"residuals": [round(x, 6) for x in self.residuals],
                "confidences": [round(x, 6) for x in self.confidences]}

    @classmethod
    def from_json(cls, data: object) -> ConfidenceState:
        if not isinstance(data, dict):
            return cls()
        def floats(key: str, keep: int) -> list[float]:
            raw = data.get(key)
            values = [float(x) for x in raw if isinstance(x, int | float)] if isinstance(raw, list) else []
            return [x for x in values if math.isfinite(x)][-keep:]
        return cls(residuals=floats("residuals", HISTORY_POINTS), confidences=floats("confidences", ONSET_POINTS))


@dataclass(frozen=True)
class Assessment:
    score: float  # how far outside the band, scaled by its width, in [0, 1)
    confidence: float  # how unusual that is for this series, in [0, 1)
    onset: float  # the confidence if it beats every one of the last day, else 0 (the offline anomaly score)
    is_anomaly: bool  # outside the 95% band


def residual(value: float, point: BandPoint) -> float:
    return abs(value - point.yhat) / half_width(point)


def assess(value: float, point: BandPoint, state: ConfidenceState) -> tuple[Assessment, ConfidenceState]:
    """Score one observation from the band and the state built from earlier points only."""
    s = score(value, point)
    r = residual(value, point)
    history = state.residuals[-HISTORY_POINTS:]
    if len(history) < MIN_HISTORY_POINTS or r <= 1.0:
        # Inside the band (r <= 1) or too little history to know what is usual: low confidence.
        conf = 0.25 * min(r, 1.0) if len(history) >= MIN_HISTORY_POINTS else 0.0
    else:
        largest = max(history) * NEWS_MARGIN
        ratio = r / largest if largest > 0 else 10.0
        # Up to the recent largest excursion (x margin): at most 0.5; beyond it, 1 - 0.5/ratio -> 1.
        conf = max(0.25, 0.5 * ratio) if ratio <= 1.0 else 1.0 - 0.5 / ratio
    recent = state.confidences[-ONSET_POINTS:]
    onset = conf if conf > max(recent, default=0.0) else 0.0
    new_state = ConfidenceState(residuals=[*history, r][-HISTORY_POINTS:],
                                confidences=[*recent, conf][-ONSET_POINTS:])
    return Assessment(score=s, confidence=conf, onset=onset, is_anomaly=value > point.upper or value < point.lower), \
        new_state
