"""Per-metric calibration of the confidence (anomaly_core.scoring; issue 28, measured under leave-one-family-out):
a metric's usual daily peak is no news, a burst no larger than its recent record is news of at most 0.5 (both off
by default), a spread within the last week's is at most as rare as its rank (the shape cap, on by default), a
cron job's residuals leave the week's yardsticks (news_unscheduled, on by default); nothing is stored while off,
the stored daily peaks round-trip through JSON and stay bounded, stored garbage is dropped, bad parameters are
refused by name. TWO_DAY_NEWS (the rule shipped before issue 28's change) is the plain detector they act on."""

from __future__ import annotations

import dataclasses
import json
import math
import random

import pytest
from anomaly_core import scoring
from anomaly_core.scoring import DEFAULT_PARAMS, BandPoint, ConfidenceState, ScoringParams, assess

from benchmarks.candidates import TWO_DAY_NEWS

STEP = scoring.STEP_S
DAY = scoring.DAY_POINTS


def replay(values: list[float], params: ScoringParams, start: float = 0.0) -> tuple[list[scoring.Assessment],
                                                                                    ConfidenceState]:
    """Each value against a fixed band 100 +- 10 (the calibration acts after the band's signals)."""
    state, out = ConfidenceState(), []
    for i, v in enumerate(values):
        ts = start + i * STEP
        a, state = assess(v, BandPoint(ts, 100.0, 90.0, 110.0), state, ts, params)
        out.append(a)
    return out, state


def bursty(days: int, burst: float, rng: random.Random) -> list[float]:
    """Noise inside the band, and one burst of `burst` for half an hour every day at a different time."""
    values = [100.0 + rng.gauss(0.0, 2.0) for _ in range(days * DAY)]
    for d in range(days):
        at = d * DAY + rng.randrange(24, DAY - 24)
        for k in range(6):
            values[at + k] = burst
    return values


def test_calibration_and_record_are_off_by_default_and_nothing_stored() -> None:
    assert DEFAULT_PARAMS.calibrate == 0.0 and DEFAULT_PARAMS.record_days == 0
    _, state = replay(bursty(4, 160.0, random.Random(1)), DEFAULT_PARAMS)
    stored = state.to_json()
    assert "peaks" not in stored and "res_peaks" not in stored


def test_a_daily_burst_is_no_news_once_calibrated_and_a_larger_one_is() -> None:
    rng = random.Random(2)
    values = bursty(6, 160.0, rng)
    at = len(values) - DAY // 2
    values[at:at + 6] = [400.0] * 6  # four times the usual burst's excess, on the last day
    params = dataclasses.replace(DEFAULT_PARAMS, calibrate=0.5)
    plain, _ = replay(values, DEFAULT_PARAMS)
    calibrated, state = replay(values, params)
    # Every whole day after the third: the usual burst's confidence is rescaled against the days' median peak.
    day4 = range(4 * DAY, 5 * DAY)
    usual_plain = max(plain[i].confidence for i in day4)
    usual_calibrated = max(calibrated[i].confidence for i in day4)
    assert usual_calibrated < usual_plain
    assert usual_calibrated < 0.5 * usual_plain or usual_calibrated < 0.2
    # The larger burst stands out above every usual one.
    assert max(a.confidence for a in calibrated[at:at + 6]) > usual_calibrated + 0.2
    # The first CALIBRATION_MIN_DAYS days are judged as without calibration (no peaks known yet).
    first = range(scoring.MIN_HISTORY_POINTS, scoring.CALIBRATION_MIN_DAYS * DAY)
    assert [calibrated[i].confidence for i in first] == [plain[i].confidence for i in first]
    peaks = state.peaks
    assert len(peaks) <= scoring.CALIBRATION_DAYS + 1
    assert [p[0] for p in peaks] == sorted({math.floor(i * STEP / 86400) for i in range(len(values))})


def test_a_burst_within_the_recent_record_is_news_of_at_most_a_half() -> None:
    rng = random.Random(3)
    values = bursty(5, 170.0, rng)
    at = len(values) - DAY // 2
    values[at:at + 6] = [150.0] * 6  # smaller than every earlier day's burst
    params = dataclasses.replace(DEFAULT_PARAMS, record_days=3)
    held, state = replay(values, params)
    assert all(a.news <= 0.5 for a in held[at:at + 6])
    plain, _ = replay(values, DEFAULT_PARAMS)
    assert max(a.news for a in plain[at:at + 6]) >= max(a.news for a in held[at:at + 6])
    assert len(state.res_peaks) <= params.record_days + 1
    # A new record is news as before.
    values[at:at + 6] = [400.0] * 6
    record, _ = replay(values, params)
    plain, _ = replay(values, DEFAULT_PARAMS)
    assert [a.news for a in record[at:at + 6]] == [a.news for a in plain[at:at + 6]]


def test_the_shape_cap_never_raises_the_shape_likelihood() -> None:
    rng = random.Random(4)
    values = [100.0 + rng.gauss(0.0, 2.0 if (i // 36) % 9 else 8.0) for i in range(4 * DAY)]
    plain, _ = replay(values, TWO_DAY_NEWS)
    capped, _ = replay(values, dataclasses.replace(TWO_DAY_NEWS, shape_cap=True))
    assert all(c.shape <= p.shape + 1e-12 for c, p in zip(capped, plain, strict=True))
    assert any(c.shape < p.shape for c, p in zip(capped, plain, strict=True))


def test_stored_peaks_round_trip_and_garbage_is_dropped() -> None:
    params = dataclasses.replace(DEFAULT_PARAMS, calibrate=0.5, record_days=7)
    _, state = replay(bursty(4, 160.0, random.Random(5)), params)
    stored = json.loads(json.dumps(state.to_json()))
    assert ConfidenceState.from_json(stored).to_json() == stored
    stored["peaks"] = [[1, 0.5], ["x", 0.2], [2, float("nan")], [3], "no", [4, True], [5, 0.7]]
    stored["res_peaks"] = {"not": "a list"}
    back = ConfidenceState.from_json(stored)
    assert back.peaks == [[1.0, 0.5], [5.0, 0.7]] and back.res_peaks == []


@pytest.mark.parametrize(("change", "named"), [
    ({"calibrate": 1.0}, "ScoringParams.calibrate"),
    ({"calibrate": -0.1}, "ScoringParams.calibrate"),
    ({"record_days": -1}, "ScoringParams.record_days"),
    ({"record_days": scoring.MAX_PEAK_DAYS + 1}, "ScoringParams.record_days"),
    ({"record_days": 3, "record_rank": 4}, "ScoringParams.record_rank"),
    ({"record_days": 3, "record_rank": 0}, "ScoringParams.record_rank"),
    ({"onset_margin": -0.01}, "ScoringParams.onset_margin"),
    ({"onset_margin": 1.0}, "ScoringParams.onset_margin"),
    ({"shape_two_days_news": 1.5}, "ScoringParams.shape_two_days_news"),
    ({"shape_two_days_news": -0.1}, "ScoringParams.shape_two_days_news"),
    ({"shape_news": 1.0}, "ScoringParams.shape_news"),
    ({"shape_news": -0.5}, "ScoringParams.shape_news"),
])
def test_bad_parameters_are_refused_naming_the_field_and_the_allowed_values(change: dict[str, float],
                                                                           named: str) -> None:
    with pytest.raises(ValueError, match=named) as err:
        dataclasses.replace(DEFAULT_PARAMS, **change)
    assert "must be" in str(err.value)



def _outside(allowed: scoring.ParamRange) -> list[object]:
    """Values a ParamRange refuses, derived from it: just beyond each end (the end itself when open), a NaN, a bool
    and a string; a fraction for an integer count."""
    step = 1 if allowed.integer else 1e-6
    out: list[object] = [math.nan, True, "0.5"]
    out.append(allowed.low if allowed.low_open else allowed.low - step)
    if math.isfinite(allowed.high):
        out.append(allowed.high if allowed.high_open else allowed.high + step)
    if allowed.integer:
        out.append(allowed.low + 0.5)
    return out


@pytest.mark.parametrize("name", sorted(scoring.PARAM_RANGES))
def test_every_number_outside_its_range_is_refused_naming_the_field_and_the_range(name: str) -> None:
    allowed = scoring.PARAM_RANGES[name]
    for value in _outside(allowed):
        with pytest.raises(ValueError) as err:
            dataclasses.replace(DEFAULT_PARAMS, **{name: value})
        assert f"ScoringParams.{name} ({allowed.meaning}) must be in {allowed}" in str(err.value), value
    inside = allowed.high if not allowed.high_open and math.isfinite(allowed.high) else allowed.low + (
        1 if allowed.integer else 1e-6) if allowed.low_open else allowed.low
    if name == "record_rank":  # ... within record_days too
        dataclasses.replace(DEFAULT_PARAMS, record_days=scoring.MAX_PEAK_DAYS, record_rank=inside)
    else:
        dataclasses.replace(DEFAULT_PARAMS, **{name: inside})


def test_every_number_of_the_parameters_has_a_range() -> None:
    """A new knob cannot go unchecked: each int or float field of ScoringParams is in PARAM_RANGES."""
    numbers = {f.name for f in dataclasses.fields(scoring.ScoringParams) if f.type in ("int", "float")}
    assert numbers and numbers == set(scoring.PARAM_RANGES)

# ---------------------------------------------------------------------------------------------- news_unscheduled
WEEK = {"news_span": scoring.WEEK_POINTS, "news_quantile": 0.995}
UNSCHEDULED = dataclasses.replace(TWO_DAY_NEWS, **WEEK, shape_cap=True, record_days=14, news_unscheduled=True)


def cron(days: int, rng: random.Random, at: int = 36) -> list[float]:
    """Noise inside the band and a 10-minute job at the same time every day (03:00), its size +-20%."""
    values = [100.0 + rng.gauss(0.0, 2.0) for _ in range(days * DAY)]
    for d in range(days):
        size = 60.0 * rng.uniform(0.8, 1.2)
        values[d * DAY + at] += size
        values[d * DAY + at + 1] += size
    return values


def test_news_unscheduled_is_on_by_default_and_off_stores_nothing() -> None:
    assert DEFAULT_PARAMS.news_unscheduled
    _, state = replay(cron(3, random.Random(6)), dataclasses.replace(TWO_DAY_NEWS, **WEEK, record_days=3))
    stored = state.to_json()
    assert "scheduled" not in stored and all(len(p) == 2 for p in stored["res_peaks"])  # type: ignore[attr-defined]


def test_a_recurring_job_and_its_first_occurrence_leave_the_quantile_and_the_record() -> None:
    """Each day's job recurs at the same time yesterday: scheduled, with the first day's (known as one only when it
    recurs), so the daily peaks of the record are the days' noise and the quantile is not the job."""
    days = 4
    out, state = replay(cron(days, random.Random(7)), UNSCHEDULED)
    assert state.scheduled == [d * DAY + k for d in range(days) for k in (36, 37)]  # the noise stays in the band
    assert max(p[1] for p in state.res_peaks) < 1.0  # the noise stays inside the band (half-width 10, sd 2)
    assert [p[2] for p in state.res_peaks] == [d * DAY for d in range(days)]  # each day's first seen number
    plain, plain_state = replay(cron(days, random.Random(7)), dataclasses.replace(UNSCHEDULED, news_unscheduled=False))
    assert max(p[1] for p in plain_state.res_peaks) > 5.0  # without it, the record is the job
    # The job itself is still damped as a same-time habit (its news is the same-time term's: at most 0.5).
    assert all(out[d * DAY + 36].recurring and out[d * DAY + 36].news <= 0.5 for d in range(1, days))
    assert all(a.confidence < 0.5 for a in out[DAY + 36:] + plain[DAY + 36:])


def test_a_burst_at_a_random_time_stays_in_the_quantile() -> None:
    """A burst at another time every day (Twitter volume's) is not at the same time yesterday: nothing is scheduled
    and every assessment is the one without news_unscheduled."""
    values = bursty(5, 170.0, random.Random(8))
    with_it, state = replay(values, UNSCHEDULED)
    without, _ = replay(values, dataclasses.replace(UNSCHEDULED, news_unscheduled=False))
    assert state.scheduled == [] and with_it == without


def test_the_scheduled_spreads_leave_the_shape_cap_and_never_lower_it() -> None:
    rng = random.Random(9)
    values = cron(5, rng)
    for i in range(4 * DAY + 150, 4 * DAY + 174):  # the spread doubles for two hours on the last day
        values[i] = 100.0 + rng.gauss(0.0, 6.0)
    capped, _ = replay(values, dataclasses.replace(UNSCHEDULED, news_unscheduled=False))
    unscheduled, _ = replay(values, UNSCHEDULED)
    uncapped, _ = replay(values, dataclasses.replace(UNSCHEDULED, shape_cap=False))
    assert all(c.shape <= u.shape + 1e-12 <= f.shape + 2e-12 for c, u, f in zip(capped, unscheduled, uncapped,
                                                                                strict=True))
    assert any(c.shape < u.shape for c, u in zip(capped, unscheduled, strict=True))


def test_the_scheduled_positions_round_trip_and_older_or_malformed_states_read_as_none() -> None:
    days = 4
    values = cron(days + 1, random.Random(10))
    _, state = replay(values[:days * DAY], UNSCHEDULED)
    stored = json.loads(json.dumps(state.to_json()))
    assert stored["scheduled"] and ConfidenceState.from_json(stored) == state
    # The next points are assessed identically from the stored state; one stored before the switch (no scheduled
    # positions, daily peaks of two numbers) is read and assessed without them, never a traceback.
    older = {**stored, "res_peaks": [p[:2] for p in stored["res_peaks"]]}
    del older["scheduled"]
    live, back, old = state, ConfidenceState.from_json(stored), ConfidenceState.from_json(older)
    assert old.scheduled == []
    for i in range(days * DAY, len(values)):
        ts = i * STEP
        point = BandPoint(ts, 100.0, 90.0, 110.0)
        (a_live, live), (a_back, back) = assess(values[i], point, live, ts, UNSCHEDULED), \
            assess(values[i], point, back, ts, UNSCHEDULED)
        _, old = assess(values[i], point, old, ts, UNSCHEDULED)
        assert a_live == a_back, i
    assert old.scheduled  # the job, scheduled again once it recurs
    for garbage in ({"x": 1}, [3, 2], [1, "2"], [True], [10**9]):
        assert ConfidenceState.from_json({**stored, "scheduled": garbage}).scheduled == []


def test_the_windows_follow_an_hourly_series_period() -> None:
    """On an hourly series the job recurs 24 points later (Windows.day), not 288."""
    hourly = dataclasses.replace(UNSCHEDULED, step_s=3600.0)
    rng = random.Random(11)
    values = [100.0 + rng.gauss(0.0, 2.0) for _ in range(20 * 24)]
    for d in range(20):
        values[d * 24 + 3] += 60.0 * rng.uniform(0.8, 1.2)
    state, out = ConfidenceState(), []
    for i, v in enumerate(values):
        a, state = assess(v, BandPoint(i * 3600.0, 100.0, 90.0, 110.0), state, i * 3600.0, hourly)
        out.append(a)
    assert state.scheduled and all(i % 24 == 3 for i in state.scheduled)
