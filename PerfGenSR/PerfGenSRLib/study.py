"""The :class:`Study`: perfusion frames ``(T, Z, H, W)`` float32 with their geometry and frame times,
its validation and its one-line description. A leaf module: every reader, writer and method meets here.

Spacing and origin are in millimetres as ``(x, y, z)`` (column, row, slice), the direction a row-major
3x3 cosine matrix, as SimpleITK and DICOM give them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from .errors import PerfGenError

IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
MIN_MATRIX, MAX_MATRIX = 8, 2048


@dataclass
class Study:
    """Frames ``(T, Z, H, W)`` float32 with the geometry and timing needed to write them back in kind."""

    frames: np.ndarray
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: tuple[float, ...] = IDENTITY
    frame_times: np.ndarray | None = None
    single_slice: bool = True  # read from a (T, H, W) source: written back without the Z axis
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.frames = np.asarray(self.frames)
        if self.frames.ndim == 3:
            self.frames = self.frames[:, None]
        if self.frames.ndim != 4:
            raise PerfGenError(
                f"a study is (T, H, W) or (T, Z, H, W) frames, got an array of shape {self.frames.shape}"
            )

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """``(T, Z, H, W)``."""
        return tuple(self.frames.shape)

    def with_frames(self, frames: np.ndarray, **changes) -> Study:
        """The same study (geometry, times, metadata) holding other frames of the same layout."""
        return replace(self, frames=np.asarray(frames, dtype=np.float32), meta=dict(self.meta), **changes)

    def times(self) -> np.ndarray:
        """Frame times in seconds from the first frame, or frame indices where none are known."""
        if self.frame_times is not None:
            return np.asarray(self.frame_times, dtype=float)
        return np.arange(self.shape[0], dtype=float)


def validate_frames(frames: np.ndarray, what: str = "input", min_frames: int = 2) -> np.ndarray:
    """Check a ``(T, Z, H, W)`` array of at least ``min_frames`` frames is usable; return it as float32."""
    if np.iscomplexobj(frames):
        raise PerfGenError(f"{what} holds complex values; give magnitude images (np.abs of the data)")
    if not (np.issubdtype(frames.dtype, np.number) or frames.dtype == bool):
        raise PerfGenError(f"{what} is not numeric (dtype {frames.dtype})")
    if 0 in frames.shape:
        raise PerfGenError(
            f"{what} is empty (an axis of length 0 in {shape_text(frames.shape)}); give a study with data"
        )
    t, _, h, w = frames.shape
    if min(h, w) < MIN_MATRIX or max(h, w) > MAX_MATRIX:
        raise PerfGenError(
            f"{what} has a {h}x{w} matrix; PerfGenSR handles {MIN_MATRIX} to {MAX_MATRIX} pixels per side"
        )
    if t < min_frames:
        raise PerfGenError(
            f"{what} holds {t} frame(s); PerfGenSR needs at least {min_frames} frames (a series over time)"
        )
    if not np.isfinite(frames).all():
        bad = int((~np.isfinite(frames)).sum())
        raise PerfGenError(f"{what} contains {bad} NaN/Inf values; clean or mask them before super-resolving")
    if np.issubdtype(frames.dtype, np.floating) and frames.dtype.itemsize > 4:
        largest = float(np.abs(frames).max())
        if largest > np.finfo(np.float32).max:
            raise PerfGenError(
                f"{what} holds values up to {largest:.3g}, beyond single precision ({np.finfo(np.float32).max:.3g}); "
                "rescale the data"
            )
    return frames.astype(np.float32, copy=False)


def shape_text(shape) -> str:
    """``(3, 4)`` as ``3x4``, for messages."""
    return "x".join(map(str, shape))


def describe_study(study: Study) -> str:
    """One line on a study's size, resolution and timing, to show before long work."""
    t, z, h, w = study.shape
    matrix = f"{w}x{h} matrix"
    acquired = study.meta.get("acquisition_matrix")
    if acquired and tuple(acquired) != (h, w):
        matrix += f" (acquired {acquired[1]}x{acquired[0]})"
    parts = [
        f"{z} slice{'s' if z != 1 else ''} x {t} frames",
        matrix,
        f"{study.spacing[0]:.3g}x{study.spacing[1]:.3g} mm",
    ]
    if z > 1:
        parts.append(f"{study.spacing[2]:.3g} mm slice spacing")
    if study.frame_times is None or t < 2:
        parts.append("frame times unknown")
    else:
        steps = np.diff(study.times())
        interval = f"frame interval {np.median(steps):.2f} s"
        if np.ptp(steps) > 0.05 * np.median(steps):
            interval += f" ({steps.min():.2f}-{steps.max():.2f} s)"
        parts.append(interval + (" (trigger-synchronised)" if study.meta.get("trigger_synchronised") else ""))
    return ", ".join(parts)
