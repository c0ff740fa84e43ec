"""Per-metric calibration of the confidence (anomaly_core.scoring; issue 28, measured under leave-one-family-out and
off by default): a metric's usual daily peak is no news, a burst no larger than its recent record is news of at most
0.5, a spread within the last week's is at most as rare as its rank; nothing is stored while off, the stored daily
peaks round-trip through JSON and stay bounded, stored garbage is dropped, bad parameters are refused by name."""

from __future__ import annotations

import dataclasses
import json
import math
import random

import pytest
from anomaly_core import scoring
from anomaly_core.scoring import DEFAULT_PARAMS, BandPoint, ConfidenceState, ScoringParams, assess

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


def test_off_by_default_and_nothing_stored() -> None:
    assert DEFAULT_PARAMS.calibrate == 0.0 and DEFAULT_PARAMS.record_days == 0 and not DEFAULT_PARAMS.shape_cap
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
    plain, _ = replay(values, DEFAULT_PARAMS)
    capped, _ = replay(values, dataclasses.replace(DEFAULT_PARAMS, shape_cap=True))
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
])
def test_bad_parameters_are_refused_naming_the_field_and_the_allowed_values(change: dict[str, float],
                                                                           named: str) -> None:
    with pytest.raises(ValueError, match=named) as err:
        dataclasses.replace(DEFAULT_PARAMS, **change)
    assert "must be" in str(err.value)
