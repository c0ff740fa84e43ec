"""Mean pooling and L2 normalisation, as sentence-transformers' Pooling(mean) and Normalize modules define them."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def mean_pool(hidden: npt.NDArray[np.float32], attention_mask: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
    """Average of the token vectors where the mask is 1 (padding excluded); clamp as the reference does (1e-9)."""
    mask = attention_mask[..., None].astype(np.float32)
    summed = (hidden * mask).sum(axis=1)
    counts = np.clip(mask.sum(axis=1), 1e-9, None)
    pooled: npt.NDArray[np.float32] = (summed / counts).astype(np.float32)
    return pooled


def l2_normalise(vectors: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """torch.nn.functional.normalize(p=2, dim=1): divide by max(norm, 1e-12)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit: npt.NDArray[np.float32] = (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
    return unit
