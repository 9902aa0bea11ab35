"""Synthetic short-axis first-pass perfusion studies with ground truth: the training data of the
bundled model, so every choice here aims at looking like a real scanner's series.

One seed draws a whole study. Anatomy (skin, subcutaneous fat with septa, chest-wall and back
muscles, ribs, sternum, spine, aorta, oesophagus, arms, breasts, lungs with vessels, diaphragm,
liver with vessels, stomach with a gas-fluid level, spleen, the LV and RV with trabeculae and
papillary muscles, epicardial fat with coronaries, an optional subendocardial or transmural defect)
is painted as soft-edged occupancy maps, textured by band-limited random fields, on a grid three
times finer than the acquired matrix. A tracer model (gamma-variate bolus, pulmonary transit,
recirculation; tissue impulse responses with flow, blood volume, extraction and interstitial volume)
gives each tissue's gadolinium concentration, and the saturation-recovery equation
``S = M0 (1 - exp(-TD (R1_0 + r1 C))) exp(-TE r2* C)`` its signal. Per frame the heart and the
abdominal/lung contents move with breathing, the fine image is folded along the phase-encoding axis
where the body overflows the field of view, and the acquired image is the central k-space block of it
(partial volume, Gibbs ringing and the dark rim come for free), seen through receive-coil shading and
a smooth phase, with the scanner's phase resolution, partial Fourier and filter, and Rician noise.

Image layout is ``(row, column)`` with anterior at the top and the patient's left on the right (the
LV to the right of the RV, the liver at the lower left); rows are the phase-encoding direction.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import fft as sfft
from scipy import ndimage, special

from . import io
from .errors import PerfGenError

MASK_LABELS = {"lv_blood": 1, "rv_blood": 2, "myocardium": 3, "defect": 4}
DEFECT_CHOICES = ("random", None, "none", "subendocardial", "transmural")
SLICE_THICKNESS = 8.0  # mm
SUPERSAMPLE = 3  # fine pixels per acquired pixel; odd, so acquired pixel centres fall on fine pixels
TRACER_STEP = 0.1  # s, time grid of the tracer kinetics
CHUNK = 8  # frames rendered together on the fine grid
HEART_CROP = 96  # the heart lies inside this square around ``heart_center``
ANGLES = np.linspace(-np.pi, np.pi, 2048, endpoint=False)
_ANGLES_CLOSED = np.append(ANGLES, np.pi)

# relative proton density, T1 at 1.5 T and at 3 T (s)
TISSUES = {
    "blood": (0.92, 1.55, 1.85),
    "myocardium": (0.80, 1.00, 1.20),
    "skeletal": (0.75, 1.00, 1.35),
    "skin": (0.70, 0.85, 1.05),
    "fat": (0.95, 0.27, 0.37),
    "liver": (0.72, 0.58, 0.81),
    "spleen": (0.82, 1.05, 1.30),
    "marrow": (0.80, 0.50, 0.58),
    "csf": (1.00, 4.00, 4.30),
    "lung": (0.16, 1.20, 1.30),
    "gland": (0.80, 1.00, 1.30),
    "gut_content": (0.95, 2.00, 2.40),
}
# tissue component -> tissue whose PD and T1 it has
COMPONENT_TISSUE = {
    "lv_blood": "blood",
    "rv_blood": "blood",
    "aorta": "blood",
    "coronary": "blood",
    "pulm_artery": "blood",
    "pulm_vein": "blood",
    "portal": "blood",
    "myo_endo": "myocardium",
    "myo_epi": "myocardium",
    "myo_defect": "myocardium",
    "skeletal": "skeletal",
    "gut_wall": "skeletal",
    "skin": "skin",
    "fat": "fat",
    "liver": "liver",
    "spleen": "spleen",
    "marrow": "marrow",
    "csf": "csf",
    "lung": "lung",
    "gland": "gland",
    "gut_content": "gut_content",
}


@dataclass
class PhantomStudy:
    """One synthetic study: noisy frames, their noise-free expectation, masks, true curves, geometry."""

    frames: np.ndarray  # (T, H, W) float32 noisy magnitude, the HR training target
    truth: np.ndarray  # (T, H, W) float32 expected magnitude E|x + n| (Rice mean), same scale
    masks: dict[str, np.ndarray]  # lv_blood, rv_blood, myocardium, defect: bool (H, W) at end-expiration
    curves: dict[str, np.ndarray]  # mask name -> (T,) mean of truth in the (breathing-tracked) region
    frame_times: np.ndarray  # (T,) s from the first frame
    spacing: tuple[float, float]  # (x = column, y = row) mm
    heart_center: tuple[int, int]  # (row, col) of the LV centre
    params: dict  # JSON-serialisable parameters of the study

    def to_study(self) -> io.Study:
        """The noisy frames as a :class:`PerfGenSRLib.io.Study` carrying geometry, times and parameters."""
        return io.Study(
            self.frames.astype(np.float32),
            spacing=(float(self.spacing[0]), float(self.spacing[1]), SLICE_THICKNESS),
            frame_times=np.asarray(self.frame_times, dtype=float),
            single_slice=True,
            meta={"heart_center": [int(v) for v in self.heart_center], "phantom": self.params},
        )


def make_phantom(
    seed: int,
    frames: int = 40,
    *,
    stress: bool | None = None,
    defect: str | None = "random",
    matrix: tuple[int, int] | None = None,
) -> PhantomStudy:
    """A synthetic short-axis first-pass perfusion study, fully determined by ``seed`` and the options."""
    if int(frames) < 1:
        raise PerfGenError(f"a phantom needs at least 1 frame, got {frames}")
    if defect not in DEFECT_CHOICES:
        raise PerfGenError(f"defect must be one of {DEFECT_CHOICES}, got {defect!r}")
    if matrix is not None and not (len(matrix) == 2 and min(matrix) >= HEART_CROP and max(matrix) <= 384):
        raise PerfGenError(f"matrix must be (rows, cols) between {HEART_CROP} and 384, got {matrix!r}")
    return _Builder(int(seed), int(frames), stress, defect, matrix).build()


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


# ----------------------------------------------------------------------------------------- geometry


def _at(theta, table: np.ndarray):
    """A periodic angular profile (sampled on :data:`ANGLES`) at any angle(s)."""
    return np.interp(_wrap(np.asarray(theta, np.float64)), _ANGLES_CLOSED, np.append(table, table[0]))


def _wrap(angle):
    return (angle + np.pi) % (2 * np.pi) - np.pi


def _slope(table: np.ndarray) -> np.ndarray:
    return (np.roll(table, -1) - np.roll(table, 1)) / (2 * (ANGLES[1] - ANGLES[0]))


class _Polar:
    """Polar coordinates of grid points about a centre, with fast look-up of angular profiles."""

    def __init__(self, dx: np.ndarray, dy: np.ndarray):
        self.r = np.hypot(dx, dy)
        self.theta = np.arctan2(dy, dx)
        position = (self.theta + np.pi) * np.float32(len(ANGLES) / (2 * np.pi))
        index = np.floor(position)
        self.frac = (position - index).astype(np.float32)
        self.i0 = index.astype(np.intp) % len(ANGLES)
        self.i1 = (self.i0 + 1) % len(ANGLES)

    def at(self, table: np.ndarray) -> np.ndarray:
        """The profile at every point's angle."""
        table = np.asarray(table, np.float32)
        return table[self.i0] * (1 - self.frac) + table[self.i1] * self.frac

    def distance(self, table: np.ndarray) -> np.ndarray:
        """Signed distance (mm, positive outside) to the star-shaped boundary ``r = table(theta)``."""
        return (self.r - self.at(table)) / np.sqrt(
            1 + (self.at(_slope(table)) / np.maximum(self.r, 1.0)) ** 2
        )


def _inside(distance: np.ndarray, edge: float) -> np.ndarray:
    """Soft occupancy of the region where ``distance < 0``."""
    return special.expit(-distance / np.float32(edge))


def _ellipse_distance(x, y, cx, cy, a, b, angle=0.0):
    """Approximate signed distance (mm) to an ellipse with semi-axes ``a`` (along ``angle``) and ``b``."""
    c, s = math.cos(angle), math.sin(angle)
    u, v = (x - cx) * c + (y - cy) * s, (y - cy) * c - (x - cx) * s
    rho = np.sqrt((u / a) ** 2 + (v / b) ** 2)
    return (rho - 1) * min(a, b)


def _harmonics(
    rng: np.random.Generator, low: int, high: int, amplitude: float, decay: float = 1.0
) -> np.ndarray:
    """A smooth random periodic profile: cosines of orders ``low..high`` with random phases."""
    orders = np.arange(low, high + 1)
    amps = amplitude * rng.standard_normal(len(orders)) / orders**decay
    phases = rng.uniform(0, 2 * np.pi, len(orders))
    return (amps[:, None] * np.cos(orders[:, None] * ANGLES + phases[:, None])).sum(0)


def _bump(center: float, width: float) -> np.ndarray:
    """A Gaussian bump on the angle table."""
    return np.exp(-0.5 * (_wrap(ANGLES - center) / width) ** 2)


class _Grid:
    """A fine pixel grid: pixel ``(i, j)`` sits at world ``(x0 + j * step, y0 + i * step)`` mm."""

    def __init__(self, x0: float, y0: float, step: float, shape: tuple[int, int]):
        self.x0, self.y0, self.step, self.shape = x0, y0, step, shape

    def axes(self, box=(slice(None), slice(None))):
        """World coordinates of a box of the grid, as a row vector ``x`` and a column vector ``y``."""
        rows, cols = (np.arange(n, dtype=np.float32)[s] for n, s in zip(self.shape, box, strict=True))
        return (self.x0 + cols * self.step)[None, :], (self.y0 + rows * self.step)[:, None]

    def box(self, x: float, y: float, half: float) -> tuple[slice, slice]:
        """The grid's pixels within ``half`` mm of world ``(x, y)`` (may be empty)."""
        i, j = (y - self.y0) / self.step, (x - self.x0) / self.step
        n = half / self.step + 1
        return (
            slice(int(np.clip(i - n, 0, self.shape[0])), int(np.clip(i + n + 1, 0, self.shape[0]))),
            slice(int(np.clip(j - n, 0, self.shape[1])), int(np.clip(j + n + 1, 0, self.shape[1]))),
        )


class _Layer:
    """Tissue components of one rigidly moving layer, painted front to back with soft occupancies.

    Each component is a map (occupancy x texture); an image is ``sum_k signal_k(t) * map_k``; the
    layer's alpha is ``1 - remaining``.
    """

    def __init__(self, shape: tuple[int, int]):
        self.remaining = np.ones(shape, np.float32)
        self.maps: dict[str, np.ndarray] = {}

    def add(self, key: str, values: np.ndarray, box=(slice(None), slice(None))) -> None:
        """Add ``values`` to component ``key`` (no effect on what is behind)."""
        target = self.maps.setdefault(key, np.zeros(self.remaining.shape, np.float32))
        target[box] += values

    def bands(self, bands: list, box=(slice(None), slice(None))) -> list[np.ndarray]:
        """Put regions that partition space behind what is painted; ``bands`` = [(occupancy, {key: texture})]."""
        remaining = self.remaining[box]
        occupancies = [np.clip(occupancy, 0, 1) for occupancy, _ in bands]
        weights = [occupancy * remaining for occupancy in occupancies]
        for weight, (_, parts) in zip(weights, bands, strict=True):
            for key, texture in parts.items():
                self.add(key, weight * texture, box)
        remaining *= 1 - np.minimum(sum(occupancies), 1)
        return weights

    def paint(self, key: str | None, occupancy: np.ndarray, texture=1.0, box=(slice(None), slice(None))):
        """Put one region of tissue ``key`` (None: signal-free, e.g. air, bone cortex) behind what is painted."""
        return self.bands([(occupancy, {key: texture} if key else {})], box)[0]

    def matrix(self) -> tuple[list[str], np.ndarray]:
        """Component names and their maps as a ``(K, pixels)`` matrix."""
        keys = list(self.maps)
        return keys, np.stack([self.maps[k].ravel() for k in keys]) if keys else np.zeros(
            (0, self.remaining.size)
        )


def _random_fields(
    rng: np.random.Generator, shape: tuple[int, int], step: float, lengths
) -> list[np.ndarray]:
    """Unit-variance Gaussian random fields with Gaussian correlation lengths (mm), two per length."""
    ky = sfft.fftfreq(shape[0], step).astype(np.float32)[:, None]
    kx = sfft.fftfreq(shape[1], step).astype(np.float32)[None, :]
    k2 = ky**2 + kx**2
    fields = []
    for length in lengths:
        white = rng.standard_normal(shape, dtype=np.float32) + 1j * rng.standard_normal(
            shape, dtype=np.float32
        )
        field = sfft.ifft2(white * np.exp(-2 * np.pi**2 * length**2 * k2), workers=1)
        fields += [part / part.std() for part in (field.real, field.imag)]
    return fields


class _Textures:
    """Per-tissue multiplicative textures from a few shared random fields (fine, mid, coarse scale)."""

    def __init__(self, fields: list[np.ndarray], rng: np.random.Generator):
        self.fields, self.rng = fields, rng

    def crop(self, box) -> _Textures:
        return _Textures([f[box] for f in self.fields], self.rng)

    def mix(self, scale: int) -> np.ndarray:
        """A unit-variance field of one scale (0 fine, 1 mid, 2 coarse), a random mixture of its pair."""
        angle = self.rng.uniform(0, 2 * np.pi)
        return math.cos(angle) * self.fields[2 * scale] + math.sin(angle) * self.fields[2 * scale + 1]

    def texture(self, fine: float = 0.0, mid: float = 0.0, coarse: float = 0.0) -> np.ndarray:
        out = 1 + fine * self.mix(0) + mid * self.mix(1) + coarse * self.mix(2)
        return np.maximum(out, 0.05)

    def fat(self, septa: float) -> np.ndarray:
        """Fat: thin dark curvy septa (zero lines of a mid-scale field) and faint mottling."""
        lines = np.exp(-((self.mix(1) / 0.08) ** 2))
        return (1 - septa * lines) * self.texture(fine=0.04, coarse=0.05)


# -------------------------------------------------------------------------------------- tracer model


def _gamma_kernel(t: np.ndarray, mean: float, shape: float) -> np.ndarray:
    """Discrete gamma density on ``t >= 0`` with the given mean (s) and shape, summing to 1."""
    scale = mean / shape
    tt = np.maximum(t, 0)
    log = (shape - 1) * np.log(np.maximum(tt, 1e-9)) - tt / scale
    kernel = np.where(t > 0, np.exp(log - log[t > 0].max()), 0.0)
    return kernel / kernel.sum()


def _convolve(signal: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    return np.convolve(signal, kernel)[: len(signal)]


def _delay(t: np.ndarray, curve: np.ndarray, delay: float) -> np.ndarray:
    return np.interp(t - delay, t, curve, left=0.0, right=curve[-1])


def _tissue(
    t: np.ndarray, c_in: np.ndarray, flow: float, vb: float, ve: float, ps: float, delay: float
) -> np.ndarray:
    """Tissue concentration: ``F * (C_in ⊗ R)``, R a Fermi-smoothed adiabatic-approximation impulse response.

    ``flow`` and ``ps`` in ml/min/ml; R is 1 through the capillary transit ``vb/F``, then the
    extracted fraction ``E = 1 - exp(-PS/F)`` washes out of the interstitium ``ve`` at rate ``E F / ve``.
    """
    f = flow / 60
    extraction = 1 - math.exp(-ps / flow)
    transit = vb / f
    step = special.expit(-(t - transit) / (0.15 * transit + 0.25))
    response = step + extraction * (1 - step) * np.exp(-extraction * f * np.maximum(t - transit, 0) / ve)
    return f * TRACER_STEP * _convolve(_delay(t, c_in, delay), response)


# ------------------------------------------------------------------------------------------ builder


def _uniform(rng, low, high):
    return float(rng.uniform(low, high))


def _log_uniform(rng, low, high):
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


class _Builder:
    """Draws one study from a seed and renders it (see the module docstring for the steps)."""

    def __init__(self, seed, frames, stress, defect, matrix):
        # one generator per aspect, so that e.g. the frame count changes timing but not anatomy
        aspects = ("kind", "timing", "motion", "anatomy", "acquisition", "tracer", "paint", "noise")
        self.rngs = dict(
            zip(
                aspects,
                (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(len(aspects))),
                strict=True,
            )
        )
        self.seed, self.n_frames, self.matrix = seed, frames, matrix
        rng = self.rngs["kind"]
        self.stress = bool(rng.random() < 0.5) if stress is None else bool(stress)
        if defect == "random":
            kinds = ["none", "subendocardial", "transmural"]
            defect = str(rng.choice(kinds, p=[0.45, 0.35, 0.2] if self.stress else [0.6, 0.2, 0.2]))
        self.defect_kind = "none" if defect in (None, "none") else defect
        self.tesla = 3.0 if rng.random() < 0.25 else 1.5
        self.edge = _uniform(rng, 0.25, 0.6)  # mm, softness of tissue borders (through-plane partial volume)
        self.params: dict = {
            "seed": seed,
            "frames": frames,
            "stress": self.stress,
            "field_strength_T": self.tesla,
        }

    def build(self) -> PhantomStudy:
        self._draw_timing()
        self._draw_motion()
        self._draw_body()
        self._draw_heart()
        self._place_heart()
        self._draw_acquisition()
        self._draw_tracer()
        self._make_grids()
        rng = self.rngs["paint"]
        lengths = [_uniform(rng, 0.7, 1.4), _uniform(rng, 3.0, 6.0), _uniform(rng, 10.0, 20.0)]
        textures = _Textures(_random_fields(rng, self.canvas.shape, self.step, lengths), rng)
        m = self.margin
        static = self._paint_static(
            textures.crop((slice(m, m + self.fov.shape[0]), slice(m, m + self.fov.shape[1])))
        )
        cavity = self._paint_cavity(textures)
        box = (
            slice(m + self.box_r0, m + self.box_r0 + self.box_size),
            slice(m + self.box_c0, m + self.box_c0 + self.box_size),
        )
        heart, weights = self._paint_heart(textures.crop(box))
        signals = self._signals()
        image = self._render(static, cavity, heart, signals)
        masks, tracked = self._masks(weights)
        frames, truth = self._acquire(image, masks, signals)
        curves = {
            name: np.array(
                [_region_mean(truth[t], tracked[name][t]) for t in range(self.n_frames)], dtype=np.float32
            )
            for name in masks
            if masks[name].any()
        }
        self.params["heart_shift_mm"] = np.round(self.heart_shift, 2).tolist()
        return PhantomStudy(
            frames,
            truth,
            masks,
            curves,
            self.times.astype(np.float64),
            (self.pixel, self.pixel),
            self.heart_center,
            _jsonable(self.params),
        )

    # ---------------------------------------------------------------------------------- drawing

    def _draw_timing(self):
        rng, n = self.rngs["timing"], self.n_frames
        interval = _uniform(rng, 0.6, 0.95) if self.stress else _uniform(rng, 0.75, 1.2)
        late = _uniform(rng, 0.3, 1.0)
        self.n_baseline = int(rng.integers(3, max(3, min(8, n // 5)) + 1))
        steps = interval * (1 + 0.025 * rng.standard_normal(n))
        self.times = np.concatenate([[0.0], np.cumsum(steps[:-1])])
        self.arrival = float(self.times[min(self.n_baseline, n) - 1] + late * interval)
        self.params.update(frame_interval_s=interval, baseline_frames=self.n_baseline, arrival_s=self.arrival)

    def _draw_motion(self):
        """Breathing (end-expiration = reference) and cardiac-phase jitter, in mm per frame."""
        rng, t = self.rngs["motion"], self.times
        mode = str(rng.choice(["hold_then_breathe", "breathe", "hold"], p=[0.45, 0.4, 0.15]))
        period, phase, sharpness = _uniform(rng, 3.0, 6.0), rng.uniform(0, 2 * np.pi), _uniform(rng, 1.0, 2.5)
        swing, swing_phase = _uniform(rng, 10, 30), rng.uniform(0, 2 * np.pi)
        drift, hold = _uniform(rng, 0.0, 0.15), _uniform(rng, 5.0, 25.0)
        amplitude = _uniform(rng, 0.0, 2.0) if mode == "hold" else _uniform(rng, 2.0, 12.0)
        angle = _uniform(rng, np.radians(50), np.radians(130)) + (np.pi if rng.random() < 0.5 else 0.0)
        heart_gain, cavity_gain, jitter = (
            _uniform(rng, 0.6, 0.9),
            _uniform(rng, 0.9, 1.2),
            _uniform(rng, 0.15, 0.8),
        )
        cycle = ((1 - np.cos(2 * np.pi * t / period + phase)) / 2) ** sharpness
        cycle *= 1 + 0.3 * np.sin(2 * np.pi * t / swing + swing_phase)
        slow = drift * t / max(t[-1], 1.0)
        if mode == "hold":
            depth = slow
        elif mode == "breathe":
            depth = cycle
        else:
            depth = np.where(t < hold, slow, cycle * np.where(t < hold + period, 1.4, 1.0))
        direction = np.array([math.sin(angle), math.cos(angle)])  # (row, col) = (y, x)
        wobble = jitter * np.clip(rng.standard_normal((len(t), 2)), -2.5, 2.5)
        self.heart_shift = amplitude * heart_gain * depth[:, None] * direction + wobble
        self.cavity_shift = amplitude * cavity_gain * depth[:, None] * direction
        bound = amplitude * 1.3 * 1.4  # largest depth times amplitude, whatever the frame count
        self.heart_reach_motion = bound * heart_gain + 2.5 * jitter * math.sqrt(2)
        self.cavity_reach_motion = bound * cavity_gain
        self.params["breathing"] = {"mode": mode, "amplitude_mm": amplitude, "period_s": period}

    def _draw_body(self):
        """Thorax outline, wall layers, spine, aorta (body frame, angles on :data:`ANGLES`)."""
        rng, a = self.rngs["anatomy"], ANGLES
        sin = np.sin(a)
        front, back = np.maximum(0, -sin), np.maximum(0, sin)
        cx = _uniform(rng, 95, 135)
        cy_front, cy_back = cx * _uniform(rng, 0.55, 0.72), cx * _uniform(rng, 0.6, 0.8)
        power = _uniform(rng, 2.0, 2.7)
        cb = np.where(sin < 0, cy_front, cy_back)
        cavity = (np.abs(np.cos(a) / cx) ** power + np.abs(sin / cb) ** power) ** (-1 / power)
        cavity *= (1 + _harmonics(rng, 2, 6, 0.02)) * (1 - _uniform(rng, 0, 0.12) * back**4)
        fat0 = _log_uniform(rng, 3.0, 28.0)
        fat = fat0 * (
            _uniform(rng, 0.9, 1.8) + _uniform(rng, -0.6, 0.2) * front**2 + _uniform(rng, -0.7, 0.0) * back**2
        )
        fat *= np.exp(_harmonics(rng, 1, 6, 0.6))
        self.breasts = []
        if rng.random() < 0.3:
            for center in ([_uniform(rng, -2.6, -1.9)] if rng.random() < 0.4 else []) + [
                _uniform(rng, -1.3, -0.6)
            ]:
                height, width = _uniform(rng, 15, 55), _uniform(rng, 0.25, 0.45)
                fat = fat + height * _bump(center, width)
                self.breasts.append((center, width))
        muscle = (
            _uniform(rng, 5, 14)
            + _uniform(rng, 4, 14) * front**2
            + _uniform(rng, 20, 45) * back**2
            + _uniform(rng, 10, 25) * _bump(np.pi / 2, 0.35)
        ) * np.clip(1 + _harmonics(rng, 2, 6, 0.15), 0.5, None)
        skin = _uniform(rng, 1.2, 2.5)
        self.body = {
            "cavity": cavity,
            "muscle": cavity + muscle,
            "fat": cavity + muscle + fat,
            "skin": cavity + muscle + fat + skin,
        }
        self.body_rotation = _uniform(rng, -0.1, 0.1)
        post = float(cavity[np.argmin(np.abs(a - np.pi / 2))])
        vx, vy = _uniform(rng, 16, 22), _uniform(rng, 12, 16)
        spine_y = post + vy * _uniform(rng, -0.1, 0.5)
        self.spine = {
            "x": _uniform(rng, -6, 6),
            "y": spine_y,
            "rx": vx,
            "ry": vy,
            "canal": _uniform(rng, 5.5, 8),
            "post": post,
        }
        self.aorta = {
            "x": self.spine["x"] + _uniform(rng, 12, 30),
            "y": spine_y - vy - _uniform(rng, 0, 12),
            "r": _uniform(rng, 9, 14),
        }
        self.params["body"] = {
            "cavity_half_width_mm": cx,
            "fat_mm": fat0,
            "width_mm": 2 * float(self.body["skin"][np.abs(np.cos(a)) > 0.99].mean()),
            "height_mm": float(np.ptp(self.body["skin"] * sin)),
            "breasts": len(self.breasts),
        }

    def _draw_heart(self):
        """LV, RV, epicardial fat and defect as angular profiles around the LV centre (world frame)."""
        rng = self.rngs["anatomy"]
        level = str(rng.choice(["apical", "mid", "basal"], p=[0.3, 0.4, 0.3]))  # the paper's three slices
        lv_range, wall_range, rv_range, half_range, papillary_chance, smallest = {
            "apical": ((9, 16), (5, 10), (6, 14), (45, 75), 0.1, 0),
            "mid": ((16, 30), (6, 12.5), (12, 32), (55, 95), 0.85, 92),
            "basal": ((20, 32), (6, 12), (16, 36), (70, 110), 0.3, 98),
        }[level]
        while True:
            r_lv = _uniform(rng, *lv_range)
            wall = _uniform(rng, *wall_range)
            rv_width = _uniform(rng, *rv_range)
            fat0 = _uniform(rng, 0.0, 3.0)
            groove = _uniform(rng, 3, 12)
            if (
                r_lv + wall + rv_width + 4 + fat0 + groove < 112
                and 2 * (r_lv + wall) + rv_width + 6 > smallest
            ):
                break
        a = ANGLES
        axis, ratio = rng.uniform(0, np.pi), _uniform(rng, 0.85, 1.0)
        ellipse = ratio / np.sqrt((ratio * np.cos(a - axis)) ** 2 + np.sin(a - axis) ** 2)
        endo_smooth = r_lv * ellipse * (1 + _harmonics(rng, 2, 7, 0.03))
        trabeculae = np.zeros_like(a)
        for _ in range(int(rng.integers(4, 14))):
            trabeculae += _uniform(rng, 0.3, 1.6) * _bump(
                rng.uniform(-np.pi, np.pi), _uniform(rng, 0.05, 0.14)
            )
        endo = endo_smooth - trabeculae
        thickness = wall * np.clip(1 + _harmonics(rng, 1, 3, 0.12), 0.6, 1.5)
        epi = endo_smooth + thickness
        theta_rv = _uniform(rng, np.radians(190), np.radians(235))
        half = np.radians(_uniform(rng, *half_range))
        u = _wrap(a - theta_rv) / half
        crescent = np.clip(1 - np.abs(u) ** 2, 0, None) ** _uniform(rng, 0.5, 1.3) * (
            1 + _uniform(rng, -0.35, 0.35) * u
        )
        rv = rv_width * np.clip(crescent * (1 + _harmonics(rng, 3, 14, 0.08, decay=0.5)), 0, None)
        rv_wall = _uniform(rng, 2.5, 5.0) * np.clip((1.3 - np.abs(u)) / 0.3, 0, 1)
        fat = fat0 * np.clip(1 + _harmonics(rng, 1, 4, 0.5), 0, None) + _uniform(rng, 0, 6) * np.clip(
            1 - u**2, 0, None
        )
        for side in (-1, 1):
            fat += (
                groove
                * _uniform(rng, 0.4, 1.0)
                * _bump(theta_rv + side * half * _uniform(rng, 0.85, 1.05), _uniform(rng, 0.12, 0.3))
            )
        self.heart = {
            "endo": endo,
            "endo_smooth": endo_smooth,
            "epi": epi,
            "rv": epi + rv,
            "rv_wall": epi + rv + rv_wall,
            "outer": epi + rv + rv_wall + fat,
            "thickness": thickness,
        }
        self.papillary = []
        if rng.random() < papillary_chance:
            for offset in (_uniform(rng, 115, 150), -_uniform(rng, 60, 100)):
                angle = theta_rv + np.radians(offset)
                radial, tangential = _uniform(rng, 3, 6.5) * r_lv / 22, _uniform(rng, 2.5, 5) * r_lv / 22
                depth = float(_at(angle, endo_smooth)) - radial * _uniform(rng, 0.9, 1.6)
                self.papillary.append((angle, depth, radial, tangential))
        self.coronaries = [
            (theta_rv + side * half * _uniform(rng, 0.8, 1.1), _uniform(rng, 0.8, 2.0))
            for side in (-1, 1)
            if rng.random() < 0.8
        ]
        self.theta_rv = theta_rv
        self.defect = None
        if self.defect_kind != "none":
            self.defect = {
                "angle": rng.uniform(-np.pi, np.pi),
                "half_width": _uniform(rng, np.radians(30), np.radians(70)),
                "extent": 1.0 if self.defect_kind == "transmural" else _uniform(rng, 0.4, 0.65),
            }
        self.dark_rim = {
            "amplitude": _uniform(rng, 0.1, 0.45) if rng.random() < 0.6 else 0.0,
            "width": _uniform(rng, 0.8, 2.0),
            "modulation": np.clip(0.7 + _harmonics(rng, 1, 4, 0.4), 0.2, 1.0),
            "decay": _uniform(rng, 2, 6),
        }
        self.reach = float(self.heart["outer"].max()) + 2.0
        width = max(
            float(np.ptp(self.heart["rv_wall"] * np.cos(a - turn))) for turn in np.linspace(0, np.pi, 18)
        )
        self.params["heart"] = {
            "slice": level,
            "lv_radius_mm": r_lv,
            "wall_mm": wall,
            "rv_width_mm": rv_width,
            "rv_angle_deg": math.degrees(theta_rv),
            "width_mm": width,
            "papillary_muscles": len(self.papillary),
        }
        limit = (
            (HEART_CROP / 2 - 4) * 2.8 - self.heart_reach_motion - 1.0
        )  # fits the crop at the coarsest pixel
        if self.reach > limit:
            self._scale_heart(limit / self.reach)

    def _grow_body(self, factor: float):
        """Enlarge the thoracic cavity (wall layers keep their thickness; spine and aorta move with its back)."""
        cavity = self.body["cavity"]
        grown = cavity * factor
        self.body = {k: v - cavity + grown for k, v in self.body.items()}
        shift = (factor - 1) * self.spine["post"]
        self.spine["y"] += shift
        self.aorta["y"] += shift
        self.params["body"]["width_mm"] = 2 * float(self.body["skin"][np.abs(np.cos(ANGLES)) > 0.99].mean())
        self.params["body"]["cavity_half_width_mm"] *= factor
        self.params["body"]["height_mm"] = float(np.ptp(self.body["skin"] * np.sin(ANGLES)))

    def _scale_heart(self, factor: float):
        self.heart = {k: v * factor for k, v in self.heart.items()}
        self.papillary = [
            (angle, depth * factor, a * factor, b * factor) for angle, depth, a, b in self.papillary
        ]
        self.reach = float(self.heart["outer"].max()) + 2.0
        for key in ("lv_radius_mm", "wall_mm", "rv_width_mm", "width_mm"):
            self.params["heart"][key] *= factor

    def _to_body(self, x, y):
        c, s = math.cos(self.body_rotation), math.sin(self.body_rotation)
        return x * c + y * s, y * c - x * s

    def _to_world(self, xb, yb):
        c, s = math.cos(self.body_rotation), math.sin(self.body_rotation)
        return xb * c - yb * s, yb * c + xb * s

    def _cavity_depth(self, x, y):
        xb, yb = self._to_body(x, y)
        return _at(np.arctan2(yb, xb), self.body["cavity"]) - np.hypot(xb, yb)

    def _place_heart(self):
        """Put the heart against the anterior chest wall, clear of spine and aorta (growing the thorax if needed)."""
        rng, a = self.rngs["anatomy"], ANGLES
        gap = _uniform(rng, 0, 10)
        for attempt in range(40):
            outline = self.heart["outer"]
            ox, oy = outline * np.cos(a), outline * np.sin(a)
            spine_x, spine_y = self._to_world(self.spine["x"], self.spine["y"] - self.spine["ry"])
            aorta_x, aorta_y = self._to_world(self.aorta["x"], self.aorta["y"])
            xh = _uniform(rng, -5, 45)
            candidates = np.arange(-130.0, 80.0, 1.0)
            depth = np.array([self._cavity_depth(xh + ox, yh + oy).min() for yh in candidates])
            clear = np.array(
                [
                    min(
                        np.hypot(xh + ox - aorta_x, yh + oy - aorta_y).min() - self.aorta["r"],
                        np.hypot(xh + ox - spine_x, yh + oy - spine_y).min() - self.spine["rx"],
                    )
                    > 4
                    for yh in candidates
                ]
            )
            valid = np.flatnonzero((depth >= gap) & clear)
            if len(valid):
                yh = candidates[valid[0]] + min(
                    _uniform(rng, 0, 15), candidates[valid[-1]] - candidates[valid[0]]
                )
                break
            if attempt % 2:
                self._grow_body(1.04)
                self._scale_heart(0.98)
            gap = max(0.0, gap - 1)
        else:
            raise RuntimeError("no room for the heart in the drawn thorax")
        self.lv_center = (xh, yh)
        self.organs = self._draw_organs()

    def _draw_organs(self) -> list[dict]:
        """Liver (lower left), optionally stomach and spleen (lower right) as irregular blobs under the heart."""
        rng, (xh, yh) = self.rngs["anatomy"], self.lv_center
        organs = []
        kinds = [("liver", _uniform(rng, 100, 145), _uniform(rng, 80, 150), _uniform(rng, 65, 120))]
        if rng.random() < 0.45:
            kinds.append(("stomach", _uniform(rng, 55, 95), _uniform(rng, 25, 50), _uniform(rng, 20, 40)))
        if rng.random() < 0.25:
            kinds.append(("spleen", _uniform(rng, 40, 70), _uniform(rng, 20, 35), _uniform(rng, 30, 50)))
        for kind, direction_deg, a, b in kinds:
            direction = math.radians(direction_deg)
            turn = rng.uniform(0, np.pi)
            power = _uniform(rng, 2.0, 2.6)
            angle = ANGLES - turn
            radius = (np.abs(np.cos(angle) / a) ** power + np.abs(np.sin(angle) / b) ** power) ** (-1 / power)
            radius *= 1 + _harmonics(rng, 2, 6, 0.05)
            toward_heart = float(_at(direction + np.pi, radius))
            heart_side = float(_at(direction, self.heart["outer"]))
            gap = {
                "liver": _uniform(rng, -6, 8),
                "stomach": _uniform(rng, 0, 25),
                "spleen": _uniform(rng, 30, 70),
            }[kind]
            distance = heart_side + gap + toward_heart
            organs.append(
                {
                    "kind": kind,
                    "x": xh + distance * math.cos(direction),
                    "y": yh + distance * math.sin(direction),
                    "radius": radius,
                    "diaphragm": _uniform(rng, 2.5, 5.0),
                }
            )
        return organs

    def _draw_acquisition(self):
        """Pixel size, matrix, field-of-view centre and fold-over, keeping the heart in a 96x96 crop."""
        rng = self.rngs["acquisition"]
        motion = self.heart_reach_motion + 1.0
        p_min = max(1.6, (self.reach + motion) / (HEART_CROP / 2 - 4))
        width = self.params["body"]["width_mm"]
        if self.matrix is not None:
            rows, cols = (int(v) for v in self.matrix)
            pixel = float(np.clip(width * _uniform(rng, 0.95, 1.25) / cols, p_min, max(p_min, 2.8)))
        else:
            fov = float(np.clip(width * _uniform(rng, 0.95, 1.3), 280, 440))
            choices = [c for c in range(112, 225, 8) if p_min <= fov / c <= 2.8]
            cols = int(rng.choice(choices)) if choices else 112
            pixel = max(fov / cols, p_min)
            height = self.params["body"]["height_mm"] * _uniform(rng, 0.92, 1.2)
            rows = int(np.clip(round(min(height / pixel, cols * _uniform(rng, 0.85, 1.0)) / 8) * 8, 96, 192))
        self.rows, self.cols, self.pixel = rows, cols, pixel
        self.step = pixel / SUPERSAMPLE
        xh, yh = self.lv_center
        share = _uniform(rng, 0, 0.9)
        limit_x, limit_y = (max(0.0, (n / 2 - HEART_CROP / 2 - 0.5) * pixel) for n in (cols, rows))
        self.fov_center = (
            float(np.clip(share * xh + 8 * rng.standard_normal(), xh - limit_x, xh + limit_x)),
            float(np.clip(share * yh + 8 * rng.standard_normal(), yh - limit_y, yh + limit_y)),
        )
        self.heart_center = (
            int(round((yh - self.fov_center[1]) / pixel + rows / 2)),
            int(round((xh - self.fov_center[0]) / pixel + cols / 2)),
        )
        # phase-encoding fold-over of body parts beyond the field of view (else: phase oversampling)
        a = ANGLES
        xb, yb = self.body["skin"] * np.cos(a), self.body["skin"] * np.sin(a)
        _, y_world = self._to_world(xb, yb)
        top = self.fov_center[1] - rows / 2 * pixel
        cap = int(0.12 * rows * SUPERSAMPLE)
        fold = rng.random() < 0.5
        self.fold = [
            int(min(cap, max(0.0, (edge - y) / self.step))) if fold else 0
            for edge, y in ((top, float(y_world.min())), (-top - rows * pixel + 0.0, -float(y_world.max())))
        ]
        # scanner reconstruction: phase resolution, partial Fourier, k-space filter; noise; scale
        self.acq = {
            "phase_resolution": 1.0 if rng.random() < 0.3 else _uniform(rng, 0.65, 1.0),
            "partial_fourier": float(rng.choice([1.0, 7 / 8, 6 / 8], p=[0.5, 0.3, 0.2])),
            "heart_blur_mm": _uniform(rng, 0.0, 1.8) if rng.random() < 0.7 else 0.0,
            "heart_blur_angle": rng.uniform(0, np.pi),
            "filter": _uniform(rng, 0.2, 0.6) if rng.random() < 0.35 else 0.0,
            "ghost": _uniform(rng, 0.004, 0.03) if rng.random() < 0.4 else 0.0,
            "snr": _log_uniform(rng, 15, 60),
            "scale": _log_uniform(rng, 50, 4000),
            "integer": bool(rng.random() < 0.6),
            "coil_exponent": _uniform(rng, 0.25, 1.0),
        }
        self.params.update(
            matrix=[rows, cols],
            pixel_mm=pixel,
            fov_mm=[rows * pixel, cols * pixel],
            supersample=SUPERSAMPLE,
            fold_rows=self.fold,
            heart_center=list(self.heart_center),
            acquisition={k: v for k, v in self.acq.items()},
        )

    def _draw_tracer(self):
        """Gadolinium concentration (mM) of every tissue component on the tracer time grid."""
        rng = self.rngs["tracer"]
        t = np.arange(0, self.times[-1] + 3.0, TRACER_STEP)
        stress = self.stress
        bolus = _gamma_kernel(t - self.arrival, _uniform(rng, 2.5, 5.0), _uniform(rng, 2.5, 5.0))
        pulmonary = _gamma_kernel(
            t, _uniform(rng, 2.5, 4.5) if stress else _uniform(rng, 3.0, 6.0), _uniform(rng, 4, 9)
        )
        quick = _uniform(rng, 0.3, 0.6)  # share of the fast systemic paths (heart, brain, upper body)
        speed = 0.75 if stress else 1.0
        systemic = quick * _gamma_kernel(t, _uniform(rng, 6, 10) * speed, _uniform(rng, 4, 8)) + (
            1 - quick
        ) * _gamma_kernel(t, _uniform(rng, 15, 25) * speed, _uniform(rng, 2.5, 4))
        back = _uniform(rng, 0.55, 0.8)
        rv = bolus
        for _ in range(3):
            lv = _convolve(rv, pulmonary)
            rv = bolus + back * _convolve(lv, systemic)
        lv = _convolve(rv, pulmonary)
        peak = _log_uniform(rng, 3.0, 10.0)
        gain = peak / max(lv.max(), 1e-12)
        lv, rv = lv * gain, rv * gain
        flow = _uniform(rng, 1.8, 4.0) if stress else _uniform(rng, 0.6, 1.3)
        vb = _uniform(rng, 0.07, 0.11) * (1.3 if stress else 1.0)
        extraction = _uniform(rng, 0.3, 0.45) if stress else _uniform(rng, 0.45, 0.65)
        ve, delay = _uniform(rng, 0.18, 0.3), _uniform(rng, 0.3, 1.2)
        ps = -flow * math.log(1 - extraction)
        ratio = _uniform(rng, 0.9, 1.1) if stress else _uniform(rng, 1.0, 1.2)
        endo_flow, epi_flow = flow * 2 * ratio / (1 + ratio), flow * 2 / (1 + ratio)
        arterial = _delay(t, lv, _uniform(rng, 0.3, 1.0))
        portal = _convolve(lv, _gamma_kernel(t, _uniform(rng, 7, 14), 3.0))
        conc = {
            "lv_blood": lv,
            "rv_blood": rv,
            "aorta": arterial,
            "coronary": _delay(t, lv, 0.3),
            "pulm_artery": _delay(t, rv, 0.4),
            "pulm_vein": _delay(t, lv, -0.6),
            "portal": portal,
            "myo_endo": _tissue(t, lv, endo_flow, vb, ve, ps, delay),
            "myo_epi": _tissue(t, lv, epi_flow, vb, ve, ps, delay),
            "skeletal": _tissue(t, arterial, _uniform(rng, 0.03, 0.12), 0.02, 0.12, 0.1, 0.5),
            "skin": _tissue(t, arterial, 0.1, 0.03, 0.2, 0.2, 0.5),
            "fat": _tissue(t, arterial, 0.03, 0.01, 0.05, 0.03, 0.5),
            "marrow": _tissue(t, arterial, 0.15, 0.05, 0.1, 0.15, 0.5),
            "gland": _tissue(t, arterial, 0.15, 0.03, 0.2, 0.2, 0.5),
            "liver": _tissue(t, 0.25 * arterial + 0.75 * portal, 1.0, 0.12, 0.25, 5.0, 0.5),
            "spleen": _tissue(t, arterial, _uniform(rng, 1.0, 2.0), 0.2, 0.1, 1.0, 0.3),
            "gut_wall": _tissue(t, arterial, 0.4, 0.04, 0.2, 0.5, 0.3),
            "lung": 0.35 * (_delay(t, rv, 0.5) + _delay(t, lv, -0.5)) / 2,
            "csf": np.zeros_like(t),
            "gut_content": np.zeros_like(t),
        }
        defect = {}
        if self.defect is not None:
            share = _uniform(rng, 0.15, 0.5) if stress else _uniform(rng, 0.3, 0.6)
            late = _uniform(rng, 0.5, 2.5)
            conc["myo_defect"] = _tissue(
                t,
                lv,
                flow * share,
                vb * _uniform(rng, 0.6, 0.9),
                ve,
                ps * _uniform(rng, 0.5, 1.0),
                delay + late,
            )
            defect = {
                "kind": self.defect_kind,
                "angle_deg": math.degrees(self.defect["angle"]),
                "half_width_deg": math.degrees(self.defect["half_width"]),
                "extent": self.defect["extent"],
                "flow_ratio": share,
                "extra_delay_s": late,
            }
        self.tracer_time, self.conc = t, conc
        self.params.update(
            contrast={"peak_lv_mM": peak, "recirculation": back},
            perfusion={
                "flow_ml_min_g": flow,
                "endo_epi_ratio": ratio,
                "blood_volume": vb,
                "interstitial_volume": ve,
                "ps_ml_min_g": ps,
                "delay_s": delay,
            },
            defect=defect or {"kind": "none"},
        )

    def _signals(self) -> dict[str, np.ndarray]:
        """Signal per unit map of every component at the frame times (saturation recovery, T2* decay)."""
        rng, t, at = self.rngs["tracer"], self.tracer_time, self.times
        field = 0 if self.tesla == 1.5 else 1
        r1 = _uniform(rng, 3.5, 5.2) if field == 0 else _uniform(rng, 3.2, 4.6)
        delay_time, echo_time = _uniform(rng, 0.09, 0.125), _uniform(rng, 0.0010, 0.0013)
        r2s = _uniform(rng, 3, 12) * (1 + 0.5 * field)
        tissue = {
            name: (pd * _uniform(rng, 0.9, 1.1), t1s[field] * _uniform(rng, 0.9, 1.1))
            for name, (pd, *t1s) in TISSUES.items()
        }
        tissue["fat"] = (TISSUES["fat"][0] * _uniform(rng, 0.7, 1.1), tissue["fat"][1])

        def signal(conc, kind):
            pd, t1 = tissue[kind]
            r2 = r2s if kind == "blood" else r2s / 4
            return pd * (1 - np.exp(-delay_time * (1 / t1 + r1 * conc))) * np.exp(-echo_time * r2 * conc)

        grid = {key: signal(c, COMPONENT_TISSUE[key]) for key, c in self.conc.items()}
        out = {key: np.interp(at, t, s) for key, s in grid.items()}

        def lead(key, shift):
            return np.interp(at + shift, t, grid[key])

        out["lv_inflow"] = lead("lv_blood", _uniform(rng, 0.3, 1.2)) - out["lv_blood"]
        out["rv_inflow"] = lead("rv_blood", _uniform(rng, 0.5, 1.5)) - out["rv_blood"]
        out["myo_hetero"] = (
            np.interp(at, t, signal(self.conc["myo_epi"] * 1.3, "myocardium")) - out["myo_epi"]
        )
        lv = out["lv_blood"]
        rise = np.clip((lv - lv[0]) / max(lv.max() - lv[0], 1e-9), 0, 1)
        after = at - at[int(np.argmax(lv))]
        rise *= np.where(after > 0, np.exp(-np.maximum(after, 0) / self.dark_rim["decay"]), 1.0)
        out["dark_rim"] = -self.dark_rim["amplitude"] * out["myo_endo"] * rise
        self.params["signal"] = {
            "r1_per_mM_s": r1,
            "saturation_delay_s": delay_time,
            "echo_time_s": echo_time,
            "r2star_blood_per_mM_s": r2s,
        }
        self.params["concentration_mM"] = {
            k: np.round(np.interp(at, t, self.conc[k]), 4).tolist()
            for k in ("lv_blood", "rv_blood", "myo_endo", "myo_epi", "myo_defect")
            if k in self.conc
        }
        return {k: v.astype(np.float32) for k, v in out.items()}

    # --------------------------------------------------------------------------------- painting

    def _make_grids(self):
        """The FOV grid (with fold-over rows), the larger canvas the moving abdomen is drawn on, the heart box."""
        s, step = SUPERSAMPLE, self.step
        top, bottom = self.fold
        ext = (self.rows * s + top + bottom, self.cols * s)
        x0 = self.fov_center[0] - self.cols / 2 * self.pixel
        y0 = self.fov_center[1] - self.rows / 2 * self.pixel - top * step
        self.fov = _Grid(x0, y0, step, ext)
        self.margin = m = int(math.ceil((self.cavity_reach_motion + 1) / step)) + 1
        self.canvas = _Grid(x0 - m * step, y0 - m * step, step, (ext[0] + 2 * m, ext[1] + 2 * m))
        half = int(math.ceil((self.reach + 3 * self.edge) / step))
        xh, yh = self.lv_center
        self.box_size = 2 * half + 1
        self.box_r0 = int(round((yh - y0) / step)) - half
        self.box_c0 = int(round((xh - x0) / step)) - half
        self.heart_px = np.rint(self.heart_shift / step).astype(int)
        self.cavity_px = np.rint(self.cavity_shift / step).astype(int)
        # cardiac motion during the shot: the heart is seen at three positions along one direction
        blur, angle = self.acq["heart_blur_mm"] / step, self.acq["heart_blur_angle"]
        self.blur_px = np.rint(np.outer([-1, 0, 1], [math.sin(angle), math.cos(angle)]) * blur).astype(int)
        reach = np.abs(self.blur_px).max()
        lo_r, lo_c = (
            self.box_r0 + self.heart_px.min(0)[0] - reach,
            self.box_c0 + self.heart_px.min(0)[1] - reach,
        )
        hi_r, hi_c = (
            self.box_r0 + self.box_size + self.heart_px.max(0)[0] + reach,
            self.box_c0 + self.box_size + self.heart_px.max(0)[1] + reach,
        )
        if lo_r < 0 or lo_c < 0 or hi_r > ext[0] or hi_c > ext[1]:
            raise RuntimeError("heart box outside the field of view")

    def _paint_static(self, tex: _Textures) -> _Layer:
        """Body wall, ribs, sternum, spine, aorta, oesophagus, arms, breasts, air: they do not move."""
        rng, grid, edge = self.rngs["paint"], self.fov, self.edge
        layer = _Layer(grid.shape)
        x, y = grid.axes()
        xb, yb = self._to_body(x, y)
        polar = _Polar(xb, yb)
        marrow_tex, muscle_tex = tex.texture(fine=0.2, mid=0.1), tex.texture(fine=0.07, mid=0.06)

        def local(xc_b, yc_b, half):
            box = grid.box(*self._to_world(xc_b, yc_b), half)
            lx, ly = grid.axes(box)
            return box, self._to_body(lx, ly)

        def bone(xc_b, yc_b, a, b, angle, cortex=1.3):
            box, (lx, ly) = local(xc_b, yc_b, max(a, b) + 3)
            d = _ellipse_distance(lx, ly, xc_b, yc_b, a, b, angle)
            layer.paint("marrow", _inside(d + cortex, edge), marrow_tex[box], box)
            layer.paint(None, _inside(d, edge), box=box)

        cavity = self.body["cavity"]
        step_angle = _uniform(rng, 22, 32) / float(cavity.mean())
        for angle in np.arange(-np.pi, np.pi, step_angle) + rng.uniform(0, step_angle):
            if (
                abs(_wrap(angle - np.pi / 2)) < 0.45
                or abs(_wrap(angle + np.pi / 2)) < 0.12
                or rng.random() > 0.65
            ):
                continue
            radius = float(_at(angle, cavity)) + _uniform(rng, 0, 4)
            xc_b, yc_b = radius * math.cos(angle), radius * math.sin(angle)
            a, b, turn = (
                _uniform(rng, 4, 12),
                _uniform(rng, 3, 4.5),
                angle + np.pi / 2 + 0.3 * rng.standard_normal(),
            )
            if abs(_wrap(angle + np.pi / 2)) < 0.7:  # costal cartilage: grey, no cortex
                box, (lx, ly) = local(xc_b, yc_b, a + 3)
                layer.paint(
                    "skeletal", _inside(_ellipse_distance(lx, ly, xc_b, yc_b, a, b, turn), edge), 0.8, box
                )
            else:
                bone(xc_b, yc_b, a, b, turn)
        if rng.random() < 0.8:
            radius = float(_at(-np.pi / 2, cavity)) + _uniform(rng, 2, 6)
            bone(_uniform(rng, -5, 5), -radius, _uniform(rng, 12, 18), _uniform(rng, 4, 7), 0.0)
        for side in (-1, 1):  # internal mammary arteries
            angle = -np.pi / 2 + side * _uniform(rng, 0.12, 0.25)
            radius = float(_at(angle, cavity)) - _uniform(rng, 0, 3)
            mx, my, size = radius * math.cos(angle), radius * math.sin(angle), _uniform(rng, 1.0, 2.0)
            box, (lx, ly) = local(mx, my, size + 3)
            layer.paint(
                "aorta", _inside(np.hypot(lx - mx, ly - my) - size, edge) * _uniform(rng, 0.4, 1.0), 1.0, box
            )
        sp = self.spine
        bone(sp["x"], sp["y"], sp["rx"], sp["ry"], 0.0, cortex=1.5)
        canal_y = sp["y"] + sp["ry"] + sp["canal"] + 2
        box, (lx, ly) = local(sp["x"], canal_y, sp["canal"] + 3)
        layer.paint(
            "csf",
            _inside(_ellipse_distance(lx, ly, sp["x"], canal_y, sp["canal"], sp["canal"] * 0.8), edge),
            1.0,
            box,
        )
        for side in (-1, 1):
            bone(sp["x"] + side * (sp["canal"] + 4), canal_y + 2, 7, 3, side * 0.6)
        bone(
            sp["x"],
            canal_y + sp["canal"] + _uniform(rng, 8, 12),
            _uniform(rng, 3, 5),
            _uniform(rng, 8, 14),
            np.pi / 2,
        )
        ao = self.aorta
        box, (lx, ly) = local(ao["x"], ao["y"], ao["r"] + 4)
        d = np.hypot(lx - ao["x"], ly - ao["y"]) - ao["r"]
        layer.paint("aorta", _inside(d + 1.5, edge), 1.0, box)
        layer.paint("skeletal", _inside(d, edge), 1.0, box)
        if rng.random() < 0.6:
            ex, ey = sp["x"] + _uniform(rng, -12, 4), sp["y"] - sp["ry"] - _uniform(rng, 6, 14)
            box, (lx, ly) = local(ex, ey, 12)
            d = _ellipse_distance(
                lx, ly, ex, ey, _uniform(rng, 5, 8), _uniform(rng, 4, 6), rng.uniform(0, np.pi)
            )
            if rng.random() < 0.5:
                layer.paint(None, _inside(d + 3, edge), box=box)
            layer.paint("skeletal", _inside(d, edge), muscle_tex[box], box)
        if rng.random() < 0.35:
            self._paint_arms(layer, tex, local)
        fat_tex = tex.fat(_uniform(rng, 0.05, 0.35))
        for center, width in self.breasts:
            weight = polar.at(np.clip(2 * _bump(center, width), 0, 1))
            gland = weight * special.expit((tex.mix(1) - _uniform(rng, -0.5, 1.0)) / 0.25)
            layer.paint(
                "gland",
                gland
                * _inside(polar.distance(self.body["fat"]), edge)
                * (1 - _inside(polar.distance(self.body["muscle"]) - 8, edge)),
                tex.texture(fine=0.1),
            )
        body = self.body
        inner = [_inside(polar.distance(body[k]), edge) for k in ("skin", "fat", "muscle", "cavity")]
        layer.bands(
            [
                (1 - inner[0], {}),
                (inner[0] - inner[1], {"skin": tex.texture(fine=0.05)}),
                (inner[1] - inner[2], {"fat": fat_tex}),
                (inner[2] - inner[3], {"skeletal": muscle_tex}),
            ]
        )
        return layer

    def _paint_arms(self, layer: _Layer, tex: _Textures, local):
        rng, edge = self.rngs["paint"], self.edge
        width = float(self.body["skin"][np.argmin(np.abs(ANGLES))])
        for side in (-1, 1):
            radius = _uniform(rng, 35, 55)
            xc, yc = side * (width + _uniform(rng, 0, 20) + radius), _uniform(rng, -20, 50)
            box, (lx, ly) = local(xc, yc, radius + 3)
            d = np.hypot(lx - xc, ly - yc) - radius
            fat = _uniform(rng, 4, 15)
            hx, hy = xc + _uniform(rng, -10, 10), yc + _uniform(rng, -10, 10)
            dh = np.hypot(lx - hx, ly - hy) - _uniform(rng, 9, 13)
            layer.paint("marrow", _inside(dh + 3, edge), 1.0, box)
            layer.paint(None, _inside(dh, edge), box=box)
            outer, inner = _inside(d, edge), _inside(d + 1.5, edge)
            core = _inside(d + 1.5 + fat, edge)
            layer.bands(
                [
                    (outer - inner, {"skin": 1.0}),
                    (inner - core, {"fat": tex.crop(box).fat(0.3)}),
                    (core, {"skeletal": 1.0}),
                ],
                box,
            )

    def _paint_cavity(self, tex: _Textures) -> _Layer:
        """Lungs with vessels, diaphragm, liver with vessels, stomach, spleen (they move with breathing)."""
        rng, grid, edge = self.rngs["paint"], self.canvas, self.edge
        layer = _Layer(grid.shape)
        x, y = grid.axes()
        xh, yh = self.lv_center

        def organ_distance(organ, px, py):
            return _Polar(px - organ["x"], py - organ["y"]).distance(organ["radius"])

        # pulmonary vessels: small partial-volume disks in the lungs, arteries and veins
        outline = float(self.heart["outer"].max())
        for _ in range(int(rng.integers(15, 55))):
            px, py = (
                np.array([_uniform(rng, xh - 170, xh + 150)]),
                np.array([_uniform(rng, yh - 130, yh + 100)]),
            )
            if (
                np.hypot(px - xh, py - yh)[0] < outline * 0.8
                or self._cavity_depth(px, py)[0] < 3
                or any(organ_distance(o, px, py)[0] < 5 for o in self.organs)
            ):
                continue
            radius = _log_uniform(rng, 0.8, 4.5)
            box = grid.box(px[0], py[0], radius * 2.5 + 2)
            lx, ly = grid.axes(box)
            d = _ellipse_distance(
                lx, ly, px[0], py[0], radius * _uniform(rng, 1, 2.5), radius, rng.uniform(0, np.pi)
            )
            key = "pulm_artery" if rng.random() < 0.55 else "pulm_vein"
            layer.paint(key, _inside(d, edge) * _uniform(rng, 0.3, 1.0), 1.0, box)
        for organ in self.organs:
            d = organ_distance(organ, x, y)
            body = _inside(d, edge)
            if organ["kind"] == "liver":
                for _ in range(int(rng.integers(3, 13))):
                    angle, depth = rng.uniform(-np.pi, np.pi), _uniform(rng, 0.15, 0.8)
                    reach = depth * float(_at(angle, organ["radius"]))
                    px, py = organ["x"] + reach * math.cos(angle), organ["y"] + reach * math.sin(angle)
                    radius = _uniform(rng, 2, 6)
                    box = grid.box(px, py, radius * 2 + 2)
                    lx, ly = grid.axes(box)
                    dv = _ellipse_distance(
                        lx, ly, px, py, radius * _uniform(rng, 1, 1.8), radius, rng.uniform(0, np.pi)
                    )
                    layer.paint("portal", _inside(dv, edge) * body[box], 1.0, box)
                layer.paint("liver", body, tex.texture(fine=0.04, mid=0.06, coarse=0.05))
            elif organ["kind"] == "stomach":
                wall = _uniform(rng, 3, 6)
                inner = _inside(d + wall, edge)
                top = organ["y"] - float(organ["radius"].max()) * _uniform(rng, 0.2, 0.9)
                gas = special.expit((top - y) / edge) if rng.random() < 0.7 else 0.0
                content = tex.texture(fine=0.05, mid=0.1) * _uniform(rng, 0.6, 2.5)
                layer.bands(
                    [
                        (inner * gas, {}),
                        (inner * (1 - gas), {"gut_content": content}),
                        (body - inner, {"gut_wall": tex.texture(fine=0.05)}),
                    ]
                )
            else:
                layer.paint("spleen", body, tex.texture(mid=0.04))
            layer.paint("skeletal", _inside(d - organ["diaphragm"], edge), 1.0)  # diaphragm
        layer.paint("lung", np.ones(grid.shape, np.float32), tex.texture(fine=0.25, mid=0.45, coarse=0.3))
        return layer

    def _paint_heart(self, tex: _Textures) -> tuple[_Layer, dict[str, np.ndarray]]:
        """Heart and epicardial fat in a box around the LV centre; returns the layer and the mask weights."""
        rng, edge, h = self.rngs["paint"], self.edge, self.heart
        grid = _Grid(
            self.fov.x0 + self.box_c0 * self.step,
            self.fov.y0 + self.box_r0 * self.step,
            self.step,
            (self.box_size, self.box_size),
        )
        layer = _Layer(grid.shape)
        x, y = grid.axes()
        xh, yh = self.lv_center
        polar = _Polar(x - xh, y - yh)
        r, theta = polar.r, polar.theta
        myo_tex, blood_tex = tex.texture(fine=0.035), tex.texture(fine=0.015)
        for angle, size in self.coronaries:
            radius = float(_at(angle, (h["rv_wall"] + h["outer"]) / 2))
            cx, cy = xh + radius * math.cos(angle), yh + radius * math.sin(angle)
            layer.paint("coronary", _inside(np.hypot(x - cx, y - cy) - size, edge))
        for angle, depth, radial, tangential in self.papillary:
            cx, cy = xh + depth * math.cos(angle), yh + depth * math.sin(angle)
            layer.paint(
                "myo_epi", _inside(_ellipse_distance(x, y, cx, cy, radial, tangential, angle), edge), myo_tex
            )
        inside = {k: _inside(polar.distance(h[k]), edge) for k in ("endo", "epi", "rv", "rv_wall", "outer")}
        myo = inside["epi"] - inside["endo"]
        from_endo = r - polar.at(h["endo_smooth"])
        thickness = polar.at(h["thickness"])
        endo_share = special.expit((0.5 * thickness - from_endo) / 1.0)
        defect = np.zeros_like(r)
        if self.defect is not None:
            dd = self.defect
            angular = special.expit((dd["half_width"] - np.abs(_wrap(theta - dd["angle"]))) / np.radians(6))
            radial = special.expit((dd["extent"] * thickness - from_endo) / 0.8) if dd["extent"] < 1 else 1.0
            defect = angular * radial
        remote = myo_tex * (1 - defect)
        w_lv, w_myo, w_rv, _, _ = layer.bands(
            [
                (inside["endo"], {"lv_blood": blood_tex}),
                (
                    myo,
                    {
                        "myo_endo": remote * endo_share,
                        "myo_epi": remote * (1 - endo_share),
                        "myo_defect": myo_tex * defect,
                    },
                ),
                (inside["rv"] - inside["epi"], {"rv_blood": blood_tex}),
                (inside["rv_wall"] - inside["rv"], {"myo_epi": myo_tex}),
                (inside["outer"] - inside["rv_wall"], {"fat": tex.fat(_uniform(rng, 0.1, 0.4))}),
            ]
        )
        if self.defect is None:
            layer.maps.pop("myo_defect", None)
        layer.add("lv_inflow", w_lv * _uniform(rng, 0.3, 1.0) * special.expit(2 * tex.mix(1)))
        layer.add("rv_inflow", w_rv * _uniform(rng, 0.3, 1.0) * special.expit(2 * tex.mix(1)))
        layer.add("myo_hetero", w_myo * _uniform(rng, 0.2, 0.8) * special.expit(2 * tex.mix(1)))
        rim = self.dark_rim
        if rim["amplitude"] > 0:
            from_trabeculae = np.maximum(polar.distance(h["endo"]), 0)
            layer.add(
                "dark_rim",
                w_myo * np.exp(-0.5 * (from_trabeculae / rim["width"]) ** 2) * polar.at(rim["modulation"]),
            )
        weights = {"lv_blood": w_lv, "rv_blood": w_rv, "myocardium": w_myo, "defect": w_myo * defect}
        return layer, weights

    # -------------------------------------------------------------------------------- rendering

    def _render(self, static: _Layer, cavity: _Layer, heart: _Layer, signals) -> np.ndarray:
        """Band-limited complex object ``(T, rows, cols)``: composite fine frames, fold, keep central k-space."""
        s, rows, cols = SUPERSAMPLE, self.rows, self.cols
        ext_rows, fine_cols = self.fov.shape
        top, bottom = self.fold
        fine_rows = rows * s
        m, n_box = self.margin, self.box_size
        layers = []
        for layer in (static, cavity, heart):
            keys, maps = layer.matrix()
            curves = (
                np.stack([signals[k] for k in keys], 1) if keys else np.zeros((self.n_frames, 0), np.float32)
            )
            layers.append((curves.astype(np.float32), maps.astype(np.float32), 1 - layer.remaining))
        (c2, m2, a2), (c0, m0, _), (c1, m1, a1) = layers
        keep2, keep1 = 1 - a2, 1 - a1
        fy = np.rint(sfft.fftfreq(rows) * rows).astype(int)
        fx = np.rint(sfft.fftfreq(cols) * cols).astype(int)
        positive = fx >= 0
        out = np.empty((self.n_frames, rows, cols), np.complex64)
        for start in range(0, self.n_frames, CHUNK):
            chunk = range(start, min(start + CHUNK, self.n_frames))
            n = len(chunk)
            back = (c0[start : start + n] @ m0).reshape(n, *self.canvas.shape)
            front = (c1[start : start + n] @ m1).reshape(n, n_box, n_box)
            fine = np.empty((n, ext_rows, fine_cols), np.float32)
            for k, t in enumerate(chunk):
                dy, dx = self.cavity_px[t]
                fine[k] = back[k, m - dy : m - dy + ext_rows, m - dx : m - dx + fine_cols]
                self._paste_heart(fine[k], front[k], keep1, self.heart_px[t])
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

    def _paste_heart(self, frame: np.ndarray, heart: np.ndarray, keep: np.ndarray, shift) -> None:
        """Composite the heart layer over ``frame`` in place, averaged over the intra-shot positions."""
        n, reach = self.box_size, int(np.abs(self.blur_px).max())
        r0, c0 = self.box_r0 + shift[0] - reach, self.box_c0 + shift[1] - reach
        region = frame[r0 : r0 + n + 2 * reach, c0 : c0 + n + 2 * reach]
        if reach == 0:
            region *= keep
            region += heart
            return
        base, total = region.copy(), np.zeros_like(region)
        for dy, dx in self.blur_px:
            view = base.copy()
            inner = view[reach + dy : reach + dy + n, reach + dx : reach + dx + n]
            inner *= keep
            inner += heart
            total += view
        region[...] = total / len(self.blur_px)

    def _masks(self, weights) -> tuple[dict[str, np.ndarray], dict[str, list[np.ndarray]]]:
        """Masks at the reference position, and per frame the pure-tissue pixels of each region as it moves."""
        top = self.fold[0]
        shifts = sorted({(int(dy), int(dx)) for dy, dx in self.heart_px} | {(0, 0)})
        coverage = {}
        for name, weight in weights.items():
            fine = ndimage.uniform_filter(weight.astype(np.float32), SUPERSAMPLE, mode="constant")
            coverage[name] = {
                shift: _sample_coverage(
                    fine, self.box_r0 + shift[0] - top, self.box_c0 + shift[1], (self.rows, self.cols)
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
            for dy, dx in self.heart_px:
                c = coverage[name][(int(dy), int(dx))]
                core = c > 0.9
                tracked[name].append(core if core.sum() >= 4 else c > 0.5)
        return masks, tracked

    def _coil(self):
        """Receive shading of the signal and relative noise level, ``(rows, cols)`` each."""
        rng = self.rngs["paint"]
        rows, cols, p = self.rows, self.cols, self.pixel
        x = (np.arange(cols) - cols / 2) * p + self.fov_center[0]
        y = (np.arange(rows) - rows / 2) * p + self.fov_center[1]
        xb, yb = self._to_body(x[None, :], y[:, None])
        front = float(self.body["skin"][np.argmin(np.abs(ANGLES + np.pi / 2))])
        back = float(self.body["skin"][np.argmin(np.abs(ANGLES - np.pi / 2))])
        width = float(self.body["skin"][np.argmin(np.abs(ANGLES))])
        power = np.zeros((rows, cols))
        for row_y in (-front - 15, back + 10):
            for coil_x in np.linspace(-0.8 * width, 0.8 * width, int(rng.integers(3, 7))):
                size = _uniform(rng, 70, 150)
                d2 = (xb - coil_x) ** 2 + (yb - row_y) ** 2
                power += _uniform(rng, 0.6, 1.3) ** 2 / (1 + d2 / size**2) ** 3
        sos = np.sqrt(power)
        sos /= sos[self.heart_center]
        exponent = self.acq["coil_exponent"]
        shading = np.clip(sos**exponent, 0.05, 4.0)
        noise = np.clip(sos ** (exponent - 1), 0.5, 2.5)
        wave = 0.5 + 0.5 * np.cos(
            2 * np.pi * (x[None, :] * rng.normal(0, 1 / 400) + y[:, None] * rng.normal(0, 1 / 400))
            + rng.uniform(0, 2 * np.pi)
        )
        noise *= 1 + _uniform(rng, 0, 0.3) * wave
        return shading.astype(np.float32), (noise / noise[self.heart_center]).astype(np.float32)

    def _acquire(self, image: np.ndarray, masks, signals) -> tuple[np.ndarray, np.ndarray]:
        """Shading, phase, ghost, the scanner's k-space extent and filter, Rician noise, stored-value scale."""
        rng, acq = self.rngs["noise"], self.acq
        rows, cols = self.rows, self.cols
        shading, noise_level = self._coil()
        yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
        yy, xx = yy / rows - 0.5, xx / cols - 0.5
        phase = (
            rng.uniform(-np.pi, np.pi)
            + rng.normal(0, 2) * xx
            + rng.normal(0, 2) * yy
            + rng.normal(0, 2) * (xx**2 + yy**2)
            + rng.normal(0, 1) * xx * yy
        )
        obj = image * (shading * np.exp(1j * phase)).astype(np.complex64)
        if acq["ghost"]:
            obj += acq["ghost"] * np.exp(1j * rng.uniform(0, 2 * np.pi)) * np.roll(obj, rows // 2, axis=1)
        fy = sfft.fftfreq(rows) * rows
        fx = sfft.fftfreq(cols) * cols
        half = acq["phase_resolution"] * rows / 2
        lines = (np.abs(fy) <= half) & (fy >= -half + 2 * half * (1 - acq["partial_fourier"]))
        taper = acq["filter"]

        def window(f, extent):
            u = np.abs(f) / extent
            return np.where(
                u <= 1 - taper, 1.0, 0.5 + 0.5 * np.cos(np.pi * (u - 1 + taper) / max(taper, 1e-6)) * 0.8
            )

        response = (lines * window(fy, half))[:, None] * window(fx, cols / 2)[None, :]
        acquired = sfft.ifft2(sfft.fft2(obj, workers=1) * response.astype(np.float32), workers=1)
        magnitude = np.abs(acquired)
        peak = int(np.argmax(signals["lv_blood"]))
        sigma = float(magnitude[peak][masks["lv_blood"]].mean()) / acq["snr"]
        rms = float(np.sqrt(np.mean(response**2)))
        shape = acquired.shape
        white = rng.standard_normal(shape, dtype=np.float32) + 1j * rng.standard_normal(
            shape, dtype=np.float32
        )
        noise = sfft.ifft2(
            white * (response * sigma * math.sqrt(rows * cols) / rms).astype(np.float32), workers=1
        )
        frames = np.abs(acquired + noise * noise_level)
        truth = rice_mean(magnitude, sigma * noise_level)
        scale = acq["scale"]
        frames, truth = frames * scale, truth * scale
        if acq["integer"]:
            frames = np.rint(frames)
        self.params["noise"] = {"sigma": sigma * scale, "snr": acq["snr"]}
        self.params["scale"] = scale
        return frames.astype(np.float32), truth.astype(np.float32)


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


def _region_mean(image: np.ndarray, mask: np.ndarray) -> float:
    return float(image[mask].mean()) if mask.any() else 0.0


def _jsonable(value):
    """Plain Python types (floats rounded) for JSON."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return round(float(value), 6)
    return value


# ------------------------------------------------------------------------------------------- files


def labels_from_masks(masks: dict[str, np.ndarray]) -> np.ndarray:
    """A uint8 label map from masks (1 LV blood, 2 RV blood, 3 myocardium, 4 defect, which is myocardium too)."""
    shape = next(iter(masks.values())).shape
    labels = np.zeros(shape, np.uint8)
    for name in ("lv_blood", "rv_blood", "myocardium", "defect"):
        if name in masks:
            labels[np.asarray(masks[name], bool)] = MASK_LABELS[name]
    return labels


def masks_from_labels(labels: np.ndarray) -> dict[str, np.ndarray]:
    """Boolean masks from a label map (inverse of :func:`labels_from_masks`; defect pixels are myocardium)."""
    labels = np.asarray(labels)
    return {
        "lv_blood": labels == 1,
        "rv_blood": labels == 2,
        "myocardium": (labels == 3) | (labels == 4),
        "defect": labels == 4,
    }


def read_masks(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Masks from a label-map image file (``masks.nii.gz`` of a phantom folder, or any label image)."""
    import SimpleITK as sitk

    path = Path(path)
    if not path.exists():
        raise PerfGenError(f"{path}: no such mask file")
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    while labels.ndim > 2 and labels.shape[0] == 1:
        labels = labels[0]
    if labels.ndim != 2:
        raise PerfGenError(f"{path}: expected a 2D label map, got shape {labels.shape}")
    return masks_from_labels(labels)


def write_phantom_study(study: PhantomStudy, folder: str | os.PathLike) -> Path:
    """Write ``image.nii.gz`` (noisy), ``truth.nii.gz``, ``masks.nii.gz`` and ``metadata.json``, atomically."""
    import SimpleITK as sitk

    folder = Path(folder)
    with io.atomic_path(folder, directory=True) as tmp:
        tmp.mkdir()
        noisy = study.to_study()
        io.write_study(noisy, tmp / "image.nii.gz")
        io.write_study(noisy.with_frames(study.truth), tmp / "truth.nii.gz")
        labels = sitk.GetImageFromArray(labels_from_masks(study.masks)[None])  # (1, H, W): one frame
        labels.SetSpacing((float(study.spacing[0]), float(study.spacing[1]), 1.0))
        sitk.WriteImage(labels, str(tmp / "masks.nii.gz"), useCompression=True)
        io.write_json(
            {
                "params": study.params,
                "curves": {k: np.asarray(v).tolist() for k, v in study.curves.items()},
                "frame_times": np.asarray(study.frame_times).tolist(),
                "heart_center": [int(v) for v in study.heart_center],
                "spacing": [float(v) for v in study.spacing],
            },
            tmp / "metadata.json",
        )
    return folder


def read_phantom_study(folder: str | os.PathLike) -> PhantomStudy:
    """Read a folder written by :func:`write_phantom_study`."""
    import json

    folder = Path(folder)
    meta_path = folder / "metadata.json"
    if not meta_path.exists():
        raise PerfGenError(
            f"{folder}: not a phantom study folder (no metadata.json); write one with `perfgen-sr phantom`"
        )
    meta = json.loads(meta_path.read_text())
    frames = io.read_study(folder / "image.nii.gz").frames[:, 0]
    truth = io.read_study(folder / "truth.nii.gz").frames[:, 0]
    return PhantomStudy(
        frames=frames,
        truth=truth,
        masks=read_masks(folder / "masks.nii.gz"),
        curves={k: np.asarray(v, np.float32) for k, v in meta["curves"].items()},
        frame_times=np.asarray(meta["frame_times"], float),
        spacing=tuple(meta["spacing"]),
        heart_center=tuple(meta["heart_center"]),
        params=meta["params"],
    )


def _write_case(job: tuple[Path, int, int]) -> Path:
    folder, seed, frames = job
    return write_phantom_study(make_phantom(seed, frames), folder)


def write_phantom_dataset(
    out: str | os.PathLike, cases: int, frames: int, seed: int, workers: int = 1, progress: bool = True
) -> list[Path]:
    """Write ``cases`` phantom folders ``out/case_0000...`` (study seeds ``seed + i``), in parallel when ``workers > 1``."""
    from tqdm import tqdm

    out = Path(out)
    jobs = [(out / f"case_{i:04d}", seed + i, frames) for i in range(cases)]
    folders = []
    with tqdm(
        total=cases, desc="phantoms", unit="study", disable=not progress
    ) as bar:  # closed on a signal too
        if workers > 1:
            import multiprocessing

            with multiprocessing.get_context("spawn").Pool(workers) as pool:
                for folder in pool.imap(_write_case, jobs):
                    folders.append(folder)
                    bar.update()
        else:
            for job in jobs:
                folders.append(_write_case(job))
                bar.update()
    return folders
