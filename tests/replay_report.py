"""The replay tests' report: every measured figure appended to build/slo-replay.txt and printed (pytest -s)."""

from __future__ import annotations

from infra.core.paths import BUILD_DIR

REPORT = BUILD_DIR / "slo-replay.txt"


def report(line: str) -> None:
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    with REPORT.open("a", encoding="utf-8") as f:
        f.write(line + "\n")
    print(line)
