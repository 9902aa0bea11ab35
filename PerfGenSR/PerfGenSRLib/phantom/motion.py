"""Motion step: breathing of the heart and the abdomen (end-expiration = reference), cardiac-phase jitter."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .geometry import uniform
from .priors import MotionPriors

SWING = 0.3  # relative modulation of the breathing depth
DEEP_BREATH = 1.4  # depth of the first breath after a hold, relative
JITTER_CLIP = 2.5  # standard deviations


@dataclass(frozen=True)
class Motion:
    heart_shift: np.ndarray  # (T, 2) mm (row, col) of the heart per frame
    cavity_shift: np.ndarray  # (T, 2) mm of lungs and abdomen
    heart_reach: float  # mm, the largest heart displacement whatever the frame count
    cavity_reach: float  # mm, the same for lungs and abdomen
    mode: str
    amplitude: float  # mm
    period: float  # s

    def params(self) -> dict:
        return {"breathing": {"mode": self.mode, "amplitude_mm": self.amplitude, "period_s": self.period}}


def draw_motion(rng: np.random.Generator, priors: MotionPriors, t: np.ndarray) -> Motion:
    """Breathing in one of three patterns along one direction, in mm per frame at times ``t``."""
    p = priors
    mode = str(rng.choice(p.modes, p=p.mode_chances))
    period, phase, sharpness = (
        uniform(rng, *p.period_s),
        rng.uniform(0, 2 * np.pi),
        uniform(rng, *p.sharpness),
    )
    swing, swing_phase = uniform(rng, *p.swing_period_s), rng.uniform(0, 2 * np.pi)
    drift, hold = uniform(rng, *p.drift), uniform(rng, *p.hold_s)
    amplitude = uniform(rng, *p.amplitude_hold_mm) if mode == "hold" else uniform(rng, *p.amplitude_mm)
    low, high = p.direction_deg
    angle = uniform(rng, np.radians(low), np.radians(high)) + (np.pi if rng.random() < 0.5 else 0.0)
    heart_gain, cavity_gain, jitter = (
        uniform(rng, *p.heart_gain),
        uniform(rng, *p.cavity_gain),
        uniform(rng, *p.jitter_mm),
    )
    cycle = ((1 - np.cos(2 * np.pi * t / period + phase)) / 2) ** sharpness
    cycle *= 1 + SWING * np.sin(2 * np.pi * t / swing + swing_phase)
    slow = drift * t / max(t[-1], 1.0)
    if mode == "hold":
        depth = slow
    elif mode == "breathe":
        depth = cycle
    else:
        depth = np.where(t < hold, slow, cycle * np.where(t < hold + period, DEEP_BREATH, 1.0))
    direction = np.array([math.sin(angle), math.cos(angle)])  # (row, col) = (y, x)
    wobble = jitter * np.clip(rng.standard_normal((len(t), 2)), -JITTER_CLIP, JITTER_CLIP)
    bound = amplitude * (1 + SWING) * DEEP_BREATH  # largest depth times amplitude, whatever the frame count
    return Motion(
        heart_shift=amplitude * heart_gain * depth[:, None] * direction + wobble,
        cavity_shift=amplitude * cavity_gain * depth[:, None] * direction,
        heart_reach=bound * heart_gain + JITTER_CLIP * jitter * math.sqrt(2),
        cavity_reach=bound * cavity_gain,
        mode=mode,
        amplitude=amplitude,
        period=period,
    )
