"""A prediction-free context signal (issue 28): how new is the sequence of quantised values, whatever the band says.

Written from the published description of Smirnov's Contextual Anomaly Detector, Open Source Edition (CAD OSE,
https://github.com/smirmik/CAD; "contextOSE" in the Numenta Anomaly Benchmark): the value is quantised into a few
levels, a context is the pair (what came before, what comes now), and the anomaly is the share of contexts that
did not predict the current value plus the share that are new, zero when the value was predicted. This is not
CAD's code: CAD grows its context memory without bound and crosses fact sets to build higher-order contexts; here
the contexts are the last one and the last two levels (orders 1 and 2), so the memory holds at most
LEVELS + LEVELS**2 rows of LEVELS counts (80 numbers with 2 bits, under 1 kB of JSON; 576 numbers, about 3 kB, with
3 bits), and each row's counts are halved when they pass COUNT_CAP (recent habits weigh more, as CAD's rest period
and contexts' weights make it forget).

NAB gives CAD the file's min/max; the detector may not see the future, so the caller quantises with the running
range of the past days (the state's `ranges`), and a value beyond it falls into the outermost level.

Pure Python, JSON state: a dict {context key: counts} (key "k:a,b": order k, the previous levels oldest first).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

# CAD OSE's default is 3 bits (8 levels); measured under leave-one-family-out on shared/nab-dev (issue 28, with the
# signal on its own beside the band's): 2 bits held-out mean 56.2, 3 bits 54.0, 4 bits 52.4, a log scale of the range
# (heavy-tailed counts) 52.9, a 3-hour window 55.0, a longer memory (cap 128, predicted at 10% of the top) 54.5.
BITS = 2
LEVELS = 1 << BITS  # 2 ** BITS (an int for the type checker)
ORDERS = (1, 2)  # the contexts: the previous level, the previous two levels
COUNT_CAP = 32.0  # a row's counts are halved when their sum passes it (bounded numbers, recent habits count more)
PREDICTED_SHARE = 0.25  # a level is predicted by a context if its count is at least this share of the row's top
NEIGHBOUR_WEIGHT = 0.5  # a neighbouring level counts half: a value jittering across a level's edge is no news
MIN_COUNT = 0.01  # counts below it are dropped after halving


def level(value: float, lo: float, hi: float) -> int | None:
    """The quantised level of `value` in [lo, hi] (clamped), None without a range."""
    if not hi > lo:
        return None
    x = int((value - lo) / (hi - lo) * LEVELS)
    return min(LEVELS - 1, max(0, x))


def _key(order: int, previous: Sequence[int]) -> str:
    return f"{order}:" + ",".join(str(p) for p in previous[-order:])


def _soft(row: Sequence[float], s: int) -> float:
    near = sum(row[j] for j in (s - 1, s + 1) if 0 <= j < LEVELS)
    return row[s] + NEIGHBOUR_WEIGHT * near


def surprise(counts: Mapping[str, Sequence[float]], previous: Sequence[int], s: int) -> float:
    """CAD's anomaly of one step, in [0, 1]: (share of contexts that did not predict `s` + share of new ones) / 2,
    0 when the longest known context predicted it."""
    unpredicted = new = n = 0
    for order in ORDERS:
        if len(previous) < order:
            continue
        n += 1
        row = counts.get(_key(order, previous))
        if row is None or not any(row):
            unpredicted += 1
            new += 1
            continue
        c = _soft(row, s)
        top = max(_soft(row, j) for j in range(LEVELS))
        if row[s] <= 0:
            new += 1
        if c < PREDICTED_SHARE * top:
            unpredicted += 1
    if n == 0 or unpredicted == 0:
        return 0.0
    return (unpredicted + new) / (2.0 * n)


def learn(counts: Mapping[str, Sequence[float]], previous: Sequence[int], s: int) -> dict[str, list[float]]:
    """The counts after seeing `s` after `previous` (a new dict: the state stays immutable)."""
    out = {k: list(v) for k, v in counts.items()}
    for order in ORDERS:
        if len(previous) < order:
            continue
        row = out.setdefault(_key(order, previous), [0.0] * LEVELS)
        row[s] += 1.0
        if sum(row) > COUNT_CAP:
            out[_key(order, previous)] = [x * 0.5 if x * 0.5 >= MIN_COUNT else 0.0 for x in row]
    return out


def valid_counts(raw: object) -> dict[str, list[float]]:
    """The counts of a stored state, keeping only well-formed rows of known contexts (bad JSON: start afresh)."""
    if not isinstance(raw, dict):
        return {}
    out: dict[str, list[float]] = {}
    for k, v in raw.items():
        if not (isinstance(k, str) and isinstance(v, list) and len(v) == LEVELS):
            continue
        order, _, prev = k.partition(":")
        parts = prev.split(",")
        if not (order.isdigit() and int(order) in ORDERS and len(parts) == int(order)
                and all(p.isdigit() and int(p) < LEVELS for p in parts)):
            continue
        if all(isinstance(x, int | float) and not isinstance(x, bool) and 0 <= x <= 2 * COUNT_CAP for x in v):
            out[k] = [float(x) for x in v]
    return out
