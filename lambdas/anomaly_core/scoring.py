"""Scoring one observation against a forecast band: the detector, the offline scorer and the tests share this.

Pure Python (no numpy): the detector package must stay tiny. A band is a sorted list of 5-minute points
(epoch seconds, yhat, lower, upper) from the trainer's Prophet forecast.

- score: how far outside the 95% band the value is, in units of the band's half-width, squashed to [0, 1):
  z / (1 + z), so a value as far outside the band as the band is wide (z = 1) scores 0.5.
- news: how unusual the excursion is FOR THIS SERIES: the residual (in half-widths) compared with what the series
  does as a habit: the NEWS_QUANTILE of the last NEWS_SPAN residuals (a week), or the largest residual within
  +-NEWS_SAME_TIME points of the same time yesterday or last week if that is larger. A metric whose forecast misses
  by 3 band widths every day is not news when it does again; one that never left its band is. (It used to be the
  largest residual of the last two days: one daily cron job, or one earlier event, then held every new excursion
  smaller than it below the threshold for two days; then issue 15's 0.98 quantile of two days, which forgot a
  burst that comes back every few days. The week's span leaves out the warm-up's residuals, a cron job's, and one
  earlier excursion's: see NEWS_SPAN and ScoringParams.)
  Inside the band the confidence stays at or below 0.25, up to the usual excursion at or below 0.5, and beyond it
  rises towards 1.
- likelihood (after Numenta's AnomalyLikelihood): the mean band score of the last LIKELIHOOD_WINDOW points
  compared with a Gaussian fitted on the history of those means (up to two weeks); the tail probability, on a log
  scale (1 - tail = 0.99999 -> 0.5). One point outside the band moves a one-hour mean little (cheap), a sustained
  shift moves it far (prominent); a noisy series has a wide distribution of means, so its excursions stay low.
  0 until LIKELIHOOD_MIN_HISTORY means exist (warm-up, like NAB's probation).
- confidence: the geometric mean of the two: an alert needs an excursion that is both larger than the series'
  recent largest ones AND improbable against its long-run distribution of band scores.
- shape (variance change around an unchanged mean): the spread of the last LIKELIHOOD_WINDOW signed residuals
  against the history of that spread, with the same log-likelihood; confidence takes the larger of level and
  shape, so a series that starts to oscillate inside an unchanged mean is no longer damped to nothing.
- spatial (Numenta's spatial-anomaly rule): a value beyond the range seen over the last RANGE_DAYS days by more
  than SPATIAL_TOLERANCE of that range is an anomaly whatever the band says (a short spike the hourly mean
  would average away); 0.5 at the tolerance, towards 1 beyond it.
- context (issue 28, off by default: ScoringParams.context): a prediction-free signal after CAD OSE
  (anomaly_core.context): how new the sequence of the values quantised in the running range is, its hourly mean
  judged like the likelihood against its own exponentially weighted Gaussian; the confidence takes the larger.
- calibration (issue 28): the shape likelihood capped by the spread's rank in the last week (shape_cap, on); off
  by default, measured: the confidence judged against the metric's own daily peaks of the last two weeks
  (calibrate), an excursion within the recent daily record held to news 0.5 (record_days;
  docs/components/anomaly.md).
- windows (issue 28): the counts below are durations written in 5-minute points; a series sampled at another
  period counts them in its own points (Windows, windows_for: an hourly series' "hour" is no longer 12 hours).
- recurring: an excursion the series also made at the same time yesterday or last week (+-5 minutes; a cron job)
  is damped by RECURRING_DAMP: it is the series' habit, not news.
- onset: the confidence when it beats every confidence of the last day, those older than an hour discounted by
  their age (down to 1 - ONSET_DECAY a day back), else 0: the first point of an episode. An excursion's own later
  points stay below its recent peak, so it still gives one onset; a second event some hours after a larger one
  is not masked for a whole day. The offline score (episodes.paged_scores) is the onset where no episode is open
  and the detector's page where one opens: at the paging threshold NAB then counts exactly the notifications (NAB
  counts only the earliest detection in a window; every later point above the threshold is a false positive).
"""

from __future__ import annotations

import array
import base64
import binascii
import bisect
import functools
import heapq
import itertools
import math
import operator
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from . import art as art_signal
from . import context as ctx

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
LIKELIHOOD_WINDOW = 12  # one hour of band scores averaged: a lone noisy point is diluted, a shift is not
LIKELIHOOD_HISTORY = 4032  # two weeks of window means for the Gaussian (Numenta uses a long history too)
LIKELIHOOD_MIN_HISTORY = 144  # half a day of means before any likelihood (warm-up)
LIKELIHOOD_MIN_STD = 0.01  # a perfectly quiet history would otherwise make any wobble infinitely unlikely
SPATIAL_TOLERANCE = 0.15  # beyond the running min/max by 15% of the range (Numenta: 5%; dev plateau 0.1-0.2)
RANGE_DAYS = 14  # the running range is the min/max of the last two weeks (a scale change is forgotten)
SHAPE_HISTORY = 2016  # one week of window spreads for the shape likelihood
STATS_EVERY = 12  # points between refits of the level and shape Gaussians (one hour)
SHAPE_MIN_STD = 0.1  # in half-widths: a spread that wobbles by a tenth of the band is not a change of shape
DAY_POINTS = 288
WEEK_POINTS = 7 * DAY_POINTS
# issue 15's dev plateau (two-day span): quantile 0.97-0.99, same-time +-6..24 points, onset decay 0.5-1.0.
# Issue 28: the usual excursion is the 0.995 quantile of a WEEK of residuals (a Twitter-volume burst that comes back
# every few days is the series' habit; two days forget it), chosen by leave-one-family-out (benchmarks/lofo.py,
# candidate [25]) with the shape cap and the three rules that make a week's span safe (ScoringParams): the
# warm-up's residuals left out (news_warmup), a cron job's left out (news_unscheduled), one earlier excursion
# forgotten (news_two_days).
NEWS_SPAN = WEEK_POINTS
NEWS_QUANTILE = 0.995  # the usual excursion: 0.5% of a week (10 points) lie above it
NEWS_WARMUP = HISTORY_POINTS  # the first points left out of the news span (down to the two days' span)
NEWS_SAME_TIME = 12  # +-1 hour around the same time yesterday / last week: a recurring excursion stays usual
NEWS_SAME_TIME_MAX = 24  # the memory allows up to +-2 hours (the sweep's widest)
ONSET_DECAY = 0.7  # a confidence a day old counts for 30% of itself against a new onset
ONSET_HOLD = 12  # ... and one less than an hour old in full
ONSET_MARGIN = 0.01  # ... and beaten by more than this
SHAPE_NEWS = 0.5  # the shape signal counts beyond the usual excursion only (news above 0.5)
RESIDUAL_MEMORY = WEEK_POINTS + NEWS_SAME_TIME_MAX + 1  # same time last week, +-2 hours
RECURRING_RATIO = 0.5  # the same-time excursion yesterday/last week was at least half as large
RECURRING_DAMP = 0.5
# A second, longer likelihood window (issue 28): a missing daily peak or a damped one lasts hours; over one hour
# its mean band score is no rarer than the band's daily misfit at a sharp transition, over six hours it is.
LONG_WINDOW = 72
# Sensor failure: a series that was never flat for an hour in the last week and now repeats one value for an
# hour is stuck (a frozen exporter, a filled gap), whatever its band says.
STUCK_POINTS = 12
STUCK_CONFIDENCE = 0.9
# The context signal (anomaly_core.context, after CAD OSE): its step surprises averaged over CONTEXT_WINDOW points
# and judged, like Numenta's likelihood, against an exponentially weighted Gaussian of those means (a week's memory:
# three numbers in the state instead of a history list).
CONTEXT_WINDOW = 12
CONTEXT_MEMORY = WEEK_POINTS
# The windows above are durations (an hour, a day, a week) written as counts of 5-minute points. A series sampled
# at another period (the ad-exchange family of shared/nab-dev is hourly; NAB's nyc_taxi is half-hourly) counted
# them as points too: its "hour" was 12 hours, its "day" (the onset's memory, yesterday's same time) 12 days.
# Windows scales them to the series' own period (issue 28), in three kinds: time lags and memories of a duration
# (yesterday, last week, the onset's day, the stats refit hour) keep their duration; the windows averaged into one
# statistic (the likelihood's hour, the stuck hour) keep it too but never fall below MIN_WINDOW_POINTS (the spread
# of one point is 0); the histories a quantile or a Gaussian is estimated from keep at least their sample counts
# (the 0.98 quantile of two hourly days would be their largest of 48). At STEP_S every count is the constant.
MIN_WINDOW_POINTS = 3
MAX_STEP_S = 86400  # a daily series has one point a day: coarser ones have no day to compare


@dataclass(frozen=True)
class Windows:
    """The scorer's windows in points of one sampling period (`windows_for`)."""

    step_s: float
    day: int
    week: int
    onset: int  # confidences an onset must beat (a day)
    onset_hold: int  # the last hour of them, counted in full
    stats_every: int  # points between refits of the Gaussians (an hour)
    same_time_max: int  # the widest same-time window (+-2 hours)
    likelihood: int  # the band scores averaged (an hour)
    long: int  # the long likelihood window (six hours)
    stuck: int  # a flat hour
    context: int  # the context surprises averaged (an hour)
    history: int  # residuals whose quantile is the usual excursion (two days, at least 576)
    min_history: int  # warm-up before any confidence (half a day, at least 144)
    likelihood_history: int  # window means of the level Gaussian (two weeks, at least 4032)
    likelihood_min_history: int
    shape_history: int  # window spreads of the shape Gaussian (a week, at least 2016)
    context_memory: int

    @property
    def residual_memory(self) -> int:
        return max(self.week + self.same_time_max + 1, self.history)

    def lag(self, points: int) -> int:
        """A duration given in 5-minute points, in this period's points (at least 1)."""
        return _lag(points, self.step_s)

    def samples(self, points: int) -> int:
        """A history given in 5-minute points: its duration, and never fewer samples."""
        return _samples(points, self.step_s)


def _lag(points: int, step_s: float) -> int:
    return max(1, round(points * STEP_S / step_s))


def _samples(points: int, step_s: float) -> int:
    return max(points, _lag(points, step_s))


def _window(points: int, step_s: float) -> int:
    return max(MIN_WINDOW_POINTS, _lag(points, step_s))


@functools.lru_cache(maxsize=32)
def windows_for(step_s: float) -> Windows:
    """The windows of a series sampled every `step_s` seconds (the detector's grid: STEP_S)."""
    return Windows(step_s=step_s, day=_lag(DAY_POINTS, step_s), week=_lag(WEEK_POINTS, step_s),
                   onset=_lag(ONSET_POINTS, step_s), onset_hold=_lag(ONSET_HOLD, step_s),
                   stats_every=_lag(STATS_EVERY, step_s), same_time_max=_lag(NEWS_SAME_TIME_MAX, step_s),
                   likelihood=_window(LIKELIHOOD_WINDOW, step_s), long=_window(LONG_WINDOW, step_s),
                   stuck=_window(STUCK_POINTS, step_s), context=_window(CONTEXT_WINDOW, step_s),
                   history=_samples(HISTORY_POINTS, step_s), min_history=_samples(MIN_HISTORY_POINTS, step_s),
                   likelihood_history=_samples(LIKELIHOOD_HISTORY, step_s),
                   likelihood_min_history=_samples(LIKELIHOOD_MIN_HISTORY, step_s),
                   shape_history=_samples(SHAPE_HISTORY, step_s), context_memory=_samples(CONTEXT_MEMORY, step_s))


FIVE_MINUTES = windows_for(STEP_S)



# Issue 28, measured under leave-one-family-out and off by default (ScoringParams.calibrate / record_days): the
# confidence judged against this metric's own daily peaks of the last two weeks, once three whole days are seen.
CALIBRATION_DAYS = 14
CALIBRATION_MIN_DAYS = 3
MAX_PEAK_DAYS = 56  # the longest record_days allowed (eight weeks of one pair a day in the state)
SPREAD_FLOOR = 0.01  # in half-widths: log(spread + floor) of a flat series stays finite
_LOG_FLOOR = math.log(1e-10)  # tail probability 1e-10 (or below) -> log-likelihood 1


# The novelty signal's state while it is off: one shared empty value (never mutated: art.step returns a new one).
_NO_ART = art_signal.ArtState()

# Issue 28 (scale): the memory lists held rounded to 6 places (~8,000 numbers in a two-week state) are stored as
# base64 of their IEEE 754 doubles, little-endian, not as JSON numbers: formatting and parsing that many floats
# (and checking each) was most of the detector's own CPU per metric. The doubles are the very values the JSON text
# gave back (a float's repr round-trips exactly: Python tutorial, "Floating-Point Arithmetic: Issues and
# Limitations"), so every assessment is unchanged. A state stored as JSON numbers (before this change) is still read
# and is written packed on its next save: no migration step.
PACKED_PREFIX = "f8le:"
ROUNDED_LISTS = ("residuals", "confidences", "scores", "means", "signed", "spreads", "long_scores", "long_means",
                 "ctx_raw")


def _packed(values: list[float], rounded: bool) -> str | list[float]:
    """A memory list as stored: its values rounded to 6 places (unless known rounded), packed. A non-finite value
    stays a JSON number, which the state's writer refuses (json.dumps allow_nan=False) as it always did."""
    out = values if rounded else [_r6(x) for x in values]
    if not math.isfinite(sum(out)) and not all(map(math.isfinite, out)):  # the sum alone may overflow
        return out
    doubles = array.array("d", out)
    if sys.byteorder == "big":
        doubles.byteswap()
    return PACKED_PREFIX + base64.b64encode(doubles.tobytes()).decode("ascii")


def _unpacked(text: str) -> list[float]:
    """The doubles of a packed list; [] for a string that is not one (a malformed state field is dropped)."""
    if not text.startswith(PACKED_PREFIX):
        return []
    try:
        raw = base64.b64decode(text[len(PACKED_PREFIX):], validate=True)
    except (binascii.Error, ValueError):
        return []
    if len(raw) % 8:
        return []
    doubles = array.array("d")
    doubles.frombytes(raw)
    if sys.byteorder == "big":
        doubles.byteswap()
    return doubles.tolist()


@dataclass
class ConfidenceState:
    """Per-metric memory (JSON-serialisable: the detector keeps it in S3 between runs)."""

    residuals: list[float] = field(default_factory=list)  # |actual - yhat| / half-width, oldest first
    confidences: list[float] = field(default_factory=list)  # last ONSET_POINTS confidences
    scores: list[float] = field(default_factory=list)  # last LIKELIHOOD_WINDOW - 1 band scores
    means: list[float] = field(default_factory=list)  # last LIKELIHOOD_HISTORY window means of band scores
    signed: list[float] = field(default_factory=list)  # last LIKELIHOOD_WINDOW - 1 signed residuals
    spreads: list[float] = field(default_factory=list)  # last SHAPE_HISTORY window spreads of signed residuals
    ranges: list[list[float]] = field(default_factory=list)  # [day number, min, max] of the last RANGE_DAYS days
    seen: int = 0  # points assessed (the spatial rule waits for MIN_HISTORY_POINTS)
    stats: list[list[float]] = field(default_factory=list)  # [mean, std] of the level and shape Gaussians, or []
    long_scores: list[float] = field(default_factory=list)  # last LONG_WINDOW - 1 band scores
    long_means: list[float] = field(default_factory=list)  # last LIKELIHOOD_HISTORY long-window means
    long_stat: list[float] = field(default_factory=list)  # [mean, std] of the long-window Gaussian, or []
    recent_values: list[float] = field(default_factory=list)  # last STUCK_POINTS - 1 values
    since_flat: int = 0  # points since the last flat hour (capped at a week)
    ctx_counts: dict[str, list[float]] = field(default_factory=dict)  # context -> counts of the next level
    ctx_levels: list[int] = field(default_factory=list)  # the last max(ctx.ORDERS) quantised levels
    ctx_raw: list[float] = field(default_factory=list)  # the last CONTEXT_WINDOW - 1 step surprises
    ctx_stat: list[float] = field(default_factory=list)  # [count, mean, variance] of the window means, or []
    art: art_signal.ArtState = field(default_factory=art_signal.ArtState)  # the novelty signal (anomaly_core.art)
    peaks: list[list[float]] = field(default_factory=list)  # [day, peak confidence] of recent days (calibrate)
    res_peaks: list[list[float]] = field(default_factory=list)  # [day, peak residual] of recent days (record_days)
    # The `seen` numbers of the remembered residuals that were recurring (news_unscheduled), ascending.
    scheduled: list[int] = field(default_factory=list)
    # Every value of the ROUNDED_LISTS is known to be rounded to 6 places already (a state read packed, and the
    # states assess makes from it: it appends rounded values only), so to_json need not round ~8,000 values again
    # (round() is idempotent; ~0.5 us a value). Not an init field: any other state, dataclasses.replace included
    # (seeded() adds a trainer's unrounded residuals), is rounded as before.
    rounded: bool = field(default=False, init=False, compare=False, repr=False)

    def to_json(self) -> dict[str, object]:
        done = self.rounded
        return {"residuals": _packed(self.residuals, done), "confidences": _packed(self.confidences, done),
                "scores": _packed(self.scores, done), "means": _packed(self.means, done),
                "signed": _packed(self.signed, done), "spreads": _packed(self.spreads, done),
                "ranges": [list(r) for r in self.ranges], "seen": self.seen, "stats": [list(f) for f in self.stats],
                "long_scores": _packed(self.long_scores, done), "long_means": _packed(self.long_means, done),
                "long_stat": list(self.long_stat),
                "recent_values": list(self.recent_values), "since_flat": self.since_flat,
                "ctx_counts": {k: [round(x, 4) for x in v] for k, v in self.ctx_counts.items()},
                "ctx_levels": list(self.ctx_levels), "ctx_raw": _packed(self.ctx_raw, done),
                "ctx_stat": [round(x, 9) for x in self.ctx_stat],
                # The novelty signal's state only when it has one (off by default: nothing stored per metric).
                **({"art": self.art.to_json()} if self.art != _NO_ART else {}),
                # The daily peaks only while calibrate / record_days are on (off by default: nothing stored).
                **({"peaks": [list(p) for p in self.peaks]} if self.peaks else {}),
                **({"res_peaks": [list(p) for p in self.res_peaks]} if self.res_peaks else {}),
                # The scheduled positions only while news_unscheduled is on (off by default: nothing stored).
                **({"scheduled": list(self.scheduled)} if self.scheduled else {})}

    @classmethod
    def from_json(cls, data: object) -> ConfidenceState:
        if not isinstance(data, dict):
            return cls()
        def floats(key: str, keep: int) -> list[float]:
            raw = data.get(key)
            if isinstance(raw, str):  # packed (to_json): doubles already, checked at C speed while all are finite
                values = _unpacked(raw)
                return (values if math.isfinite(sum(values)) else [x for x in values if math.isfinite(x)])[-keep:]
            values = [float(x) for x in raw if isinstance(x, int | float)] if isinstance(raw, list) else []
            return [x for x in values if math.isfinite(x)][-keep:]
        raw_ranges = data.get("ranges")
        ranges = [[float(x) for x in r] for r in raw_ranges if isinstance(r, list) and len(r) == 3
                  and all(isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in r)
                  ] if isinstance(raw_ranges, list) else []
        seen = data.get("seen")
        since_flat = data.get("since_flat")
        long_stat = floats("long_stat", 2)
        ctx_stat = floats("ctx_stat", 3)
        raw_levels = data.get("ctx_levels")
        ctx_levels = [x for x in raw_levels if isinstance(x, int) and not isinstance(x, bool)
                      and 0 <= x < ctx.LEVELS][-max(ctx.ORDERS):] if isinstance(raw_levels, list) else []
        raw_stats = data.get("stats")
        stats = [[float(x) for x in f] for f in raw_stats if isinstance(f, list) and len(f) in (0, 2) and all(
            isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) and x >= -1e9 for x in f)
        ] if isinstance(raw_stats, list) else []
        state = cls(residuals=floats("residuals", RESIDUAL_MEMORY), confidences=floats("confidences", ONSET_POINTS),
                    scores=floats("scores", LIKELIHOOD_WINDOW - 1), means=floats("means", LIKELIHOOD_HISTORY),
                    signed=floats("signed", LIKELIHOOD_WINDOW - 1), spreads=floats("spreads", SHAPE_HISTORY),
                    ranges=ranges[-RANGE_DAYS:], stats=stats if len(stats) == 2 else [],
                    seen=seen if isinstance(seen, int) and not isinstance(seen, bool) and seen >= 0 else 0,
                    long_scores=floats("long_scores", LONG_WINDOW - 1),
                    long_means=floats("long_means", LIKELIHOOD_HISTORY),
                    long_stat=long_stat if len(long_stat) == 2 else [],
                    recent_values=floats("recent_values", STUCK_POINTS - 1),
                    since_flat=since_flat if isinstance(since_flat, int) and not isinstance(since_flat, bool)
                    and since_flat >= 0 else 0,
                    ctx_counts=ctx.valid_counts(data.get("ctx_counts")), ctx_levels=ctx_levels,
                    ctx_raw=floats("ctx_raw", CONTEXT_WINDOW - 1),
                    ctx_stat=ctx_stat if len(ctx_stat) == 3 and ctx_stat[0] >= 0 and ctx_stat[2] >= 0 else [],
                    art=art_signal.ArtState.from_json(data.get("art")),
                    peaks=_day_peaks(data.get("peaks")), res_peaks=_day_peaks(data.get("res_peaks")),
                    scheduled=_positions(data.get("scheduled"), seen if isinstance(seen, int) else 0))
        # Packed lists are written rounded (to_json); lists of JSON numbers (an older state) are rounded on writing.
        state.rounded = all(isinstance(data.get(k), str) or not data.get(k) for k in ROUNDED_LISTS)
        return state

    @property
    def wants_seed(self) -> bool:
        """Whether seeded() would add a trainer's residuals (the memory is shorter than a warm-up)."""
        return len(self.residuals) < MIN_HISTORY_POINTS or len(self.means) < LIKELIHOOD_MIN_HISTORY

    def seeded(self, seed_residuals: Sequence[float]) -> ConfidenceState:
        """This state completed with a trainer's in-sample residuals (oldest first) where its memory is short.

        A new or reset detector state then judges the next point against the model's own recent fit instead of
        staying silent for half a day. The band scores are recovered from the residuals assuming a symmetric band
        (Prophet's interval is close to it): excess = residual - 1 half-width.
        """
        seed = [x for x in seed_residuals if math.isfinite(x) and x >= 0]
        out = self
        if len(out.residuals) < MIN_HISTORY_POINTS:
            out = replace(out, residuals=(seed + out.residuals)[-RESIDUAL_MEMORY:])
        if len(out.means) < LIKELIHOOD_MIN_HISTORY:
            scores = [max(0.0, r - 1.0) / max(r, 1.0) for r in seed]  # z / (1 + z) with z = r - 1
            means = [sum(scores[max(0, i - LIKELIHOOD_WINDOW + 1):i + 1]) / min(i + 1, LIKELIHOOD_WINDOW)
                     for i in range(len(scores))]
            out = replace(out, means=(means + out.means)[-LIKELIHOOD_HISTORY:],
                          scores=(scores + out.scores)[-(LIKELIHOOD_WINDOW - 1):] if LIKELIHOOD_WINDOW > 1 else [])
        return out


def _day_peaks(raw: object) -> list[list[float]]:
    """The [day number, peak] pairs of a stored state, oldest first (with news_unscheduled a third number: the day's
    first `seen` number); malformed entries are dropped."""
    if not isinstance(raw, list):
        return []
    return [[float(x) for x in p] for p in raw if isinstance(p, list) and len(p) in (2, 3) and all(
        isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in p)][-(MAX_PEAK_DAYS + 1):]


def _positions(raw: object, seen: int) -> list[int]:
    """The scheduled residuals' `seen` numbers of a stored state: ascending ints below `seen` (a trainer's seed
    residuals have negative ones), within the residual memory; anything else (a state stored before
    news_unscheduled, a malformed field) reads as none."""
    if not isinstance(raw, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in raw):
        return []
    if any(b <= a for a, b in itertools.pairwise(raw)) or (raw and raw[-1] >= seen):
        return []
    return raw[bisect.bisect_left(raw, seen - RESIDUAL_MEMORY):]


@dataclass(frozen=True)
class Assessment:
    score: float  # how far outside the band, scaled by its width, in [0, 1)
    confidence: float  # how unusual that is for this series, in [0, 1]: sqrt(news * likelihood)
    onset: float  # the confidence if it beats every one of the last day, else 0 (episodes.paged_scores uses it)
    is_anomaly: bool  # outside the 95% band
    news: float = 0.0  # the excursion against the series' recent largest ones, in [0, 1)
    likelihood: float = 0.0  # log-scaled likelihood of the recent mean band score, in [0, 1]
    shape: float = 0.0  # log-scaled likelihood of the recent spread of residuals, in [0, 1]; 0 where it does not count
    spatial: float = 0.0  # beyond the running range (Numenta's spatial anomaly), in [0, 1)
    recurring: bool = False  # the same excursion happened at the same time yesterday or last week
    stuck: bool = False  # the value repeated for an hour in a series that was not flat for a week (sensor failure)
    context: float = 0.0  # log-scaled likelihood of the recent context surprises (anomaly_core.context), in [0, 1]
    art: float = 0.0  # the novelty of the last hours' shape (anomaly_core.art, after ARTime), in [0, 1]

    @property
    def signal(self) -> str:
        """Which signal gave the confidence, for the notification: "range" (beyond the running min/max of the last
        RANGE_DAYS days), "shape" (the spread of the residuals changed), "level" (outside the band, unusual for
        this series); "+recurring" when it was damped as a same-time habit."""
        if self.stuck and self.confidence <= STUCK_CONFIDENCE:
            name = "stuck"
        elif self.spatial > 0 and self.spatial >= self.confidence:
            name = "range"
        elif self.context > 0 and self.context >= self.confidence:
            name = "context"
        elif self.art > 0 and self.art >= self.confidence:
            name = "novelty"
        else:
            name = "shape" if self.shape > self.likelihood else "level"
        return f"{name}+recurring" if self.recurring and name in ("level", "shape") else name


def residual(value: float, point: BandPoint) -> float:
    return abs(value - point.yhat) / half_width(point)


def _r6(x: float) -> float:
    return round(x, 6)


def gaussian(history: Sequence[float], min_std: float = LIKELIHOOD_MIN_STD,
             min_history: int = LIKELIHOOD_MIN_HISTORY) -> tuple[float, float] | None:
    """(mean, std floored at min_std) of `history`, None before `min_history` values (warm-up)."""
    n = len(history)
    if n < min_history:
        return None
    mu = sum(history) / n
    var = max(0.0, sum(map(operator.mul, history, history)) / n - mu * mu)  # C-level loops
    return mu, max(math.sqrt(var), min_std)


def tail_score(x: float, fitted: tuple[float, float] | None) -> float:
    """Numenta's AnomalyLikelihood: 1 - tail probability, reported as log(tail) / log(1e-10), so likelihood
    0.99999 scores 0.5 and 1 - 1e-10 or more scores 1 (0 without a fitted Gaussian)."""
    if fitted is None:
        return 0.0
    mu, sd = fitted
    tail = 0.5 * math.erfc((x - mu) / (sd * math.sqrt(2.0)))
    return max(0.0, min(1.0, math.log(max(tail, 1e-300) + 1e-10) / _LOG_FLOOR))


def log_likelihood(mean: float, history: Sequence[float], min_std: float = LIKELIHOOD_MIN_STD) -> float:
    """How improbable `mean` is under a Gaussian fitted on `history`, log-scaled to [0, 1] (0 without history)."""
    return tail_score(mean, gaussian(history, min_std))


def _at_or_above(x: float, history: Sequence[float]) -> int:
    """How many values of `history` are at or above `x` (counted at C speed)."""
    return sum(map(x.__le__, history))


def _rank_score(x: float, history: Sequence[float]) -> float:
    """The log-scaled empirical tail of `x` in `history` (like tail_score), 1 beyond the history's largest: a
    heavy-tailed series (bursty counts) has hourly means the Gaussian calls impossible several times a week."""
    return _tail_rank(_at_or_above(x, history), len(history))


def _tail_rank(above: int, n: int) -> float:
    """_rank_score of a value with `above` of `n` values at or above it."""
    if not above:
        return 1.0
    return max(0.0, min(1.0, math.log(above / (n + 1) + 1e-10) / _LOG_FLOOR))


def _above_in(x: float, history: Sequence[float], scheduled: Sequence[int], window: int) -> int:
    """How many values at or above `x` lie in a window of `window` points from a `scheduled` offset on (ascending,
    from the end: -1 the last): the spreads a scheduled residual raised (news_unscheduled)."""
    above, n, end = 0, len(history), 0  # the windows, merged: [start, end) as indices of history
    for i in scheduled:
        start = max(n + i, end, 0)
        end = max(end, min(n + i + window, n))
        above += _at_or_above(x, history[start:end])
    return above


def _span_quantile(memory: Sequence[float], quantile: float, span: int, scheduled: Sequence[int] = (),
                   apart: int = 0) -> float:
    """The `quantile` of the last `span` residuals, those at the `scheduled` offsets (from the end: -1 is the last)
    counted as no excursion (news_unscheduled); with `apart` points (news_two_days) at most the largest residual
    at least `apart` points away from the span's largest: an excursion size is usual only if seen twice."""
    history = memory[-span:]
    if scheduled:
        unscheduled = list(history)
        for i in scheduled:
            if i >= -len(unscheduled):
                unscheduled[i] = 0.0
        history = unscheduled
    if quantile >= 1.0:
        out = max(history)
    else:
        # The quantile as the k-th largest (k small): a week of residuals is not sorted on every point.
        out = heapq.nlargest(len(history) - int(quantile * (len(history) - 1)), history)[-1]
    return min(out, _apart_largest(history, apart)) if apart else out


def _apart_largest(history: Sequence[float], apart: int) -> float:
    """The largest of `history` at least `apart` points away from its largest (0 if none): how large the series
    went a second time, on another day (news_two_days)."""
    if not history:
        return 0.0
    at = history.index(max(history))
    return max(max(history[:max(0, at - apart + 1)], default=0.0), max(history[at + apart:], default=0.0))


def _usual_largest(memory: Sequence[float], quantile: float, same_time: int, span: int = HISTORY_POINTS,
                   w: Windows = FIVE_MINUTES, scheduled: Sequence[int] = (), known: float | None = None,
                   apart: int = 0) -> float:
    """The excursion this series makes as a habit: the `quantile` of the last `span` residuals, or the largest one
    within +-`same_time` points of the same time yesterday or last week if that is larger (quantile 1: the
    largest of the span; the rule before issue 15 was the two days' largest). The `scheduled` residuals leave
    the quantile (_span_quantile, or `known` when the caller has it); the same-time term still sees them."""
    out = _span_quantile(memory, quantile, span, scheduled, apart) if known is None else known
    if quantile >= 1.0:
        return out
    same_time = min(same_time, w.same_time_max)
    for lag in (w.day, w.week):
        lo, hi = len(memory) - lag - same_time, len(memory) - lag + same_time + 1
        if lo >= 0:
            out = max(out, *memory[lo:hi])
    return out


def _news(r: float, memory: Sequence[float], quantile: float = NEWS_QUANTILE, same_time: int = NEWS_SAME_TIME,
          span: int = NEWS_SPAN, w: Windows = FIVE_MINUTES, scheduled: Sequence[int] = (),
          known: float | None = None, apart: int = 0) -> float:
    if len(memory[-w.history:]) < w.min_history:
        return 0.0  # too little history to know what is usual
    if r <= 1.0:
        return 0.25 * r  # inside the band: low
    largest = _usual_largest(memory, quantile, same_time, span, w, scheduled, known, apart) * NEWS_MARGIN
    ratio = r / largest if largest > 0 else 10.0
    # Up to the recent largest excursion (x margin): at most 0.5; beyond it, 1 - 0.5/ratio -> 1.
    return max(0.25, 0.5 * ratio) if ratio <= 1.0 else 1.0 - 0.5 / ratio


@dataclass(frozen=True)
class ScoringParams:
    """The few knobs of the confidence stage (one set for every series; the benchmark sweeps them)."""

    spatial_tolerance: float = SPATIAL_TOLERANCE
    recurring_ratio: float = RECURRING_RATIO
    recurring_damp: float = RECURRING_DAMP
    shape: bool = True
    news_quantile: float = NEWS_QUANTILE
    news_same_time: int = NEWS_SAME_TIME
    onset_decay: float = ONSET_DECAY
    # Issue 28 (lofo [24], [25]): what an onset must beat the bar (_onset_bar) by. With a week's news span a saturated
    # excursion's confidence still creeps up by thousandths as its news grows (0.935, 0.940, 0.941): each step was
    # a new onset of the same excursion (NAB counts the ones outside a window as false positives).
    onset_margin: float = ONSET_MARGIN
    # Issue 28, chosen by leave-one-family-out on shared/nab-dev (`python -m benchmarks.lofo`): the stuck signal
    # finds the frozen sensor (artificial family 47 -> 63 at 0.6) and costs no other family. The long window (the
    # missing daily peak) and the log shape (fewer false onsets on bursty series) score alike under LOFO but give
    # one excursion several onsets and weaken the variance-change signal (issue 15): measured, not shipped.
    long_window: bool = False  # the LONG_WINDOW likelihood beside the hourly one
    stuck: bool = True  # the sensor-failure signal
    shape_log: bool = False  # the shape Gaussian fitted on log spreads (a spread is a scale: heavy right tail)
    likelihood_cap: bool = False  # a mean no higher than one of the last two weeks is at most as rare as its rank
    shape_cap: bool = True  # a spread no higher than one of the last week is at most as rare as its rank
    # Issue 28 (lofo [25]): the shape signal counts only with an excursion whose news is above this (0: always;
    # 0.5: beyond the usual excursion). Within the usual excursion news is up to 0.5, so a saturated shape (a band
    # refit's step in the spread) gave up to sqrt(0.5) = 0.71 on a point that is the series' habit.
    shape_news: float = SHAPE_NEWS
    # Experimental: the confidence rescaled against this metric's own daily peaks (0: off; else the quantile of the
    # last CALIBRATION_DAYS daily peak confidences that maps to 0): a metric that peaks at 0.8 every day is not news
    # at 0.8.
    calibrate: float = 0.0
    # Experimental: an excursion no larger than the record_rank-th largest daily peak residual of the last
    # record_days days (x NEWS_MARGIN) is news of at most 0.5 (0 days: off): a series that bursts every few days
    # (Twitter volume) is news only beyond its own recent bursts.
    record_days: int = 0
    record_rank: int = 1
    news_span: int = NEWS_SPAN  # the last residuals whose news_quantile is the usual excursion
    # The first points of a series whose residuals the news span leaves out (0: none), down to HISTORY_POINTS: a
    # band refitted on half a day, then a day of history misses by more than a settled one, and a week's span
    # would otherwise judge the next week's excursions against those misses.
    news_warmup: int = NEWS_WARMUP
    # Issue 28 (benchmarks/lofo.py --calibrated [13]-[16], shipped in [25]; docs/components/anomaly.md): the
    # week's yardsticks over the series' unscheduled excursions only. A residual that was recurring (at least
    # RECURRING_RATIO of the same time yesterday or last week: a cron job) and as large as the quantile is the
    # same-time term's habit, as are the occurrences it recurs from (the first is known only when it recurs): it
    # counts as no excursion in the news quantile every other time of day is judged against, in the record's daily
    # peaks (record_days; the warm-up's are left out too with news_warmup) and in the shape cap's rank (the
    # spreads of its window). A burst at a random time (Twitter volume) stays in them. Off: nothing is stored.
    news_unscheduled: bool = True
    # Issue 28 (event_after_larger): the news quantile at most the largest residual a day (w.day points) or more
    # away from the span's largest. A week's 0.995 quantile is its 5th-12th largest residual, so ONE 30-minute
    # excursion (6 points) set the usual excursion for the whole span and halved the news of every later one; a
    # size the series reaches on two different days (a burst every few days) stays usual.
    news_two_days: bool = True
    # ... and the shape cap's rank (shape_cap) the same way: a spread beyond every spread a day or more away from the
    # week's largest ranks beyond the history (the one earlier excursion's spreads do not count). Measured, off
    # (lofo [20], [22], [23]): it finds issue 15's event_after_larger at 0.55 but adds episodes on the CloudWatch
    # family (15-16% false at 0.55 against 4%), also when only applied while the level's news is at least
    # shape_two_days_news (0: always; 0.85 is a residual 3.3 times the usual excursion).
    shape_two_days: bool = False
    shape_two_days_news: float = 0.0
    # The recurring damp applied to the spatial signal too (measured, off: lofo [21]): a daily job that grows each
    # day is beyond the 14 days' range at the same time (issue 15's cron_then_event opens an episode on its second
    # day at 0.55), but two CloudWatch windows are found only by the range rule at a recurring time (AWS 74.9 ->
    # 63.2 held out).
    recurring_spatial: bool = False
    # The context signal (anomaly_core.context): measured under leave-one-family-out (benchmarks/lofo.py --tried,
    # [6] and [7]), it reaches more AWS windows at 0.6 but nearly doubles the Twitter family's episodes and lowers
    # the held-out mean: off.
    context: float = 0.0  # the weight of the context signal in the confidence (0: off); see _context
    context_news: bool = False  # the context signal counts only with news (sqrt(news * context)), else on its own
    # The novelty signal after ARTime (anomaly_core.art; issue 28, measured under leave-one-family-out, see
    # docs/components/anomaly.md): off. art_fusion: "max" takes the larger of it and the band's confidence, "news"
    # counts it only with news (sqrt(news * novelty)), "alone" ignores the band's signals (ARTime by itself),
    # "familiar" is "max" with the band's confidence damped by recurring_damp while the last hour's shape
    # resonates with a known category.
    art: float = 0.0  # the weight of the novelty signal in the confidence (0: off)
    art_fusion: str = "max"
    art_params: art_signal.ArtParams = art_signal.DEFAULT_ART
    # The series' sampling period: the windows are durations counted in its points (Windows; the detector scores
    # on its STEP_S grid, the replay passes the period of the rows it scores). The counts above (news_span,
    # news_same_time, news_warmup) are given in 5-minute points.
    step_s: float = STEP_S

    def __post_init__(self) -> None:
        for name, allowed in PARAM_RANGES.items():
            value = getattr(self, name)
            if not allowed.allows(value):
                raise ValueError(f"ScoringParams.{name} ({allowed.meaning}) must be in {allowed}, got {value!r}")
        if self.art_fusion not in ART_FUSIONS:
            raise ValueError(f"ScoringParams.art_fusion must be one of {', '.join(ART_FUSIONS)}, got "
                             f"{self.art_fusion!r}")
        if not 1 <= self.record_rank <= max(1, self.record_days):
            raise ValueError(f"ScoringParams.record_rank must be 1 .. record_days ({self.record_days}), got "
                             f"{self.record_rank!r}")


@dataclass(frozen=True)
class ParamRange:
    """The values a number of ScoringParams may take (a NaN, a bool or a string is none of them)."""

    low: float
    high: float
    meaning: str
    low_open: bool = False
    high_open: bool = False
    integer: bool = False

    def allows(self, value: object) -> bool:
        if isinstance(value, bool) or not isinstance(value, int | float) or (self.integer and isinstance(value, float)):
            return False
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def __str__(self) -> str:
        if self.integer:
            return f"{self.low:.0f} .. {self.high:.0f} (an integer)"
        return f"{'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"


# Every number of ScoringParams, checked once in __post_init__ (a test holds that none is left out); counts are in
# 5-minute points, and the news span and warm-up at most the two weeks the likelihood remembers.
PARAM_RANGES: dict[str, ParamRange] = {
    "step_s": ParamRange(1, MAX_STEP_S, "the sampling period in seconds"),
    "spatial_tolerance": ParamRange(0.0, math.inf, "beyond the running range by this share of it (inf: off)"),
    "recurring_ratio": ParamRange(0.0, math.inf, "the same-time excursion's share of this one that makes it "
                                                 "recurring", low_open=True),
    "recurring_damp": ParamRange(0.0, 1.0, "the factor on a recurring excursion's confidence"),
    "news_quantile": ParamRange(0.0, 1.0, "the quantile of the news span that is the usual excursion",
                                low_open=True),
    "news_same_time": ParamRange(0, NEWS_SAME_TIME_MAX, "points around the same time yesterday and last week",
                                 integer=True),
    "onset_decay": ParamRange(0.0, 1.0, "the discount of a day-old confidence against an onset"),
    "onset_margin": ParamRange(0.0, 1.0, "what an onset must beat the last day's confidences by", high_open=True),
    "shape_news": ParamRange(0.0, 1.0, "the news the shape signal needs, 0: always", high_open=True),
    "shape_two_days_news": ParamRange(0.0, 1.0, "the news the two-days shape rule needs, 0: always"),
    "calibrate": ParamRange(0.0, 1.0, "a quantile of the daily peaks, 0: off", high_open=True),
    "record_days": ParamRange(0, MAX_PEAK_DAYS, "days of daily peaks in the record, 0: off", integer=True),
    "record_rank": ParamRange(1, MAX_PEAK_DAYS, "which largest daily peak is the record", integer=True),
    "news_span": ParamRange(1, LIKELIHOOD_HISTORY, "the residuals whose quantile is the usual excursion",
                            integer=True),
    "news_warmup": ParamRange(0, LIKELIHOOD_HISTORY, "the first points left out of the news span", integer=True),
    "context": ParamRange(0.0, 1.0, "the context signal's weight, 0: off"),
    "art": ParamRange(0.0, 1.0, "the novelty weight"),
}


ART_FUSIONS = ("max", "news", "alone", "familiar")


DEFAULT_PARAMS = ScoringParams()


def _fitted(stored: Sequence[float]) -> tuple[float, float] | None:
    return (stored[0], max(stored[1], 1e-12)) if len(stored) == 2 else None


def _spread(xs: Sequence[float]) -> float:
    mu = sum(xs) / len(xs)
    return math.sqrt(sum((x - mu) ** 2 for x in xs) / len(xs))


def running_range(ranges: Sequence[Sequence[float]]) -> tuple[float, float]:
    """(min, max) of the [day, min, max] entries of the last RANGE_DAYS days ((0, 0) before any): the range the
    spatial rule, the context and the novelty signals judge a value in (never the future)."""
    return min((r[1] for r in ranges), default=0.0), max((r[2] for r in ranges), default=0.0)


def _spatial(value: float, ranges: Sequence[Sequence[float]], seen: int, tolerance: float,
             min_history: int = MIN_HISTORY_POINTS) -> float:
    if seen < min_history or not ranges:
        return 0.0
    lo, hi = running_range(ranges)
    span = hi - lo
    if span <= 0:
        return 0.0  # a constant history has no range to be outside of; the band judges it
    beyond = max(value - hi, lo - value) / span
    return 1.0 - 0.5 * tolerance / beyond if beyond > tolerance else 0.0


def _same_time_before(history: Sequence[float], w: Windows = FIVE_MINUTES) -> float:
    """The largest residual at the same time yesterday and last week (+-1 point), 0 without that history."""
    out = 0.0
    for lag in (w.day, w.week):
        if len(history) >= lag + 1:
            out = max(out, *history[len(history) - lag - 1:len(history) - lag + 2])
    return out


def _with_habit(scheduled: list[int], memory: Sequence[float], seen: int, r: float, ratio: float, usual: float,
                w: Windows = FIVE_MINUTES) -> list[int]:
    """The scheduled `seen` numbers with the recurring residual `r` (number `seen`) and the excursions at the same
    time yesterday and last week that made it recurring and are at least `usual` (a habit's first occurrence is
    only known as one when it recurs), ascending."""
    n = len(memory)
    matched = {seen + i - n for lag in (w.day, w.week) for i in range(n - lag - 1, n - lag + 2)
               if 0 <= i < n and memory[i] > 1.0 and memory[i] >= ratio * r and memory[i] >= usual}
    return sorted({*scheduled, *matched, seen})


def _onset_bar(recent: Sequence[float], decay: float, w: Windows = FIVE_MINUTES) -> float:
    """What a new onset must beat: the last day's confidences (oldest first), those older than an hour (w.onset_hold
    points) discounted by their age (1 - decay a day back). The last hour counts in full: a confidence that stays
    put (a saturated excursion) must never look new."""
    hold = w.onset_hold
    if not decay or len(recent) <= hold:
        return max(recent, default=0.0)
    older: float = max(map(operator.mul, recent[:-hold], _age_weights(len(recent), decay, w.onset, hold)))
    return max(older, *recent[-hold:])


@functools.lru_cache(maxsize=8)
def _age_weights(n: int, decay: float, onset: int = ONSET_POINTS, hold: int = ONSET_HOLD) -> tuple[float, ...]:
    """The discount of each of the n - hold older confidences of _onset_bar (oldest first)."""
    per_point = decay / max(1, onset - hold)
    return tuple(1.0 - per_point * (n - j - hold) for j in range(n - hold))


def _peaks_before(peaks: Sequence[Sequence[float]], day: float, days: int) -> list[float]:
    """The daily peaks of the `days` whole days before `day`, largest first."""
    return sorted((p[1] for p in peaks if day - days <= p[0] < day), reverse=True)


def _peaks_with(peaks: list[list[float]], day: float, value: float, days: int,
                first: int | None = None) -> list[list[float]]:
    """The daily peaks with `value` counted in `day`'s (a new day appended, with its `first` seen number if given),
    the last `days` + 1 days kept."""
    if peaks and peaks[-1][0] == day:
        return [*peaks[:-1], [day, max(peaks[-1][1], _r6(value)), *peaks[-1][2:]]]
    return [*peaks, [day, _r6(value)] if first is None else [day, _r6(value), float(first)]][-(days + 1):]


def _peaks_unscheduled(peaks: list[list[float]], memory: Sequence[float], seen: int, scheduled: Sequence[int],
                       found: Sequence[int]) -> list[list[float]]:
    """The daily peak residuals with the days of the `found` scheduled residuals (a habit's earlier occurrences)
    recomputed over their unscheduled residuals still in `memory` (the last is number `seen` - 1); a day stored
    without its first seen number (before news_unscheduled) is kept as it is."""
    out = [list(p) for p in peaks]
    skip, base = set(scheduled), seen - len(memory)
    for k, p in enumerate(out):
        if len(p) != 3:
            continue
        start, end = int(p[2]), int(out[k + 1][2]) if k + 1 < len(out) and len(out[k + 1]) == 3 else seen
        if any(start <= x < end for x in found):
            p[1] = max((memory[i - base] for i in range(max(start, base), end) if i not in skip), default=0.0)
    return out


def _ranges_with(ranges: Sequence[Sequence[float]], day: float, value: float) -> list[list[float]]:
    kept = [list(r) for r in ranges if r[0] > day - RANGE_DAYS]
    if kept and kept[-1][0] == day:
        kept[-1] = [day, min(kept[-1][1], value), max(kept[-1][2], value)]
    else:
        kept.append([day, value, value])
    return kept[-RANGE_DAYS:]


def _context(value: float, state: ConfidenceState, w: Windows = FIVE_MINUTES
             ) -> tuple[float, dict[str, list[float]], list[int], list[float], list[float]]:
    """The context likelihood of this point and the context part of the next state: the value quantised in the
    running range of the past RANGE_DAYS days (never the future), its step surprise (anomaly_core.context), the
    mean of the last CONTEXT_WINDOW surprises against an exponentially weighted Gaussian of earlier means."""
    s = ctx.level(value, *running_range(state.ranges))
    if s is None:
        return 0.0, state.ctx_counts, state.ctx_levels, state.ctx_raw, state.ctx_stat
    raw = ctx.surprise(state.ctx_counts, state.ctx_levels, s)
    window = [*state.ctx_raw[-(w.context - 1):], raw]
    mean = sum(window) / len(window)
    lik = 0.0
    n, mu, var = state.ctx_stat if len(state.ctx_stat) == 3 else (0.0, 0.0, 0.0)
    if n >= w.likelihood_min_history:
        lik = tail_score(mean, (mu, max(math.sqrt(var), LIKELIHOOD_MIN_STD)))
    # An exponentially weighted mean and variance (Finch 2009, "Incremental calculation of weighted mean and
    # variance"): the exact running ones until CONTEXT_MEMORY means were seen, then that memory's weight.
    alpha = 1.0 / min(n + 1, w.context_memory)
    delta = mean - mu
    mu += alpha * delta
    var = (1 - alpha) * (var + alpha * delta * delta)
    counts = {k: [round(x, 4) for x in v] for k, v in ctx.learn(state.ctx_counts, state.ctx_levels, s).items()}
    kept = [_r6(x) for x in window]
    return (lik, counts, [*state.ctx_levels, s][-max(ctx.ORDERS):],
            kept[1:] if len(kept) == w.context else kept,
            [min(n + 1, w.context_memory), round(mu, 9), round(var, 9)])


def assess(value: float, point: BandPoint, state: ConfidenceState, ts: float | None = None,
           params: ScoringParams = DEFAULT_PARAMS) -> tuple[Assessment, ConfidenceState]:
    """Score one observation from the band and the state built from earlier points only."""
    w = windows_for(params.step_s)
    s = score(value, point)
    r = residual(value, point)
    span = w.samples(params.news_span)
    remembered = max(w.residual_memory, span)  # a week's span of an hourly series is more than its week
    memory = state.residuals[-remembered:]
    if params.news_warmup:
        span = min(span, max(w.history, state.seen - w.lag(params.news_warmup)))
    # news_unscheduled: the recurring residuals still remembered, as offsets from the memory's end (-1: the last).
    scheduled = state.scheduled[bisect.bisect_left(state.scheduled, state.seen - remembered):] \
        if params.news_unscheduled else []
    offsets = [i - state.seen for i in scheduled]
    apart = w.day if params.news_two_days else 0
    usual = _span_quantile(memory, params.news_quantile, span, offsets, apart) \
        if params.news_unscheduled and r > 1.0 and len(memory) >= w.min_history else None
    news = _news(r, memory, params.news_quantile, w.lag(params.news_same_time), span, w, offsets, usual, apart)
    before = _same_time_before(memory, w)
    recurring = r > 1.0 and before >= params.recurring_ratio * r
    # ... and this one is scheduled too if it is as large as the unscheduled quantile (a smaller one cannot set it:
    # a noisy series' many recurring excursions just outside its band would otherwise fill the list).
    habit, now_scheduled = False, scheduled
    if usual is not None and recurring and r >= usual:
        habit = True
        now_scheduled = _with_habit(scheduled, memory, state.seen, r, params.recurring_ratio, usual, w)
    day = math.floor((ts if ts is not None else point.ts) / 86400)
    res_peaks = state.res_peaks
    if params.record_days:
        done = _peaks_before(res_peaks, day, params.record_days)
        if len(done) >= params.record_rank and news > 0.5 and r > 1.0:
            record = done[params.record_rank - 1] * NEWS_MARGIN
            if record > 0 and r <= record:
                news = min(news, max(0.25, 0.5 * r / record))
        if params.news_unscheduled:  # the record of the unscheduled excursions
            if len(now_scheduled) > len(scheduled) + 1:  # earlier occurrences found: their days' peaks without them
                res_peaks = _peaks_unscheduled(res_peaks, memory, state.seen, now_scheduled,
                                               sorted(set(now_scheduled) - set(scheduled) - {state.seen}))
            # ... and without the warm-up's residuals (news_warmup), as the news span is.
            warm_up = bool(params.news_warmup) and state.seen < w.lag(params.news_warmup)
            res_peaks = _peaks_with(res_peaks, day, 0.0 if habit or warm_up else r, params.record_days, state.seen)
        else:
            res_peaks = _peaks_with(res_peaks, day, r, params.record_days)
    window = [*state.scores[-(w.likelihood - 1):], s]
    mean = sum(window) / len(window)
    means = state.means[-w.likelihood_history:]
    # The Gaussians are refitted every STATS_EVERY points (an hour) and kept in the state: fitting them on every
    # point made a 90-day replay cost O(history) per point; an hour's lag on a 2-week history changes nothing.
    refresh = state.seen % w.stats_every == 0 or len(state.stats) != 2
    min_fit = w.likelihood_min_history
    level_fit = gaussian(means, LIKELIHOOD_MIN_STD, min_fit) if refresh else _fitted(state.stats[0])
    if params.shape_log:
        shape_fit = gaussian([math.log(x + SPREAD_FLOOR) for x in state.spreads[-w.shape_history:]], SHAPE_MIN_STD,
                             min_fit) if refresh else _fitted(state.stats[1])
    else:
        shape_fit = gaussian(state.spreads[-w.shape_history:], SHAPE_MIN_STD, min_fit) if refresh \
            else _fitted(state.stats[1])
    lik = tail_score(mean, level_fit)
    if params.likelihood_cap and lik > 0:
        lik = min(lik, _rank_score(mean, means))
    long_window = [*state.long_scores[-(w.long - 1):], s]
    long_mean = sum(long_window) / len(long_window)
    long_means = state.long_means[-w.likelihood_history:]
    if params.long_window:
        long_fit = gaussian(long_means, LIKELIHOOD_MIN_STD, min_fit) if refresh or len(state.long_stat) != 2 \
            else _fitted(state.long_stat)
        lik = max(lik, tail_score(long_mean, long_fit))
    else:
        long_fit = None
    level = math.sqrt(news * lik)
    signed_r = (value - point.yhat) / half_width(point)
    signed = [*state.signed[-(w.likelihood - 1):], signed_r]
    spread = _spread(signed)
    spreads = state.spreads[-w.shape_history:]
    shape_x = math.log(spread + SPREAD_FLOOR) if params.shape_log else spread
    # The shape signal counts only beyond shape_news: elsewhere its likelihood (and the week's rank) is neither
    # computed nor reported, so a notification never names "shape" for a confidence the level gave.
    shape_counts = params.shape and news > params.shape_news
    shape_lik = tail_score(shape_x, shape_fit) if shape_counts else 0.0
    if params.shape_cap and shape_lik > 0:
        # shape_two_days: a spread beyond any a day away from the week's largest is beyond all but one excursion.
        # shape_two_days_news: only while the level is news that far (a variance change around the same mean is
        # not; its own hours of wide spreads stay in the rank as it goes on).
        two_days = params.shape_two_days and news >= params.shape_two_days_news
        above = 0 if two_days and spread > _apart_largest(spreads, w.day) else _at_or_above(spread, spreads)
        capped = _tail_rank(above, len(spreads))  # _rank_score, with the count kept for the scheduled spreads below
        if capped < shape_lik and offsets:  # the scheduled residuals' spreads leave the rank (news_unscheduled)
            capped = _tail_rank(above - _above_in(spread, spreads, offsets, w.likelihood), len(spreads))
        shape_lik = min(shape_lik, capped)
    shape = math.sqrt(news * shape_lik)
    conf = max(level, shape) * (params.recurring_damp if recurring else 1.0)
    spatial = _spatial(value, state.ranges, state.seen, params.spatial_tolerance, w.min_history)
    conf = max(conf, spatial * (params.recurring_damp if recurring and params.recurring_spatial else 1.0))
    if params.context:
        context, ctx_counts, ctx_levels, ctx_raw, ctx_stat = _context(value, state, w)
        weighted = params.context * (math.sqrt(news * context) if params.context_news else context)
        conf = max(conf, weighted)
    else:
        context, ctx_counts, ctx_levels, ctx_raw, ctx_stat = 0.0, {}, [], [], []
    if params.art:
        # The running range of the past RANGE_DAYS days normalises the window (never the future).
        novelty, art_state = art_signal.step(state.art, value, *running_range(state.ranges), params.art_params)
        if params.art_fusion == "alone":
            conf = params.art * novelty
        elif params.art_fusion == "familiar":
            # The last hour's shape resonates with a known category: the band's excursion is damped like a
            # recurring one (a burst the series has made before), and a novelty counts as in "max".
            familiar = art_state.match >= params.art_params.resonance
            conf = max(conf * (params.recurring_damp if familiar else 1.0), params.art * novelty)
        elif params.art_fusion == "news":
            conf = max(conf, params.art * math.sqrt(news * novelty))
        else:
            conf = max(conf, params.art * novelty)
    else:
        novelty, art_state = 0.0, _NO_ART
    flat_window = [*state.recent_values[-(w.stuck - 1):], value]
    flat = len(flat_window) == w.stuck and max(flat_window) - min(flat_window) <= 1e-9 * max(1.0, abs(value))
    stuck = params.stuck and flat and state.since_flat >= w.week and state.seen >= w.week \
        and not (params.art and params.art_fusion == "alone")
    if stuck:
        conf = max(conf, STUCK_CONFIDENCE)
    peaks = state.peaks
    if params.calibrate:
        done = _peaks_before(peaks, day, CALIBRATION_DAYS)[::-1]  # smallest first: the quantile's index
        peaks = _peaks_with(peaks, day, conf, CALIBRATION_DAYS)  # the peak before calibration
        if len(done) >= CALIBRATION_MIN_DAYS and not stuck:
            m = done[min(len(done) - 1, int(params.calibrate * len(done)))]
            conf = max(0.0, (conf - m) / (1.0 - m)) if m < 1.0 else 0.0
    recent = state.confidences[-w.onset:]
    # Compared as stored (rounded to 6 places): a confidence that repeats exactly must not beat its own copy.
    onset = conf if _r6(conf) > _onset_bar(recent, params.onset_decay, w) + params.onset_margin else 0.0
    kept = [_r6(x) for x in window]  # the state holds what its JSON holds: live and offline runs agree
    kept_signed = [_r6(x) for x in signed]
    new_state = ConfidenceState(residuals=[*memory, _r6(r)][-remembered:],
                                confidences=[*recent, _r6(conf)][-w.onset:],
                                scores=kept[1:] if len(kept) == w.likelihood else kept,
                                means=[*means, _r6(mean)][-w.likelihood_history:],
                                signed=kept_signed[1:] if len(kept_signed) == w.likelihood else kept_signed,
                                spreads=[*spreads, _r6(spread)][-w.shape_history:],
                                ranges=_ranges_with(state.ranges, day, _r6(value)), seen=state.seen + 1,
                                stats=[[_r6(x) for x in f] if f else [] for f in (level_fit, shape_fit)],
                                long_scores=[_r6(x) for x in long_window][-(w.long - 1):]
                                if params.long_window else [],
                                long_means=[*long_means, _r6(long_mean)][-w.likelihood_history:] if params.long_window
                                else [],
                                long_stat=[_r6(x) for x in long_fit] if long_fit else [],
                                recent_values=flat_window[-(w.stuck - 1):],
                                since_flat=0 if flat else min(state.since_flat + 1, w.week),
                                ctx_counts=ctx_counts, ctx_levels=ctx_levels, ctx_raw=ctx_raw, ctx_stat=ctx_stat,
                                art=art_state, peaks=peaks, res_peaks=res_peaks,
                                scheduled=now_scheduled)
    new_state.rounded = state.rounded  # its lists are the state's, or rounded here (_r6)
    return Assessment(score=s, confidence=conf, onset=onset, is_anomaly=value > point.upper or value < point.lower,
                      news=news, likelihood=lik, shape=shape_lik, spatial=spatial, recurring=recurring,
                      stuck=stuck, context=context, art=novelty), new_state
