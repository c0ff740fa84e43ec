"""The NAB standard scoring profile, written from its public description (Lavin & Ahmad, "Evaluating Real-time
Anomaly Detection Algorithms - the Numenta Anomaly Benchmark", 2015, https://arxiv.org/abs/1510.03336; the
scoring section of https://github.com/numenta/NAB).

- The first 15% of each file (at most 750 points) is probation: detections there count for nothing.
- Inside a window only the earliest detection counts, worth sigma(position) with the scaled sigmoid
  sigma(x) = 2 / (1 + e^(5x)) - 1 and position = -(window end - i + 1) / window length (earliest ~ +0.99).
- A detection outside every window costs A_FP = 0.11 times -sigma(distance past the previous window's end, in
  window lengths), i.e. the full 0.11 when there is no previous window or it is far behind.
- A window with no detection costs A_FN = 1.
- One threshold for the whole corpus, chosen to maximise the total; normalised so that a detector that never
  fires scores 0 and a perfect one 100.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

A_TP = 1.0
A_FP = 0.11
A_FN = 1.0
PROBATION = 0.15
MAX_PROBATION = 750


def scaled_sigmoid(x: float) -> float:
    if x > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * x)) - 1.0


def probation_length(n: int) -> int:
    return min(math.floor(PROBATION * n), MAX_PROBATION)


@dataclass
class FileLabels:
    """Per-point window membership of one file: window index (or -1) and the per-point weight if detected."""

    name: str
    n: int
    windows: list[tuple[int, int]]  # inclusive index ranges
    probation: int

    @functools.cached_property
    def values(self) -> list[tuple[int, float]]:
        return [self.point_value(i) for i in range(self.n)]

    def point_value(self, i: int) -> tuple[int, float]:
        """(window index or -1, value of a detection at point i); window values are TP weights."""
        prev_end: tuple[int, int] | None = None
        for w, (start, end) in enumerate(self.windows):
            if start <= i <= end:
                length = end - start + 1
                return w, A_TP * scaled_sigmoid(-(end - i + 1) / length)
            if end < i:
                prev_end = (start, end)
        if prev_end is None:
            return -1, -A_FP
        start, end = prev_end
        length = end - start + 1
        return -1, A_FP * scaled_sigmoid(abs(end - i) / max(length - 1, 1))


def labels_for(name: str, timestamps: Sequence[str], windows: Sequence[Sequence[str]]) -> FileLabels:
    """Map window [start, end] timestamps to index ranges (NAB timestamps compare as strings)."""
    keys = [t[:19] for t in timestamps]
    ranges = []
    for start, end in windows:
        s, e = start[:19], end[:19]
        idx = [i for i, k in enumerate(keys) if s <= k <= e]
        if idx:
            ranges.append((idx[0], idx[-1]))
    return FileLabels(name=name, n=len(timestamps), windows=ranges, probation=probation_length(len(timestamps)))


@dataclass
class FileResult:
    name: str
    score: float
    true_positives: int
    false_negatives: int
    false_positives: int
    detections: list[int]


def score_file(labels: FileLabels, scores: Sequence[float], threshold: float) -> FileResult:
    return score_points(labels, candidates_of(labels, scores), threshold)


def candidates_of(labels: FileLabels, scores: Sequence[float]) -> list[tuple[int, float]]:
    """The (index, score) of the points that any threshold above 0 can detect: after probation, score > 0."""
    return [(i, s) for i, s in enumerate(scores) if i >= labels.probation and s > 0]


def score_points(labels: FileLabels, points: Sequence[tuple[int, float]], threshold: float) -> FileResult:
    """score_file on the points of candidates_of (a sweep over thresholds then skips the zeros)."""
    best: dict[int, float] = {}
    fp_total = 0.0
    fps = 0
    detections = []
    values = labels.values
    for i, s in points:
        if s < threshold:
            continue
        detections.append(i)
        w, value = values[i]
        if w >= 0:
            best.setdefault(w, value)  # earliest detection in the window counts, later ones are free
        else:
            fp_total += value
            fps += 1
    missed = len(labels.windows) - len(best)
    total = sum(best.values()) + fp_total - A_FN * missed
    return FileResult(labels.name, total, len(best), missed, fps, detections)


def perfect_and_null(labels: Sequence[FileLabels]) -> tuple[float, float]:
    perfect = sum(A_TP * scaled_sigmoid(-1.0) for lab in labels for _ in lab.windows)
    null = -A_FN * sum(len(lab.windows) for lab in labels)
    return perfect, null


def normalised(raw: float, labels: Sequence[FileLabels]) -> float:
    perfect, null = perfect_and_null(labels)
    if perfect == null:
        return 100.0 if raw >= 0 else 0.0
    return 100.0 * (raw - null) / (perfect - null)


def best_threshold(labels: Sequence[FileLabels], scores: Sequence[Sequence[float]],
                   candidates: int = 400, above: float = -1.0) -> tuple[float, float]:
    """(threshold, raw total) maximising the corpus total over candidate thresholds (score quantiles) > above."""
    # Each candidate at or below the score it comes from (floored to 6 places, not rounded: a score rounded up
    # would miss its own point, so the "best" threshold could score below a fixed one).
    pooled = sorted({math.floor(s * 1e6) / 1e6 for ss, lab in zip(scores, labels, strict=True)
                     for s in ss[lab.probation:] if s > 0})
    if not pooled:
        return 1.01, sum(score_file(lab, ss, 1.01).score for lab, ss in zip(labels, scores, strict=True))
    step = max(1, len(pooled) // candidates)
    grid = sorted(th for th in set(pooled[::step]) | set(pooled[-candidates:]) | {1.01} if th > above)
    best = (1.01, -math.inf)
    points = [candidates_of(lab, ss) for lab, ss in zip(labels, scores, strict=True)]
    for th in grid:
        total = sum(score_points(lab, ps, th).score for lab, ps in zip(labels, points, strict=True))
        if total > best[1]:
            best = (th, total)
    return best
