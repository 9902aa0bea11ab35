"""Perfusion studies on disk: the :class:`Study` type and reading/writing NumPy, NIfTI (and other
SimpleITK formats) and DICOM folders, keeping geometry and frame times end to end.

Array layout everywhere: ``frames[t, z, row, column]`` (``(T, Z, H, W)``), rows along the image
y axis. NIfTI files follow the NIfTI-1 axis order (x, y, z, t): time is always the fourth axis, so a
single-slice series is stored as ``(x, y, 1, t)`` (as dcm2niix writes it) and a 3D NIfTI image with
more than one slice is a volume, refused as input. NRRD and MetaImage have no time axis convention:
a 3D image in those formats is read as one slice over time. Spacing and origin are in millimetres as ``(x, y, z)`` (column, row, slice), the direction
a row-major 3x3 cosine matrix, as SimpleITK and DICOM give them. Writes are atomic: a temporary
file or folder beside the target is renamed into place only once complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .errors import PerfGenError

IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
NIFTI_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".mha", ".mhd")
MIN_MATRIX, MAX_MATRIX = 8, 2048


@dataclass
class Study:
    """Frames ``(T, Z, H, W)`` float32 with the geometry and timing needed to write them back in kind."""

    frames: np.ndarray
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: tuple[float, ...] = IDENTITY
    frame_times: np.ndarray | None = None
    single_slice: bool = True  # read from a (T, H, W) source: written back without the Z axis
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.frames = np.asarray(self.frames)
        if self.frames.ndim == 3:
            self.frames = self.frames[:, None]
        if self.frames.ndim != 4:
            raise PerfGenError(
                f"a study is (T, H, W) or (T, Z, H, W) frames, got an array of shape {self.frames.shape}"
            )

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """``(T, Z, H, W)``."""
        return tuple(self.frames.shape)

    def with_frames(self, frames: np.ndarray, **changes) -> Study:
        """The same study (geometry, times, metadata) holding other frames of the same layout."""
        return replace(self, frames=np.asarray(frames, dtype=np.float32), meta=dict(self.meta), **changes)

    def times(self) -> np.ndarray:
        """Frame times in seconds from the first frame, or frame indices where none are known."""
        if self.frame_times is not None:
            return np.asarray(self.frame_times, dtype=float)
        return np.arange(self.shape[0], dtype=float)


def validate_frames(frames: np.ndarray, what: str = "input", min_frames: int = 2) -> np.ndarray:
    """Check a ``(T, Z, H, W)`` array of at least ``min_frames`` frames is usable; return it as float32."""
    if np.iscomplexobj(frames):
        raise PerfGenError(f"{what} holds complex values; give magnitude images (np.abs of the data)")
    if not (np.issubdtype(frames.dtype, np.number) or frames.dtype == bool):
        raise PerfGenError(f"{what} is not numeric (dtype {frames.dtype})")
    t, _, h, w = frames.shape
    if min(h, w) < MIN_MATRIX or max(h, w) > MAX_MATRIX:
        raise PerfGenError(
            f"{what} has a {h}x{w} matrix; PerfGenSR handles {MIN_MATRIX} to {MAX_MATRIX} pixels per side"
        )
    if t < min_frames:
        raise PerfGenError(
            f"{what} holds {t} frame(s); PerfGenSR needs at least {min_frames} frames (a series over time)"
        )
    frames = frames.astype(np.float32, copy=False)
    if not np.isfinite(frames).all():
        bad = int((~np.isfinite(frames)).sum())
        raise PerfGenError(f"{what} contains {bad} NaN/Inf values; clean or mask them before super-resolving")
    return frames


def _check_exists(path: Path) -> None:
    if path.is_symlink() and not path.exists():
        raise PerfGenError(f"{path}: no such file or folder (a broken link to {os.readlink(path)})")
    if not path.exists():
        raise PerfGenError(f"{path}: no such file or folder")


def is_nifti_like(path: Path) -> bool:
    """True for paths SimpleITK reads as a volume (NIfTI, NRRD, MetaImage)."""
    return path.name.lower().endswith(NIFTI_SUFFIXES)


def read_study(path: str | os.PathLike, min_frames: int = 2) -> Study:
    """Read a study from ``.npy`` (``(T,H,W)``/``(T,Z,H,W)``), NIfTI/NRRD/MHA, or a DICOM folder."""
    path = Path(path)
    _check_exists(path)
    if path.is_dir() and (path.suffix.lower() == ".npy" or is_nifti_like(path)):
        raise PerfGenError(f"{path} is a folder, not a file; give the study file, or a DICOM folder")
    if path.is_dir():
        from .dicom import read_dicom_study

        study = read_dicom_study(path)
    elif path.suffix.lower() == ".npy":
        study = _read_npy(path)
    elif is_nifti_like(path):
        study = _read_sitk(path)
    else:
        raise PerfGenError(
            f"{path}: unsupported file type; give a .npy, .nii/.nii.gz, .nrrd, .mha file or a DICOM folder"
        )
    study.frames = validate_frames(study.frames, str(path), min_frames)
    return study


def _read_npy(path: Path) -> Study:
    try:
        with open(path, "rb") as handle:
            if handle.read(6) != b"\x93NUMPY":
                raise ValueError("no .npy header: not written by numpy.save")
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as error:
        raise PerfGenError(f"{path}: not a readable NumPy array file ({error})") from None
    if array.ndim not in (3, 4):
        raise PerfGenError(f"{path}: expected a (T, H, W) or (T, Z, H, W) array, got shape {array.shape}")
    return Study(array, single_slice=array.ndim == 3, meta={"source_format": "npy"})


def _read_sitk(path: Path) -> Study:
    import SimpleITK as sitk

    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError:
        raise PerfGenError(
            f"{path}: SimpleITK could not read this file as an image; check it is a complete NIfTI/NRRD/MetaImage file"
        ) from None
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise PerfGenError(
            f"{path}: has {image.GetNumberOfComponentsPerPixel()} components per pixel; give a scalar magnitude series"
        )
    dim = image.GetDimension()
    if dim == 3 and path.name.lower().endswith((".nii", ".nii.gz")) and image.GetSize()[2] > 1:
        raise PerfGenError(
            f"{path}: a 3D volume, not a 2D+t series ({'x'.join(map(str, image.GetSize()))} voxels, no time axis); "
            "NIfTI keeps time on the 4th axis: give a (x, y, 1, t) or (x, y, z, t) perfusion series"
        )
    array = sitk.GetArrayFromImage(image)
    spacing, origin = image.GetSpacing(), image.GetOrigin()
    direction = np.array(image.GetDirection()).reshape(dim, dim)
    if dim == 3:  # (W, H, T): a 2D slice over time
        frame_interval = spacing[2]
        geometry = dict(
            spacing=(spacing[0], spacing[1], 1.0),
            origin=(origin[0], origin[1], 0.0),
            direction=(
                direction[0, 0],
                direction[0, 1],
                0.0,
                direction[1, 0],
                direction[1, 1],
                0.0,
                0.0,
                0.0,
                1.0,
            ),
        )
        single = True
    elif dim == 4:  # (W, H, Z, T)
        frame_interval = spacing[3]
        geometry = dict(
            spacing=tuple(spacing[:3]), origin=tuple(origin[:3]), direction=tuple(direction[:3, :3].ravel())
        )
        single = array.shape[1] == 1
    else:
        raise PerfGenError(f"{path}: a {dim}D image is not a time series; give 2D+t (3D) or 3D+t (4D) data")
    times = np.arange(array.shape[0], dtype=float) * float(frame_interval)
    return Study(array, frame_times=times, single_slice=single, meta={"source_format": "nifti"}, **geometry)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; move it onto ``target`` only if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(target.suffixes) if not directory else ""
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    tmp = tmp_dir / ("out" + suffix)
    try:
        yield tmp
        if directory and target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def check_output(path: str | os.PathLike) -> str:
    """The format a study written to ``path`` gets (``npy``, ``image`` or ``dicom``); refuse unusable paths.

    A DICOM folder replaces an earlier series in its place, never a folder holding other files.
    """
    path = Path(path)
    name = path.name.lower()
    if name.endswith(".npy"):
        kind = "npy"
    elif is_nifti_like(path):
        kind = "image"
    elif path.suffix == "":
        kind = "dicom"
    else:
        raise PerfGenError(
            f"{path}: unsupported output type; use .npy, .nii.gz, .nrrd, .mha or a folder for DICOM"
        )
    if kind != "dicom" and path.is_dir():
        raise PerfGenError(f"{path} is a folder; give a file path for the output")
    if kind == "dicom" and path.exists() and not path.is_dir():
        raise PerfGenError(f"{path} is a file; give a folder path for the DICOM series")
    if kind == "dicom" and path.is_dir() and any(p.suffix.lower() != ".dcm" for p in path.iterdir()):
        raise PerfGenError(
            f"{path} holds files other than DICOM images; choose a new or empty folder for the series"
        )
    return kind


def write_study(study: Study, path: str | os.PathLike, **dicom_options) -> Path:
    """Write ``study`` as ``.npy``, NIfTI/NRRD/MHA or (a folder path) a DICOM series, atomically."""
    path = Path(path)
    kind = check_output(path)
    if kind == "npy":
        frames = study.frames[:, 0] if (study.single_slice and study.shape[1] == 1) else study.frames
        with atomic_path(path) as tmp:
            np.save(tmp, frames.astype(np.float32))
    elif kind == "image":
        with atomic_path(path) as tmp:
            _write_sitk(study, tmp)
    else:
        from .dicom import write_dicom_series

        with atomic_path(path, directory=True) as tmp:
            write_dicom_series(study, tmp, **dicom_options)
    return path


def _frame_interval(study: Study) -> float:
    times = study.times()
    return float(np.median(np.diff(times))) if len(times) > 1 else 1.0


def _write_sitk(study: Study, path: Path) -> None:
    import SimpleITK as sitk

    dt = _frame_interval(study)
    d = np.array(study.direction, dtype=float).reshape(3, 3)
    if study.shape[1] == 1 and not path.name.lower().endswith((".nii", ".nii.gz")):  # NIfTI: (x, y, 1, t)
        image = sitk.GetImageFromArray(study.frames[:, 0].astype(np.float32))
        image.SetSpacing((study.spacing[0], study.spacing[1], dt))
        image.SetOrigin((study.origin[0], study.origin[1], 0.0))
        image.SetDirection((d[0, 0], d[0, 1], 0.0, d[1, 0], d[1, 1], 0.0, 0.0, 0.0, 1.0))
    else:
        image = sitk.GetImageFromArray(study.frames.astype(np.float32), isVector=False)
        image.SetSpacing((*study.spacing, dt))
        image.SetOrigin((*study.origin, 0.0))
        d4 = np.eye(4)
        d4[:3, :3] = d
        image.SetDirection(tuple(d4.ravel()))
    sitk.WriteImage(image, str(path), useCompression=True)


def write_json(data: dict, path: str | os.PathLike) -> None:
    """Write ``data`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=_json_default))


def _json_default(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
