"""Anomaly episodes: notify once when one starts, once when it ends, never every five minutes in between.

An episode opens on the first point whose confidence exceeds the threshold, and closes after RECOVERY_POINTS
consecutive points back inside the band (15 minutes: a value hovering at the band edge does not flap).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

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
