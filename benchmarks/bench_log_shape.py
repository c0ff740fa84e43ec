"""Edge cold init with and without the one log shape (lambdas/logshape): does the edge keep its cold-start budget?

Runs bench_edge's cold-init script (fresh process: imports, settings + model + session, first request, model
already in /tmp) alternately from the sources of a git ref (default `main`, extracted with `git archive`) and
from this checkout, pinned to one core, and prints the medians and the difference. Also the import and
construction cost of logshape alone (what the shape adds to a container's init).

    make log-shape-cold-start   # = python -m benchmarks.bench_log_shape --runs 7 --before main
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from benchmarks.bench_edge import COLD_SCRIPT, pin_one_core, setup
from infra.artifacts.edge_model import ensure_model
from infra.artifacts.edge_probe import LocalModelStore
from infra.core.paths import LAMBDAS_DIR, ROOT
from lambdas.edge_inference.handler import App

KEYS = ("imports_ms", "session_ms", "first_ms", "cpu_ms")
LOGSHAPE_SCRIPT = """
import sys, time, json
sys.path.insert(0, {lambdas!r})
import numpy, onnxruntime, tokenizers  # noqa: F401  (loaded before it in the edge: logging, re, json among them)
t0, c0 = time.perf_counter(), time.process_time()
import logshape
shape = logshape.Shape("edge-inference", logshape.redactor_from())
t1, c1 = time.perf_counter(), time.process_time()
print(json.dumps({{"wall_ms": (t1 - t0) * 1000, "cpu_ms": (c1 - c0) * 1000}}))
"""


def extract(ref: str, into: Path) -> Path:
    """The sources of `ref` (lambdas, infra, benchmarks) in a folder of their own."""
    data = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", ref, "lambdas", "infra",
                           "benchmarks"], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    return into


def once(script: str, cwd: Path) -> dict[str, float]:
    cpu = sorted(os.sched_getaffinity(0))[0] if hasattr(os, "sched_getaffinity") else None
    prefix = ["taskset", "-c", str(cpu)] if cpu is not None and shutil.which("taskset") else []
    proc = subprocess.run([*prefix, sys.executable, "-c", script], capture_output=True, text=True, cwd=cwd,
                          check=True)
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="fresh processes per side (alternating)")
    parser.add_argument("--before", default="main", help="git ref of the sources to compare against")
    args = parser.parse_args(argv)
    model = ensure_model(quiet=True)
    pin_one_core()
    with tempfile.TemporaryDirectory(prefix="bench-logshape-") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "run").mkdir()
        settings = setup(tmp / "run", model)
        primer = App(settings_path=settings, s3_factory=lambda _s: LocalModelStore(model.onnx_int8),
                     tmp_dir=tmp / "run", out=io.StringIO())
        primer.warm()  # the model in /tmp: cold runs measure init, not the download
        roots = {"before": extract(args.before, tmp / "before"), "after": ROOT}
        # The extracted tree has no build/: its model path is this checkout's (same file).
        samples: dict[str, list[dict[str, float]]] = {k: [] for k in roots}
        for _ in range(args.runs):
            for side, root in roots.items():
                script = COLD_SCRIPT.format(root=str(root), settings=str(settings), model=str(model.onnx_int8),
                                            tmp=str(tmp / "run"))
                samples[side].append(once(script, root))
        alone = [once(LOGSHAPE_SCRIPT.format(lambdas=str(LAMBDAS_DIR)), ROOT) for _ in range(args.runs)]
    print(f"edge cold init, median of {args.runs} fresh processes per side (alternating, 1 core, model in /tmp; "
          f"python {sys.version.split()[0]})")
    print(f"  {'':<22}" + "".join(f"{k:>12}" for k in (*KEYS, "total_ms")))
    med: dict[str, dict[str, float]] = {}
    for side, rows in samples.items():
        med[side] = {k: statistics.median(r[k] for r in rows) for k in KEYS}
        med[side]["total_ms"] = statistics.median(r["imports_ms"] + r["session_ms"] + r["first_ms"] for r in rows)
        label = f"{side} ({args.before})" if side == "before" else f"{side} (this checkout)"
        print(f"  {label:<22}" + "".join(f"{med[side][k]:>12.1f}" for k in (*KEYS, "total_ms")))
    print(f"  {'difference':<22}" + "".join(f"{med['after'][k] - med['before'][k]:>+12.1f}"
                                            for k in (*KEYS, "total_ms")))
    print(f"  logshape alone (import + Shape with the default redaction, after the edge's libraries): wall "
          f"{statistics.median(a['wall_ms'] for a in alone):.2f} ms, CPU "
          f"{statistics.median(a['cpu_ms'] for a in alone):.2f} ms (median of {len(alone)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
