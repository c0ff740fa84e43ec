"""L2 normalisation, as sentence-transformers' Normalize module defines it (mean pooling runs in the ONNX graph)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def l2_normalise(vectors: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """torch.nn.functional.normalize(p=2, dim=1): divide by max(norm, 1e-12).

    Few numpy calls on purpose: it runs right after the ONNX session, with its code and data out of the caches."""
    norms = np.sqrt((vectors * vectors).sum(axis=1, keepdims=True))
    unit: npt.NDArray[np.float32] = (vectors / np.maximum(norms, np.float32(1e-12))).astype(np.float32, copy=False)
    return unit
