"""The error budget policy of a deploy: which SLOs have spent more of their budget than a deploy may start with.

Google SRE Workbook, "Example Error Budget Policy" (https://sre.google/workbook/error-budget-policy/): while a
service has exceeded its error budget for the trailing period, changes other than fixes are halted. The budget
is read from the recording rule the generator ships (`slo:error_budget_remaining:ratio`, infra/slo/rules.py:
1 = untouched, 0 = spent, negative = overspent), so the gate and the dashboards see the same number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from infra.slo.spec import Slo, error_budget_remaining_metric


def budget_remaining_query(slo: Slo) -> str:
    """The instant query of one SLO's recorded budget remaining (one series, labels service and slo)."""
    labels = ",".join(f'{k}="{v}"' for k, v in slo.labels.items())
    return f"{error_budget_remaining_metric()}{{{labels}}}"


@dataclass(frozen=True)
class BudgetReading:
    """One SLO's share of its period's error budget spent (1 - remaining; above 1 when overspent)."""

    slo: Slo
    spent: float

    @property
    def key(self) -> str:
        return f"{self.slo.service}/{self.slo.name}"


@dataclass(frozen=True)
class Decision:
    """The readings, the share a deploy may start with, and the SLOs over it (held when there is any)."""

    readings: tuple[BudgetReading, ...]
    max_spent: float

    @property
    def over(self) -> tuple[BudgetReading, ...]:
        return tuple(r for r in self.readings if r.spent > self.max_spent)

    @property
    def held(self) -> bool:
        return bool(self.over)


def spent_from_remaining(remaining: float) -> float:
    return 1.0 - remaining


def decide(readings: Sequence[BudgetReading], max_spent: float) -> Decision:
    """Hold when any SLO has spent more than `max_spent` (0 < max_spent <= 1) of its budget."""
    if not (0 < max_spent <= 1) or math.isnan(max_spent):
        raise ValueError(f"max_spent must be in (0, 1], got {max_spent!r}")
    bad = [r.key for r in readings if not math.isfinite(r.spent)]
    if bad:
        raise ValueError(f"budget spent is not a finite number for {', '.join(bad)}")
    return Decision(readings=tuple(readings), max_spent=max_spent)
