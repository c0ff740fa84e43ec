"""The novelty signal after ARTime (anomaly_core.art) by itself on shared/nab-dev, per family (issue 28).

No forecast and no replay of the scorer: each file streams through `art.step` with the running range of the past
RANGE_DAYS days (as the scorer keeps it), and the signal's own output is NAB's anomaly score. Printed per family:
the NAB standard-profile score at that family's best threshold and at a few fixed ones, and the detections after
probation inside and outside the windows. A quick look at the signal's settings (seconds, not a LOFO run: the
threshold is the family's own, so it flatters); `python -m benchmarks.art_probe --data /work/shared/nab-dev
--set window=8 --set step=6`.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import math
import sys
import time
from pathlib import Path

from benchmarks.nab_scoring import FileLabels, best_threshold, labels_for, normalised, score_file
from benchmarks.run_nab import DEFAULT_DATA, read

art = importlib.import_module("anomaly_core.art")
scoring = importlib.import_module("anomaly_core.scoring")
FIXED = (0.5, 0.55, 0.6, 0.7)


def novelty_scores(ts: list[float], values: list[float], params: object) -> list[float]:
    """The signal's output per row (0 for a row the stream leaves out: a repeated or late timestamp, NaN)."""
    state, ranges, out, last = art.ArtState(), [], [], -math.inf
    for t, v in zip(ts, values, strict=True):
        if not (t > last and math.isfinite(v)):
            out.append(0.0)
            continue
        last = t
        c, state = art.step(state, v, *scoring.running_range(ranges), params)
        out.append(c)
        ranges = scoring._ranges_with(ranges, math.floor(t / 86400), v)
    return out


def _setting(text: str) -> tuple[str, float | int]:
    name, sep, raw = text.partition("=")
    names = {f.name for f in dataclasses.fields(art.ArtParams)}
    if not sep or name not in names:
        raise argparse.ArgumentTypeError(f"--set takes NAME=VALUE with NAME one of {', '.join(sorted(names))}, "
                                         f"got {text!r}")
    try:
        return name, int(raw) if raw.lstrip("-").isdigit() else float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--set {name}: {raw!r} is not a number") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--set", type=_setting, action="append", default=[], metavar="NAME=VALUE",
                        help="an ArtParams field to change (repeatable)")
    args = parser.parse_args(argv)
    try:
        params = dataclasses.replace(art.DEFAULT_ART, **dict(args.set))
    except ValueError as e:
        parser.error(str(e))
    windows = json.loads((args.data / "windows.json").read_text())
    by_family: dict[str, list[tuple[FileLabels, list[float]]]] = {}
    t0 = time.thread_time()
    for name in sorted(windows):
        raw, ts, values = read(args.data / name)
        by_family.setdefault(name.split("/", 1)[0], []).append(
            (labels_for(name, raw, windows[name]), novelty_scores(ts, values, params)))
    print(f"ArtParams {params}")
    for family, items in by_family.items():
        labels = [lab for lab, _ in items]
        inside = sum(1 for lab, s in items for i, x in enumerate(s) if x > 0 and i >= lab.probation
                     and lab.values[i][0] >= 0)
        outside = sum(1 for lab, s in items for i, x in enumerate(s) if x > 0 and i >= lab.probation
                      and lab.values[i][0] < 0)
        if not any(lab.windows for lab in labels):
            fps = " ".join(f"{th}: {sum(score_file(lab, s, th).false_positives for lab, s in items)}"
                           for th in FIXED)
            print(f"  {family:<22} false detections at {fps}")
            continue
        th, total = best_threshold(labels, [s for _, s in items])
        fixed = {t: sum(score_file(lab, s, t).score for lab, s in items) for t in FIXED}
        at = " ".join(f"{t}: {normalised(raw, labels):5.1f}" for t, raw in fixed.items())
        print(f"  {family:<22} best {normalised(total, labels):5.1f} at {th:.3f} | {at} | detections in/out "
              f"windows {inside}/{outside}")
    print(f"thread CPU {time.thread_time() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
