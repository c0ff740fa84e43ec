"""The edge model's lower bound on this host: its multiply-adds divided by ONNX Runtime's measured INT8 GEMM rate.

Used by `make bench-edge` (benchmarks/bench_edge.py). The count comes from the model's shape (config.json):
per layer, the linear layers do hidden x (3 hidden + hidden + 2 intermediate) multiply-adds per token (QKV,
attention output, the two feed-forward layers: 1.77 M for all-MiniLM-L6-v2) and attention 2 n^2 hidden for n
tokens (scores and the weighted sum). The rate is that of ONNX Runtime's own integer GEMM (MatMulInteger, one
thread, the weight type the model's quantised MatMuls use) on one large product of the model's own shape (its
feed-forward GEMM at 256 tokens), the best of several runs: the fastest this host does that work through the
library the function uses. The floor counts attention at the INT8 rate too (it runs in fp32, no faster), so it is
a bound no build of this model on this runtime goes below, not an estimate of one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from infra.artifacts.edge_model import BertShape

# The x86 features that decide ONNX Runtime's INT8 kernels (MLAS): AVX2 (u8s8 through VPMADDUBSW, whose 16-bit
# sums can saturate; u8u8 widened to 16 bits), AVX-512, and VNNI (VPDPBUSD: one instruction, no saturation).
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8")
GEMM_SHAPE = (256, 384, 1536)  # M x K x N: the model's first feed-forward product at 256 tokens


def cpu_description(cpuinfo: Path = Path("/proc/cpuinfo")) -> tuple[str, dict[str, bool]]:
    """The CPU's model name and which of CPU_FLAGS it has (Linux; elsewhere 'unknown' and no flags)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return "unknown", {f: False for f in CPU_FLAGS}
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    flags = set(fields.get("flags", "").split())
    return fields.get("model name", "unknown"), {f: f in flags for f in CPU_FLAGS}


def linear_macs_per_token(shape: BertShape) -> int:
    """Multiply-adds per token per layer in the linear layers: QKV, attention output, feed-forward in and out."""
    h, f = shape.hidden, shape.intermediate
    return h * 3 * h + h * h + 2 * h * f


def model_macs(shape: BertShape, tokens: int) -> int:
    """All multiply-adds of one text of `tokens` tokens: linear layers plus attention (2 n^2 hidden per layer)."""
    return shape.layers * (tokens * linear_macs_per_token(shape) + 2 * tokens * tokens * shape.hidden)


def model_weight_types(onnx_file: Path) -> str:
    """The element types of the model's quantised weights ('u8', 's8' or both), over its integer MatMuls."""
    import onnx

    model = onnx.load(str(onnx_file), load_external_data=False)
    inits = {i.name: i.data_type for i in model.graph.initializer}
    found = {"s8" if inits[node.input[1]] == onnx.TensorProto.INT8 else "u8" for node in model.graph.node
             if node.op_type in ("DynamicQuantizeMatMul", "MatMulInteger", "QAttention") and node.input[1] in inits}
    if not found:
        raise ValueError(f"{onnx_file}: no integer MatMul with constant weights (not a dynamic INT8 build)")
    return " + ".join(sorted(found))


@dataclass(frozen=True)
class GemmRate:
    weights: str  # 'u8' or 's8'
    shape: tuple[int, int, int]
    best_ms: float  # thread CPU time of the fastest run
    median_ms: float

    @property
    def macs_per_s(self) -> float:
        m, k, n = self.shape
        return m * k * n / (self.best_ms / 1000.0)


def int8_gemm_rate(weights: str, runs: int = 100, shape: tuple[int, int, int] = GEMM_SHAPE) -> GemmRate:
    """ONNX Runtime's MatMulInteger (u8 activations x `weights`, constant), one thread: thread CPU time per run."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    if weights not in ("u8", "s8"):
        raise ValueError(f"weights {weights!r}: allowed 'u8' or 's8'")
    m, k, n = shape
    rng = np.random.default_rng(0)
    b = (rng.integers(0, 256, (k, n), dtype=np.uint8) if weights == "u8"
         else rng.integers(-128, 128, (k, n), dtype=np.int8))
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["a", "b"], ["y"])], "gemm",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, [m, k])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [m, n])], [numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), sess_options=opts, providers=["CPUExecutionProvider"])
    feed = {"a": rng.integers(0, 256, (m, k), dtype=np.uint8)}
    for _ in range(5):
        session.run(None, feed)
    samples = []
    for _ in range(runs):
        started = time.thread_time()
        session.run(None, feed)
        samples.append((time.thread_time() - started) * 1000.0)
    samples.sort()
    return GemmRate(weights, shape, samples[0], samples[len(samples) // 2])


def floor_ms(shape: BertShape, tokens: int, rate: GemmRate) -> float:
    return model_macs(shape, tokens) / rate.macs_per_s * 1000.0
