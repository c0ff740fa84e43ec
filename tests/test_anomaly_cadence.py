"""The scorer's windows are durations counted in the series' own sampling period (issue 28: scoring.Windows).

An hourly series (NAB's ad-exchange family) counted them as 5-minute points: its "day" of onset memory was 12 days,
its "yesterday" 12 days back. Expected values come from the definitions (scoring's constants, windows_for).
"""

from __future__ import annotations

import dataclasses
import random

import pytest
from anomaly_core import scoring
from anomaly_core.scoring import DEFAULT_PARAMS, STEP_S, BandPoint, ScoringParams, windows_for
from anomaly_core.streaming import assess_with_bands, sampling_period

HOUR = 3600


def test_the_detectors_grid_keeps_every_constant() -> None:
    """At STEP_S (the detector's 5-minute grid) every window is the module's constant: the Lambda is unchanged."""
    w = windows_for(STEP_S)
    assert (w.day, w.week, w.onset, w.onset_hold, w.stats_every, w.same_time_max) == (
        scoring.DAY_POINTS, scoring.WEEK_POINTS, scoring.ONSET_POINTS, scoring.ONSET_HOLD, scoring.STATS_EVERY,
        scoring.NEWS_SAME_TIME_MAX)
    assert (w.likelihood, w.long, w.stuck, w.context) == (
        scoring.LIKELIHOOD_WINDOW, scoring.LONG_WINDOW, scoring.STUCK_POINTS, scoring.CONTEXT_WINDOW)
    assert (w.history, w.min_history, w.likelihood_history, w.likelihood_min_history, w.shape_history,
            w.context_memory, w.residual_memory) == (
        scoring.HISTORY_POINTS, scoring.MIN_HISTORY_POINTS, scoring.LIKELIHOOD_HISTORY,
        scoring.LIKELIHOOD_MIN_HISTORY, scoring.SHAPE_HISTORY, scoring.CONTEXT_MEMORY, scoring.RESIDUAL_MEMORY)
    assert DEFAULT_PARAMS.step_s == STEP_S


def test_an_hourly_series_keeps_the_durations_and_the_sample_counts() -> None:
    per_hour = HOUR // STEP_S
    w = windows_for(HOUR)
    # Durations: a day is 24 points, yesterday 24 points back, the onset's hour one point.
    assert (w.day, w.week, w.onset) == (scoring.DAY_POINTS // per_hour, scoring.WEEK_POINTS // per_hour,
                                        scoring.ONSET_POINTS // per_hour)
    assert w.onset_hold == w.stats_every == 1
    # Averaged windows: an hour is one point, but a spread needs MIN_WINDOW_POINTS.
    assert w.likelihood == w.stuck == scoring.MIN_WINDOW_POINTS
    assert w.long == scoring.LONG_WINDOW // per_hour
    # Histories a quantile or a Gaussian is estimated from keep their sample counts.
    assert (w.history, w.likelihood_history, w.shape_history) == (
        scoring.HISTORY_POINTS, scoring.LIKELIHOOD_HISTORY, scoring.SHAPE_HISTORY)
    # A finer series keeps the durations with more samples.
    minute = windows_for(60)
    assert (minute.day, minute.history) == (5 * scoring.DAY_POINTS, 5 * scoring.HISTORY_POINTS)


def _hourly_replay(params: ScoringParams | None) -> tuple[list[float], list[int]]:
    """30 hourly days of noise inside a flat band, a spike, and a smaller one a day and 7 hours later (the onset's
    memory is a day): the onsets and the two spike rows."""
    rng = random.Random(7)
    n, first = 30 * 24, 20 * 24 + 5
    second = first + 24 + 7
    ts = [1_700_000_000.0 + HOUR * i for i in range(n)]
    values = [10.0 + rng.gauss(0, 0.3) for _ in range(n)]
    values[first], values[second] = 25.0, 16.0  # 15 and 6 half-widths out
    bands = [BandPoint(t, 10.0, 9.0, 11.0) for t in ts]
    # None: the replay's own period (from the timestamps); else the windows counted as 5-minute points (before).
    rows = assess_with_bands(values, bands, ts) if params is None else assess_with_bands(values, bands, None, params)
    return [0.0 if a is None else a.onset for a in rows], [first, second]


def test_an_hourly_series_gets_an_onset_for_an_event_a_day_after_another() -> None:
    onsets, (first, second) = _hourly_replay(None)
    assert onsets[first] > 0.5 and onsets[second] > 0.5
    # Counted as 5-minute points the onset's "day" is 12 hourly days: the second event is masked by the first.
    as_points, _ = _hourly_replay(DEFAULT_PARAMS)
    assert as_points[first] > 0.5 and as_points[second] == 0.0


@pytest.mark.parametrize(("spacings", "period"), [
    ([300.0] * 50, 300.0),
    ([299.0, 301.0, 300.0, 302.0, 298.0] * 10 + [3600.0], 300.0),  # jitter and one gap: NAB's traffic rows
    ([3600.0] * 40, 3600.0),
    ([1800.0] * 40 + [3600.0] * 3, 1800.0),
    ([10.0] * 30, 10.0),
    ([2 * 86400.0] * 10, float(scoring.MAX_STEP_S)),
])
def test_the_sampling_period_is_the_median_spacing_in_whole_minutes(spacings: list[float], period: float) -> None:
    ts = [0.0]
    for s in spacings:
        ts.append(ts[-1] + s)
    assert sampling_period(ts) == period


def test_the_sampling_period_of_too_few_or_unordered_rows() -> None:
    assert sampling_period([]) == sampling_period([5.0]) == STEP_S
    assert sampling_period([0.0, 3600.0, 3600.0, 100.0, 7200.0, 10800.0]) == 3600.0  # repeats and steps back skipped


@pytest.mark.parametrize("bad", [0, -300, 86401, float("nan")])
def test_a_step_outside_a_second_to_a_day_is_refused_by_name(bad: float) -> None:
    with pytest.raises(ValueError, match=r"ScoringParams.step_s .* must be in \[1, 86400\]"):
        dataclasses.replace(DEFAULT_PARAMS, step_s=bad)
