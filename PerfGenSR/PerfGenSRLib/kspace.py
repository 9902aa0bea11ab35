"""k-space line truncation and zero-padding (paper section 2.1.3), for NumPy arrays and torch tensors.

Everything here is one operation, :func:`resample_lines`: take the 2D FFT of a magnitude image,
keep the central lines along the phase-encoding axis, place them in the centre of a (possibly
larger) zero k-space, inverse FFT, magnitude. "Central" follows ``fftshift``: in a shifted
k-space of ``n`` lines DC sits at index ``n // 2`` and a block of ``m`` lines starts at
``n // 2 - m // 2``, which is symmetric about DC for odd ``m`` and has the extra line on the
negative-frequency side for even ``m``, exactly as ``fftshift`` lays out an even-sized k-space.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from .errors import PerfGenError
from .scaling import rescale, safe_scale


def kept_lines(n: int, fraction: float) -> int:
    """Number of phase-encoding lines kept when keeping ``fraction`` of ``n`` lines (at least one)."""
    check_fraction(fraction)
    return max(1, min(n, int(round(fraction * n))))


def check_fraction(fraction: float) -> None:
    """Refuse a line fraction outside (0, 1] with a message for a person."""
    if not (isinstance(fraction, (int, float)) and np.isfinite(fraction) and 0.0 < fraction <= 1.0):
        raise PerfGenError(f"LR fraction must be in (0, 1] (e.g. 0.35), got {fraction!r}")


def central_block(n: int, m: int) -> slice:
    """Indices of the central ``m`` lines of an ``fftshift``-ed axis of length ``n``."""
    start = n // 2 - m // 2
    return slice(start, start + m)


def _is_torch(x: Any) -> bool:
    """True for a torch tensor, without importing torch for NumPy callers (Slicer starts faster)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _fft(x: Any):
    return sys.modules["torch"].fft if _is_torch(x) else np.fft


def _index(ndim: int, axis: int, sl: slice) -> tuple:
    index = [slice(None)] * ndim
    index[axis] = sl
    return tuple(index)


def to_kspace(image: Any, axis: int = -2) -> Any:
    """Centred 2D k-space of the last two axes, shifted along ``axis`` so DC sits at ``n // 2``."""
    f = _fft(image)
    return f.fftshift(f.fft2(image), axes=axis) if f is np.fft else f.fftshift(f.fft2(image), dim=axis)


def from_kspace(kspace: Any, axis: int = -2) -> Any:
    """Complex image from a k-space laid out by :func:`to_kspace`."""
    f = _fft(kspace)
    unshifted = f.ifftshift(kspace, axes=axis) if f is np.fft else f.ifftshift(kspace, dim=axis)
    return f.ifft2(unshifted)


def resample_lines(image: Any, keep: int, out_lines: int | None = None, axis: int = -2) -> Any:
    """Keep the central ``keep`` phase-encoding lines of ``image`` and zero-pad to ``out_lines``.

    ``image`` is ``(..., H, W)`` real (NumPy or torch); ``axis`` is the phase-encoding axis (-2 or -1).
    Returns the magnitude image with ``out_lines`` (default: unchanged) lines along ``axis``, on the
    same intensity scale as the input.
    """
    if axis not in (-1, -2):
        raise PerfGenError(f"phase-encoding axis must be -2 (rows) or -1 (columns), got {axis}")
    n_in = image.shape[axis]
    n_out = n_in if out_lines is None else int(out_lines)
    if not 1 <= keep <= min(n_in, n_out):
        raise PerfGenError(f"cannot keep {keep} lines of a {n_in}-line image on a {n_out}-line grid")
    scale = safe_scale(image)  # FFT sums of values near the float32 limit would overflow
    kspace = to_kspace(image / scale if scale != 1.0 else image, axis)
    block = kspace[_index(kspace.ndim, axis, central_block(n_in, keep))]
    shape = list(kspace.shape)
    shape[axis] = n_out
    if isinstance(kspace, np.ndarray):
        padded = np.zeros(shape, dtype=kspace.dtype)
    else:
        padded = kspace.new_zeros(shape)
    padded[_index(kspace.ndim, axis, central_block(n_out, keep))] = block * (n_out / n_in)
    return rescale(_magnitude(from_kspace(padded, axis), image), scale)


def degrade(image: Any, fraction: float, axis: int = -2) -> Any:
    """Simulated low resolution: keep the central ``fraction`` of phase-encoding lines, same grid."""
    return resample_lines(image, kept_lines(image.shape[axis], fraction), axis=axis)


def zero_pad(image: Any, lines: int, axis: int = -2) -> Any:
    """A truly low-resolution image (all its lines measured) brought onto a ``lines``-line grid."""
    return resample_lines(image, image.shape[axis], out_lines=lines, axis=axis)


def data_consistency(image: Any, low_res: Any, keep: int, axis: int = -2) -> Any:
    """Replace the central ``keep`` k-space lines of ``image`` with those of ``low_res`` (same grid).

    ``low_res`` is the measured LR image on the HR grid (as :func:`degrade` or :func:`zero_pad` give);
    the magnitude of the result is returned.
    """
    scale = max(safe_scale(image), safe_scale(low_res))
    kspace = to_kspace(image / scale if scale != 1.0 else image, axis)
    measured = to_kspace(low_res / scale if scale != 1.0 else low_res, axis)
    block = _index(kspace.ndim, axis, central_block(image.shape[axis], keep))
    kspace[block] = measured[block]
    return rescale(_magnitude(from_kspace(kspace, axis), image), scale)


def _magnitude(complex_image: Any, like: Any) -> Any:
    """``|complex_image|`` in the real dtype matching ``like`` (complex input gives its real precision)."""
    result = abs(complex_image)
    if isinstance(like, np.ndarray):
        return result.astype(np.finfo(like.dtype).dtype if np.iscomplexobj(like) else like.dtype, copy=False)
    return result.to(like.real.dtype if like.is_complex() else like.dtype)
