"""Streaming replay of the trainer + detector over one series: what `akidb-anomaly score` runs.

Each point is scored only from earlier points: the band in force was forecast by a model fitted on the past,
and the per-series confidence state only ever saw earlier points. The refit schedule is production's: the
trainer runs weekly on up to `history_days` of history (weekly seasonality from 14 days, as in the trainer);
a new metric is trained again as its history doubles (half a day, 1, 2, 4 days) so it is not judged for a week
against a model fitted on twelve hours. The fitter is injected (the trainer's Prophet code), so this module stays
pure Python and the same band -> score -> confidence code runs here as in the detector Lambda.

Input that real sources produce is taken, never refused: a timestamp that repeats or steps back (a re-sent or
late point), a non-finite value, a gap (no band point near it) each give score 0 for that row with a logged
reason; the state and the history only ever see points in increasing time order.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from .episodes import paged_scores
from .scoring import (
    DEFAULT_PARAMS,
    MAX_STEP_S,
    STEP_S,
    Assessment,
    BandPoint,
    ConfidenceState,
    ScoringParams,
    assess,
    lookup,
)
from .settings import Settings

DAY_S = 86400
log = logging.getLogger(__name__)

# (history timestamps, history values, forecast start, forecast periods) -> band rows (ts, yhat, lower, upper)
Fitter = Callable[[Sequence[float], Sequence[float], float, int], list[tuple[float, float, float, float]]]


@dataclass(frozen=True)
class StreamParams:
    """One parameter set for every series (no per-file tuning): production's trainer schedule by default."""

    refit_every_s: int = 7 * DAY_S  # the trainer's weekly schedule
    warmup_refits_s: tuple[int, ...] = (DAY_S // 2, DAY_S, 2 * DAY_S, 4 * DAY_S)  # history ages of early refits
    window_s: int = 90 * DAY_S  # the trainer's historyDays
    horizon_s: int = 8 * DAY_S  # the trainer's 8-day band (weekly run + a day of slack)
    step_s: int = STEP_S


def accepted_points(ts: Sequence[float], values: Sequence[float]) -> tuple[list[bool], Counter[str]]:
    """Which rows the stream uses (strictly increasing time, finite value), and why the others are left out."""
    keep: list[bool] = []
    reasons: Counter[str] = Counter()
    last = -math.inf
    for t, v in zip(ts, values, strict=True):
        if not (isinstance(t, float | int) and math.isfinite(t)):
            reasons["timestamp not a number"] += 1
            keep.append(False)
        elif t == last:
            reasons["timestamp repeats the previous one (duplicate)"] += 1
            keep.append(False)
        elif t < last:
            reasons["timestamp steps back (late or re-sent point)"] += 1
            keep.append(False)
        elif v is None or not math.isfinite(v):
            reasons["value is not a finite number"] += 1
            keep.append(False)
            last = t
        else:
            keep.append(True)
            last = t
    return keep, reasons


def _refit_due(age_s: float, last_fit_age: float | None, params: StreamParams) -> bool:
    if last_fit_age is None:
        return age_s >= params.warmup_refits_s[0] if params.warmup_refits_s else True
    for mark in params.warmup_refits_s:
        if last_fit_age < mark <= age_s:
            return True
    return age_s - last_fit_age >= params.refit_every_s


def stream_bands(ts: Sequence[float], values: Sequence[float], fitter: Fitter,
                 params: StreamParams | None = None) -> list[BandPoint | None]:
    """The band point in force at each row (None: no model yet, a gap, or a row the stream leaves out)."""
    params = params or StreamParams()
    keep, reasons = accepted_points(ts, values)
    for reason, count in sorted(reasons.items()):
        log.warning("%d row(s) scored 0: %s", count, reason)
    out: list[BandPoint | None] = []
    band: list[BandPoint] = []
    hist_ts: list[float] = []
    hist_values: list[float] = []
    start: float | None = None
    last_fit_age: float | None = None
    gaps = 0
    for t, v, ok in zip(ts, values, keep, strict=True):
        if not ok:
            out.append(None)
            continue
        point = lookup(band, t, params.step_s) if band else None
        if band and point is None:
            gaps += 1
        out.append(point)
        hist_ts.append(t)
        hist_values.append(v)
        start = t if start is None else start
        # Refit after point i: the next points are scored by a model that has seen up to i only.
        if _refit_due(t - start, last_fit_age, params):
            lo = bisect.bisect_left(hist_ts, t - params.window_s)
            periods = int(params.horizon_s // params.step_s)
            rows = fitter(hist_ts[lo:], hist_values[lo:], t + params.step_s, periods)
            band = [BandPoint(*r) for r in rows]
            last_fit_age = t - start
    if gaps:
        log.warning("%d row(s) scored 0: outside the band in force (a gap longer than the forecast)", gaps)
    return out


def sampling_period(ts: Sequence[float]) -> float:
    """The series' sampling period: the median spacing of its increasing timestamps, to the whole minute from a
    minute up (every source here samples on whole minutes: CloudWatch periods, Prometheus steps; NAB's irregular
    traffic rows then count as their 5 minutes), STEP_S for fewer than two rows."""
    steps = sorted(b - a for a, b in itertools.pairwise(ts) if b > a)
    if not steps:
        return float(STEP_S)
    median = steps[len(steps) // 2]
    period = float(round(median / 60.0) * 60) if median >= 60 else float(max(1, round(median)))
    return min(period, float(MAX_STEP_S))


def assess_with_bands(values: Sequence[float], bands: Sequence[BandPoint | None], ts: Sequence[float] | None = None,
                      params: ScoringParams = DEFAULT_PARAMS) -> list[Assessment | None]:
    """The detector's assessment of each row from the bands in force (None where the row is not scored), its
    windows counted in the rows' own sampling period (scoring.Windows) when their timestamps are given."""
    if ts is not None:
        params = replace(params, step_s=sampling_period(ts))
    out: list[Assessment | None] = []
    state = ConfidenceState()
    for i, (v, point) in enumerate(zip(values, bands, strict=True)):
        if point is None:
            out.append(None)
            continue
        assessment, state = assess(v, point, state, ts[i] if ts is not None else point.ts, params)
        out.append(assessment)
    return out


def score_with_bands(values: Sequence[float], bands: Sequence[BandPoint | None], ts: Sequence[float] | None = None,
                     params: ScoringParams = DEFAULT_PARAMS,
                     threshold: float = Settings.confidence_threshold) -> list[float]:
    """The offline score of each row in [0, 1] (episodes.paged_scores: the pages at `threshold`, the stack's
    default confidenceThreshold unless given): pure, so the benchmark reuses cached bands."""
    return paged_scores(assess_with_bands(values, bands, ts, params), threshold)


def stream_scores(ts: Sequence[float], values: Sequence[float], fitter: Fitter,
                  params: StreamParams | None = None,
                  threshold: float = Settings.confidence_threshold) -> list[float]:
    """One anomaly score in [0, 1] per input row, in input order (duplicates and late rows included, as 0): the
    pages at `threshold` (score_with_bands)."""
    return score_with_bands(values, stream_bands(ts, values, fitter, params), ts, threshold=threshold)
