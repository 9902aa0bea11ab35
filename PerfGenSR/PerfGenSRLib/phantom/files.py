"""Files step: label maps, and phantom studies as folders of NIfTI images with their metadata."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .. import io
from ..defaults import ROIS
from ..errors import PerfGenError
from .priors import PhantomPriors
from .study import PhantomStudy, make_phantom


def labels_from_masks(masks: dict[str, np.ndarray]) -> np.ndarray:
    """A uint8 label map from masks, values from :data:`defaults.ROIS` (a defect is myocardium too)."""
    shape = next(iter(masks.values())).shape
    labels = np.zeros(shape, np.uint8)
    for roi in ROIS:  # in table order, so the defect's label overwrites the myocardium's
        if roi.key in masks:
            labels[np.asarray(masks[roi.key], bool)] = roi.label
    return labels


def masks_from_labels(labels: np.ndarray) -> dict[str, np.ndarray]:
    """Boolean masks from a label map (inverse of :func:`labels_from_masks`; defect pixels are myocardium)."""
    labels = np.asarray(labels)
    masks = {roi.key: labels == roi.label for roi in ROIS}
    masks["myocardium"] = masks["myocardium"] | masks["defect"]
    return masks


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


def _write_case(job: tuple[Path, int, int, PhantomPriors]) -> Path:
    folder, seed, frames, priors = job
    return write_phantom_study(make_phantom(seed, frames, priors=priors), folder)


def write_phantom_dataset(
    out: str | os.PathLike,
    cases: int,
    frames: int,
    seed: int,
    workers: int = 1,
    progress: bool = True,
    priors: PhantomPriors = PhantomPriors(),  # noqa: B008 (frozen, so a shared default is safe)
) -> list[Path]:
    """Write ``cases`` phantom folders ``out/case_0000...`` (study seeds ``seed + i``), in parallel when ``workers > 1``."""
    from tqdm import tqdm

    out = Path(out)
    jobs = [(out / f"case_{i:04d}", seed + i, frames, priors) for i in range(cases)]
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
