"""`python -m infra.tools.drill [--scenarios all|short|a,b] [--scrape-interval S] [--evaluation-interval S]`:
run the drill, print the table, write build/drill/report.md and a PNG timeline per scenario; exit 1 when any
scenario fails its expectations."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from infra.core.paths import ROOT
from infra.tools.drill import report
from infra.tools.drill.runner import Drill, Timing
from infra.tools.drill.scenarios import by_name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.tools.drill", description=__doc__)
    parser.add_argument("--scenarios", default="all", help="all, short, or a comma-separated list of names")
    parser.add_argument("--scrape-interval", type=int, default=Timing.scrape_s, metavar="S")
    parser.add_argument("--evaluation-interval", type=int, default=Timing.evaluation_s, metavar="S")
    parser.add_argument("--no-resolve", action="store_true", help="do not wait for PagerDuty's resolve")
    parser.add_argument("--out", default=str(ROOT / "build" / "drill"))
    args = parser.parse_args(argv)
    try:
        scenarios = by_name(args.scenarios)
    except ValueError as e:
        parser.error(str(e))
    for name in ("scrape_interval", "evaluation_interval"):
        if not 1 <= getattr(args, name) <= 60:
            parser.error(f"--{name.replace('_', '-')} must be 1..60 seconds, got {getattr(args, name)}")
    out = Path(args.out).resolve()  # the daemons run in their own working directories
    timing = Timing(args.scrape_interval, args.evaluation_interval)
    started = time.time()
    results = Drill(out, timing, wait_resolve=not args.no_resolve).run(scenarios)
    took = time.time() - started
    header = (f"{len(results)} scenarios in {took:.0f} s wall; scrape {timing.scrape_s} s, rule evaluation "
              f"{timing.evaluation_s} s; times are seconds from the fault's start.")
    path = report.write(results, out, header)
    try:
        report.timelines(results, out)
    except ImportError as e:  # matplotlib is in the dev extra; the table stands without the pictures
        print(f"no PNG timelines: {e}", file=sys.stderr)
    print(header)
    print(report.table(results))
    print(f"report: {path}")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
