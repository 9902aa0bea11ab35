"""Acquisition variation for training pairs: the same anatomy as another scanner would have shown it.

Applied to an HR frame before the LR is simulated from it, so each (LR, HR) pair stays exact. The
ranges are one frozen table (:class:`AcquisitionRanges`) that the training records in its model
file and that the out-of-range evaluation set steps outside of (``Scripts/make_heldout.py``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class AcquisitionRanges:
    """Ranges (and probabilities) of the acquisition variations drawn for one training frame."""

    transpose: float = 0.5  # probability of swapping rows and columns (anatomy turned 90 degrees)
    zoom: tuple[float, float] = (0.75, 1.35)  # pixel-size change (matrix and FOV), log-uniform
    zoom_probability: float = 0.5
    recon_extent: tuple[float, float] = (0.5, 0.9)  # fraction of k-space the "HR" reconstruction holds
    recon_probability: float = 0.3  # (scanners zero-fill 2x: outer k-space nearly empty)
    taper: tuple[float, float] = (0.2, 0.7)  # k-space filter: cosine taper over this outer fraction
    taper_probability: float = 0.3
    snr: tuple[float, float] = (5.0, 60.0)  # added complex noise: frame peak / sigma, log-uniform
    noise_probability: float = 0.5

    def config(self) -> dict:
        """JSON-able fields, for the model file."""
        return asdict(self)


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(np.exp(rng.uniform(np.log(bounds[0]), np.log(bounds[1]))))


def zoom_frame(frame: np.ndarray, factor: float) -> np.ndarray:
    """``frame`` resampled by ``factor`` along both axes (cubic spline, at least 16 pixels a side)."""
    shape = [max(16, int(round(n * factor))) for n in frame.shape]
    return ndimage.zoom(frame, [s / n for s, n in zip(shape, frame.shape)], order=3, mode="reflect")


def limit_kspace(frame: np.ndarray, extent: float, taper: float = 0.0) -> np.ndarray:
    """Keep the central ``extent`` of k-space on both axes with a cosine ``taper`` at its edge; magnitude."""
    response = np.ones(frame.shape)
    for axis, n in enumerate(frame.shape):
        u = np.abs(np.fft.fftfreq(n) * 2) / extent  # 1 at the edge of the kept extent
        edge = 1 - taper
        w = np.where(u <= edge, 1.0, 0.5 + 0.5 * np.cos(np.pi * np.clip((u - edge) / max(taper, 1e-6), 0, 1)))
        w[u > 1] = 0.0
        response = response * (w[:, None] if axis == 0 else w[None, :])
    return np.abs(np.fft.ifft2(np.fft.fft2(frame) * response)).astype(frame.dtype)


def add_noise(frame: np.ndarray, snr: float, rng: np.random.Generator) -> np.ndarray:
    """Rician magnitude of ``frame`` plus complex Gaussian noise of SD ``peak / snr`` per component."""
    sigma = float(np.percentile(frame, 99)) / snr
    noise = rng.normal(0, sigma, (2, *frame.shape))
    return np.hypot(frame + noise[0], noise[1]).astype(frame.dtype)


def vary_acquisition(
    frame: np.ndarray, center: tuple[int, int], rng: np.random.Generator, ranges: AcquisitionRanges
) -> tuple[np.ndarray, tuple[int, int]]:
    """An HR ``(H, W)`` frame as a different acquisition would give it, and where ``center`` went.

    ``frame`` is never modified."""
    out, (row, col) = frame, center
    if rng.random() < ranges.transpose:
        out, (row, col) = frame.T, (col, row)
    if rng.random() < ranges.zoom_probability:
        before = out.shape
        out = zoom_frame(out, _log_uniform(rng, ranges.zoom))
        row, col = (int(round(v * n / m)) for v, n, m in zip((row, col), out.shape, before))
    extent = rng.uniform(*ranges.recon_extent) if rng.random() < ranges.recon_probability else 1.0
    taper = rng.uniform(*ranges.taper) if rng.random() < ranges.taper_probability else 0.0
    if extent < 1.0 or taper > 0.0:
        out = limit_kspace(out, extent, taper)
    if rng.random() < ranges.noise_probability:
        out = add_noise(out, _log_uniform(rng, ranges.snr), rng)
    return np.ascontiguousarray(out, dtype=np.float32), (row, col)
