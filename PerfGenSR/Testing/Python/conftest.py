"""Shared fixtures: small smooth synthetic studies that train and sample in seconds on a CPU."""

import numpy as np
import pytest
from scipy import ndimage

from PerfGenSRLib.study import Study


def smooth_study(seed: int, frames: int = 6, shape=(40, 44)) -> Study:
    rng = np.random.default_rng(seed)
    data = ndimage.gaussian_filter(rng.random((frames, 1, *shape)), (0, 0, 2, 2)) * 100
    return Study(
        data.astype(np.float32),
        spacing=(1.5, 1.5, 8.0),
        frame_times=np.arange(frames) * 0.8,
        meta={"heart_center": (shape[0] // 2, shape[1] // 2)},
    )


@pytest.fixture
def studies():
    return [smooth_study(seed) for seed in range(3)]
