"""Acquisition step: field of view, matrix, fold-over and reconstruction settings; then the scanner's
view of the rendered object (coil shading, phase, ghost, k-space extent and filter, Rician noise)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import fft as sfft
from scipy import special

from .body import Body
from .geometry import ANGLES, HEART_CROP, SUPERSAMPLE, log_uniform, uniform
from .heart import Placement
from .priors import AcquisitionPriors


@dataclass(frozen=True)
class Acquisition:
    rows: int  # phase encoding
    cols: int
    pixel: float  # mm
    fov_center: tuple[float, float]  # world (x, y) mm
    heart_center: tuple[int, int]  # (row, col) of the LV centre
    fold: tuple[int, int]  # fine rows folded in at the top and the bottom
    recon: dict  # phase_resolution, partial_fourier, heart_blur_mm/angle, filter, ghost, snr, scale, ...

    @property
    def step(self) -> float:
        """Fine-grid pixel size (mm)."""
        return self.pixel / SUPERSAMPLE

    def params(self) -> dict:
        return {
            "matrix": [self.rows, self.cols],
            "pixel_mm": self.pixel,
            "fov_mm": [self.rows * self.pixel, self.cols * self.pixel],
            "supersample": SUPERSAMPLE,
            "fold_rows": list(self.fold),
            "heart_center": list(self.heart_center),
            "acquisition": dict(self.recon),
        }


def draw_acquisition(
    rng: np.random.Generator,
    p: AcquisitionPriors,
    placed: Placement,
    motion_reach: float,
    matrix: tuple[int, int] | None,
) -> Acquisition:
    """Pixel size, matrix, field-of-view centre and fold-over, keeping the heart in a 96x96 crop."""
    p_low, p_high = p.pixel_mm
    p_min = max(p_low, (placed.heart.reach + motion_reach + 1.0) / (HEART_CROP / 2 - 4))
    width = placed.body.width
    if matrix is not None:
        rows, cols = (int(v) for v in matrix)
        pixel = float(
            np.clip(width * uniform(rng, *p.fov_to_body_fixed_matrix) / cols, p_min, max(p_min, p_high))
        )
    else:
        fov = float(np.clip(width * uniform(rng, *p.fov_to_body), *p.fov_mm))
        choices = [c for c in p.cols if p_min <= fov / c <= p_high]
        cols = int(rng.choice(choices)) if choices else min(p.cols)
        pixel = max(fov / cols, p_min)
        height = placed.body.height * uniform(rng, *p.rows_to_body)
        rows = int(np.clip(round(min(height / pixel, cols * uniform(rng, *p.rows_to_cols)) / 8) * 8, *p.rows))
    step = pixel / SUPERSAMPLE
    xh, yh = placed.lv_center
    share = uniform(rng, *p.fov_center_share)
    limit_x, limit_y = (max(0.0, (n / 2 - HEART_CROP / 2 - 0.5) * pixel) for n in (cols, rows))
    jitter = p.fov_center_jitter_mm
    fov_center = (
        float(np.clip(share * xh + jitter * rng.standard_normal(), xh - limit_x, xh + limit_x)),
        float(np.clip(share * yh + jitter * rng.standard_normal(), yh - limit_y, yh + limit_y)),
    )
    heart_center = (
        int(round((yh - fov_center[1]) / pixel + rows / 2)),
        int(round((xh - fov_center[0]) / pixel + cols / 2)),
    )
    # phase-encoding fold-over of body parts beyond the field of view (else: phase oversampling)
    skin = placed.body.outline["skin"]
    _, y_world = placed.body.to_world(skin * np.cos(ANGLES), skin * np.sin(ANGLES))
    top = fov_center[1] - rows / 2 * pixel
    cap = int(p.fold_cap * rows * SUPERSAMPLE)
    fold = rng.random() < p.fold_chance
    folds = tuple(
        int(min(cap, max(0.0, (edge - y) / step))) if fold else 0
        for edge, y in ((top, float(y_world.min())), (-top - rows * pixel + 0.0, -float(y_world.max())))
    )
    # scanner reconstruction: phase resolution, partial Fourier, k-space filter; noise; scale
    recon = {
        "phase_resolution": 1.0
        if rng.random() < p.full_phase_resolution_chance
        else uniform(rng, *p.phase_resolution),
        "partial_fourier": float(rng.choice(p.partial_fourier, p=p.partial_fourier_chances)),
        "heart_blur_mm": uniform(rng, *p.heart_blur_mm) if rng.random() < p.heart_blur_chance else 0.0,
        "heart_blur_angle": rng.uniform(0, np.pi),
        "filter": uniform(rng, *p.filter) if rng.random() < p.filter_chance else 0.0,
        "ghost": uniform(rng, *p.ghost) if rng.random() < p.ghost_chance else 0.0,
        "snr": log_uniform(rng, *p.snr),
        "scale": log_uniform(rng, *p.scale),
        "integer": bool(rng.random() < p.integer_chance),
        "coil_exponent": uniform(rng, *p.coil_exponent),
    }
    return Acquisition(rows, cols, pixel, fov_center, heart_center, folds, recon)


def _rice_exact(snr: np.ndarray) -> np.ndarray:
    """``E|nu + n| / sigma`` as a function of ``nu / sigma`` (Laguerre L_1/2 via scaled Bessel functions)."""
    z = np.asarray(snr, np.float64) ** 2 / 4
    return math.sqrt(math.pi / 2) * ((1 + 2 * z) * special.ive(0, z) + 2 * z * special.ive(1, z))


_RICE_SNR = np.linspace(0.0, 8.0, 8193)
_RICE_MEAN = _rice_exact(_RICE_SNR)


def rice_mean(nu: np.ndarray, sigma: np.ndarray | float) -> np.ndarray:
    """``E|nu + n|`` for complex Gaussian noise ``n`` of standard deviation ``sigma`` per component."""
    shape = np.broadcast(nu, sigma).shape
    nu, sigma = (np.array(v, np.float64).ravel() for v in np.broadcast_arrays(nu, sigma))
    low = nu < 8 * sigma
    ratio = (sigma / np.where(low, 1.0, nu)) ** 2
    out = nu * (1 + ratio / 2 + ratio**2 / 8)  # asymptotic series, relative error < 1e-6 where nu > 8 sigma
    out[low] = sigma[low] * np.interp(nu[low] / sigma[low], _RICE_SNR, _RICE_MEAN)  # tabulated exact values
    return out.reshape(shape)


@dataclass(frozen=True)
class Coil:
    shading: np.ndarray  # (rows, cols) receive sensitivity of the signal, 1 at the heart centre
    noise: np.ndarray  # (rows, cols) relative noise level, 1 at the heart centre


def draw_coil(rng: np.random.Generator, p: AcquisitionPriors, acq: Acquisition, body: Body) -> Coil:
    """Receive shading and noise level of anterior and posterior coil arrays (sum of squares)."""
    rows, cols, pixel = acq.rows, acq.cols, acq.pixel
    x = (np.arange(cols) - cols / 2) * pixel + acq.fov_center[0]
    y = (np.arange(rows) - rows / 2) * pixel + acq.fov_center[1]
    xb, yb = body.to_body(x[None, :], y[:, None])
    skin = body.outline["skin"]
    front = float(skin[np.argmin(np.abs(ANGLES + np.pi / 2))])
    back = float(skin[np.argmin(np.abs(ANGLES - np.pi / 2))])
    width = float(skin[np.argmin(np.abs(ANGLES))])
    power = np.zeros((rows, cols))
    for row_y in (-front - 15, back + 10):
        for coil_x in np.linspace(
            -0.8 * width, 0.8 * width, int(rng.integers(p.coil_elements[0], p.coil_elements[1] + 1))
        ):
            size = uniform(rng, *p.coil_size_mm)
            d2 = (xb - coil_x) ** 2 + (yb - row_y) ** 2
            power += uniform(rng, *p.coil_gain) ** 2 / (1 + d2 / size**2) ** 3
    sos = np.sqrt(power)
    sos /= sos[acq.heart_center]
    exponent = acq.recon["coil_exponent"]
    shading = np.clip(sos**exponent, 0.05, 4.0)
    noise = np.clip(sos ** (exponent - 1), 0.5, 2.5)
    wave = 0.5 + 0.5 * np.cos(
        2 * np.pi * (x[None, :] * rng.normal(0, 1 / 400) + y[:, None] * rng.normal(0, 1 / 400))
        + rng.uniform(0, 2 * np.pi)
    )
    noise *= 1 + uniform(rng, *p.noise_ripple) * wave
    return Coil(shading.astype(np.float32), (noise / noise[acq.heart_center]).astype(np.float32))


@dataclass(frozen=True)
class Acquired:
    frames: np.ndarray  # (T, rows, cols) float32 noisy magnitude, stored scale
    truth: np.ndarray  # (T, rows, cols) float32 Rice mean of the magnitude, same scale
    sigma: float  # noise standard deviation at the heart centre, stored scale

    def params(self, acq: Acquisition) -> dict:
        return {"noise": {"sigma": self.sigma, "snr": acq.recon["snr"]}, "scale": acq.recon["scale"]}


def acquire(
    rng: np.random.Generator,
    image: np.ndarray,
    acq: Acquisition,
    coil: Coil,
    lv_mask: np.ndarray,
    lv_peak: int,
) -> Acquired:
    """Shading, phase, ghost, the scanner's k-space extent and filter, Rician noise, stored-value scale.

    The noise is set so that the LV blood (``lv_mask``) at frame ``lv_peak`` has the drawn SNR.
    """
    recon, rows, cols = acq.recon, acq.rows, acq.cols
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    yy, xx = yy / rows - 0.5, xx / cols - 0.5
    phase = (
        rng.uniform(-np.pi, np.pi)
        + rng.normal(0, 2) * xx
        + rng.normal(0, 2) * yy
        + rng.normal(0, 2) * (xx**2 + yy**2)
        + rng.normal(0, 1) * xx * yy
    )
    obj = image * (coil.shading * np.exp(1j * phase)).astype(np.complex64)
    if recon["ghost"]:
        obj += recon["ghost"] * np.exp(1j * rng.uniform(0, 2 * np.pi)) * np.roll(obj, rows // 2, axis=1)
    fy = sfft.fftfreq(rows) * rows
    fx = sfft.fftfreq(cols) * cols
    half = recon["phase_resolution"] * rows / 2
    lines = (np.abs(fy) <= half) & (fy >= -half + 2 * half * (1 - recon["partial_fourier"]))
    taper = recon["filter"]

    def window(f, extent):
        u = np.abs(f) / extent
        return np.where(
            u <= 1 - taper, 1.0, 0.5 + 0.5 * np.cos(np.pi * (u - 1 + taper) / max(taper, 1e-6)) * 0.8
        )

    response = (lines * window(fy, half))[:, None] * window(fx, cols / 2)[None, :]
    acquired = sfft.ifft2(sfft.fft2(obj, workers=1) * response.astype(np.float32), workers=1)
    magnitude = np.abs(acquired)
    sigma = float(magnitude[lv_peak][lv_mask].mean()) / recon["snr"]
    rms = float(np.sqrt(np.mean(response**2)))
    shape = acquired.shape
    white = rng.standard_normal(shape, dtype=np.float32) + 1j * rng.standard_normal(shape, dtype=np.float32)
    noise = sfft.ifft2(
        white * (response * sigma * math.sqrt(rows * cols) / rms).astype(np.float32), workers=1
    )
    frames = np.abs(acquired + noise * coil.noise)
    truth = rice_mean(magnitude, sigma * coil.noise)
    scale = recon["scale"]
    frames, truth = frames * scale, truth * scale
    if recon["integer"]:
        frames = np.rint(frames)
    return Acquired(frames.astype(np.float32), truth.astype(np.float32), sigma * scale)
