"""Rendering step: per frame, composite the moving layers on the fine grid, fold along the phase axis,
keep the acquired matrix's central k-space block; and the region masks, tracked through the motion."""

from __future__ import annotations

import numpy as np
from scipy import fft as sfft
from scipy import ndimage

from .acquisition import Acquisition
from .geometry import SUPERSAMPLE
from .paint import Grids, Painted

CHUNK = 8  # frames rendered together on the fine grid


def render(painted: Painted, grids: Grids, acq: Acquisition, signals: dict[str, np.ndarray]) -> np.ndarray:
    """Band-limited complex object ``(T, rows, cols)``: composite fine frames, fold, keep central k-space."""
    s, rows, cols = SUPERSAMPLE, acq.rows, acq.cols
    n_frames = len(grids.heart_px)
    ext_rows, fine_cols = grids.fov.shape
    top, bottom = acq.fold
    fine_rows = rows * s
    m, n_box = grids.margin, grids.box_size
    layers = []
    for layer in (painted.static, painted.cavity, painted.heart):
        keys = layer.keys
        curves = np.stack([signals[k] for k in keys], 1) if keys else np.zeros((n_frames, 0), np.float32)
        layers.append((curves.astype(np.float32), layer.maps, layer.alpha))
    (c2, m2, a2), (c0, m0, _), (c1, m1, a1) = layers
    keep2, keep1 = 1 - a2, 1 - a1
    fy = np.rint(sfft.fftfreq(rows) * rows).astype(int)
    fx = np.rint(sfft.fftfreq(cols) * cols).astype(int)
    positive = fx >= 0
    out = np.empty((n_frames, rows, cols), np.complex64)
    for start in range(0, n_frames, CHUNK):
        chunk = range(start, min(start + CHUNK, n_frames))
        n = len(chunk)
        back = (c0[start : start + n] @ m0).reshape(n, *grids.canvas.shape)
        front = (c1[start : start + n] @ m1).reshape(n, n_box, n_box)
        fine = np.empty((n, ext_rows, fine_cols), np.float32)
        for k, t in enumerate(chunk):
            dy, dx = grids.cavity_px[t]
            fine[k] = back[k, m - dy : m - dy + ext_rows, m - dx : m - dx + fine_cols]
            _paste_heart(fine[k], front[k], keep1, grids, grids.heart_px[t])
        fine *= keep2
        fine += (c2[start : start + n] @ m2).reshape(n, ext_rows, fine_cols)
        image = fine[:, top : top + fine_rows]
        if top:
            image[:, fine_rows - top :] += fine[:, :top]
        if bottom:
            image[:, :bottom] += fine[:, top + fine_rows :]
        spectrum = sfft.rfft2(image, workers=1)
        kspace = np.empty((n, rows, cols), np.complex64)
        kspace[:, :, positive] = spectrum[:, fy % fine_rows][:, :, fx[positive]]
        kspace[:, :, ~positive] = np.conj(spectrum[:, (-fy) % fine_rows][:, :, -fx[~positive]])
        out[start : start + n] = sfft.ifft2(kspace, workers=1) * (rows * cols / (fine_rows * fine_cols))
    return out


def _paste_heart(frame: np.ndarray, heart: np.ndarray, keep: np.ndarray, grids: Grids, shift) -> None:
    """Composite the heart layer over ``frame`` in place, averaged over the intra-shot positions."""
    n, reach = grids.box_size, int(np.abs(grids.blur_px).max())
    r0, c0 = grids.box_r0 + shift[0] - reach, grids.box_c0 + shift[1] - reach
    region = frame[r0 : r0 + n + 2 * reach, c0 : c0 + n + 2 * reach]
    if reach == 0:
        region *= keep
        region += heart
        return
    base, total = region.copy(), np.zeros_like(region)
    for dy, dx in grids.blur_px:
        view = base.copy()
        inner = view[reach + dy : reach + dy + n, reach + dx : reach + dx + n]
        inner *= keep
        inner += heart
        total += view
    region[...] = total / len(grids.blur_px)


def region_masks(
    weights: dict[str, np.ndarray], grids: Grids, acq: Acquisition
) -> tuple[dict[str, np.ndarray], dict[str, list[np.ndarray]]]:
    """Masks at the reference position, and per frame the pure-tissue pixels of each region as it moves."""
    top = acq.fold[0]
    shifts = sorted({(int(dy), int(dx)) for dy, dx in grids.heart_px} | {(0, 0)})
    coverage = {}
    for name, weight in weights.items():
        fine = ndimage.uniform_filter(weight.astype(np.float32), SUPERSAMPLE, mode="constant")
        coverage[name] = {
            shift: _sample_coverage(
                fine, grids.box_r0 + shift[0] - top, grids.box_c0 + shift[1], (acq.rows, acq.cols)
            )
            for shift in shifts
        }
    for shift in shifts:  # defect pixels: mostly defect within the myocardium
        coverage["defect"][shift] = np.where(
            coverage["defect"][shift] > 0.5 * coverage["myocardium"][shift],
            coverage["myocardium"][shift],
            0,
        )
    masks = {name: coverage[name][(0, 0)] > 0.5 for name in weights}
    tracked = {}
    for name in weights:
        tracked[name] = []
        for dy, dx in grids.heart_px:
            c = coverage[name][(int(dy), int(dx))]
            core = c > 0.9
            tracked[name].append(core if core.sum() >= 4 else c > 0.5)
    return masks, tracked


def _sample_coverage(fine: np.ndarray, row0: int, col0: int, shape: tuple[int, int]) -> np.ndarray:
    """Acquired-grid values of a box-filtered fine map whose top-left fine pixel is FOV fine pixel (row0, col0)."""
    s = SUPERSAMPLE
    out = np.zeros(shape, np.float32)
    i0, j0 = -(-row0 // s), -(-col0 // s)
    sub = fine[i0 * s - row0 :: s, j0 * s - col0 :: s]
    ri, rj = max(i0, 0), max(j0, 0)
    sub = sub[ri - i0 :, rj - j0 :][: shape[0] - ri, : shape[1] - rj]
    out[ri : ri + sub.shape[0], rj : rj + sub.shape[1]] = sub
    return out


def region_curves(truth: np.ndarray, masks: dict, tracked: dict) -> dict[str, np.ndarray]:
    """Mean of the truth in each (breathing-tracked) region per frame, for the regions present."""
    return {
        name: np.array(
            [_region_mean(truth[t], tracked[name][t]) for t in range(len(truth))], dtype=np.float32
        )
        for name in masks
        if masks[name].any()
    }


def _region_mean(image: np.ndarray, mask: np.ndarray) -> float:
    return float(image[mask].mean()) if mask.any() else 0.0
