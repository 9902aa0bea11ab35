"""Training data: studies to (LR, HR) 96x96 pairs, the shared normalisation, and splits by study.

Normalisation (shared by training and inference, :func:`normalise` / :func:`denormalise`): each
frame is divided by a robust peak of its *LR* input (the 99th percentile over the frame region
that is processed) and mapped to [-1, 1] as ``2 * x / peak - 1``; the HR target uses the LR's peak,
so the network never sees the answer's scale and inference needs nothing but the LR.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage
from torch.utils.data import Dataset

from . import kspace
from .augment import AcquisitionRanges, vary_acquisition
from .errors import PerfGenError
from .io import is_nifti_like, read_study
from .metrics import FOV, fov_box
from .study import Study

PEAK_PERCENTILE = 99.0
FRACTION_RANGE = (0.30, 0.50)


def frame_peak(lr: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Per-frame normalisation peak of ``(..., H, W)`` LR frames (kept dims, never below a tiny value)."""
    if isinstance(lr, torch.Tensor):
        flat = lr.flatten(-2).float()
        peak = torch.quantile(flat, PEAK_PERCENTILE / 100, dim=-1)[..., None, None]
        return peak.clamp_min(1e-6)
    peak = np.percentile(lr, PEAK_PERCENTILE, axis=(-2, -1), keepdims=True)
    return np.maximum(peak, 1e-6)


def normalise(x, peak):
    """Map intensities to the network's range: ``2 * x / peak - 1``."""
    return 2 * x / peak - 1


def denormalise(x, peak):
    """Inverse of :func:`normalise`."""
    return (x + 1) * peak / 2


def find_heart_center(frames: np.ndarray) -> tuple[int, int]:
    """Centre (row, col) of the heart, found as the peak of the smoothed temporal SD of ``(T, H, W)``."""
    std = ndimage.gaussian_filter(np.std(frames, axis=0), sigma=max(frames.shape[-2:]) / 40)
    row, col = np.unravel_index(np.argmax(std), std.shape)
    return int(row), int(col)


def study_center(study: Study, z: int = 0) -> tuple[int, int]:
    """The heart centre stored with a study (phantoms know it), else found from its frames."""
    center = study.meta.get("heart_center")
    return tuple(int(v) for v in center) if center is not None else find_heart_center(study.frames[:, z])


def is_phantom_folder(path: Path) -> bool:
    """A folder written by ``perfgen-sr phantom`` (it holds ``metadata.json``)."""
    return path.is_dir() and (path / "metadata.json").exists()


def is_study_file(path: Path) -> bool:
    """A file :func:`io.read_study` reads as one study: ``.npy`` or a NIfTI-like image."""
    return path.is_file() and (path.suffix.lower() == ".npy" or is_nifti_like(path))


def study_paths(root: Path) -> list[Path]:
    """The studies a path names: itself (phantom folder, study file, DICOM folder) or the ones inside it."""
    if not root.exists():
        raise PerfGenError(f"{root}: no such file or folder")
    if root.is_file() or is_phantom_folder(root):
        return [root]
    inside = [child for child in sorted(root.iterdir()) if is_phantom_folder(child) or is_study_file(child)]
    return inside or [root]  # a folder of studies, else a DICOM folder


def load_studies(paths: list[str | os.PathLike]) -> list[Study]:
    """Read every study named by ``paths``: phantom folders, study files, DICOM folders, or folders of them."""
    studies = []
    for path in (p for root in paths for p in study_paths(Path(root))):
        if is_phantom_folder(path):
            from .phantom import read_phantom_study

            studies.append(read_phantom_study(path).to_study())
        else:
            studies.append(read_study(path))
    return studies


def split_studies(studies: list, validation: int, seed: int = 0) -> tuple[list, list]:
    """Split by study (never by frame): ``validation`` studies held back, the rest for training."""
    if validation >= len(studies):
        raise PerfGenError(f"cannot hold back {validation} of {len(studies)} studies for validation")
    order = np.random.default_rng(seed).permutation(len(studies))
    held = set(order[:validation].tolist())
    return [s for i, s in enumerate(studies) if i not in held], [
        s for i, s in enumerate(studies) if i in held
    ]


class PairDataset(Dataset):
    """(LR, HR) crops around the heart from every frame and slice of the given studies.

    Items are addressed by ``(index, seed)``: all randomness of an item (acquisition variation, LR
    fraction in [0.30, 0.50], crop jitter, flips) comes from that seed, so a run is reproducible and
    resumable whatever the number of loader workers. An integer index gives the item's fixed default
    draw. ``acquisition`` (with ``augment``) varies each HR frame as another scanner would have
    acquired it (:mod:`augment`) before its LR is simulated.
    """

    def __init__(
        self,
        studies: list[Study],
        crop: int = FOV,
        fraction_range=FRACTION_RANGE,
        jitter: int = 12,
        augment: bool = True,
        acquisition: AcquisitionRanges | None = None,
    ):
        self.studies, self.crop, self.fraction_range = studies, crop, fraction_range
        self.jitter, self.augment, self.acquisition = jitter, augment, acquisition
        self.centers = [[study_center(s, z) for z in range(s.shape[1])] for s in studies]
        self.index = [
            (i, t, z) for i, s in enumerate(studies) for t in range(s.shape[0]) for z in range(s.shape[1])
        ]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, key) -> tuple[torch.Tensor, torch.Tensor]:
        index, seed = key if isinstance(key, tuple) else (key, key)
        rng = np.random.default_rng([seed, index])
        i, t, z = self.index[index]
        hr, center = self.studies[i].frames[t, z], self.centers[i][z]
        if self.augment and self.acquisition is not None:
            hr, center = vary_acquisition(hr, center, rng, self.acquisition)
        fraction = rng.uniform(*self.fraction_range) if self.augment else float(np.mean(self.fraction_range))
        lr = kspace.degrade(hr, fraction)
        jitter = rng.integers(-self.jitter, self.jitter + 1, 2) if self.augment else 0
        hr, lr = (pad_to(a, self.crop) for a in (hr, lr))
        rows, cols = fov_box(hr.shape, np.array(center) + jitter, self.crop)
        hr, lr = hr[rows, cols], lr[rows, cols]
        if self.augment:
            for axis in (0, 1):
                if rng.random() < 0.5:
                    hr, lr = np.flip(hr, axis), np.flip(lr, axis)
        peak = frame_peak(lr)
        return (
            torch.from_numpy(normalise(lr, peak)[None].astype(np.float32)),
            torch.from_numpy(normalise(hr, peak)[None].astype(np.float32)),
        )


def pad_to(frame: np.ndarray, size: int) -> np.ndarray:
    """Reflect-pad a ``(H, W)`` frame so both sides are at least ``size``."""
    pads = [(max(0, size - n) // 2, max(0, size - n) - max(0, size - n) // 2) for n in frame.shape]
    return np.pad(frame, pads, mode="reflect") if any(sum(p) for p in pads) else frame
