"""`python -m infra.tools.signal_paths_report --stack staging --stack prod`: the signal paths of each stack's
offline plan as a Markdown table (signal kind | count | route targets | who it reaches) and the dead ends the
rule `signal_paths_reach_a_person` finds (exit 1 when there is one)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from infra.core.paths import LAMBDAS_DIR

if str(LAMBDAS_DIR) not in sys.path:
    sys.path.insert(0, str(LAMBDAS_DIR))  # the plan packages the Lambda folders as top-level packages

from infra.offline.plan import run_plan
from infra.plan.signal_paths import path_table
from infra.validation.paths import path_violations, plan_paths


def report(stack: str) -> tuple[str, int]:
    result = run_plan(stack, quiet=True, write=False, offline_secrets=True)
    if result.plan is None:
        return f"## {stack}\n\nno plan: {'; '.join(result.config_problems)}\n", 1
    rows = path_table(plan_paths(result.plan))
    dead = list(path_violations(result.plan))
    lines = [f"## {stack}", "", "| signal | count | route to | reaches |", "|---|---|---|---|",
             *(f"| {' | '.join(row)} |" for row in rows), "", f"Dead ends: {len(dead)}",
             *(f"- {v.resource}: {v.message}" for v in dead), ""]
    return "\n".join(lines), 1 if dead else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", action="append", default=None, help="stack (repeatable; default staging)")
    args = parser.parse_args(argv)
    worst = 0
    for stack in args.stack or ["staging"]:
        text, code = report(stack)
        print(text)
        worst = max(worst, code)
    return worst


if __name__ == "__main__":
    raise SystemExit(main())
