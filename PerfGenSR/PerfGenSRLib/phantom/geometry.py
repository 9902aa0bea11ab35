"""Geometry and painting primitives of the phantom: angular profiles, soft occupancies, fine grids,
the front-to-back painter and the shared texture fields."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import fft as sfft
from scipy import special

SUPERSAMPLE = 3  # fine pixels per acquired pixel; odd, so acquired pixel centres fall on fine pixels
HEART_CROP = 96  # the heart lies inside this square around ``heart_center``
ANGLES = np.linspace(-np.pi, np.pi, 2048, endpoint=False)
_ANGLES_CLOSED = np.append(ANGLES, np.pi)


def uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(rng.uniform(low, high))


def log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def profile_at(theta, table: np.ndarray):
    """A periodic angular profile (sampled on :data:`ANGLES`) at any angle(s)."""
    return np.interp(wrap(np.asarray(theta, np.float64)), _ANGLES_CLOSED, np.append(table, table[0]))


def wrap(angle):
    return (angle + np.pi) % (2 * np.pi) - np.pi


def _slope(table: np.ndarray) -> np.ndarray:
    return (np.roll(table, -1) - np.roll(table, 1)) / (2 * (ANGLES[1] - ANGLES[0]))


class Polar:
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


def soft_inside(distance: np.ndarray, edge: float) -> np.ndarray:
    """Soft occupancy of the region where ``distance < 0``."""
    return special.expit(-distance / np.float32(edge))


def ellipse_distance(x, y, cx, cy, a, b, angle=0.0):
    """Approximate signed distance (mm) to an ellipse with semi-axes ``a`` (along ``angle``) and ``b``."""
    c, s = math.cos(angle), math.sin(angle)
    u, v = (x - cx) * c + (y - cy) * s, (y - cy) * c - (x - cx) * s
    rho = np.sqrt((u / a) ** 2 + (v / b) ** 2)
    return (rho - 1) * min(a, b)


def harmonics(
    rng: np.random.Generator, low: int, high: int, amplitude: float, decay: float = 1.0
) -> np.ndarray:
    """A smooth random periodic profile: cosines of orders ``low..high`` with random phases."""
    orders = np.arange(low, high + 1)
    amps = amplitude * rng.standard_normal(len(orders)) / orders**decay
    phases = rng.uniform(0, 2 * np.pi, len(orders))
    return (amps[:, None] * np.cos(orders[:, None] * ANGLES + phases[:, None])).sum(0)


def bump(center: float, width: float) -> np.ndarray:
    """A Gaussian bump on the angle table."""
    return np.exp(-0.5 * (wrap(ANGLES - center) / width) ** 2)


class Grid:
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


@dataclass(frozen=True)
class Layer:
    """A painted layer: component names, their maps as a ``(K, pixels)`` matrix, and its opacity."""

    keys: tuple[str, ...]
    maps: np.ndarray
    alpha: np.ndarray


class Painter:
    """Paints the tissue components of one rigidly moving layer front to back with soft occupancies.

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

    def freeze(self) -> Layer:
        """The painted layer, frozen."""
        keys = tuple(self.maps)
        maps = np.stack([self.maps[k].ravel() for k in keys]) if keys else np.zeros((0, self.remaining.size))
        return Layer(keys, maps.astype(np.float32), 1 - self.remaining)


def random_fields(rng: np.random.Generator, shape: tuple[int, int], step: float, lengths) -> list[np.ndarray]:
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


class Textures:
    """Per-tissue multiplicative textures from a few shared random fields (fine, mid, coarse scale)."""

    def __init__(self, fields: list[np.ndarray], rng: np.random.Generator):
        self.fields, self.rng = fields, rng

    def crop(self, box) -> Textures:
        return Textures([f[box] for f in self.fields], self.rng)

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
