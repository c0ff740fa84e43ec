"""`akidb-anomaly score INPUT.csv OUTPUT.csv`: offline streaming scoring of a NAB-layout series.

Reads `timestamp,value`, writes `timestamp,value,anomaly_score` with one row per input row in input order
(duplicate timestamps included), scores in [0, 1]: a row scoring above `--threshold` (the stack's
anomaly.confidenceThreshold, its default unless given) is one the detector would page for at that threshold.
A row whose timestamp repeats or steps back (CloudWatch and Prometheus can return that) is scored 0 and left out
of the history, with a logged reason: never an exit.
It runs the trainer's Prophet fit and the detector's
band -> score -> confidence code (lambdas/anomaly_trainer, lambdas/anomaly_core) in streaming fashion.
"""

from __future__ import annotations

import argparse
import csv
import logging
import math
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from infra.core.paths import LAMBDAS_DIR

if str(LAMBDAS_DIR) not in sys.path:
    # The Lambda folders are top-level packages in their zips; import them the same way here.
    sys.path.insert(0, str(LAMBDAS_DIR))

from anomaly_core.settings import Settings
from anomaly_core.streaming import Fitter, StreamParams, stream_scores

DEFAULT_THRESHOLD = Settings.confidence_threshold  # the stack's default anomaly.confidenceThreshold

TIMESTAMP_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%SZ")


class InputError(ValueError):
    """A malformed input file: the message names the row and what is allowed."""


def parse_timestamp(text: str) -> float:
    for fmt in TIMESTAMP_FORMATS:
        try:
            return datetime.strptime(text.strip(), fmt).replace(tzinfo=UTC).timestamp()
        except ValueError:
            continue
    raise InputError(f"timestamp {text!r} is not one of the formats 'YYYY-MM-DD HH:MM:SS[.ffffff]' or ISO 8601")


def make_band_fitter(settings: Any = None) -> Fitter:
    """The replay's fitter: the trainer's Prophet `fit` and `band` (its ModelSettings unless others are given)."""
    from anomaly_trainer.forecast import ModelSettings, TrainingError, band, fit

    chosen = ModelSettings() if settings is None else settings

    def fitter(hist_ts: Sequence[float], hist_values: Sequence[float], start: float,
               periods: int) -> list[tuple[float, float, float, float]]:
        try:
            model = fit(hist_ts, hist_values, chosen)
        except TrainingError:
            return []  # not enough finite history yet: no band, score 0 until the next refit
        return band(model, start, periods)

    return fitter


def band_fitter(hist_ts: Sequence[float], hist_values: Sequence[float], start: float,
                periods: int) -> list[tuple[float, float, float, float]]:
    return make_band_fitter()(hist_ts, hist_values, start, periods)


def score_series(ts: Sequence[float], values: Sequence[float], params: StreamParams | None = None,
                 threshold: float = DEFAULT_THRESHOLD) -> list[float]:
    return stream_scores(ts, values, band_fitter, params or StreamParams(), threshold)


def read_input(path: Path) -> tuple[list[str], list[str], list[float], list[float]]:
    try:
        with path.open(newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None or [h.strip() for h in header[:2]] != ["timestamp", "value"]:
                raise InputError(f"{path}: the header must be 'timestamp,value' (NAB layout), got {header}")
            raw_ts, raw_values, ts, values = [], [], [], []
            for n, row in enumerate(reader, start=2):
                if len(row) < 2:
                    raise InputError(f"{path}:{n}: expected 'timestamp,value', got {row}")
                try:
                    value = float(row[1]) if row[1].strip() else math.nan
                except ValueError:
                    raise InputError(f"{path}:{n}: value {row[1]!r} is not a number") from None
                try:
                    stamp = parse_timestamp(row[0])
                except InputError as e:
                    raise InputError(f"{path}:{n}: {e}") from None
                raw_ts.append(row[0])
                raw_values.append(row[1])
                ts.append(stamp)
                values.append(value)
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror}") from None
    return raw_ts, raw_values, ts, values


def score_file(input_path: Path, output_path: Path, threshold: float = DEFAULT_THRESHOLD) -> int:
    raw_ts, raw_values, ts, values = read_input(input_path)
    scores = score_series(ts, values, threshold=threshold) if ts else []
    with output_path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["timestamp", "value", "anomaly_score"])
        for stamp, value, s in zip(raw_ts, raw_values, scores, strict=True):
            writer.writerow([stamp, value, f"{s:.6f}"])
    return len(scores)


def _threshold(text: str) -> float:
    """--threshold: a number in [0, 1], the range of anomaly.confidenceThreshold."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (allowed: a confidence in [0, 1])") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is outside [0, 1], the range of anomaly.confidenceThreshold")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="akidb-anomaly", description="AkiDB anomaly detection tools")
    sub = parser.add_subparsers(dest="command", required=True)
    sc = sub.add_parser("score", help="score a NAB-layout CSV (timestamp,value) in streaming fashion")
    sc.add_argument("input", type=Path)
    sc.add_argument("output", type=Path)
    sc.add_argument("--threshold", type=_threshold, default=DEFAULT_THRESHOLD,
                    help="the confidence the detector pages above (anomaly.confidenceThreshold; default "
                         f"{DEFAULT_THRESHOLD}, the stack's): the scores reproduce its pages at it")
    args = parser.parse_args(argv)
    # Rows the stream leaves out (a timestamp that steps back or repeats, a gap, a non-number) are logged, not fatal.
    logging.basicConfig(level=logging.WARNING, format="akidb-anomaly: %(message)s")
    try:
        n = score_file(args.input, args.output, args.threshold)
    except InputError as e:
        print(f"akidb-anomaly: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"akidb-anomaly: cannot write {args.output}: {e.strerror}", file=sys.stderr)
        return 2
    print(f"scored {n} rows -> {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
