"""What a user would pick instead of the edge function's own build: the Optimum INT8 recipe, from the same weights.

sentence-transformers' ONNX backend (`backend="onnx"`, `export_dynamic_quantized_onnx_model(model, "avx2", ...)`)
runs Hugging Face Optimum: its exporter writes the BertModel as ONNX (inputs input_ids / attention_mask /
token_type_ids, output last_hidden_state, dynamic batch and sequence axes, opset 14, constant folding), its
`AutoQuantizationConfig.avx2(is_static=False)` quantises it dynamically (QOperator, IntegerOps, u8 activations
and u8 symmetric weights per channel, full range, every operator ONNX Runtime's IntegerOps registry lists), and
the library mean-pools and normalises `last_hidden_state`. The "avx2" configuration is the one for this host
kind: the "avx512_vnni" one (signed weights) saturates without VNNI (Optimum's own docstring, reduce_range).

Optimum itself is not installed: optimum-onnx 0.1.0 (the release on PyPI, December 2025) requires
transformers < 4.58, and sentence-transformers 6.3 here runs on transformers 5. So the same two steps are done
with what Optimum calls: `torch.onnx.export` (the TorchScript exporter Optimum uses) and ONNX Runtime's
quantiser with Optimum's avx2 settings. Cached in build/peers by the inputs' hash; `make bench-edge` builds it
(~15 s the first time).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from infra.artifacts.edge_model import _version, cache_key, source_dir
from infra.core.paths import BUILD_DIR

PEERS_DIR = BUILD_DIR / "peers"
OPSET = 14  # Optimum's default for BERT exports (BertOnnxConfig.DEFAULT_ONNX_OPSET)
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def ensure_optimum_int8() -> Path:
    """The quantised ONNX file of the Optimum recipe for the pinned weights (built when missing)."""
    src = source_dir()
    h = hashlib.sha256(cache_key(src).encode())
    for dist in ("torch", "transformers", "onnxruntime", "onnx"):
        h.update(f"{dist}={_version(dist)}".encode())
    h.update(Path(__file__).read_bytes())
    folder = PEERS_DIR / f"optimum-int8-{h.hexdigest()[:16]}"
    target = folder / "model_quint8_avx2.onnx"
    if target.exists():
        return target
    tmp = folder.with_name(f"{folder.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    _export(src, tmp / "model.onnx")
    _quantise(tmp / "model.onnx", tmp / target.name)
    (tmp / "model.onnx").unlink()
    for stale in PEERS_DIR.glob("optimum-int8-*"):  # builds for inputs that no longer exist
        if stale != tmp:
            shutil.rmtree(stale, ignore_errors=True)
    tmp.rename(folder)
    return target


def _export(src: Path, out: Path) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(src)).eval()

    class LastHiddenState(torch.nn.Module):  # keyword arguments: BertModel's positional order changed in v5
        def __init__(self) -> None:
            super().__init__()
            self.bert = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids).last_hidden_state

    sample = torch.ones((1, 8), dtype=torch.int64)
    axes = {name: {0: "batch_size", 1: "sequence_length"} for name in (*INPUTS, "last_hidden_state")}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(LastHiddenState(), (sample, sample, torch.zeros_like(sample)), str(out),
                          input_names=list(INPUTS), output_names=["last_hidden_state"], dynamic_axes=axes,
                          opset_version=OPSET, do_constant_folding=True, dynamo=False)


def _quantise(fp32: Path, out: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.registry import IntegerOpsRegistry

    logging.disable(logging.WARNING)
    try:  # AutoQuantizationConfig.avx2(is_static=False), as ORTQuantizer.quantize hands it to ONNX Runtime
        quantize_dynamic(str(fp32), str(out), per_channel=True, reduce_range=False,
                         weight_type=QuantType.QUInt8, op_types_to_quantize=list(IntegerOpsRegistry),
                         extra_options={"WeightSymmetric": True, "ActivationSymmetric": False})
    finally:
        logging.disable(logging.NOTSET)


class OptimumEncoder:
    """The ONNX backend's path for one text: the library's tokenizer (its 256-token truncation), ONNX Runtime
    (one thread, as the function), mean pooling over the attention mask, L2 normalisation."""

    def __init__(self, onnx_file: Path, reference: Any) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(onnx_file), sess_options=opts, providers=["CPUExecutionProvider"])
        self.tokenizer = reference.tokenizer
        self.max_tokens = int(reference.max_seq_length)

    def encode(self, text: str) -> np.ndarray:
        feeds = dict(self.tokenizer([text], truncation=True, max_length=self.max_tokens, return_tensors="np"))
        feeds = {name: np.asarray(feeds[name], dtype=np.int64) for name in INPUTS}
        (hidden,) = self.session.run(["last_hidden_state"], feeds)
        mask = feeds["attention_mask"][..., None].astype(np.float32)
        pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
        return pooled[0] / np.linalg.norm(pooled[0])
