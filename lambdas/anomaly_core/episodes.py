"""Anomaly episodes: notify once when one starts, once when it ends, never every five minutes in between.

An episode opens on the first point whose confidence exceeds the threshold, and closes after RECOVERY_POINTS
consecutive points back inside the band (15 minutes: a value hovering at the band edge does not flap).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .scoring import Assessment

RECOVERY_POINTS = 3


@dataclass(frozen=True)
class Episode:
    open: bool = False
    started_at: float | None = None
    peak_confidence: float = 0.0
    inside_run: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"open": self.open, "started_at": self.started_at, "peak_confidence": self.peak_confidence,
                "inside_run": self.inside_run}

    @property
    def id(self) -> str:
        """Stable for the whole episode (its start time): the key of its notifications."""
        return f"{self.started_at:.0f}" if self.started_at is not None else "none"

    @classmethod
    def from_json(cls, data: Any) -> Episode:
        """The stored episode; a field of the wrong type resets it (a closed episode) rather than failing."""
        if not isinstance(data, dict):
            return cls()
        started, peak, inside = data.get("started_at"), data.get("peak_confidence", 0.0), data.get("inside_run", 0)
        numbers = (started, peak) if started is not None else (peak,)
        if not isinstance(data.get("open", False), bool) or not isinstance(inside, int) or isinstance(inside, bool) \
                or not all(isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)
                           for x in numbers):
            return cls()
        if data.get("open") and started is None:
            return cls()
        return cls(open=bool(data.get("open")), started_at=float(started) if started is not None else None,
                   peak_confidence=float(peak), inside_run=max(0, inside))


def step(ep: Episode, ts: float, confidence: float, is_anomaly: bool, threshold: float) -> tuple[Episode, str | None]:
    """(next episode, "start" | "end" | None): what to notify for this point."""
    if not ep.open:
        if confidence > threshold:
            return Episode(open=True, started_at=ts, peak_confidence=confidence), "start"
        return ep, None
    peak = max(ep.peak_confidence, confidence)
    inside = 0 if is_anomaly else ep.inside_run + 1
    if inside >= RECOVERY_POINTS:
        return Episode(), "end"
    return Episode(open=True, started_at=ep.started_at, peak_confidence=peak, inside_run=inside), None


def paged_scores(assessed: Sequence[Assessment | None], threshold: float) -> list[float]:
    """The offline anomaly score of each row in [0, 1] (0 where not scored) for NAB's sweep: the detector's pages at
    `threshold` (the confidence where `step` opens an episode), and where no episode is open the onsets below it.

    At `threshold` the rows scoring at or above it are exactly the episodes the detector notifies (a property test
    holds it): a confidence that grows within an open episode is not a new page, and an episode that re-opens with a
    confidence below its excursion of an hour ago is one (the onset alone counted the first and missed the second).
    Other thresholds of the sweep see the onsets between them and `threshold` too: a single score per row cannot
    be every threshold's episodes, so the sweep is exact at the shipped threshold only."""
    out = [0.0] * len(assessed)
    for i, a, was_open, event in replay(assessed, threshold):
        # An onset at the threshold itself is no page (step opens above it) and NAB counts scores at it.
        x = a.confidence if event == "start" else 0.0 if was_open or a.onset >= threshold else a.onset
        out[i] = max(0.0, min(1.0, x))
    return out


def replay(assessed: Sequence[Assessment | None], threshold: float
           ) -> Iterator[tuple[int, Assessment, bool, str | None]]:
    """The detector's episodes over assessed rows (None: not scored, skipped): (row, assessment, whether an episode
    was open before it, what `step` notifies for it). The offline score and the production view share it."""
    ep = Episode()
    for i, a in enumerate(assessed):
        if a is not None:
            was_open = ep.open
            ep, event = step(ep, float(i), a.confidence, a.is_anomaly, threshold)
            yield i, a, was_open, event
