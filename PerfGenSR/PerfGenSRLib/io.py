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
import csv
import glob
import gzip
import json
import math
import os
import shutil
import struct
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .errors import PerfGenError
from .study import Study, shape_text, validate_frames

NIFTI_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".mha", ".mhd")


def _check_exists(path: Path) -> None:
    if path.is_symlink() and not path.exists():
        raise PerfGenError(f"{path}: no such file or folder (a broken link to {os.readlink(path)})")
    if not path.exists():
        raise PerfGenError(f"{path}: no such file or folder")


def is_nifti_like(path: Path) -> bool:
    """True for paths SimpleITK reads as a volume (NIfTI, NRRD, MetaImage), in any letter case."""
    return path.name.lower().endswith(NIFTI_SUFFIXES)


def study_format(path: str | os.PathLike) -> str:
    """The format a study written to ``path`` gets: ``npy``, ``image`` or (no extension) ``dicom``."""
    path = Path(path)
    if path.name.lower().endswith(".npy"):
        return "npy"
    if is_nifti_like(path):
        return "image"
    if path.suffix == "":
        return "dicom"
    raise PerfGenError(
        f"{path}: unsupported output type {path.suffix!r}; use .npy, .nii, .nii.gz, .nrrd, .mha, .mhd "
        "or a path without extension (a folder for a DICOM series)"
    )


def companion_files(path: str | os.PathLike) -> list[Path]:
    """Files written beside ``path`` with it: the ``.zraw`` data file of a MetaImage ``.mhd`` header."""
    path = Path(path)
    return [path.with_name(path.name[:-4] + ".zraw")] if path.name.lower().endswith(".mhd") else []


def read_study(path: str | os.PathLike, min_frames: int = 2) -> Study:
    """Read a study from ``.npy`` (``(T,H,W)``/``(T,Z,H,W)``, ``(H,W)`` for one image), NIfTI/NRRD/MHA, or
    a DICOM folder; refuse incomplete files and studies of fewer than ``min_frames`` frames."""
    path = Path(path)
    _check_exists(path)
    if path.is_dir() and (path.suffix.lower() == ".npy" or is_nifti_like(path)):
        raise PerfGenError(f"{path} is a folder, not a file; give the study file, or a DICOM folder")
    if path.is_dir():
        from .dicom import read_dicom_study

        study = read_dicom_study(path, min_frames=min_frames)
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


def read_label_map(path: str | os.PathLike, grid: tuple[int, int, int]) -> np.ndarray:
    """Integer ROI labels ``(Z, H, W)`` on a study's ``grid`` from ``.npy`` or an image file: one 2D map for a
    single slice, or one map per slice (leading axes of length 1 are dropped)."""
    path = Path(path)
    _check_exists(path)
    if path.is_file() and path.suffix.lower() == ".npy":
        labels = _load_npy(path)
    elif path.is_file() and is_nifti_like(path):
        import SimpleITK as sitk

        labels = sitk.GetArrayFromImage(_load_image(path))
    else:
        raise PerfGenError(f"{path}: give the ROI labels as a .npy, .nii/.nii.gz, .nrrd or .mha label image")
    while labels.ndim > 2 and labels.shape[0] == 1 and labels.ndim > len(grid) - (grid[0] == 1):
        labels = labels[0]
    labels = labels.reshape((1, *labels.shape)) if labels.ndim == 2 else labels
    if labels.shape != tuple(grid):
        raise PerfGenError(
            f"ROI labels {path} have shape {shape_text(labels.shape)} (slices x rows x columns), the study "
            f"{shape_text(grid)}; give labels on the study's grid"
        )
    if not np.issubdtype(labels.dtype, np.number) or np.iscomplexobj(labels):
        raise PerfGenError(f"ROI labels {path} are not numeric (dtype {labels.dtype})")
    if not np.isfinite(labels).all() or not np.array_equal(labels, np.round(labels)):
        raise PerfGenError(f"ROI labels {path} hold values that are not whole numbers; give a label map")
    return labels.astype(int)


def _load_npy(path: Path) -> np.ndarray:
    """An array from a ``.npy`` file whose header is checked against the file's size before loading."""
    try:
        with open(path, "rb") as handle:
            if handle.read(6) != b"\x93NUMPY":
                raise ValueError("no .npy header: not written by numpy.save")
            handle.seek(0)
            version = np.lib.format.read_magic(handle)
            read_header = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            shape, _, dtype = read_header(handle)
            offset = handle.tell()
        if dtype.hasobject:
            raise ValueError("it holds Python objects, not numbers")
        needed = math.prod(shape) * dtype.itemsize
        held = path.stat().st_size - offset
        if held < needed:
            raise PerfGenError(
                f"{path}: truncated: its header describes a {shape_text(shape)} {dtype} array ({_bytes(needed)}), "
                f"the file holds {_bytes(held)} of data; copy or export it again"
            )
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, SyntaxError) as error:
        raise PerfGenError(f"{path}: not a readable NumPy array file ({error})") from None


def _bytes(count: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if count < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1024
    return ""


def _read_npy(path: Path) -> Study:
    array = _load_npy(path)
    if array.ndim not in (2, 3, 4):
        raise PerfGenError(
            f"{path}: expected a (T, H, W) or (T, Z, H, W) array (or one (H, W) image), got shape {array.shape}"
        )
    frames = array[None] if array.ndim == 2 else array
    return Study(frames, single_slice=array.ndim < 4, meta={"source_format": "npy"})


IMAGE_IO = {
    ".nii": "NiftiImageIO",
    ".nii.gz": "NiftiImageIO",
    ".nrrd": "NrrdImageIO",
    ".mha": "MetaImageIO",
    ".mhd": "MetaImageIO",
}


def _image_suffix(path: Path) -> str:
    return next(s for s in NIFTI_SUFFIXES if path.name.lower().endswith(s))


def _load_image(path: Path):
    """A SimpleITK image from NIfTI/NRRD/MetaImage in any letter case; incomplete NIfTI files are refused."""
    import SimpleITK as sitk

    suffix = _image_suffix(path)
    if suffix in (".nii", ".nii.gz"):
        _check_nifti_complete(path, suffix == ".nii.gz")
    reader = sitk.ImageFileReader()
    reader.SetImageIO(IMAGE_IO[suffix])
    with tempfile.TemporaryDirectory(prefix="perfgensr-") as folder:
        source = path
        if IMAGE_IO[suffix] == "NiftiImageIO" and not path.name.endswith((suffix, suffix.upper())):
            source = Path(folder) / f"image{suffix}"  # ITK's NIfTI reader refuses mixed-case names
            try:
                source.symlink_to(path.resolve())
            except OSError:  # no symbolic links (Windows without the privilege)
                shutil.copyfile(path, source)
        reader.SetFileName(str(source))
        try:
            image = reader.Execute()
        except RuntimeError:
            raise PerfGenError(
                f"{path}: SimpleITK could not read this file as an image; check it is a complete "
                "NIfTI/NRRD/MetaImage file"
            ) from None
    if 0 in image.GetSize():
        raise PerfGenError(f"{path} is empty (size {shape_text(image.GetSize())}); give a study with data")
    return image


def _check_nifti_complete(path: Path, compressed: bool) -> None:
    """Refuse a NIfTI file holding less data than its header describes (SimpleITK would read zeros)."""
    try:
        with gzip.open(path, "rb") if compressed else open(path, "rb") as handle:
            try:
                header = handle.read(540)
            except (EOFError, OSError, zlib.error):
                return  # not even a header: SimpleITK's own error follows
            if len(header) < 348:
                return
            for order in "<>":
                size = struct.unpack(order + "i", header[:4])[0]
                if size in (348, 540):
                    break
            else:
                return  # not a NIfTI header: SimpleITK's own error follows
            if size == 348:
                dims = struct.unpack(order + "8h", header[40:56])
                bitpix = struct.unpack(order + "h", header[72:74])[0]
                offset = int(struct.unpack(order + "f", header[108:112])[0])
            else:
                bitpix = struct.unpack(order + "h", header[14:16])[0]
                dims = struct.unpack(order + "8q", header[16:80])
                offset = struct.unpack(order + "q", header[168:176])[0]
            shape = dims[1 : 1 + max(0, min(int(dims[0]), 7))]
            if any(d < 1 for d in shape):
                raise PerfGenError(f"{path} is empty (size {shape_text(shape)}); give a study with data")
            needed = max(offset, size) + math.prod(shape) * max(bitpix, 8) // 8
            held = len(header)
            while held < needed and (chunk := handle.read(1 << 24)):
                held += len(chunk)
    except (EOFError, OSError, zlib.error):
        held = -1
    if held < 0 or held < needed:
        raise PerfGenError(
            f"{path}: truncated or damaged (the image data end before what its header describes); "
            "copy or export it again"
        )


def _read_sitk(path: Path) -> Study:
    import SimpleITK as sitk

    image = _load_image(path)
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
    frame_interval = None
    if dim == 2:  # (W, H): one image
        array, frame_interval = array[None], 1.0
        spacing, origin, direction = (*spacing, 1.0), (*origin, 0.0), np.pad(direction, (0, 1))
        direction[2, 2] = 1.0
        dim = 3
    if dim == 3:  # (W, H, T): a 2D slice over time
        frame_interval = frame_interval or spacing[2]
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


def _new_file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_NEW_FILE_MODE = _new_file_mode()  # what open() gives a new file under this process's umask


STAGING_SUFFIX = ".partial"


def staging_folder(target: Path) -> Path:
    """A new, empty folder beside ``target`` to write it in, ``NAME.PID.XXXX.partial``. Folders that
    processes no longer running left for the same name (only a SIGKILL leaves one) are removed first."""
    for stale in target.parent.glob(f"{glob.escape(target.name)}.*{STAGING_SUFFIX}"):
        name, _, pid = stale.name[: -len(STAGING_SUFFIX)].rpartition(".")[0].rpartition(".")
        if name == target.name and pid.isdigit() and not _running(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    prefix = f"{target.name}.{os.getpid()}."
    return Path(tempfile.mkdtemp(prefix=prefix, suffix=STAGING_SUFFIX, dir=target.parent))


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path with ``target``'s name in a folder beside it; once the block succeeds, move it
    (and any companion file written beside it) onto ``target``, with the permissions a new file gets (some
    writers, safetensors among them, make private temporaries). Errors name ``target``, never the temporary."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = staging_folder(target)
    tmp = tmp_dir / target.name
    try:
        yield tmp
        if directory and target.is_dir():
            shutil.rmtree(target)
        for path in (*companion_files(tmp), tmp):  # tmp last: its name is target's
            if path.is_file():
                os.chmod(path, _NEW_FILE_MODE)
            os.replace(path, target.parent / path.name)
    except OSError as error:
        if error.filename and str(tmp_dir) in str(error.filename):
            raise OSError(error.errno, error.strerror, str(target)) from None
        raise
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def write_study(study: Study, path: str | os.PathLike, **dicom_options) -> Path:
    """Write ``study`` as ``.npy``, NIfTI/NRRD/MHA/MHD or (a path without extension) a DICOM series, atomically.

    ``dicom_options`` (``method``, ``model``, ...) describe a DICOM series; see :func:`dicom.write_dicom_series`.
    """
    path = Path(path)
    kind = study_format(path)
    if kind != "dicom" and path.is_dir():
        raise PerfGenError(f"{path} is a folder; give a file path for the output")
    if kind == "dicom" and path.exists() and not path.is_dir():
        raise PerfGenError(f"{path} is a file; give a folder path for the DICOM series")
    if kind == "npy":
        frames = study.frames[:, 0] if (study.single_slice and study.shape[1] == 1) else study.frames
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.save(handle, frames.astype(np.float32))
    elif kind == "image":
        with atomic_path(path) as tmp:
            _write_sitk(study, tmp)
    else:
        from .dicom import write_dicom_series

        with atomic_path(path, directory=True) as tmp:
            write_dicom_series(study, tmp, **{"method": "PerfGenSR", **dicom_options})
    return path


def _frame_interval(study: Study) -> float:
    times = study.times()
    return float(np.median(np.diff(times))) if len(times) > 1 else 1.0


def _write_sitk(study: Study, path: Path) -> None:
    """Write with SimpleITK, whose writers want a lower-case extension: under that name, then renamed."""
    import SimpleITK as sitk

    suffix = _image_suffix(path)
    dt = _frame_interval(study)
    d = np.array(study.direction, dtype=float).reshape(3, 3)
    in_plane = d[2, 2] == 1.0 and study.origin[2] == 0.0  # a 3D image keeps no slice orientation or offset
    if study.shape[1] == 1 and suffix not in (".nii", ".nii.gz") and in_plane:  # NIfTI: (x, y, 1, t)
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
    written = path.with_name(path.name[: -len(suffix)] + suffix)
    try:
        sitk.WriteImage(image, str(written), useCompression=True)
    except RuntimeError:
        raise PerfGenError(f"{path.name}: SimpleITK could not write this image") from None
    os.replace(written, path)


def write_csv(rows: list[dict], path: str | os.PathLike) -> Path:
    """Write rows (dicts with the same keys, in column order) as CSV with a header, atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return Path(path)


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
