"""The novelty signal after ARTime (anomaly_core.art; issue 28, off by default): a learnt shape is no news and a new
one is, the warm-up and the post-anomaly mask hold, the memory the detector keeps in S3 stays bounded, the same
input gives the same output, stored garbage starts afresh, and bad parameters are refused with a clear error."""

from __future__ import annotations

import dataclasses
import json
import math
import random

import pytest
from anomaly_core import art
from anomaly_core.scoring import DEFAULT_PARAMS, BandPoint, ConfidenceState, ScoringParams, assess

DAY = 288


def daily(i: int, rng: random.Random) -> float:
    return 10.0 + 5.0 * math.sin(2 * math.pi * i / DAY) + rng.gauss(0.0, 0.3)


def run(values: list[float], params: art.ArtParams = art.DEFAULT_ART, lo: float = 0.0,
        hi: float = 20.0) -> tuple[list[float], art.ArtState]:
    state, out = art.ArtState(), []
    for v in values:
        c, state = art.step(state, v, lo, hi, params)
        out.append(c)
    return out, state


def test_haar_details_are_half_differences_of_neighbouring_averages_coarsest_first() -> None:
    xs = [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]
    assert art.haar_details(xs) == [0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]  # one step in the middle: the coarsest
    xs = [0.2, 0.6, 0.4, 0.4]
    averages = [(0.2 + 0.6) / 2, (0.4 + 0.4) / 2]
    expected = [(averages[1] - averages[0]) / 2, (0.6 - 0.2) / 2, 0.0]
    assert art.haar_details(xs) == pytest.approx(expected)


def test_features_are_complement_coded_in_the_range() -> None:
    f = art.features([5.0, 10.0, 15.0, 30.0, -4.0, 10.0, 10.0, 10.0], 0.0, 20.0, 40)
    p = dataclasses.replace(art.DEFAULT_ART, window=8)
    assert len(f) == 2 * p.dim and all(0.0 <= x <= 1.0 for x in f)
    assert sum(f) == pytest.approx(p.dim)  # complement coding: every vector has the same norm
    assert f[:8] == [0.25, 0.5, 0.75, 1.0, 0.0, 0.5, 0.5, 0.5]  # clamped to the range, quantised to 1/40
    assert art.match(f, f) == pytest.approx(1.0)


def test_downsample_keeps_a_spike_and_averages_noise() -> None:
    assert art.downsample([1.0, 1.2, 0.8, 1.0], 10.0, 0.1) == pytest.approx(1.0)
    assert art.downsample([1.0, 1.0, 9.0, 1.0], 10.0, 0.1) == 9.0  # 6 off the mean of 3: above 10% of the range


def test_a_learnt_shape_is_no_news_and_a_new_one_is_after_the_warm_up_only() -> None:
    rng = random.Random(3)
    event = 20 * DAY
    values = [daily(i, rng) + (4.0 if event <= i < event + 24 else 0.0) for i in range(30 * DAY)]
    # At two standard deviations below the mean match only the event is new; at the default one, the event
    # stands out: its novelty is the largest, the noise's few are just above 0.5 (at the vigilance).
    strict = dataclasses.replace(art.DEFAULT_ART, vigilance_sd=2.0)
    confs, _ = run(values, strict)
    hits = [i for i, c in enumerate(confs) if c > 0]
    assert hits and all(event <= i < event + 24 + strict.window * strict.step for i in hits)
    confs, _ = run(values)
    top = max(range(len(confs)), key=confs.__getitem__)
    assert event <= top < event + 24 and confs[top] > 0.6
    assert max(c for i, c in enumerate(confs) if not event <= i < event + 36) < 0.55
    # The same event inside the warm-up (the first `warmup` steps) is learnt, not reported.
    early = [daily(i, rng) + (4.0 if DAY // 2 <= i < DAY // 2 + 24 else 0.0) for i in range(3 * DAY)]
    confs, _ = run(early)
    assert art.DEFAULT_ART.warmup * art.DEFAULT_ART.step > DAY // 2 + 24 and max(confs) == 0.0


def test_the_mask_suppresses_the_echoes_of_one_anomaly() -> None:
    rng = random.Random(5)
    shift = 10 * DAY
    values = [daily(i, rng) + (6.0 if i >= shift else 0.0) for i in range(12 * DAY)]
    masked, _ = run(values)
    unmasked, _ = run(values, dataclasses.replace(art.DEFAULT_ART, mask=0))
    n_masked = sum(1 for c in masked[shift:] if c > 0)
    n_unmasked = sum(1 for c in unmasked[shift:] if c > 0)
    assert 1 <= n_masked < n_unmasked


def test_novelty_grows_as_the_best_match_falls_below_the_vigilance() -> None:
    assert art.novelty(0.9, 0.9) == 0.5
    assert art.novelty(0.8, 0.9) == pytest.approx(1.0 - 0.5 / 2.0)  # one allowed mismatch below
    assert art.novelty(0.0, 0.9) > art.novelty(0.5, 0.9) > art.novelty(0.85, 0.9)


def test_the_memory_stays_bounded_and_round_trips_through_json() -> None:
    rng = random.Random(7)
    p = art.DEFAULT_ART
    values = [rng.uniform(0.0, 20.0) for _ in range(30 * DAY)]  # noise: a new category at every turn
    _, state = run(values)
    assert len(state.categories) == p.max_categories
    assert all(len(c) == 1 + 2 * p.dim for c in state.categories)
    assert len(state.recent) == p.window - 1 and len(state.pending) < p.step and len(state.stat) == 3
    stored = json.dumps(state.to_json())
    assert len(stored) < 4000  # what the module's docstring and docs/components/anomaly.md state (3.5 kB)
    assert art.ArtState.from_json(json.loads(stored)) == state
    # Inside the detector's state, through the scorer (the store keeps ConfidenceState.to_json()).
    params = dataclasses.replace(DEFAULT_PARAMS, art=1.0)
    cstate, point = ConfidenceState(), BandPoint(0, 10.0, 0.0, 20.0)
    for i, v in enumerate(values[:10 * DAY]):
        _, cstate = assess(v, point, cstate, i * 300.0, params)
    assert ConfidenceState.from_json(json.loads(json.dumps(cstate.to_json()))) == cstate
    assert len(cstate.art.categories) <= p.max_categories


def test_the_same_input_gives_the_same_output() -> None:
    rng = random.Random(11)
    values = [daily(i, rng) + (rng.random() < 0.002) * 8.0 for i in range(15 * DAY)]
    first, s1 = run(values)
    second, s2 = run(values)
    assert first == second and s1 == s2 and any(c > 0 for c in first)
    # Resuming from the stored JSON half-way (a detector run at a time) gives the same as one pass.
    half = len(values) // 2
    _, mid = run(values[:half])
    state, rest = art.ArtState.from_json(json.loads(json.dumps(mid.to_json()))), []
    for v in values[half:]:
        c, state = art.step(state, v, 0.0, 20.0)
        rest.append(c)
    assert rest == first[half:] and state == s1


def test_without_a_range_points_are_only_buffered() -> None:
    confs, state = run([5.0] * 100, lo=3.0, hi=3.0)
    assert max(confs) == 0.0 and state.steps == 0 and state.categories == []


def test_stored_garbage_keeps_only_well_formed_parts() -> None:
    p = art.DEFAULT_ART
    good = [3.0] + [0.5] * (2 * p.dim)
    state = art.ArtState.from_json({
        "pending": [1.0, "x", float("nan"), 2.0], "recent": [True, 4.0], "steps": -3, "stat": [1.0, 2.0],
        "last": [4.0, 0.5], "categories": [good, good[:-1], [3.0] + [1.5] * (2 * p.dim), "x"], "match": 1.5})
    assert state.pending == [1.0, 2.0] and state.recent == [4.0] and state.steps == 0 and state.match == 0.0
    assert state.stat == [] and state.last == [4.0, 0.5] and state.categories == [good]
    assert art.ArtState.from_json("not a dict") == art.ArtState()


@pytest.mark.parametrize(("change", "message"), [
    ({"window": 6}, "ArtParams.window must be a power of two"),
    ({"window": 1}, "ArtParams.window must be an integer >= 2"),
    ({"step": 0}, "ArtParams.step must be an integer >= 1"),
    ({"max_categories": 2.5}, "ArtParams.max_categories must be an integer >= 1"),
    ({"learning_rate": 0.0}, "ArtParams.learning_rate must be above 0"),
    ({"spike_share": 1.5}, r"ArtParams.spike_share must be a number in \[0, 1\]"),
    ({"vigilance_min": 0.95, "vigilance_start": 0.9}, "vigilance_min <= vigilance_start <= resonance < 1"),
    ({"resonance": 1.0}, "vigilance_min <= vigilance_start <= resonance < 1"),
    ({"vigilance_sd": -1.0}, r"ArtParams.vigilance_sd must be a number in \[0, 10\]"),
])
def test_bad_parameters_are_refused_naming_what_is_allowed(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(art.DEFAULT_ART, **change)


def test_bad_fusion_or_weight_is_refused() -> None:
    with pytest.raises(ValueError, match="art_fusion must be one of max, news, alone, familiar, got 'sum'"):
        ScoringParams(art_fusion="sum")
    with pytest.raises(ValueError, match=r"ScoringParams.art \(the novelty weight\) must be in \[0, 1\]"):
        ScoringParams(art=2.0)


def test_off_by_default_and_silent_in_the_state() -> None:
    assert DEFAULT_PARAMS.art == 0.0
    rng = random.Random(2)
    state, point = ConfidenceState(), BandPoint(0, 10.0, 0.0, 20.0)
    for i in range(2 * DAY):
        a, state = assess(daily(i, rng), point, state, i * 300.0)
        assert a.art == 0.0
    assert state.art == art.ArtState()
    assert "art" not in state.to_json()  # nothing stored per metric while the signal is off
