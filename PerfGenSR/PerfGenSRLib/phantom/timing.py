"""Timing step: frame times (one per heartbeat) and the bolus arrival."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .geometry import uniform
from .priors import TimingPriors


@dataclass(frozen=True)
class Timing:
    times: np.ndarray  # (T,) s from the first frame
    interval: float  # s, mean frame interval
    baseline_frames: int
    arrival: float  # s, bolus arrival in the right heart

    def params(self) -> dict:
        return {
            "frame_interval_s": self.interval,
            "baseline_frames": self.baseline_frames,
            "arrival_s": self.arrival,
        }


def draw_timing(rng: np.random.Generator, priors: TimingPriors, frames: int, stress: bool) -> Timing:
    """Frame times with beat-to-beat jitter, a few baseline frames, then the arrival."""
    n = frames
    interval = uniform(rng, *priors.interval_stress_s) if stress else uniform(rng, *priors.interval_rest_s)
    late = uniform(rng, *priors.arrival_after_baseline)
    low, high = priors.baseline_frames
    baseline = int(rng.integers(low, max(low, min(high, n // 5)) + 1))
    steps = interval * (1 + priors.interval_jitter * rng.standard_normal(n))
    times = np.concatenate([[0.0], np.cumsum(steps[:-1])])
    arrival = float(times[min(baseline, n) - 1] + late * interval)
    return Timing(times, interval, baseline, arrival)
