"""First-pass perfusion series from DICOM folders into a :class:`~PerfGenSRLib.study.Study`, and
super-resolved studies back out as a derived MR series.

Longer than 500 lines because reading and writing share the header helpers (times, vectors,
decimal strings) of the one format; each direction alone is under 400 lines.

Reading (:func:`read_dicom_study`) accepts MR images only (a folder holding CT or any other
modality is refused), in the three shapes scanners export: one series with an
image per frame per slice (Siemens, GE, Philips classic: slices interleaved within each RR
interval), one series per slice (several series of one study, accepted as one multi-slice study
only when they share orientation, matrix and frame count and each holds one slice position), and
enhanced MR multi-frame objects (per-frame functional groups). Images are grouped into slices by
projecting ``ImagePositionPatient`` on the slice normal (row x column cosines; positions within
0.1 mm are one slice), slices ordered along the normal, so ``origin + z * spacing * normal`` is the
position of slice ``z``.

What the header says about the acquisition (phase-encoding direction, acquired matrix, measured
central lines) is read by :mod:`.acquisition` into ``meta``.

Frame order within a slice, strongest key first:

1. the acquisition clock (``AcquisitionDateTime``, ``AcquisitionDate`` + ``AcquisitionTime``, or
   ``FrameAcquisitionDateTime``): absolute, so it is monotonic over the whole first pass;
2. the temporal position (``TemporalPositionIdentifier`` / ``TemporalPositionIndex``): an explicit
   frame counter, deciding where the clock is a series-level constant (some GE exports);
3. the instance number (and frame number in a multi-frame object): the last resort, since
   exporters renumber instances freely.

Trigger time never orders frames: it is measured from the R wave, so it restarts every beat and in
an interleaved acquisition is nearly constant within a slice (it is what separates the slices of
one beat). The per-slice trigger delays are kept in ``meta["slice_trigger_times_ms"]``. Frame times
are seconds from the first frame, each frame's time being the earliest acquisition clock over its
slices; where the clock does not increase from frame to frame they come from trigger times that do
(cumulative trigger times), else they are unknown (``None``).

Writing (:func:`write_dicom_series`) uses pydicom rather than highdicom: highdicom builds
segmentations, parametric maps, secondary captures and legacy-converted enhanced objects, but no
classic single-frame MR image, which is the layout every PACS, viewer and 3D Slicer's DICOM module
(MultiVolumeImporter groups frames by ``TriggerTime``) reads; with the right attributes pydicom
writes it directly. One MR Image Storage instance per frame per slice, in a new series of the source
study (same patient, study and frame of reference, so it overlays the source), pixels as uint16
with one ``RescaleSlope``/``RescaleIntercept`` for the whole series mapping the data's minimum to 0
and maximum to 65535 (no clipping; negative values through the intercept; integer data already in
0..65535 kept exactly with slope 1). ``TriggerTime`` holds each frame's time from the first frame in
ms, ``AcquisitionDateTime`` the source's first acquisition time plus that offset.
"""

from __future__ import annotations

import datetime as dt
import re
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, ExplicitVRLittleEndian, MRImageStorage, generate_uid
from pydicom.valuerep import format_number_as_ds

from . import __version__
from .acquisition import read_acquisition
from .errors import PerfGenError
from .study import Study

POSITION_TOLERANCE_MM = 0.1
ORIENTATION_TOLERANCE = 1e-3
DICOMDIR_CLASS = "1.2.840.10008.1.3.10"
# clocks with a date count seconds from here: float64 keeps them to well under a microsecond
EPOCH = dt.datetime(1900, 1, 1)
NON_MAGNITUDE = {"P", "PHASE", "R", "REAL", "I", "IMAGINARY", "MIXED"}
STUDY_KEYS = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyDate",
    "StudyTime", "StudyID", "AccessionNumber", "ReferringPhysicianName", "StudyDescription",
    "FrameOfReferenceUID", "Modality", "SeriesInstanceUID", "SeriesNumber", "SeriesDescription",
    "Manufacturer",
)  # fmt: skip
ACQUISITION_KEYS = (
    "ScanningSequence", "SequenceVariant", "ScanOptions", "MRAcquisitionType", "RepetitionTime",
    "EchoTime", "FlipAngle", "MagneticFieldStrength", "PatientPosition", "BodyPartExamined", "ProtocolName",
)  # fmt: skip


@dataclass
class _Image:
    """One 2D image of the folder: where its pixels are and what places it in space and time."""

    path: Path
    frame: int  # index inside the file's pixel data
    uid: str
    series: str
    matrix: tuple[int, int]
    position: np.ndarray
    orientation: np.ndarray
    pixel_spacing: tuple[float, float]  # (row spacing, column spacing)
    clock: float | None  # acquisition clock, seconds
    trigger: float | None  # ms after the R wave
    temporal: int | None
    instance: int
    slope: float
    intercept: float


def read_dicom_study(folder: str | Path, min_frames: int = 2) -> Study:
    """Read the perfusion series in ``folder`` (searched recursively) as a ``(T, Z, H, W)`` study of at least
    ``min_frames`` frames."""
    folder = Path(folder)
    headers = _read_headers(folder)
    modalities = sorted({str(header.get("Modality") or "MR") for _, header in headers} - {"MR"})
    if modalities:
        raise PerfGenError(
            f"{folder}: holds a {'/'.join(modalities)} series, not an MR series; "
            "point at the folder of the MR perfusion series"
        )
    images = _unique([image for path, header in headers for image in _images_of(path, header)])
    series = defaultdict(list)
    for image in images:
        series[image.series].append(image)
    if len(series) > 1:
        _check_slices_of_one_acquisition(folder, headers, series)
    matrices = Counter(image.matrix for image in images)
    if len(matrices) > 1:
        found = ", ".join(f"{r}x{c} ({n} images)" for (r, c), n in matrices.items())
        raise PerfGenError(
            f"{folder}: images of different matrix sizes ({found}); point at the folder of one perfusion series"
        )
    row, column, normal = _axes(folder, images)
    slices = _group_slices(images, normal)
    counts = [len(s) for s in slices]
    if len(set(counts)) > 1:
        raise PerfGenError(
            f"{folder}: slices hold different numbers of frames ({', '.join(map(str, counts))}); "
            "the series is incomplete, export it again in full"
        )
    if counts[0] < min_frames:
        raise PerfGenError(
            f"{folder}: {len(images)} image(s) at {len(slices)} slice position(s) is not a time series; "
            f"PerfGenSR needs at least {min_frames} frames per slice"
        )
    order = _order_key(images)
    for frames in slices:
        frames.sort(key=order)
    first = slices[0][0]
    centres = [float(np.mean([image.position @ normal for image in s])) for s in slices]
    header = dict(headers)[first.path]
    return Study(
        _pixels(slices),
        spacing=(first.pixel_spacing[1], first.pixel_spacing[0], _slice_spacing(centres, header)),
        origin=tuple(float(v) for v in first.position),
        direction=tuple(float(v) for v in np.column_stack([row, column, normal]).ravel()),
        frame_times=_frame_times(slices),
        single_slice=len(slices) == 1,
        meta=_meta(folder, header, slices, centres),
    )


def write_dicom_series(
    study: Study,
    folder: str | Path,
    *,
    method: str,
    model: str | None = None,
    series_description: str | None = None,
    series_number: int | None = None,
) -> list[Path]:
    """Write ``study`` as a derived single-frame MR series into ``folder``; return the files written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    frames = np.asarray(study.frames, dtype=np.float64)
    if not np.isfinite(frames).all():
        raise PerfGenError("the frames to write contain NaN/Inf values; nothing was written")
    slope, intercept = _uint16_scaling(frames)
    stored = np.clip(np.rint((frames - intercept) / slope), 0, 65535).astype("<u2")
    shared = _series_attributes(
        study, method, model, series_description, series_number, slope, intercept, frames
    )
    direction = np.asarray(study.direction, dtype=float).reshape(3, 3)
    normal, origin = direction[:, 2], np.asarray(study.origin, dtype=float)
    times = None if study.frame_times is None else study.times()
    start = _parse_datetime(study.meta.get("acquisition_datetime")) or dt.datetime.now()
    t_count, z_count = study.shape[:2]
    paths = []
    for t in range(t_count):
        for z in range(z_count):
            dataset = Dataset()
            for keyword, value in shared.items():
                setattr(dataset, keyword, value)
            position = origin + z * study.spacing[2] * normal
            dataset.SOPInstanceUID = generate_uid()
            dataset.InstanceNumber = t * z_count + z + 1
            dataset.ImagePositionPatient = [_ds(v) for v in position]
            dataset.SliceLocation = _ds(position @ normal)
            dataset.TemporalPositionIdentifier = t + 1
            if times is not None:
                moment = start + dt.timedelta(seconds=float(times[t]))
                dataset.AcquisitionDate = moment.strftime("%Y%m%d")
                dataset.AcquisitionTime = moment.strftime("%H%M%S.%f")
                dataset.AcquisitionDateTime = moment.strftime("%Y%m%d%H%M%S.%f")
                dataset.TriggerTime = _ds(round(float(times[t]) * 1000.0, 3))
            dataset.PixelData = stored[t, z].tobytes()
            path = folder / f"slice{z + 1:02d}_frame{t + 1:03d}.dcm"
            _save(dataset, path)
            paths.append(path)
    return paths


def _read_headers(folder: Path) -> list[tuple[Path, Dataset]]:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    headers = [(path, header) for path in files if (header := _read_header(path)) is not None]
    images = [(path, header) for path, header in headers if "Rows" in header]
    if images:
        return images
    if headers:
        kinds = sorted({UID(str(h.SOPClassUID)).name for _, h in headers})
        raise PerfGenError(
            f"{folder}: its {len(headers)} DICOM files hold no images ({', '.join(kinds)}); "
            "point at the folder of the perfusion image series"
        )
    raise PerfGenError(
        f"{folder}: no DICOM files found here or in its sub-folders; point at the folder of the exported perfusion series"
    )


def _read_header(path: Path) -> Dataset | None:
    if path.name.upper() == "DICOMDIR":
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            header = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        except Exception:  # whatever pydicom cannot parse is not a DICOM file
            return None
    if "SOPClassUID" not in header or str(header.SOPClassUID) == DICOMDIR_CLASS:
        return None
    return header


def _images_of(path: Path, header: Dataset) -> list[_Image]:
    samples = int(header.get("SamplesPerPixel", 1))
    if samples != 1:
        raise PerfGenError(
            f"{path}: {samples} samples per pixel (colour or multi-component data); give the magnitude perfusion series"
        )
    common = dict(
        path=path,
        uid=str(header.get("SOPInstanceUID", path)),
        series=str(header.get("SeriesInstanceUID", "")),
        matrix=(int(header.Rows), int(header.Columns)),
        instance=int(header.get("InstanceNumber") or 0),
    )
    if "PerFrameFunctionalGroupsSequence" in header:
        return [
            _enhanced_image(header, item, i, common)
            for i, item in enumerate(header.PerFrameFunctionalGroupsSequence)
        ]
    _check_magnitude(path, header.get("ImageType", []), header.get("ComplexImageComponent"))
    orientation = _vector(header.get("ImageOrientationPatient"), (1, 0, 0, 0, 1, 0))
    position = header.get("ImagePositionPatient")
    if position is None and "SliceLocation" in header:
        position = float(header.SliceLocation) * np.cross(orientation[:3], orientation[3:])
    clock = _clock(header)
    frame_ms = float(header.get("FrameTime") or 0.0)
    return [
        _Image(
            frame=i,
            position=_vector(position, (0, 0, 0)),
            orientation=orientation,
            pixel_spacing=_pixel_spacing(header.get("PixelSpacing") or header.get("ImagerPixelSpacing")),
            clock=None if clock is None else clock + i * frame_ms / 1000.0,
            trigger=_float(header.get("TriggerTime")),
            temporal=_int(header.get("TemporalPositionIdentifier")),
            slope=float(header.get("RescaleSlope", 1.0)),
            intercept=float(header.get("RescaleIntercept", 0.0)),
            **common,
        )
        for i in range(int(header.get("NumberOfFrames") or 1))
    ]


def _enhanced_image(header: Dataset, item: Dataset, index: int, common: dict) -> _Image:
    shared = header.get("SharedFunctionalGroupsSequence", [Dataset()])[0]

    def find(sequence: str, keyword: str, default=None):
        for group in (item, shared):
            if sequence in group and len(group[sequence].value) and keyword in group[sequence][0]:
                return group[sequence][0][keyword].value
        return header.get(keyword, default)

    _check_magnitude(
        common["path"],
        find("MRImageFrameTypeSequence", "FrameType", []),
        find("MRImageFrameTypeSequence", "ComplexImageComponent"),
    )
    return _Image(
        frame=index,
        position=_vector(find("PlanePositionSequence", "ImagePositionPatient"), (0, 0, 0)),
        orientation=_vector(find("PlaneOrientationSequence", "ImageOrientationPatient"), (1, 0, 0, 0, 1, 0)),
        pixel_spacing=_pixel_spacing(find("PixelMeasuresSequence", "PixelSpacing")),
        clock=_datetime_seconds(str(find("FrameContentSequence", "FrameAcquisitionDateTime", "") or "")),
        trigger=_float(find("CardiacSynchronizationSequence", "NominalCardiacTriggerDelayTime")),
        temporal=_int(find("FrameContentSequence", "TemporalPositionIndex")),
        slope=float(find("PixelValueTransformationSequence", "RescaleSlope", 1.0)),
        intercept=float(find("PixelValueTransformationSequence", "RescaleIntercept", 0.0)),
        **common,
    )


def _check_magnitude(path: Path, image_type, component) -> None:
    kinds = {str(v).upper() for v in list(image_type)[2:]} | (
        {str(component).upper()} if component else set()
    )
    if kinds & NON_MAGNITUDE:
        raise PerfGenError(
            f"{path}: holds {'/'.join(sorted(kinds & NON_MAGNITUDE))} (complex) image data; export the magnitude images"
        )


def _unique(images: list[_Image]) -> list[_Image]:
    """Drop copies of the same image (one exported twice into the folder)."""
    return list({(image.uid, image.frame): image for image in images}.values())


def _check_slices_of_one_acquisition(folder: Path, headers: list[tuple[Path, Dataset]], series: dict) -> None:
    """Accept several series only as the single-slice series of one acquisition, else list them."""
    first = {uid: next(h for _, h in headers if str(h.get("SeriesInstanceUID", "")) == uid) for uid in series}
    everything = [image for images in series.values() for image in images]
    normal = _normal(everything[0].orientation)
    positions = [np.array([image.position @ normal for image in images]) for images in series.values()]
    centres = np.sort([p.mean() for p in positions])
    one_acquisition = (
        len({str(h.get("StudyInstanceUID", "")) for h in first.values()}) == 1
        and len({len(images) for images in series.values()}) == 1
        and len({image.matrix for image in everything}) == 1
        and all(
            np.allclose(i.orientation, everything[0].orientation, atol=ORIENTATION_TOLERANCE)
            for i in everything
        )
        and all(np.ptp(p) <= POSITION_TOLERANCE_MM for p in positions)
        and bool((np.diff(centres) > POSITION_TOLERANCE_MM).all())
    )
    if one_acquisition:
        return
    found = "; ".join(
        f"series {first[uid].get('SeriesNumber', '?')} '{first[uid].get('SeriesDescription', '')}' "
        f"({len(images)} images, {images[0].matrix[0]}x{images[0].matrix[1]}, in "
        f"{images[0].path.parent.relative_to(folder)})"
        for uid, images in series.items()
    )
    raise PerfGenError(
        f"{folder} holds {len(series)} series that are not the slices of one perfusion acquisition: {found}; "
        "point at the folder of one series"
    )


def _axes(folder: Path, images: list[_Image]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    reference = images[0].orientation
    if any(not np.allclose(image.orientation, reference, atol=ORIENTATION_TOLERANCE) for image in images):
        raise PerfGenError(
            f"{folder}: images of different orientations; point at the folder of one perfusion series"
        )
    row, column = reference[:3] / np.linalg.norm(reference[:3]), reference[3:] / np.linalg.norm(reference[3:])
    return row, column, _normal(reference)


def _normal(orientation: np.ndarray) -> np.ndarray:
    normal = np.cross(orientation[:3], orientation[3:])
    return normal / np.linalg.norm(normal)


def _group_slices(images: list[_Image], normal: np.ndarray) -> list[list[_Image]]:
    """Images grouped by position along ``normal``, slices in increasing position."""
    slices: list[list[_Image]] = []
    last = None
    for image in sorted(images, key=lambda i: float(i.position @ normal)):
        distance = float(image.position @ normal)
        if last is None or distance - last > POSITION_TOLERANCE_MM:
            slices.append([])
        slices[-1].append(image)
        last = distance
    return slices


def _order_key(images: list[_Image]):
    """Sort key for frames of one slice: acquisition clock, temporal position, instance (see module doc)."""
    use_clock = all(image.clock is not None for image in images)
    use_temporal = all(image.temporal is not None for image in images)
    return lambda i: (i.clock if use_clock else 0.0, i.temporal if use_temporal else 0, i.instance, i.frame)


def _frame_times(slices: list[list[_Image]]) -> np.ndarray | None:
    for source, scale in (("clock", 1.0), ("trigger", 1e-3)):
        values = np.array([[getattr(image, source) for image in s] for s in slices], dtype=object)
        if any(v is None for v in values.ravel()):
            continue
        values = values.astype(float) * scale
        if np.ptp(values) > 43200:  # clock times without a date that cross midnight
            values = np.where(values < values.min() + 43200, values + 86400, values)
        per_frame = values.min(axis=0)
        if (np.diff(values, axis=1) > 0).all():
            return per_frame - per_frame[0]
    return None


def _pixels(slices: list[list[_Image]]) -> np.ndarray:
    frame_count, (rows, columns) = len(slices[0]), slices[0][0].matrix
    frames = np.empty((frame_count, len(slices), rows, columns), dtype=np.float32)
    by_file = defaultdict(list)
    for z, images in enumerate(slices):
        for t, image in enumerate(images):
            by_file[image.path].append((t, z, image))
    for path, placed in by_file.items():
        array = _pixel_array(path)
        for t, z, image in placed:
            frames[t, z] = array[image.frame] * image.slope + image.intercept
    return frames


def _pixel_array(path: Path) -> np.ndarray:
    dataset = pydicom.dcmread(path, force=True)
    if not any(keyword in dataset for keyword in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise PerfGenError(
            f"{path}: a DICOM image header without pixel data; export the series with its images"
        )
    try:
        array = dataset.pixel_array
    except Exception as error:  # pydicom reports a missing codec or damaged data in several ways
        syntax = (
            dataset.file_meta.get("TransferSyntaxUID", "unknown")
            if hasattr(dataset, "file_meta")
            else "unknown"
        )
        raise PerfGenError(
            f"{path}: cannot decode its pixel data (transfer syntax {UID(str(syntax)).name}: {error}); "
            "export uncompressed DICOM or install pylibjpeg/gdcm"
        ) from None
    return array.astype(np.float32).reshape(-1, int(dataset.Rows), int(dataset.Columns))


def _slice_spacing(centres: list[float], header: Dataset) -> float:
    if len(centres) > 1:
        return float(np.mean(np.diff(centres)))
    return float(header.get("SpacingBetweenSlices") or header.get("SliceThickness") or 1.0)


def _meta(folder: Path, header: Dataset, slices: list[list[_Image]], centres: list[float]) -> dict:
    meta = {"source_format": "dicom", "dicom_source_folder": str(folder.resolve())}
    for keyword in STUDY_KEYS + ACQUISITION_KEYS:
        value = header.get(keyword)
        if value is not None and str(value) != "":
            meta[keyword] = (
                "\\".join(map(str, value)) if isinstance(value, (list, MultiValue)) else str(value)
            )
    meta["series_instance_uids"] = sorted({image.series for s in slices for image in s})
    meta["slice_positions_mm"] = [round(c - centres[0], 4) for c in centres]
    if "SliceThickness" in header and header.SliceThickness not in (None, ""):
        meta["slice_thickness"] = float(header.SliceThickness)
    triggers = [[image.trigger for image in s] for s in slices]
    meta["trigger_synchronised"] = all(t is not None for ts in triggers for t in ts)
    if meta["trigger_synchronised"]:
        meta["slice_trigger_times_ms"] = [float(np.median(ts)) for ts in triggers]
    clocks = [image.clock for s in slices for image in s]
    if all(c is not None and c > 86400 for c in clocks):  # a clock with a date
        start = EPOCH + dt.timedelta(seconds=min(clocks))
        meta["acquisition_datetime"] = start.strftime("%Y%m%d%H%M%S.%f")
    first = slices[0][0]
    meta.update(read_acquisition(header, *first.matrix, first.pixel_spacing))
    return meta


def _uint16_scaling(frames: np.ndarray) -> tuple[float, float]:
    """RescaleSlope and RescaleIntercept taking the frames' minimum to 0 and maximum to 65535."""
    low, high = float(frames.min()), float(frames.max())
    if low >= 0 and high <= 65535 and np.array_equal(frames, np.rint(frames)):
        return 1.0, 0.0
    slope = float(_ds((high - low) / 65535)) if high > low else 1.0
    return slope, float(_ds(low))


def _series_attributes(
    study: Study,
    method: str,
    model: str | None,
    description: str | None,
    number: int | None,
    slope: float,
    intercept: float,
    frames: np.ndarray,
) -> dict:
    meta, now = study.meta, dt.datetime.now()
    direction = np.asarray(study.direction, dtype=float).reshape(3, 3)
    study_uid = meta.get("StudyInstanceUID") or generate_uid()
    label = ", ".join(part for part in (method, model) if part)
    source_number = str(meta.get("SeriesNumber", ""))
    if number is None:  # derived series numbered after their source, as scanners do
        number = int(source_number) + 1000 if source_number.isdigit() else 1000
    low, high = float(frames.min()), float(frames.max())
    derivation = f"Super-resolved by PerfGenSR {__version__} ({label})"
    if "SeriesInstanceUID" in meta:
        derivation += f" from series {meta['SeriesInstanceUID']}"
    return {
        "SpecificCharacterSet": "ISO_IR 192",
        "SOPClassUID": MRImageStorage,
        "ImageType": ["DERIVED", "SECONDARY"],
        "PatientName": meta.get("PatientName", "ANONYMOUS"),
        "PatientID": meta.get("PatientID", f"PERFGENSR-{study_uid[-8:]}"),
        "PatientBirthDate": meta.get("PatientBirthDate", ""),
        "PatientSex": meta.get("PatientSex", ""),
        "StudyInstanceUID": study_uid,
        "StudyDate": meta.get("StudyDate", now.strftime("%Y%m%d")),
        "StudyTime": meta.get("StudyTime", now.strftime("%H%M%S")),
        "StudyID": meta.get("StudyID", ""),
        "AccessionNumber": meta.get("AccessionNumber", ""),
        "ReferringPhysicianName": meta.get("ReferringPhysicianName", ""),
        **({"StudyDescription": meta["StudyDescription"]} if "StudyDescription" in meta else {}),
        "Modality": "MR",
        "SeriesInstanceUID": generate_uid(),
        "SeriesNumber": number,
        "SeriesDescription": (description or f"PerfGen SR ({label})")[:64],
        "SeriesDate": now.strftime("%Y%m%d"),
        "SeriesTime": now.strftime("%H%M%S"),
        "ContentDate": now.strftime("%Y%m%d"),
        "ContentTime": now.strftime("%H%M%S"),
        "DerivationDescription": derivation[:1024],
        "Manufacturer": "PerfGenSR",
        "SoftwareVersions": __version__,
        "FrameOfReferenceUID": meta.get("FrameOfReferenceUID") or generate_uid(),
        "PositionReferenceIndicator": "",
        "PatientPosition": meta.get("PatientPosition", ""),
        "ScanningSequence": meta.get("ScanningSequence", "RM"),
        "SequenceVariant": meta.get("SequenceVariant", "NONE"),
        "ScanOptions": meta.get("ScanOptions", ""),
        "MRAcquisitionType": meta.get("MRAcquisitionType", "2D"),
        "RepetitionTime": meta.get("RepetitionTime", ""),
        "EchoTime": meta.get("EchoTime", ""),
        "EchoTrainLength": "",
        **{key: meta[key] for key in ("FlipAngle", "MagneticFieldStrength", "ProtocolName") if key in meta},
        "ImageOrientationPatient": [_ds(v) for v in (*direction[:, 0], *direction[:, 1])],
        "PixelSpacing": [_ds(study.spacing[1]), _ds(study.spacing[0])],
        "SliceThickness": _ds(meta.get("slice_thickness", study.spacing[2])),
        "SpacingBetweenSlices": _ds(study.spacing[2]),
        "NumberOfTemporalPositions": study.shape[0],
        "ImagesInAcquisition": study.shape[0] * study.shape[1],
        "SamplesPerPixel": 1,
        "PhotometricInterpretation": "MONOCHROME2",
        "Rows": study.shape[2],
        "Columns": study.shape[3],
        "BitsAllocated": 16,
        "BitsStored": 16,
        "HighBit": 15,
        "PixelRepresentation": 0,
        "RescaleIntercept": _ds(intercept),
        "RescaleSlope": _ds(slope),
        "RescaleType": "US",
        "WindowCenter": _ds((low + high) / 2),
        "WindowWidth": _ds(max(high - low, 1e-6)),
    }


def _save(dataset: Dataset, path: Path) -> None:
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.MediaStorageSOPClassUID = dataset.SOPClassUID
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    dataset.preamble = b"\0" * 128
    if int(pydicom.__version__.split(".")[0]) >= 3:
        pydicom.dcmwrite(path, dataset, enforce_file_format=True)
    else:  # pydicom 2 (older 3D Slicer builds) encodes from these flags
        dataset.is_little_endian, dataset.is_implicit_VR = True, False
        dataset.save_as(path, write_like_original=False)


def _clock(header: Dataset) -> float | None:
    """Acquisition clock of a classic image in seconds (date included where known)."""
    if header.get("AcquisitionDateTime"):
        return _datetime_seconds(str(header.AcquisitionDateTime))
    time = str(header.get("AcquisitionTime") or "")
    date = str(header.get("AcquisitionDate") or header.get("SeriesDate") or header.get("StudyDate") or "")
    return _datetime_seconds(date + time) if len(date) == 8 and time else _time_seconds(time)


def _datetime_seconds(value: str) -> float | None:
    """Seconds of a DICOM DT value (``YYYYMMDDHHMMSS.FFFFFF``, offset ignored) from :data:`EPOCH`."""
    value = re.split(r"[+-]", value.strip())[0]
    if len(value) < 8:
        return None
    try:
        day = dt.date(int(value[:4]), int(value[4:6]), int(value[6:8])).toordinal() - EPOCH.toordinal()
    except ValueError:
        return None
    return day * 86400.0 + (_time_seconds(value[8:]) or 0.0)


def _time_seconds(value: str) -> float | None:
    """Seconds since midnight of a DICOM TM value (``HHMMSS.FFFFFF``, old ``HH:MM:SS`` too)."""
    value = value.replace(":", "").strip()
    if len(value) < 2:
        return None
    try:
        return int(value[:2]) * 3600 + int(value[2:4] or 0) * 60 + float(value[4:] or 0)
    except ValueError:
        return None


def _parse_datetime(value: str | None) -> dt.datetime | None:
    seconds = _datetime_seconds(value or "")
    return None if seconds is None else EPOCH + dt.timedelta(seconds=seconds)


def _pixel_spacing(spacing) -> tuple[float, float]:
    spacing = spacing or (1.0, 1.0)
    return float(spacing[0]), float(spacing[1])


def _vector(values, default) -> np.ndarray:
    return np.array(
        [float(v) for v in (values if values is not None and len(values) else default)], dtype=float
    )


def _float(value) -> float | None:
    return None if value is None or value == "" else float(value)


def _int(value) -> int | None:
    return None if value is None or value == "" else int(value)


def _ds(value: float) -> str:
    """A number as a DICOM decimal string (at most 16 characters, as precise as fits)."""
    return format_number_as_ds(float(value))
