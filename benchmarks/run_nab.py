"""`make bench-anomaly`: score every shared/nab-dev series with the streaming detector, then the NAB profile.

Prints the dev standard score per file and in total (one threshold for the set), the score curve over the
threshold, a sweep of the main scoring parameters (each at its own best threshold: a plateau, not a peak, is what
to ship), and the production view at the shipped `confidenceThreshold`: episodes per week per metric, the share
of episodes that open outside every labelled window, and the windows caught. Then the same figures on the
synthetic corpus of `benchmarks.bench_anomaly` (series of each loss kind issue 15 names, at the threshold chosen
on dev: a check nothing was tuned on), and the speed of `akidb-anomaly score` on a 90-day series.

The Prophet bands of the replay (the slow part) are cached per file under --cache, keyed by the replay
schedule and the fit settings, so the scoring stage can be swept in seconds; `--rescore` recomputes them.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import importlib
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.bench_anomaly import (
    Replayed,
    cached_bands,
    corpus_score,
    print_speed,
    print_trainer_speed,
    speed,
    synthetic_corpus,
)
from benchmarks.nab_scoring import FileLabels, best_threshold, labels_for, normalised, score_file
from infra.config.anomaly import AnomalyConfig
from infra.tools.anomaly_cli import parse_timestamp  # also puts lambdas/ on sys.path

# lambdas/ is on sys.path only once anomaly_cli is imported (the Lambda folders are top-level packages).
episodes = importlib.import_module("anomaly_core.episodes")
scoring = importlib.import_module("anomaly_core.scoring")
streaming = importlib.import_module("anomaly_core.streaming")
paged_scores = episodes.paged_scores
ScoringParams = scoring.ScoringParams
StreamParams = streaming.StreamParams
assess_with_bands = streaming.assess_with_bands

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


@dataclasses.dataclass
class Production:
    episodes: int
    false_episodes: int
    windows: int
    caught: int
    weeks: float
    false_at: list[str] = dataclasses.field(default_factory=list)  # "<file> day <d>" of each false episode

    @property
    def false_share(self) -> float:
        return self.false_episodes / self.episodes if self.episodes else 0.0


def production_view(labels: Sequence[FileLabels], assessed: Sequence[Sequence[Assessment | None]],
                    ts: Sequence[Sequence[float]], threshold: float) -> Production:
    """Episodes as the detector opens them (episodes.replay, as the offline score), after each file's probation."""
    out = Production(0, 0, 0, 0, 0.0)
    for lab, ass, tss in zip(labels, assessed, ts, strict=True):
        caught: set[int] = set()
        for i, _, _, event in episodes.replay(ass, threshold):
            if event != "start" or i < lab.probation:
                continue
            out.episodes += 1
            inside = [w for w, (s, e) in enumerate(lab.windows) if s <= i <= e]
            if inside:
                caught.update(inside)
            else:
                out.false_episodes += 1
                out.false_at.append(f"{lab.name.rsplit('/', 1)[-1]} day {(tss[i] - tss[0]) / 86400:.1f}")
        out.windows += len(lab.windows)
        out.caught += len(caught)
        out.weeks += (tss[-1] - tss[lab.probation]) / WEEK_S
    return out


def paged(assessed: Sequence[Assessment | None]) -> list[float]:
    """The offline anomaly score of each row (what score_with_bands returns: the pages at the shipped threshold,
    episodes.paged_scores), from assessments made once."""
    return paged_scores(assessed, AnomalyConfig().confidence_threshold)


def assess_all(values: Sequence[Sequence[float]], bands: Sequence[Sequence[BandPoint | None]],
               ts: Sequence[Sequence[float]], params: ScoringParams) -> list[list[Assessment | None]]:
    return [assess_with_bands(v, b, t, params) for v, b, t in zip(values, bands, ts, strict=True)]


def total_at(labels: Sequence[FileLabels], scores: Sequence[Sequence[float]], threshold: float) -> float:
    return normalised(sum(score_file(lab, ss, threshold).score for lab, ss in zip(labels, scores, strict=True)),
                      labels)


def print_files(labels: Sequence[FileLabels], scores: Sequence[Sequence[float]], threshold: float) -> None:
    print(f"{'file':<58} {'windows':>7} {'TP':>3} {'FN':>3} {'FP':>4} {'score':>7}  first detections (index)")
    for lab, ss in zip(labels, scores, strict=True):
        r = score_file(lab, ss, threshold)
        print(f"{lab.name:<58} {len(lab.windows):>7} {r.true_positives:>3} {r.false_negatives:>3} "
              f"{r.false_positives:>4} {r.score:>7.3f}  {r.detections[:6]}")


def print_curve(what: str, labels: Sequence[FileLabels], scores: Sequence[Sequence[float]]) -> None:
    print(f"threshold curve (normalised standard score, {what}):")
    print("  " + "  ".join(f"{c:.2f}:{total_at(labels, scores, c):5.1f}" for c in CURVE))


def print_production(what: str, labels: Sequence[FileLabels], assessed: Sequence[Sequence[Assessment | None]],
                     ts: Sequence[Sequence[float]], shipped: float) -> None:
    print(f"production view, {what} (episodes as the detector opens them, after probation; "
          f"{sum(len(lab.windows) for lab in labels)} windows):")
    print(f"  {'threshold':>9} {'episodes':>8} {'per week per metric':>19} {'false':>6} {'windows caught':>14}")
    for c in sorted({*CURVE[2:], shipped}):
        prod = production_view(labels, assessed, ts, c)
        mark = "  <- shipped confidenceThreshold" if c == shipped else ""
        print(f"  {c:>9.3f} {prod.episodes:>8} {prod.episodes / prod.weeks:>19.2f} {prod.false_share:>6.0%} "
              f"{prod.caught:>6} of {prod.windows:<4}{mark}")
    false_at = production_view(labels, assessed, ts, shipped).false_at
    print(f"  false episodes at {shipped}: {', '.join(false_at) if false_at else 'none'}")


SWEEP: tuple[tuple[str, object], ...] = (
    *(("spatial_tolerance", x) for x in (0.05, 0.1, 0.15, 0.2, 0.3, math.inf)),
    *(("recurring_damp", x) for x in (1.0, 0.75, 0.5, 0.25)),
    *(("recurring_ratio", x) for x in (0.3, 0.5, 0.7)),
    *(("shape", x) for x in (True, False)),
    *(("news_quantile", x) for x in (0.95, 0.97, 0.98, 0.99, 1.0)),  # 1.0: the last two days' largest (before)
    *(("news_same_time", x) for x in (0, 6, 12, 24)),
    *(("onset_decay", x) for x in (0.0, 0.3, 0.5, 0.7, 1.0)),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--cache", type=Path, default=Path("build/bench-anomaly"),
                        help="Prophet bands per file are cached here")
    parser.add_argument("--rescore", action="store_true", help="recompute the cached bands")
    parser.add_argument("--sweep", action="store_true", help="also sweep the main scoring parameters")
    parser.add_argument("--no-speed", action="store_true", help="leave out the 90-day speed run")
    args = parser.parse_args(argv)
    windows = json.loads((args.data / "windows.json").read_text())
    args.cache.mkdir(parents=True, exist_ok=True)
    stream = StreamParams()
    params = ScoringParams()
    shipped = AnomalyConfig().confidence_threshold
    labels, all_ts, all_values, all_bands = [], [], [], []
    fit_s = 0.0
    for name in sorted(windows):
        raw, ts, values = read(args.data / name)
        bands, took = cached_bands(args.cache, name, ts, values, stream, args.rescore)
        fit_s += took
        labels.append(labels_for(name, raw, windows[name]))
        all_ts.append(ts)
        all_values.append(values)
        all_bands.append(bands)
    points = sum(len(t) for t in all_ts)
    t0 = time.perf_counter()
    assessed = assess_all(all_values, all_bands, all_ts, params)
    score_s = time.perf_counter() - t0
    scores = [paged(a) for a in assessed]
    th, total = best_threshold(labels, scores)
    aws = [i for i, lab in enumerate(labels) if lab.name.startswith("realAWSCloudwatch/")]
    art = [i for i, lab in enumerate(labels) if lab.name.startswith("artificialNoAnomaly/")]
    print(f"threshold (best on all {len(labels)} files): {th:.4f}")
    print_files(labels, scores, th)
    aws_raw = sum(score_file(labels[i], scores[i], th).score for i in aws)
    print(f"NAB standard profile, normalised, all {len(labels)} dev files: {normalised(total, labels):.1f}")
    print(f"NAB standard profile, normalised, realAWSCloudwatch dev files at that threshold: "
          f"{normalised(aws_raw, [labels[i] for i in aws]):.1f}")
    print(f"  at the shipped confidenceThreshold {shipped}: {total_at(labels, scores, shipped):.1f}")
    worst = max(max(scores[i][labels[i].probation:], default=0.0) for i in art)
    print(f"anomaly-free artificial series: max score after probation {worst:.4f}")
    print_curve("all dev files", labels, scores)
    print_production("dev files", labels, assessed, all_ts, shipped)

    corpus = synthetic_corpus(args.cache, args.rescore)
    syn = Corpus.of(corpus, params)
    print(f"synthetic corpus ({len(corpus)} series of benchmarks.synthetic, {sum(r.labels.n for r in corpus)} points; "
          f"NAB windows around the known events), at the dev threshold {th:.4f}:")
    print_files(syn.labels, syn.scores, th)
    syn_best, syn_best_score, _ = corpus_score(corpus)
    print(f"NAB standard profile, normalised, synthetic corpus: {total_at(syn.labels, syn.scores, th):.1f} at the dev "
          f"threshold, {total_at(syn.labels, syn.scores, shipped):.1f} at {shipped}, {syn_best_score:.1f} at its own "
          f"best threshold {syn_best:.4f}")
    print_curve("synthetic corpus", syn.labels, syn.scores)
    print_production("synthetic corpus", syn.labels, syn.assessed, syn.ts, shipped)

    if args.sweep:
        print(f"parameter sweep (dev score at each setting's own best threshold; the synthetic corpus at that same "
              f"threshold; production false share / windows caught at {shipped} on dev | synthetic):")
        for field, value in SWEEP:
            p = dataclasses.replace(params, **{field: value})
            dev_assessed = assess_all(all_values, all_bands, all_ts, p)
            ss = [paged(a) for a in dev_assessed]
            t_best, raw = best_threshold(labels, ss)
            other = Corpus.of(corpus, p)
            dev_prod = production_view(labels, dev_assessed, all_ts, shipped)
            syn_prod = production_view(other.labels, other.assessed, other.ts, shipped)
            print(f"  {field}={value!s:<6} dev {normalised(raw, labels):5.1f} at {t_best:.3f}, synthetic "
                  f"{total_at(other.labels, other.scores, t_best):5.1f}; at {shipped}: dev {dev_prod.false_share:4.0%} "
                  f"false {dev_prod.caught}/{dev_prod.windows} | synthetic {syn_prod.false_share:4.0%} false "
                  f"{syn_prod.caught}/{syn_prod.windows}")
    print(f"replay: {points} dev points; Prophet bands {fit_s:.1f} s (0 when cached), scoring {score_s:.1f} s "
          f"({points / max(score_s, 1e-9):.0f} points/s); synthetic corpus Prophet bands "
          f"{sum(r.fit_s for r in corpus):.1f} s")
    if not args.no_speed:
        print_speed(speed())
        print_trainer_speed()
    return 0


@dataclasses.dataclass
class Corpus:
    labels: list[FileLabels]
    ts: list[list[float]]
    assessed: list[list[Assessment | None]]
    scores: list[list[float]]

    @classmethod
    def of(cls, replayed: Sequence[Replayed], params: ScoringParams) -> Corpus:
        assessed = assess_all([r.values for r in replayed], [r.bands for r in replayed], [r.ts for r in replayed],
                              params)
        return cls([r.labels for r in replayed], [r.ts for r in replayed], assessed, [paged(a) for a in assessed])


if __name__ == "__main__":
    sys.exit(main())
