"""A novelty signal after ARTime (issue 28, off by default): is the shape of the last hours a category seen before?

Written from the published description of Mark Hampton's ARTime (the Numenta Anomaly Benchmark's "ARTime"
detector; Adaptive Resonance Theory after Carpenter, Grossberg & Rosen 1991, "Fuzzy ART", Neural Networks 4(6)),
not from its code (AGPL): the values are downsampled (a spike inside a step is kept, the mean otherwise), the last
WINDOW downsampled values, normalised in a range, plus their Haar wavelet details form a feature vector, complement
coded; a fuzzy ART network files each vector under the category it resonates with (match >= vigilance) or opens a
new category; a new category after the warm-up is an anomaly, graded by how far the best match fell below the
vigilance; after one, further anomalies are suppressed for a while unless clearly worse. ARTime adapts its
vigilance to the series; here it is the mean best match of the last days minus `vigilance_sd` of its spread.

What differs from ARTime, for production (streaming, a 5-minute point at a time, bounded state in S3):
- the range is the caller's running range of the past days (the scorer's 14 days), never the file's min/max that
  NAB hands a detector; the steps are fixed (ARTime sizes them from the file's length);
- the categories are capped at `max_categories`: a new one then replaces the least recently used;
- the vigilance statistics are an exponentially weighted mean and variance (three numbers), not a history.

State per metric (JSON): `window - 1` downsampled values, under `step` raw values, at most `max_categories`
categories of 1 + 4 * window - 2 numbers (weights rounded to 4 places) and 3 + 2 numbers: with the defaults (32
categories of 14 weights) at most about 3.5 kB of JSON (tests/test_anomaly_art.py fills it with noise), beside the
scorer's ~60 kB.

Pure Python; every function returns a new state (the detector stores it, the offline replay threads it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

WEIGHT_PLACES = 4  # stored weights: 4 places keep a category's match to 1e-4 and the JSON small
CHOICE_ALPHA = 1e-3  # fuzzy ART's choice parameter: a small alpha prefers the tightest category that fits


@dataclass(frozen=True)
class ArtParams:
    """The knobs of the novelty signal (one set for every series). Bad values are refused with ValueError."""

    # 15 minutes and a one-hour window (ARTime: ~5-7 points and 8 steps on a 5-minute NAB file): measured on
    # shared/nab-dev (the signal alone, docs/components/anomaly.md), 30 minutes and 4 hours see a change too late and
    # dilute it in the window's match. A power of two for the Haar details.
    step: int = 3
    window: int = 4
    levels: int = 40  # the range-normalised values are quantised to 1/levels (small jitter is no new shape)
    spike_share: float = 0.1  # a step keeps its extreme value if it is this share of the range off the step's mean
    max_categories: int = 32
    learning_rate: float = 1.0  # 1: fuzzy ART's fast learning (the category becomes its intersection with the input)
    # Two vigilances, as ARTime's dual-vigilance fuzzy ART (DVFA, da Silva, Elnabarawy & Wunsch 2019): a match at or
    # above `resonance` updates that category; below it a new category opens; it is an anomaly only below the
    # lower vigilance, which adapts to the series: the mean best match minus `vigilance_sd` standard deviations
    # (`memory` steps: 3.5 days), kept in [vigilance_min, resonance]; `vigilance_start` before `warmup`.
    resonance: float = 0.95
    vigilance_sd: float = 1.0
    vigilance_min: float = 0.6
    vigilance_start: float = 0.85
    # In steps: the vigilance statistics' memory (3.5 days), the warm-up (a day), the mask after an anomaly (3 hours);
    # measured against a week / two days / 1.5 windows (ARTime's mask), which score lower on every family.
    memory: int = 336
    warmup: int = 96
    mask: int = 12  # after an anomaly, another within `mask` steps needs a clearly lower match ...
    mask_ratio: float = 0.9  # ... below this share of the last anomaly's match

    def __post_init__(self) -> None:
        ints = {"step": 1, "window": 2, "levels": 2, "max_categories": 1, "memory": 2, "warmup": 0, "mask": 0}
        for name, low in ints.items():
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"ArtParams.{name} must be an integer >= {low}, got {value!r}")
        if self.window & (self.window - 1):
            raise ValueError(f"ArtParams.window must be a power of two (2, 4, 8, 16 ...), got {self.window}")
        shares = ("spike_share", "learning_rate", "vigilance_min", "resonance", "vigilance_start", "mask_ratio")
        for name in shares:
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or not 0.0 <= value <= 1.0:
                raise ValueError(f"ArtParams.{name} must be a number in [0, 1], got {value!r}")
        if self.learning_rate == 0.0:
            raise ValueError("ArtParams.learning_rate must be above 0 (0 would never learn), got 0.0")
        if not self.vigilance_min <= self.vigilance_start <= self.resonance < 1.0:
            raise ValueError("ArtParams needs vigilance_min <= vigilance_start <= resonance < 1, got "
                             f"{self.vigilance_min}, {self.vigilance_start}, {self.resonance}")
        if not isinstance(self.vigilance_sd, int | float) or isinstance(self.vigilance_sd, bool) \
                or not 0.0 <= self.vigilance_sd <= 10.0:
            raise ValueError(f"ArtParams.vigilance_sd must be a number in [0, 10], got {self.vigilance_sd!r}")

    @property
    def dim(self) -> int:
        """Feature length before complement coding: the window's values and its window - 1 Haar details."""
        return 2 * self.window - 1


DEFAULT_ART = ArtParams()


@dataclass
class ArtState:
    """The signal's memory of one metric (JSON-serialisable, bounded by its ArtParams)."""

    pending: list[float] = field(default_factory=list)  # raw values of the step being filled
    recent: list[float] = field(default_factory=list)  # the last window - 1 downsampled values (raw units)
    categories: list[list[float]] = field(default_factory=list)  # [last used (step number), *weights]
    steps: int = 0  # downsampled values seen
    stat: list[float] = field(default_factory=list)  # [count, mean, variance] of the best matches, or []
    last: list[float] = field(default_factory=list)  # [step number, best match] of the last anomaly, or []
    match: float = 0.0  # the best match of the last completed step (0 before any)

    def to_json(self) -> dict[str, object]:
        return {"pending": list(self.pending), "recent": list(self.recent),
                "categories": [list(c) for c in self.categories], "steps": self.steps, "stat": list(self.stat),
                "last": list(self.last), "match": self.match}

    @classmethod
    def from_json(cls, data: object, params: ArtParams = DEFAULT_ART) -> ArtState:
        """The stored state, keeping only well-formed parts (anything else starts afresh: no error, no page)."""
        if not isinstance(data, dict):
            return cls()

        def floats(key: str) -> list[float]:
            raw = data.get(key)
            if not isinstance(raw, list):
                return []
            return [float(x) for x in raw if _number(x)]

        width = 1 + 2 * params.dim
        raw_cats = data.get("categories")
        cats = [[float(x) for x in c] for c in raw_cats if isinstance(c, list) and len(c) == width
                and all(_number(x) for x in c) and all(0.0 <= x <= 1.0 for x in c[1:])
                ][-params.max_categories:] if isinstance(raw_cats, list) else []
        steps = data.get("steps")
        match = data.get("match")
        stat, last = floats("stat"), floats("last")
        return cls(pending=floats("pending")[-(params.step - 1):] if params.step > 1 else [],
                   recent=floats("recent")[-(params.window - 1):], categories=cats,
                   steps=steps if isinstance(steps, int) and not isinstance(steps, bool) and steps >= 0 else 0,
                   stat=stat if len(stat) == 3 and stat[0] >= 0 and stat[2] >= 0 else [],
                   last=last if len(last) == 2 else [],
                   match=float(match) if isinstance(match, int | float) and _number(match) and 0.0 <= match <= 1.0
                   else 0.0)


def _number(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def downsample(values: Sequence[float], span: float, spike_share: float) -> float:
    """One step's value: the mean, or the extreme farther from it when that is `spike_share` of `span` away (a
    spike inside the step survives the averaging, as in ARTime)."""
    mean = sum(values) / len(values)
    far = max(values, key=lambda v: abs(v - mean))
    return far if span > 0 and abs(far - mean) >= spike_share * span else mean


def haar_details(xs: Sequence[float]) -> list[float]:
    """The Haar wavelet details of `xs` (length a power of two), coarsest first: len(xs) - 1 numbers, each half
    the difference of neighbouring averages, so values in [0, 1] give details in [-0.5, 0.5]."""
    approx = list(xs)
    details: list[float] = []
    while len(approx) > 1:
        pairs = list(zip(approx[0::2], approx[1::2], strict=True))
        details = [(b - a) / 2.0 for a, b in pairs] + details
        approx = [(a + b) / 2.0 for a, b in pairs]
    return details


def features(window: Sequence[float], lo: float, hi: float, levels: int) -> list[float]:
    """The complement-coded feature vector of a window of downsampled values in the range [lo, hi] (hi > lo):
    the values normalised and quantised, their Haar details moved to [0, 1]; then 1 - each (fuzzy ART's
    complement coding: every vector has the same L1 norm, so a category cannot grow by matching less)."""
    xs = [round(min(1.0, max(0.0, (v - lo) / (hi - lo))) * levels) / levels for v in window]
    f = xs + [d + 0.5 for d in haar_details(xs)]
    return f + [1.0 - x for x in f]


def match(x: Sequence[float], w: Sequence[float]) -> float:
    """Fuzzy ART's match |x ^ w| / |x| (^: the element-wise minimum; |x| is dim with complement coding)."""
    return sum(map(min, x, w)) / (len(x) / 2)


def classify(x: Sequence[float], categories: Sequence[Sequence[float]], vigilance: float) -> tuple[int | None, float]:
    """(index of the category `x` resonates with or None, the best match over all categories).

    Fuzzy ART's search: categories in order of the choice |x ^ w| / (alpha + |w|), the first whose match reaches
    the vigilance resonates."""
    scored = []
    for i, c in enumerate(categories):
        w = c[1:]
        inter = sum(map(min, x, w))
        scored.append((inter / (CHOICE_ALPHA + sum(w)), inter / (len(x) / 2), i))
    best = max((m for _, m, _ in scored), default=0.0)
    for _, m, i in sorted(scored, reverse=True):
        if m >= vigilance:
            return i, best
    return None, best


def vigilance(stat: Sequence[float], params: ArtParams) -> float:
    """The lower vigilance: a best match below it is an anomaly."""
    if len(stat) != 3 or stat[0] < params.warmup:
        return params.vigilance_start
    _, mean, var = stat
    return min(params.resonance, max(params.vigilance_min, mean - params.vigilance_sd * math.sqrt(var)))


def novelty(best: float, rho: float) -> float:
    """The confidence of a new category: 0.5 just below the vigilance, rising towards 1 as the best match falls
    below it by multiples of the mismatch the vigilance allows (1 - rho)."""
    deficit = max(0.0, rho - best) / max(1.0 - rho, 0.01)
    return 1.0 - 0.5 / (1.0 + deficit)


def _learnt(categories: Sequence[Sequence[float]], x: Sequence[float], hit: int | None, step: int,
            params: ArtParams) -> list[list[float]]:
    out = [list(c) for c in categories]
    if hit is None:
        if len(out) >= params.max_categories:
            out.pop(min(range(len(out)), key=lambda i: out[i][0]))  # the least recently used
        out.append([float(step), *(round(v, WEIGHT_PLACES) for v in x)])
        return out
    beta = params.learning_rate
    w = out[hit][1:]
    out[hit] = [float(step), *(round(beta * min(a, b) + (1 - beta) * b, WEIGHT_PLACES) for a, b in zip(x, w,
                                                                                                    strict=True))]
    return out


def step(state: ArtState, value: float, lo: float, hi: float,
         params: ArtParams = DEFAULT_ART) -> tuple[float, ArtState]:
    """The novelty confidence of this point in [0, 1] (non-zero only where a step completes) and the next state.

    `lo`, `hi`: the running range of the past (the caller's; the future is never seen); without one (hi <= lo)
    the point is only buffered."""
    pending = [*state.pending, value]
    if len(pending) < params.step:
        return 0.0, replace(state, pending=pending)
    span = hi - lo
    ds = downsample(pending, span, params.spike_share)
    window = [*state.recent, ds]
    recent = window[-(params.window - 1):]
    if len(window) < params.window or not span > 0:
        return 0.0, replace(state, pending=[], recent=recent)
    n = state.steps + 1
    x = features(window, lo, hi, params.levels)
    rho = vigilance(state.stat, params)
    hit, best = classify(x, state.categories, params.resonance)
    conf = 0.0
    last = state.last
    if best < rho and n > params.warmup:
        masked = len(last) == 2 and n - last[0] <= params.mask and best >= params.mask_ratio * last[1]
        if not masked:
            conf = novelty(best, rho)
            last = [float(n), round(best, 6)]
    count, mean, var = state.stat if len(state.stat) == 3 else (0.0, 0.0, 0.0)
    # An exponentially weighted mean and variance (Finch 2009, "Incremental calculation of weighted mean and
    # variance"): exact until `memory` matches were seen, then that memory's weight.
    alpha = 1.0 / min(count + 1, params.memory)
    delta = best - mean
    mean += alpha * delta
    var = (1 - alpha) * (var + alpha * delta * delta)
    return conf, ArtState(pending=[], recent=recent, categories=_learnt(state.categories, x, hit, n, params),
                          steps=n, stat=[min(count + 1, params.memory), round(mean, 9), round(var, 9)], last=last,
                          match=round(best, 6))

