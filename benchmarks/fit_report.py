"""`make bench-anomaly` (second half): the trainer's validation on every shared/nab-dev series.

For each file: the trainer's own `train()` (validation fit on all but the last 7 days, then the final fit and
the 8-day band), printing MAPE (where defined), sMAPE and the wall time of the whole training.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from infra.tools.anomaly_cli import read_input  # also puts lambdas/ on sys.path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("/work/shared/nab-dev"))
    args = parser.parse_args(argv)
    from anomaly_trainer.forecast import ModelSettings, train  # lambdas/ is on sys.path once anomaly_cli is in

    print(f"{'file':<58} {'points':>6} {'MAPE':>8} {'sMAPE':>7} {'train s':>8}")
    for path in sorted(args.data.glob("*/*.csv")):
        _, _, ts, values = read_input(path)
        t0 = time.perf_counter()
        result = train(ts, values, ModelSettings(), now=ts[-1] + 300, horizon_days=8)
        took = time.perf_counter() - t0
        mape = "n/a" if result.errors.mape is None else f"{result.errors.mape:.1%}"
        print(f"{path.parent.name + '/' + path.name:<58} {len(ts):>6} {mape:>8} {result.errors.smape:>7.1%} "
              f"{took:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
