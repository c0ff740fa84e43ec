"""Streaming replay of the trainer + detector over one series: what `akidb-anomaly score` runs.

Each point is scored only from earlier points: the band in force was forecast by a model fitted on the past
(refitted every `refit_every_s` on a bounded window of history), and the per-series confidence state only ever
saw earlier points. The fitter is injected (the trainer's Prophet code), so this module stays pure Python and
the same band -> score -> confidence -> episode code runs here as in the detector Lambda.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .scoring import BandPoint, ConfidenceState, assess, lookup

DAY_S = 86400

# (history timestamps, history values, forecast start, forecast periods) -> band rows (ts, yhat, lower, upper)
Fitter = Callable[[Sequence[float], Sequence[float], float, int], list[tuple[float, float, float, float]]]


@dataclass(frozen=True)
class StreamParams:
    """One parameter set for every series (no per-file tuning)."""

    refit_every_s: int = DAY_S // 4  # refits every 6 hours, like a trainer run more often than weekly
    window_s: int = 7 * DAY_S  # bounded history per fit keeps each refit cheap
    min_history_s: int = DAY_S // 2  # no band (score 0) before half a day of history
    step_s: int = 300


def stream_scores(ts: Sequence[float], values: Sequence[float], fitter: Fitter,
                  params: StreamParams | None = None) -> list[float]:
    """One anomaly score in [0, 1] per input point, in input order (duplicates included)."""
    params = params or StreamParams()
    out: list[float] = []
    band: list[BandPoint] = []
    state = ConfidenceState()
    next_fit: float | None = None
    start = ts[0] if ts else 0.0
    for i, (t, v) in enumerate(zip(ts, values, strict=True)):
        s_out = 0.0
        point = lookup(band, t, params.step_s) if band else None
        if point is not None and v is not None and math.isfinite(v):
            assessment, state = assess(v, point, state)
            s_out = assessment.onset
        out.append(max(0.0, min(1.0, s_out)))
        # Refit after scoring point i: the next points are scored by a model that has seen up to i only.
        due = (t - start >= params.min_history_s) if next_fit is None else t >= next_fit
        if due:
            lo = t - params.window_s
            hist = [(ht, hv) for ht, hv in zip(ts[: i + 1], values[: i + 1], strict=True)
                    if ht >= lo and hv is not None and math.isfinite(hv)]
            periods = int((params.refit_every_s + DAY_S) // params.step_s)
            rows = fitter([h for h, _ in hist], [h for _, h in hist], t + params.step_s, periods)
            band = [BandPoint(*r) for r in rows]
            next_fit = t + params.refit_every_s
    return out
