"""`make bench-anomaly`: score every shared/nab-dev series with the streaming detector, then the NAB profile.

Prints the dev standard score per file and in total (one threshold for the set), the score curve over the
threshold, a sweep of the main scoring parameters (each at its own best threshold: a plateau, not a peak, is what
to ship), and the production view at the shipped `confidenceThreshold`: episodes per week per metric, the share
of episodes that open outside every labelled window, and the windows caught.

The Prophet bands of the replay (the slow part) are cached per file under --cache, keyed by the replay
schedule, so the scoring stage can be swept in seconds; `--rescore` recomputes them.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import importlib
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.nab_scoring import FileLabels, best_threshold, labels_for, normalised, score_file
from infra.config.anomaly import AnomalyConfig
from infra.tools.anomaly_cli import band_fitter, parse_timestamp  # also puts lambdas/ on sys.path

# lambdas/ is on sys.path only once anomaly_cli is imported (the Lambda folders are top-level packages).
episodes = importlib.import_module("anomaly_core.episodes")
scoring = importlib.import_module("anomaly_core.scoring")
streaming = importlib.import_module("anomaly_core.streaming")
Episode, step = episodes.Episode, episodes.step
BandPoint, ScoringParams = scoring.BandPoint, scoring.ScoringParams
StreamParams, stream_bands = streaming.StreamParams, streaming.stream_bands
assess_with_bands, score_with_bands = streaming.assess_with_bands, streaming.score_with_bands

if TYPE_CHECKING:
    from anomaly_core.scoring import Assessment, BandPoint

DEFAULT_DATA = Path("/work/shared/nab-dev")
WEEK_S = 7 * 86400
CURVE = (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9)


def read(path: Path) -> tuple[list[str], list[float], list[float]]:
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    return [r["timestamp"] for r in rows], [parse_timestamp(r["timestamp"]) for r in rows], \
        [float(r["value"]) for r in rows]


def cached_bands(cache: Path, name: str, ts: list[float], values: list[float], params: StreamParams,
                 rescore: bool) -> tuple[list[BandPoint | None], float]:
    key = hashlib.sha256(repr(params).encode()).hexdigest()[:12]
    path = cache / f"{name.replace('/', '__')}.{key}.bands.json"
    if path.exists() and not rescore:
        rows = json.loads(path.read_text())
        return [None if r is None else BandPoint(*r) for r in rows], 0.0
    t0 = time.perf_counter()
    bands = stream_bands(ts, values, band_fitter, params)
    took = time.perf_counter() - t0
    path.write_text(json.dumps([None if b is None else [b.ts, b.yhat, b.lower, b.upper] for b in bands]))
    return bands, took


@dataclasses.dataclass
class Production:
    episodes: int
    false_episodes: int
    windows: int
    caught: int
    weeks: float


def production_view(labels: Sequence[FileLabels], assessed: Sequence[Sequence[Assessment | None]],
                    ts: Sequence[Sequence[float]], threshold: float) -> Production:
    """Episodes as the detector opens them (anomaly_core.episodes), after each file's probation."""
    out = Production(0, 0, 0, 0, 0.0)
    for lab, ass, tss in zip(labels, assessed, ts, strict=True):
        ep = Episode()
        caught: set[int] = set()
        for i, a in enumerate(ass):
            if a is None:
                continue
            ep, event = step(ep, tss[i], a.confidence, a.is_anomaly, threshold)
            if event != "start" or i < lab.probation:
                continue
            out.episodes += 1
            inside = [w for w, (s, e) in enumerate(lab.windows) if s <= i <= e]
            if inside:
                caught.update(inside)
            else:
                out.false_episodes += 1
        out.windows += len(lab.windows)
        out.caught += len(caught)
        out.weeks += (tss[-1] - tss[lab.probation]) / WEEK_S
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--cache", type=Path, default=Path("build/bench-anomaly"),
                        help="Prophet bands per file are cached here")
    parser.add_argument("--rescore", action="store_true", help="recompute the cached bands")
    parser.add_argument("--sweep", action="store_true", help="also sweep the main scoring parameters")
    args = parser.parse_args(argv)
    windows = json.loads((args.data / "windows.json").read_text())
    args.cache.mkdir(parents=True, exist_ok=True)
    stream = StreamParams()
    params = ScoringParams()
    labels, names, all_ts, all_values, all_bands = [], [], [], [], []
    fit_s = score_s = 0.0
    points = 0
    for name in sorted(windows):
        raw, ts, values = read(args.data / name)
        bands, took = cached_bands(args.cache, name, ts, values, stream, args.rescore)
        fit_s += took
        points += len(ts)
        labels.append(labels_for(name, raw, windows[name]))
        names.append(name)
        all_ts.append(ts)
        all_values.append(values)
        all_bands.append(bands)
    t0 = time.perf_counter()
    scores = [score_with_bands(v, b, t, params) for v, b, t in zip(all_values, all_bands, all_ts, strict=True)]
    score_s = time.perf_counter() - t0
    th, total = best_threshold(labels, scores)
    aws = [i for i, n in enumerate(names) if n.startswith("realAWSCloudwatch/")]
    art = [i for i, n in enumerate(names) if n.startswith("artificialNoAnomaly/")]
    print(f"threshold (best on all {len(names)} files): {th:.4f}")
    print(f"{'file':<58} {'windows':>7} {'TP':>3} {'FN':>3} {'FP':>4} {'score':>7}  first detections (index)")
    for i, name in enumerate(names):
        r = score_file(labels[i], scores[i], th)
        print(f"{name:<58} {len(labels[i].windows):>7} {r.true_positives:>3} {r.false_negatives:>3} "
              f"{r.false_positives:>4} {r.score:>7.3f}  {r.detections[:6]}")
    aws_raw = sum(score_file(labels[i], scores[i], th).score for i in aws)
    print(f"NAB standard profile, normalised, all {len(names)} dev files: {normalised(total, labels):.1f}")
    print(f"NAB standard profile, normalised, realAWSCloudwatch dev files at that threshold: "
          f"{normalised(aws_raw, [labels[i] for i in aws]):.1f}")
    worst = max(max(scores[i][labels[i].probation:], default=0.0) for i in art)
    print(f"anomaly-free artificial series: max score after probation {worst:.4f}")
    print("threshold curve (normalised standard score, all dev files):")
    curve = [(c, normalised(sum(score_file(lab, ss, c).score for lab, ss in zip(labels, scores, strict=True)),
                            labels)) for c in CURVE]
    print("  " + "  ".join(f"{c:.2f}:{v:5.1f}" for c, v in curve))
    shipped = AnomalyConfig().confidence_threshold
    print(f"production view (episodes as the detector opens them, after probation; dev files "
          f"{sum(len(lab.windows) for lab in labels)} windows):")
    print(f"  {'threshold':>9} {'episodes':>8} {'per week per metric':>19} {'false':>6} {'windows caught':>14}")
    assessed = [assess_with_bands(v, b, t, params) for v, b, t in zip(all_values, all_bands, all_ts, strict=True)]
    for c in sorted({*CURVE[2:], shipped}):
        prod = production_view(labels, assessed, all_ts, c)
        false_share = prod.false_episodes / prod.episodes if prod.episodes else 0.0
        mark = "  <- shipped confidenceThreshold" if c == shipped else ""
        print(f"  {c:>9.2f} {prod.episodes:>8} {prod.episodes / prod.weeks:>19.2f} {false_share:>6.0%} "
              f"{prod.caught:>6} of {prod.windows:<4}{mark}")
    if args.sweep:
        print("parameter sweep (normalised score at each setting's own best threshold, all dev files):")
        grid = [("spatial_tolerance", x) for x in (0.05, 0.1, 0.15, 0.2, 0.3, 10.0)] + \
               [("recurring_damp", x) for x in (1.0, 0.75, 0.5, 0.25)] + \
               [("recurring_ratio", x) for x in (0.3, 0.5, 0.7)] + [("shape", x) for x in (True, False)]
        for field, value in grid:
            p = dataclasses.replace(params, **{field: value})
            ss = [score_with_bands(v, b, t, p) for v, b, t in zip(all_values, all_bands, all_ts, strict=True)]
            t_best, raw = best_threshold(labels, ss)
            print(f"  {field}={value!s:<6} score {normalised(raw, labels):5.1f} at threshold {t_best:.3f}")
    print(f"replay: {points} points; Prophet bands {fit_s:.1f} s (0 when cached), scoring {score_s:.1f} s "
          f"({points / max(score_s, 1e-9):.0f} points/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
