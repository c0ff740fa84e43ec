"""The synthetic corpus and the speed figure of `make bench-anomaly` (printed by `benchmarks.run_nab`), and the
sweep of the Prophet fit settings (`python -m benchmarks.bench_anomaly --fit-sweep`, several minutes).

- Synthetic corpus: seeded series of `benchmarks.synthetic`, one of each loss kind issue 15 names (a variance
  change, a short spike, a daily cron job that is NOT an anomaly, a change of scale, a held shift, a holiday in a
  weekly-seasonal series, and a 90-day weekly-seasonal series with one event of each kind). Windows follow NAB's
  rule (10% of the file shared by its events, centred on each). A check beside nab-dev that nothing was tuned on.
- Speed: `akidb-anomaly score` on the 90-day series (25,920 points) in a fresh process pinned to one CPU:
  wall and CPU seconds (the CPU figure includes cmdstan's child processes), points per second.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import importlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks import synthetic
from benchmarks.nab_scoring import FileLabels, best_threshold, normalised, probation_length, score_file
from infra.core.paths import ROOT
from infra.tools.anomaly_cli import band_fitter, make_band_fitter  # also puts lambdas/ on sys.path

scoring = importlib.import_module("anomaly_core.scoring")
streaming = importlib.import_module("anomaly_core.streaming")
forecast = importlib.import_module("anomaly_trainer.forecast")

if TYPE_CHECKING:
    from anomaly_core.scoring import BandPoint
    from anomaly_core.streaming import Fitter, StreamParams

Series = tuple[list[float], list[float], list[int]]
CORPUS: tuple[tuple[str, Callable[[], Series]], ...] = (
    ("variance_change", synthetic.variance_change),
    ("short_spike", synthetic.short_spike),
    ("daily_cron", synthetic.daily_cron),
    ("scale_change", synthetic.scale_change),
    ("sustained_shift", synthetic.sustained_shift),
    ("holiday_28d", lambda: synthetic.holiday(days=28)),
    ("weekly_seasonal_90d", lambda: synthetic.weekly_seasonal(days=90)),
)
SPEED_DAYS = 90


def nab_windows(n: int, events: Sequence[int]) -> list[tuple[int, int]]:
    """NAB's windows: 10% of the file's length shared by its events, each window centred on its event."""
    if not events:
        return []
    length = int(0.1 * n / len(events))
    return [(max(0, e - length // 2), min(n - 1, e + length // 2)) for e in events]


def cached_bands(cache: Path, name: str, ts: Sequence[float], values: Sequence[float], params: StreamParams,
                 rescore: bool, fitter: Fitter = band_fitter,
                 settings: object | None = None) -> tuple[list[BandPoint | None], float]:
    """The replay's bands in force at each row, cached under `cache` by replay schedule and fit settings."""
    settings = forecast.ModelSettings() if settings is None else settings
    key = hashlib.sha256(f"{params!r} {settings!r}".encode()).hexdigest()[:12]
    path = cache / f"{name.replace('/', '__')}.{key}.bands.json"
    if path.exists() and not rescore:
        rows = json.loads(path.read_text())
        return [None if r is None else scoring.BandPoint(*r) for r in rows], 0.0
    t0 = time.perf_counter()
    bands = streaming.stream_bands(ts, values, fitter, params)
    took = time.perf_counter() - t0
    path.write_text(json.dumps([None if b is None else [b.ts, b.yhat, b.lower, b.upper] for b in bands]))
    return bands, took


@dataclasses.dataclass
class Replayed:
    labels: FileLabels
    ts: list[float]
    values: list[float]
    bands: list[BandPoint | None]
    fit_s: float


def synthetic_corpus(cache: Path, rescore: bool, settings: object | None = None) -> list[Replayed]:
    """Every corpus series replayed with the trainer's Prophet fit (bands cached like nab-dev's)."""
    out = []
    for name, make in CORPUS:
        ts, values, events = make()
        fit_settings = forecast.ModelSettings() if settings is None else settings
        bands, took = cached_bands(cache, f"synthetic__{name}", ts, values, streaming.StreamParams(), rescore,
                                   make_band_fitter(fit_settings), fit_settings)
        labels = FileLabels(name=f"synthetic/{name}", n=len(ts), windows=nab_windows(len(ts), events),
                            probation=probation_length(len(ts)))
        out.append(Replayed(labels, ts, values, bands, took))
    return out


def write_csv(path: Path, ts: Sequence[float], values: Sequence[float]) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["timestamp", "value"])
        for t, v in zip(ts, values, strict=True):
            w.writerow([datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S"), f"{v:.4f}"])


@dataclasses.dataclass
class Speed:
    points: int
    wall_s: float
    cpu_s: float
    cpu: int


def speed(days: int = SPEED_DAYS) -> Speed:
    """`akidb-anomaly score` on the weekly-seasonal synthetic series, in a fresh process pinned to one CPU."""
    ts, values, _ = synthetic.weekly_seasonal(days=days)
    cpu = max(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.csv", Path(tmp) / "out.csv"
        write_csv(src, ts, values)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "infra.tools.anomaly_cli", "score", str(src), str(dst)], cwd=ROOT,
                       check=True, capture_output=True, preexec_fn=lambda: os.sched_setaffinity(0, {cpu}))
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        rows = sum(1 for _ in dst.open()) - 1
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Speed(points=rows, wall_s=wall, cpu_s=cpu_s, cpu=cpu)


def print_speed(s: Speed) -> None:
    print(f"speed: akidb-anomaly score on a {s.points}-point series ({s.points // 288} days, synthetic weekly) on CPU "
          f"{s.cpu} alone: {s.wall_s:.1f} s wall ({s.points / s.wall_s:.0f} points/s), {s.cpu_s:.1f} s CPU "
          f"({s.points / s.cpu_s:.0f} points/s); load average {os.getloadavg()[0]:.1f}")


def print_trainer_speed(settings: object | None = None, days: int = SPEED_DAYS) -> None:
    """The trainer's `train` (validation fit, final fit, 8-day band, seed residuals) on the same series, this
    process pinned to one CPU for the run."""
    chosen = forecast.ModelSettings() if settings is None else settings
    ts, values, _ = synthetic.weekly_seasonal(days=days)
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {max(before)})
    try:
        t0 = time.perf_counter()
        result = forecast.train(ts, values, chosen, now=ts[-1] + synthetic.STEP_S, horizon_days=8)
        took = time.perf_counter() - t0
    finally:
        os.sched_setaffinity(0, before)
    mape = "n/a" if result.errors.mape is None else f"{result.errors.mape:.2%}"
    print(f"speed: trainer on the same {len(ts)} points ({chosen!r}): {took:.1f} s, validation MAPE {mape}")


def corpus_score(replayed: Sequence[Replayed], threshold: float | None = None,
                 params: object | None = None) -> tuple[float, float, list[list[float]]]:
    """(threshold, normalised NAB score, scores): at `threshold`, or at the corpus' own best one."""
    p = scoring.DEFAULT_PARAMS if params is None else params
    scores = [streaming.score_with_bands(r.values, r.bands, r.ts, p) for r in replayed]
    labels = [r.labels for r in replayed]
    if threshold is None:
        threshold, raw = best_threshold(labels, scores)
    else:
        raw = sum(score_file(lab, ss, threshold).score for lab, ss in zip(labels, scores, strict=True))
    return threshold, normalised(raw, labels), scores


def fit_sweep(cache: Path) -> None:
    """The synthetic corpus replayed under each Prophet fit setting: Prophet time and score."""
    base = forecast.ModelSettings()
    print_trainer_speed(dataclasses.replace(base, max_fit_points=None, tol_rel_grad=None))
    grid = [("max_fit_points", x) for x in (2016, 4032, 8064, None)] + [("tol_rel_grad", x) for x in (None, 1e9)]
    print("Prophet fit settings on the synthetic corpus (bands of the replay; score at its own best threshold):")
    for field, value in grid:
        settings = dataclasses.replace(base, **{field: value})
        replayed = synthetic_corpus(cache, rescore=True, settings=settings)  # rescored: the time is the figure
        th, score, _ = corpus_score(replayed)
        long = next(r for r in replayed if r.labels.name.endswith("_90d"))
        print(f"  {field}={value!s:<6} score {score:5.1f} at threshold {th:.3f}; Prophet bands of the 90-day series "
              f"{long.fit_s:.1f} s (0: cached), corpus {sum(r.fit_s for r in replayed):.1f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cache", type=Path, default=Path("build/bench-anomaly"))
    parser.add_argument("--fit-sweep", action="store_true", help="replay the corpus under other fit settings")
    args = parser.parse_args(argv)
    args.cache.mkdir(parents=True, exist_ok=True)
    print_speed(speed())
    print_trainer_speed()
    if args.fit_sweep:
        fit_sweep(args.cache)
    return 0


if __name__ == "__main__":
    sys.exit(main())
