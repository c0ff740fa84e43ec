"""`make bench-edge`: the edge function against sentence-transformers, side by side; figures in docs/performance.md.

Figures are printed, never asserted. One process pinned to one CPU core: the function's own handler
(`App.handle` on a CloudFront event: base64, JSON, tokenizer, ONNX Runtime with one thread, pooling, EMF),
sentence-transformers (fp32, torch with one thread, the same weights, `encode` of the same text) and the Optimum
INT8 path a user would pick instead (benchmarks/optimum_int8.py: exported and quantised here from the same
weights) run in the same rounds, in shuffled order, so machine noise hits all alike. Printed: the host's CPU and
its INT8-relevant flags, p50 per input length (thread CPU time beside wall time) and the ratios, the ONNX session
alone, the floor (benchmarks/edge_floor.py: the model's multiply-adds over this host's measured INT8 GEMM rate)
and the handler's distance to it, the cosine of the embeddings over the reference sentences against
sentence-transformers at its own defaults (256 tokens), cold init as Lambda runs it and split into its parts
(the built zip run by the runtime's Python in fresh processes, the model fetched from a moto server into an
empty /tmp), the 100,000-character CJK input, EMF cost, zip and model sizes. The summary table and the cold
init split are also written into docs/performance.md between its generated markers (`--no-docs` leaves the
page alone; `--cold-only` runs only the cold init and prints it).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.edge_floor import (
    GemmRate,
    cpu_description,
    floor_ms,
    int8_gemm_rate,
    linear_macs_per_token,
    model_weight_types,
)
from benchmarks.optimum_int8 import OptimumEncoder, ensure_optimum_int8
from infra.artifacts.edge_model import QUANTISATION, EdgeModel, bert_shape, ensure_model, source_dir
from infra.artifacts.edge_probe import REFERENCE_SENTENCES, SAMPLE_TEXT, LocalModelStore, origin_request_event
from infra.artifacts.packaging import RUNTIME_PYTHON, ZIP_LEVEL, MiB
from infra.components.emf_edge import baked_settings, build_package
from infra.config import EmfEdgeConfig
from infra.core.paths import ROOT
from lambdas.edge_inference.events import MAX_TEXT_CHARS
from lambdas.edge_inference.handler import App

# Cold init as Lambda runs it: a fresh interpreter of the runtime's Python (3.12, `-I -S`: nothing but the zip on
# its path) imports the zip's own files - vendored wheels and bytecode included - without writing any bytecode
# (`-B`: Lambda's /var/task is read-only), fetches the model from S3 (a moto server on this host) into an empty
# /tmp, then serves the first request. Two scripts: WHOLE imports the handler with the runtime's variable set (init
# loads the model); PARTS runs the same steps one by one, each timed, plus the TLS context the GET builds on AWS
# (not in WHOLE: the moto server is HTTP). CPU time of the process (all its threads).
COLD_WHOLE = """
import time, sys, json, io
c0 = time.process_time()
sys.path.insert(0, {root!r})
import edge_inference.model as model_module
from pathlib import Path
model_module.TMP_DIR = Path({tmp!r})
from edge_inference import handler
handler._APP.out = io.StringIO()
assert handler._APP.encoder is not None, "init did not load the model"
c1 = time.process_time()
resp = handler.handler({event!r}, None)
c2 = time.process_time()
assert resp["status"] == "200", resp
print(json.dumps({{"interpreter": c0 * 1000, "init": (c1 - c0) * 1000, "first request": (c2 - c1) * 1000}}))
"""
COLD_PARTS = """
import time, sys, json, io, os
marks = {{"interpreter start": time.process_time()}}
last = [marks["interpreter start"]]
def mark(name):
    now = time.process_time()
    marks[name] = now - last[0]
    last[0] = now
sys.path.insert(0, {root!r})
import edge_inference  # in Lambda (AWS_LAMBDA_FUNCTION_NAME set): OpenBLAS one thread
del os.environ["AWS_LAMBDA_FUNCTION_NAME"]  # the steps below are called one by one, not by the handler's init
import numpy
mark("import numpy")
import onnxruntime
mark("import onnxruntime")
import tokenizers
mark("import tokenizers")
from pathlib import Path
from edge_inference import handler, model as m
from edge_inference.digest import file_sha256
from edge_inference.settings import load
mark("function modules")
settings = load()
mark("settings")
client = handler._default_s3(settings)
client.tls_context()  # on AWS the GET is HTTPS; the moto server here is HTTP, so the step is timed by itself
mark("TLS trust store (HTTPS on AWS)")
target = Path({tmp!r}) / "model.onnx"
client.download_file(Bucket=settings.bucket, Key=settings.model_key, Filename=str(target))
mark("model fetch (S3 client + GET)")
assert file_sha256(target) == settings.model_sha256
mark("hash check (SHA-256)")
session = m.new_session(target)
mark("ONNX session")
tokenizer = m.load_tokenizer(settings)
mark("tokenizer")
app = handler._APP
app.out = io.StringIO()
app.settings, app.encoder, app.load_ms = settings, m.Encoder(settings, tokenizer, session), 1.0
resp = app.handle({event!r}, None)
assert resp["status"] == "200", resp
mark("first request")
print(json.dumps({{k: v * 1000 for k, v in marks.items()}}))
"""
LENGTHS = (16, 64, 128, 256)
PERFORMANCE_PAGE = ROOT / "docs" / "performance.md"
TABLE_BEGIN = "<!-- BEGIN GENERATED bench-edge (make bench-edge: benchmarks/bench_edge.py) -->"
TABLE_END = "<!-- END GENERATED bench-edge -->"


def pin_one_core() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})


def text_with_tokens(tokenizer_path: Path, n_tokens: int) -> str:
    """A sentence whose encoding is exactly `n_tokens` long ([CLS] and [SEP] included)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_path))
    tok.no_padding()
    tok.no_truncation()
    words = ("vector search at the edge returns nearest neighbours for every query embedding while "
             "latency stays low and metrics flow to cloudwatch in each region " * 20).split()
    for k in range(1, len(words)):
        text = " ".join(words[:k])
        if len(tok.encode(text).ids) >= n_tokens:
            return text
    raise ValueError(f"could not build a {n_tokens}-token text")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def setup(tmp: Path, model: EdgeModel) -> Path:
    shutil.copyfile(model.tokenizer, tmp / "tokenizer.json")
    (tmp / "settings.json").write_text(json.dumps(baked_settings(EmfEdgeConfig(), "bench", "us-east-1", model)))
    return tmp / "settings.json"


def cold_init(model: EdgeModel, package: Path, tmp: Path, runs: int) -> dict[str, list[dict[str, float]]]:
    """CPU ms of a cold start, whole and split into its parts: `runs` fresh processes per script, alternating,
    pinned to this process's core; the zip as Lambda unpacks it, run by the runtime's Python."""
    import boto3

    from infra.artifacts.packaging import runtime_python
    from infra.tools import daemons
    from infra.tools.drill.zip_runtime import extract

    task = extract(package, tmp / "task")
    baked = json.loads((task / "edge_inference" / "settings.json").read_text())
    event = origin_request_event({"text": SAMPLE_TEXT})
    cpu = sorted(os.sched_getaffinity(0))[0] if hasattr(os, "sched_getaffinity") else None
    prefix = ["taskset", "-c", str(cpu)] if cpu is not None and shutil.which("taskset") else []
    python = runtime_python()
    results: dict[str, list[dict[str, float]]] = {"whole": [], "parts": []}
    with daemons.moto_server() as moto:
        s3 = boto3.client("s3", region_name=baked["bucket_region"], endpoint_url=moto.url,
                          aws_access_key_id="testing", aws_secret_access_key="testing")
        s3.create_bucket(Bucket=baked["bucket"])
        s3.upload_file(str(model.onnx_int8), baked["bucket"], baked["model_key"])
        env = {**daemons.aws_env(moto.url, region=baked["bucket_region"]),
               "AWS_LAMBDA_FUNCTION_NAME": "us-east-1.bench-edge-inference"}
        for _ in range(runs):
            for kind in results:
                cold_tmp = tmp / f"cold-{kind}"
                shutil.rmtree(cold_tmp, ignore_errors=True)
                cold_tmp.mkdir()  # an empty /tmp: the download happens
                script = (COLD_WHOLE if kind == "whole" else COLD_PARTS).format(
                    root=str(task), tmp=str(cold_tmp), event=event)
                proc = subprocess.run([*prefix, python, "-I", "-S", "-B", "-c", script], capture_output=True,
                                      text=True, cwd=cold_tmp, env=env)
                if proc.returncode:
                    raise RuntimeError(f"cold start ({kind}) failed: {proc.stderr[-2000:]}")
                results[kind].append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return results


def cold_split(cold: dict[str, list[dict[str, float]]]) -> tuple[str, str]:
    """(one line, Markdown table) of the cold init: the whole as Lambda runs it, and each part's median."""
    whole = sorted(sum(c.values()) for c in cold["whole"])
    line = (f"cold init as Lambda runs it (the zip run by python{RUNTIME_PYTHON} -I -S -B, import with "
            f"AWS_LAMBDA_FUNCTION_NAME set + first request, model from S3 into an empty /tmp), CPU ms: median "
            f"{statistics.median(whole):.0f} (range {whole[0]:.0f}-{whole[-1]:.0f}; "
            + ", ".join(f"{k} {statistics.median(c[k] for c in cold['whole']):.0f}" for k in cold["whole"][0])
            + f"; {len(whole)} fresh processes)")
    parts = {k: statistics.median(c[k] for c in cold["parts"]) for k in cold["parts"][0]}
    rows = [f"| cold init part (each step alone, in init's order; median of {len(cold['parts'])} fresh "
            "processes) | CPU ms |", "|---|---|"]
    rows += [f"| {k} | {v:.0f} |" for k, v in parts.items()]
    rows.append(f"| sum | {sum(parts.values()):.0f} |")
    return line, "\n".join(rows) + "\n"


def reference_model() -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    # The library's own defaults (it truncates at sentence_bert_config's 256 tokens), as a user would load it.
    return SentenceTransformer(str(source_dir()), device="cpu")


def side_by_side(runners: dict[str, Callable[[], object]], rounds: int) -> dict[str, list[tuple[float, float]]]:
    """Each round calls every runner once, in a shuffled order; (wall, CPU) milliseconds per call.

    The CPU time is the calling thread's (both sides compute on it: one intra-op thread each), so it leaves out
    the time another job held this core - the figure to trust on a shared machine, beside the wall time."""
    for run in runners.values():
        for _ in range(10):
            run()
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in runners}
    order = list(runners)
    rng = random.Random(7)
    for _ in range(rounds):
        rng.shuffle(order)
        for name in order:
            started, cpu = time.perf_counter(), time.thread_time()
            runners[name]()
            samples[name].append(((time.perf_counter() - started) * 1000, (time.thread_time() - cpu) * 1000))
    return samples


def p50s(samples: list[tuple[float, float]]) -> tuple[float, float]:
    return percentile([w for w, _ in samples], 50), percentile([c for _, c in samples], 50)


def cosines(embed: Callable[[str], Any], theirs: np.ndarray) -> np.ndarray:
    mine = np.asarray([embed(text) for text in REFERENCE_SENTENCES], dtype=np.float32)
    return (mine * theirs).sum(axis=1) / np.linalg.norm(mine, axis=1)


def handler_embedding(app: App, text: str) -> list[float]:
    return list(json.loads(app.handle(origin_request_event({"text": text}), None)["body"])["embedding"])


def summary_table(rows: list[tuple[int, dict[str, tuple[float, float]]]], floors: dict[int, float],
                  cos: dict[str, np.ndarray]) -> str:
    """The issue's table (Markdown): CPU p50 of each path, the ratios, the floor and the handler's distance."""
    lines = ["| tokens | handler CPU p50 (wall) | sentence-transformers fp32 | Optimum INT8 | ratio s-t / handler "
             "| ratio Optimum / handler | floor | handler / floor | session alone / floor |",
             "|---|---|---|---|---|---|---|---|---|"]
    for length, p50 in rows:
        h, st, opt, se = p50["handler"], p50["st"], p50["optimum"], p50["session"]
        lines.append(f"| {length} | {h[1]:.2f} ms ({h[0]:.2f}) | {st[1]:.2f} ms ({st[0]:.2f}) | "
                     f"{opt[1]:.2f} ms ({opt[0]:.2f}) | {st[1] / h[1]:.2f}x | {opt[1] / h[1]:.2f}x | "
                     f"{floors[length]:.2f} ms | {h[1] / floors[length]:.2f}x | {se[1] / floors[length]:.2f}x |")
    lines.append("")
    lines.append("| cosine vs sentence-transformers' defaults | min | mean |")
    lines.append("|---|---|---|")
    for name, c in cos.items():
        lines.append(f"| {name} | {c.min():.4f} | {c.mean():.4f} |")
    return "\n".join(lines) + "\n"


def write_table(table: str, header: str, page: Path = PERFORMANCE_PAGE) -> None:
    """Replace the generated part of the performance page (between TABLE_BEGIN and TABLE_END) with `table`."""
    text = page.read_text(encoding="utf-8")
    begin, end = text.find(TABLE_BEGIN), text.find(TABLE_END)
    if begin < 0 or end < begin:
        raise RuntimeError(f"{page}: the edge table goes between `{TABLE_BEGIN}` and `{TABLE_END}`")
    page.write_text(text[:begin] + TABLE_BEGIN + "\n\n" + header + "\n\n" + table + "\n" + text[end:],
                    encoding="utf-8")


def emf_cost(app: App, iterations: int) -> list[float]:
    values: dict[str, float] = {"RequestCount": 1, "ErrorCount": 0, "ClientErrorCount": 0, "InferenceLatency": 3.2,
                                "TokenCount": 16, "CacheHit": 1, "TotalLatency": 3.4}
    props = {"RequestId": "x" * 56, "Status": 200,
             "TraceId": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"}
    samples = []
    for _ in range(iterations):
        started = time.perf_counter_ns()
        app.emit(values, props)
        samples.append((time.perf_counter_ns() - started) / 1000)
    return samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--cold-runs", type=int, default=7)
    parser.add_argument("--cold-only", action="store_true",
                        help="only the cold init, whole and split (printed; docs/performance.md left alone)")
    parser.add_argument("--no-docs", action="store_true", help="print only; leave docs/performance.md alone")
    args = parser.parse_args(argv)

    model = ensure_model(quiet=True)
    if args.cold_only:
        pin_one_core()
        load_before = os.getloadavg()[0]
        with tempfile.TemporaryDirectory(prefix="bench-edge-") as tmp_name:
            pkg = build_package(EmfEdgeConfig(), "bench", "us-east-1", model)
            cold_line, cold_table = cold_split(cold_init(model, pkg.path, Path(tmp_name), args.cold_runs))
        print(f"{cold_line}; load average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end on "
              f"{os.cpu_count()} CPUs\n{cold_table}")
        return 0
    optimum_file = ensure_optimum_int8()
    pin_one_core()
    load_before = os.getloadavg()[0]  # CPU time inflates when the host's cores are oversubscribed: say how much
    cpu_name, flags = cpu_description()
    shape = bert_shape(json.loads((source_dir() / "config.json").read_text()))
    rates = {w: int8_gemm_rate(w) for w in ("u8", "s8")}
    best: GemmRate = max(rates.values(), key=lambda r: r.macs_per_s)
    floors = {length: floor_ms(shape, length, best) for length in LENGTHS}
    ref = reference_model()
    optimum = OptimumEncoder(optimum_file, ref)
    theirs = np.asarray(ref.encode(REFERENCE_SENTENCES, normalize_embeddings=True, show_progress_bar=False))
    with tempfile.TemporaryDirectory(prefix="bench-edge-") as tmp_name:
        tmp = Path(tmp_name)
        settings = setup(tmp, model)
        # Prime /tmp with the verified model for the warm rounds (the cold runs use empty folders of their own).
        primer = App(settings_path=settings, s3_factory=lambda _s: LocalModelStore(model.onnx_int8), tmp_dir=tmp,
                     out=io.StringIO())
        primer.warm()
        pkg = build_package(EmfEdgeConfig(), "bench", "us-east-1", model)
        cold = cold_init(model, pkg.path, tmp, args.cold_runs)
        with open(os.devnull, "w") as devnull:
            app = App(settings_path=settings, s3_factory=lambda _s: LocalModelStore(model.onnx_int8), tmp_dir=tmp,
                      out=devnull)
            app.warm()
            encoder = app.encoder
            assert encoder is not None
            cos = {"edge function (handler)": cosines(lambda text: handler_embedding(app, text), theirs),
                   "Optimum INT8 (avx2 recipe)": cosines(optimum.encode, theirs)}
            rows = []
            for length in LENGTHS:
                text = text_with_tokens(model.tokenizer, length)
                event = origin_request_event({"text": text})
                feeds = {"input_ids": np.asarray([encoder.tokenize(text)[0].ids], dtype=np.int64)}
                samples = side_by_side({
                    "handler": lambda event=event: app.handle(event, None),
                    "session": lambda feeds=feeds: encoder.session.run(None, feeds),
                    "st": lambda text=text: ref.encode(text, show_progress_bar=False),
                    "optimum": lambda text=text: optimum.encode(text),
                }, args.rounds)
                rows.append((length, {k: p50s(v) for k, v in samples.items()}))
            cjk = ("東京は日本の首都です。" * (MAX_TEXT_CHARS // 11 + 1))[:MAX_TEXT_CHARS]
            cjk_event = origin_request_event({"text": cjk})
            cjk_ms = p50s(side_by_side({"cjk": lambda: app.handle(cjk_event, None)}, 20)["cjk"])[0]
            started = time.perf_counter()
            encoder.tokenizer.encode(cjk)
            cjk_whole_ms = (time.perf_counter() - started) * 1000
            emf_us = emf_cost(app, 20000)

    have = ", ".join(f"{f} {'yes' if v else 'no'}" for f, v in flags.items())
    when = (f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average {load_before:.1f} at the start, "
            f"{os.getloadavg()[0]:.1f} at the end on {os.cpu_count()} CPUs")
    print(f"host: {cpu_name}; {have}; python {sys.version.split()[0]}; {when}")
    print("INT8 GEMM rate (ONNX Runtime MatMulInteger {}x{}x{}, one thread, best of 100): ".format(*best.shape)
          + ", ".join(f"u8 x {w} {r.macs_per_s / 1e9:.1f} G MAC/s (median run {r.median_ms / r.best_ms:.2f}x the best)"
                      for w, r in rates.items())
          + f"; the model's weights: {model_weight_types(model.onnx_int8)}")
    print(f"floor = the model's multiply-adds ({shape.layers} layers x (linear {linear_macs_per_token(shape) / 1e6:.2f}"
          f" M per token + attention 2 n^2 x {shape.hidden})) / the faster rate (u8 x {best.weights})")
    print(f"edge function vs sentence-transformers fp32 and Optimum INT8 (1 core, 1 thread each, {args.rounds} "
          "shuffled rounds)")
    print(f"  {'':>6}  {'p50 wall time, ms':^44}  {'p50 CPU time of the thread, ms':^44}  {'floor':>6} "
          f"{'h/floor':>7}")
    print(f"  {'tokens':>6}" + f"  {'handler':>8} {'session':>8} {'s-t':>8} {'Optimum':>8} {'s-t/h':>6}" * 2)
    for length, p50 in rows:
        line = f"  {length:>6}"
        for i in (0, 1):  # wall, CPU
            h, se, st, opt = p50["handler"][i], p50["session"][i], p50["st"][i], p50["optimum"][i]
            line += f"  {h:>8.2f} {se:>8.2f} {st:>8.2f} {opt:>8.2f} {st / h:>5.2f}x"
        print(line + f"  {floors[length]:>6.2f} {p50['handler'][1] / floors[length]:>6.2f}x")
    for name, c in cos.items():
        print(f"  cosine vs sentence-transformers' defaults over {len(c)} sentences, {name}: min {c.min():.4f} "
              f"mean {c.mean():.4f}")
    print(f"  quantisation: {QUANTISATION}")
    cold_line, cold_table = cold_split(cold)
    print(f"  {cold_line}")
    print(cold_table)
    print(f"  {MAX_TEXT_CHARS:,}-character CJK text: handler {cjk_ms:.1f} ms p50 (tokenizing the whole text would "
          f"take {cjk_whole_ms:.0f} ms)")
    print(f"  EMF per request (build + serialise + write, {len(emf_us)} runs): mean {statistics.mean(emf_us):5.1f} us"
          f"  p50 {percentile(emf_us, 50):5.1f} us")
    print(f"  zip {pkg.path.name}: {pkg.compressed_bytes / MiB:.1f} MiB compressed at deflate level {ZIP_LEVEL} "
          f"(limit 50), {pkg.unpacked_bytes / MiB:.1f} MiB unpacked (limit 250)")
    print(f"  model: safetensors fp32 {(source_dir() / 'model.safetensors').stat().st_size / MiB:.1f} MiB, "
          f"ONNX fp32 {model.onnx_fp32.stat().st_size / MiB:.1f} MiB, "
          f"ONNX quantised {model.onnx_int8.stat().st_size / MiB:.1f} MiB (in S3, not in the zip)")
    table = summary_table(rows, floors, cos)
    print(table)
    if not args.no_docs:
        header = (f"{when}. Host: {cpu_name} ({have}); {args.rounds} shuffled rounds on one pinned core, thread CPU "
                  f"time (wall in brackets). INT8 GEMM rate: "
                  + ", ".join(f"u8 x {w} {r.macs_per_s / 1e9:.1f} G MAC/s" for w, r in rates.items())
                  + f"; floor at the faster. {cold_line[0].upper()}{cold_line[1:]}.")
        write_table(table + "\n" + cold_table, header)
        print(f"  written to {PERFORMANCE_PAGE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
