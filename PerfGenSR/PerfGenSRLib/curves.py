"""Signal-time curves inside ROIs and x-t profiles along a line, with CSV and figure helpers, and
what a reader measures on a curve: its frame-to-frame jitter, time to peak and maximal upslope."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from scipy import ndimage

from .defaults import ROI_BY_KEY
from .errors import PerfGenError
from .figures import plain_text, pyplot, save_figure
from .io import write_csv


def roi_curves(frames: np.ndarray, masks: dict[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Mean and SD per frame inside each mask: ``frames`` ``(T, ..., H, W)``, masks shaped like one frame."""
    curves = {}
    for name, mask in masks.items():
        mask = np.asarray(mask, bool)
        if mask.shape != frames.shape[1:]:
            mask = np.broadcast_to(mask, frames.shape[1:]) if mask.ndim < frames.ndim - 1 else mask
        if mask.shape != frames.shape[1:]:
            raise PerfGenError(f"ROI '{name}' has shape {mask.shape}, frames have {frames.shape[1:]}")
        if not mask.any():
            continue
        values = frames[:, mask]
        curves[name] = (values.mean(axis=1), values.std(axis=1))
    return curves


def curve_jitter(curve: np.ndarray) -> float:
    """High-frequency energy of a curve: the RMS of its second difference (per frame, in signal units).

    A smooth first pass has a small second difference; noise that changes from frame to frame adds
    about ``sqrt(6)`` times its SD. Compare curves sampled at the same times (e.g. as a ratio to HR's).
    """
    curve = np.asarray(curve, float)
    if len(curve) < 3:
        raise PerfGenError(f"a curve needs at least 3 frames for its jitter, got {len(curve)}")
    return float(np.sqrt(np.mean(np.diff(curve, 2) ** 2)))


def noise_jitter_ratio(curve: np.ndarray, reference: np.ndarray, truth: np.ndarray) -> float:
    """Frame-to-frame noise that ``curve`` carries beyond the noise-free ``truth``, relative to the
    ``reference``'s (e.g. HR's): ``curve_jitter(curve - truth) / curve_jitter(reference - truth)``.

    Where the true curve bends sharply (a first pass sampled every heartbeat), :func:`curve_jitter` of
    the curve itself is mostly that bend; subtracting the truth leaves only the noise (phantoms only).
    """
    truth = np.asarray(truth, float)
    own, theirs = (
        curve_jitter(np.asarray(curve, float) - truth),
        curve_jitter(np.asarray(reference, float) - truth),
    )
    return own / max(theirs, np.finfo(float).tiny)


def _lightly_smoothed(curve: np.ndarray, smooth: float) -> np.ndarray:
    curve = np.asarray(curve, float)
    return ndimage.gaussian_filter1d(curve, smooth, mode="nearest") if smooth > 0 else curve


def time_to_peak(curve: np.ndarray, times: np.ndarray, smooth: float = 1.0) -> float:
    """Time of the curve's maximum (``times`` in seconds or frames), after a Gaussian smoothing of
    ``smooth`` frames, refined between samples by the parabola through the maximum and its neighbours."""
    values, times = _lightly_smoothed(curve, smooth), np.asarray(times, float)
    i = int(np.argmax(values))
    if 0 < i < len(values) - 1:
        (t0, t1, t2), (y0, y1, y2) = times[i - 1 : i + 2], values[i - 1 : i + 2]
        # vertex of the parabola through the three points (non-uniform times allowed)
        num = (t1 - t0) ** 2 * (y1 - y2) - (t1 - t2) ** 2 * (y1 - y0)
        den = (t1 - t0) * (y1 - y2) - (t1 - t2) * (y1 - y0)
        if den != 0:
            return float(np.clip(t1 - 0.5 * num / den, t0, t2))
    return float(times[i])


def max_upslope(curve: np.ndarray, times: np.ndarray, smooth: float = 1.0) -> float:
    """The largest rise per unit time between consecutive frames, after a Gaussian smoothing of
    ``smooth`` frames (0: none), in signal units per unit of ``times``."""
    values, times = _lightly_smoothed(curve, smooth), np.asarray(times, float)
    return float(np.max(np.diff(values) / np.diff(times)))


def temporal_measures(curve: np.ndarray, reference: np.ndarray, times: np.ndarray) -> dict[str, float]:
    """How faithfully ``curve`` follows ``reference`` (both sampled at ``times``): jitter ratio
    (1 = as jittery as the reference), RMSE in % of the reference's peak, time-to-peak error
    (curve minus reference) and maximal-upslope error in % of the reference's upslope."""
    curve, reference = np.asarray(curve, float), np.asarray(reference, float)
    upslope = max_upslope(reference, times)
    return {
        "jitter_ratio": curve_jitter(curve) / max(curve_jitter(reference), np.finfo(float).tiny),
        "rmse_percent_of_peak": float(100 * np.sqrt(np.mean((curve - reference) ** 2)) / np.max(reference)),
        "ttp_error": time_to_peak(curve, times) - time_to_peak(reference, times),
        "upslope_error_percent": 100 * (max_upslope(curve, times) - upslope) / upslope,
    }


def xt_profile(
    frames: np.ndarray, start: tuple[float, float], end: tuple[float, float], samples: int | None = None
) -> np.ndarray:
    """Intensities of ``(T, H, W)`` frames along the line ``start``->``end`` (row, col): ``(T, samples)``."""
    length = float(np.hypot(end[0] - start[0], end[1] - start[1]))
    samples = samples or max(2, int(round(length)) + 1)
    rows = np.linspace(start[0], end[0], samples)
    cols = np.linspace(start[1], end[1], samples)
    return np.stack([ndimage.map_coordinates(frame, [rows, cols], order=1) for frame in frames])


def write_curves_csv(
    path: str | os.PathLike, times: np.ndarray, curves_by_method: dict[str, dict[str, tuple]]
) -> Path:
    """CSV with a time column, then mean and SD per ROI per method (``method:roi:mean``)."""
    columns, names = [np.asarray(times, float)], ["time_s"]
    for method, curves in curves_by_method.items():
        for roi, (mean, sd) in curves.items():
            columns += [mean, sd]
            names += [f"{method}:{roi}:mean", f"{method}:{roi}:sd"]
    rows = [dict(zip(names, row)) for row in np.column_stack(columns).round(6).tolist()]
    return write_csv(rows, path)


def plot_curves(
    ax, times: np.ndarray, curves_by_method: dict[str, dict[str, tuple]], styles: dict[str, str] | None = None
) -> None:
    """Draw mean curves on a matplotlib axis: colour per ROI, line style per method."""
    default_styles = ["-", "--", ":", "-."]
    for i, (method, curves) in enumerate(curves_by_method.items()):
        style = (styles or {}).get(method, default_styles[i % len(default_styles)])
        for roi, (mean, _) in curves.items():
            ax.plot(
                times,
                mean,
                style,
                color=ROI_BY_KEY[roi].colour if roi in ROI_BY_KEY else None,
                label=f"{roi} ({method})",
            )
    ax.set_xlabel("time (s)")
    ax.set_ylabel("signal")
    ax.legend(fontsize="x-small", ncol=2)


@plain_text
def save_curves_figure(
    path: str | os.PathLike, times: np.ndarray, curves_by_method: dict[str, dict[str, tuple]], title: str = ""
) -> Path:
    """PNG of the signal-time curves of every ROI and method."""
    fig, ax = pyplot().subplots(figsize=(7, 4.5), dpi=120)
    plot_curves(ax, times, curves_by_method)
    ax.set_title(title)
    fig.tight_layout()
    return save_figure(fig, path)
