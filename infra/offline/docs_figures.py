"""The few figures the docs quote that follow the plans, rewritten by `make generate` (never by hand).

- docs/plan.md: per stack, the first-preview unknowns as `python -m infra.offline.preview` prints them;
- docs/components/cost.md: per stack, the monthly estimate (`make plan`'s `Total:`) and its ceiling.

Each is a three-column table whose first cell names a stack; only those rows are rewritten, the prose stays.
"""

from __future__ import annotations

from collections.abc import Mapping, Sized
from pathlib import Path
from typing import Protocol

from infra.core.paths import ROOT
from infra.plan import cost
from infra.plan.model import Plan

PREVIEW_PAGE = ROOT / "docs" / "plan.md"
COST_PAGE = ROOT / "docs" / "components" / "cost.md"
CRITICAL_KINDS = ("policy", "alarm action", "dashboard body", "lambda setting")


class PreviewResult(Protocol):
    """What the table reads of `infra.offline.preview.PreviewResult` (a command's module: not imported here)."""

    @property
    def managed(self) -> Sized: ...
    @property
    def unknowns(self) -> Sized: ...
    @property
    def critical_counts(self) -> Mapping[str, int]: ...


def preview_row(result: PreviewResult) -> tuple[str, str]:
    return (f"{len(result.unknowns)} of {len(result.managed)}",
            " / ".join(str(result.critical_counts.get(k, 0)) for k in CRITICAL_KINDS))


def cost_row(stack: str, plan: Plan) -> tuple[str, str]:
    return (f"${cost.estimate(plan, stack=stack).total:,.2f}", f"${plan.config.cost_watch.ceiling_usd:,.2f}")


def with_rows(text: str, rows: Mapping[str, tuple[str, str]]) -> str:
    """`text` with each `| <stack> | a | b |` row replaced by that stack's figures."""
    out = []
    for line in text.splitlines(keepends=True):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == 3 and cells[0] in rows:
            line = f"| {cells[0]} | {' | '.join(rows[cells[0]])} |\n"
        out.append(line)
    return "".join(out)


def expected_pages(plans: Mapping[str, Plan], previews: Mapping[str, PreviewResult]) -> dict[Path, str]:
    return {
        PREVIEW_PAGE: with_rows(PREVIEW_PAGE.read_text(encoding="utf-8"),
                                {s: preview_row(r) for s, r in previews.items()}),
        COST_PAGE: with_rows(COST_PAGE.read_text(encoding="utf-8"), {s: cost_row(s, p) for s, p in plans.items()}),
    }
