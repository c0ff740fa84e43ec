"""The context signal (anomaly_core.context, after CAD OSE; issue 28): a learnt sequence of quantised values is no
surprise and a new one is, the memory the detector keeps in S3 stays bounded, its JSON rejects garbage, and in the
scorer it sees a change of rhythm inside an unchanged range that the band's signals do not."""

from __future__ import annotations

import dataclasses
import json
import random

from anomaly_core import context as ctx
from anomaly_core.scoring import DEFAULT_PARAMS, BandPoint, ConfidenceState, assess


def learnt(sequence: list[int], times: int) -> dict[str, list[float]]:
    counts: dict[str, list[float]] = {}
    history: list[int] = []
    for _ in range(times):
        for s in sequence:
            counts = ctx.learn(counts, history, s)
            history = [*history, s][-max(ctx.ORDERS):]
    return counts


def test_a_learnt_sequence_is_no_surprise_and_a_new_one_is() -> None:
    cycle = [0, 1, 2, 3]
    counts = learnt(cycle, 20)
    assert ctx.surprise(counts, [1, 2], 3) == 0.0  # predicted by both contexts
    assert ctx.surprise(counts, [3, 2], 1) == 1.0  # context (3, 2) never seen: unpredicted and new in both orders
    # (0, 1) -> 0: both contexts are known and predict 2; 0 (two levels away) is new after each.
    assert ctx.surprise(counts, [0, 1], 0) == 1.0
    # A neighbouring level counts half: 1 -> 1 has never happened, yet 2 (its neighbour) is what follows 1.
    assert ctx.surprise(counts, [0, 1], 1) == 0.0
    assert ctx.surprise({}, [], 2) == 0.0  # nothing before: no context to be surprised by


def test_levels_quantise_the_range_and_clamp_outside_it() -> None:
    assert [ctx.level(v, 0.0, 8.0) for v in (-5.0, 0.0, 1.9, 2.0, 7.99, 8.0, 50.0)] == \
        [0, 0, 0, 1, ctx.LEVELS - 1, ctx.LEVELS - 1, ctx.LEVELS - 1]
    assert ctx.level(3.0, 2.0, 2.0) is None  # no range yet: no level


def test_the_context_memory_stays_bounded() -> None:
    rng = random.Random(7)
    counts: dict[str, list[float]] = {}
    history: list[int] = []
    for _ in range(20_000):
        s = rng.randrange(ctx.LEVELS)
        counts = ctx.learn(counts, history, s)
        history = [*history, s][-max(ctx.ORDERS):]
    assert len(counts) <= sum(ctx.LEVELS ** k for k in ctx.ORDERS)
    assert all(len(row) == ctx.LEVELS and sum(row) <= ctx.COUNT_CAP + 1 for row in counts.values())
    # In the detector's state: a month of noisy values keeps the context part of the JSON under 2 kB.
    state, p = ConfidenceState(), BandPoint(0, 50.0, 0.0, 100.0)
    params = dataclasses.replace(DEFAULT_PARAMS, context=1.0)
    for i in range(30 * 288):
        _, state = assess(rng.uniform(0, 100), p, state, i * 300.0, params)
    stored = state.to_json()
    assert len(json.dumps({k: v for k, v in stored.items() if k.startswith("ctx_")})) < 2000
    assert ConfidenceState.from_json(json.loads(json.dumps(stored))) == state


def test_stored_contexts_keep_only_well_formed_rows() -> None:
    good = [1.0] + [0.0] * (ctx.LEVELS - 1)
    state = ConfidenceState.from_json({
        "ctx_counts": {"1:0": good, f"1:{ctx.LEVELS}": good, "2:0": good, "3:0,0,0": good, "1:1": ["x"] * ctx.LEVELS,
                       "1:2": [1.0] * (ctx.LEVELS + 1), "1:3": [-1.0] * ctx.LEVELS, "x": good},
        "ctx_levels": [ctx.LEVELS, 1, True, "2"], "ctx_stat": [1.0, 2.0], "ctx_raw": [0.5, "x"]})
    assert state.ctx_counts == {"1:0": good}
    assert state.ctx_levels == [1] and state.ctx_stat == [] and state.ctx_raw == [0.5]


def square(i: int, period: int) -> float:
    return 10.0 if (i // (period // 2)) % 2 == 0 else 20.0


def test_a_new_rhythm_inside_the_same_range_is_seen_by_the_context_signal_alone() -> None:
    """A square wave between 10 and 20 with a 2-hour period, then a 20-minute one: the same values, inside a band
    far wider than them, so the band's signals see nothing; the sequence of levels is new."""
    rng = random.Random(1)
    p = BandPoint(0, 15.0, -100.0, 130.0)
    change = 3 * 288
    out = {}
    for weight in (0.0, 1.0):
        state, confidences = ConfidenceState(), []
        params = dataclasses.replace(DEFAULT_PARAMS, context=weight)
        for i in range(change + 24):
            value = square(i, 24 if i < change else 4) + rng.uniform(-0.3, 0.3)
            a, state = assess(value, p, state, i * 300.0, params)
            confidences.append(a.confidence)
        out[weight] = (max(confidences[288:change]), max(confidences[change:]))
    (off_before, off_after), (on_before, on_after) = out[0.0], out[1.0]
    assert off_after < 2 * off_before + 0.01  # the band's signals: nothing new
    assert on_after > 4 * on_before and on_after > 0.1
