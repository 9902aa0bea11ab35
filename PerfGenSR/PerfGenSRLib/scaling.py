"""Finite input of any magnitude gives finite output: arrays far from unit scale are divided by a power of
two before FFTs and normalisation (exact in floating point, so ordinary data are untouched bit for bit)
and multiplied back afterwards, clipped to the largest finite value of their type (NumPy or torch)."""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np

SAFE_RANGE = (2.0**-10, 2.0**20)  # largest magnitudes inside this range are processed as they are


def safe_scale(x: Any) -> float:
    """A power of two ``s`` such that ``x / s`` has its largest magnitude within :data:`SAFE_RANGE` (1 if it has)."""
    count = x.size if isinstance(x, np.ndarray) else x.numel()
    largest = float(abs(x).max()) if count else 0.0
    if largest == 0.0 or not math.isfinite(largest) or SAFE_RANGE[0] <= largest <= SAFE_RANGE[1]:
        return 1.0
    # the largest magnitude into [2**10, 2**11); a scale never below 2**-120, a normal float32
    return 2.0 ** max(math.frexp(largest)[1] - 11, -120)


def rescale(x: Any, scale: float) -> Any:
    """``x * scale`` in ``x``'s type, clipped to that type's finite range (the undo of dividing by ``scale``)."""
    if scale == 1.0:
        return x
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(x, torch.Tensor):
        limit = torch.finfo(x.dtype).max
        return (x.double() * scale).clamp(-limit, limit).to(x.dtype)
    limit = np.finfo(x.dtype).max
    return np.clip(x.astype(np.float64) * scale, -limit, limit).astype(x.dtype)
