"""DICOM perfusion reading (interleaved series, one series per slice, enhanced multi-frame), the
user-facing errors, and the derived-series writer round trip, on synthetic series built here."""

import datetime as dt
import json

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from PerfGenSRLib import acquisition, dicom, io
from PerfGenSRLib.dicom import read_dicom_study, write_dicom_series
from PerfGenSRLib.errors import PerfGenError
from PerfGenSRLib.study import Study, describe_study

ROW = np.array([1.0, 1.0, 0.0]) / np.sqrt(2)  # oblique, like a short-axis plane
COLUMN = np.array([0.0, 0.0, -1.0])
NORMAL = np.cross(ROW, COLUMN)
CORNER = np.array([-40.0, 25.0, 60.0])
START = dt.datetime(2024, 3, 5, 10, 15, 30)
RR = [0.8, 0.9, 0.85, 0.95, 0.8, 0.9]  # seconds per beat, one frame per beat
SLICE_OFFSETS = [16.0, 0.0, 8.0]  # mm along the normal, in acquisition order within each beat
TRIGGERS = [50.0, 330.0, 610.0]  # ms after the R wave, per acquired slice
JITTER = [2.0, -2.0, 2.0, -2.0, 2.0, -2.0]  # ms per beat: trigger times are not monotonic within a slice
SLOPE, INTERCEPT = 2.0, -100.0


def stored_pixels(t, z, rows, columns):
    """Stored values that identify frame ``t`` of spatial slice ``z``."""
    r, c = np.mgrid[:rows, :columns]
    return ((r + 2 * c) % 50 + 100 * t + 7 * z).astype(np.uint16)


def save(dataset, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.MediaStorageSOPClassUID = dataset.SOPClassUID
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    pydicom.dcmwrite(path, dataset, enforce_file_format=True)


def mr_image(pixels, *, series, study, position, instance, moment=None, trigger=None, **extra):
    """A classic single-frame MR image dataset (not yet written)."""
    ds = Dataset()
    ds.SOPClassUID = pydicom.uid.MRImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.FrameOfReferenceUID = "1.2.826.0.1.3680043.8.498.1"
    ds.PatientName, ds.PatientID, ds.PatientSex, ds.PatientBirthDate = (
        "Phantom^Perfusion",
        "PGSR-TEST",
        "O",
        "19700101",
    )
    ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = "20240305", "101000", "7", "ACC1"
    ds.ReferringPhysicianName = ""
    ds.Modality, ds.Manufacturer, ds.SeriesNumber, ds.SeriesDescription = "MR", "SIEMENS", 5, "perf_sr"
    ds.InstanceNumber = instance
    ds.ImagePositionPatient = [float(v) for v in position]
    ds.ImageOrientationPatient = [float(v) for v in (*ROW, *COLUMN)]
    ds.PixelSpacing = [1.5, 1.25]
    ds.SliceThickness = 8
    if moment is not None:
        ds.AcquisitionDate, ds.AcquisitionTime = moment.strftime("%Y%m%d"), moment.strftime("%H%M%S.%f")
    if trigger is not None:
        ds.TriggerTime = trigger
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.RescaleSlope, ds.RescaleIntercept = SLOPE, INTERCEPT
    ds.PixelData = pixels.astype("<u2").tobytes()
    for keyword, value in extra.items():
        setattr(ds, keyword, value)
    return ds


def write_interleaved(folder, rows=64, columns=48, frames=6, clock=True, instances=None, acquisition=None):
    """One series, slices interleaved within each beat, trigger times restarting every beat;
    ``acquisition`` replaces the header's acquisition tags (default: 40 phase steps along COL)."""
    if acquisition is None:
        acquisition = {"AcquisitionMatrix": [columns, 0, 0, 40], "InPlanePhaseEncodingDirection": "COL"}
    series, study = generate_uid(), generate_uid()
    spatial = np.argsort(np.argsort(SLICE_OFFSETS))  # spatial index of each acquired slice
    beats = np.concatenate([[0.0], np.cumsum(RR)])
    order = instances if instances is not None else np.arange(frames * 3)
    for t in range(frames):
        for k in range(3):
            trigger = TRIGGERS[k] + JITTER[t]
            moment = START + dt.timedelta(seconds=beats[t] + trigger / 1000)
            ds = mr_image(
                stored_pixels(t, spatial[k], rows, columns),
                series=series,
                study=study,
                position=CORNER + SLICE_OFFSETS[k] * NORMAL,
                instance=int(order[t * 3 + k]) + 1,
                moment=moment if clock else None,
                trigger=trigger,
                **acquisition,
            )
            save(ds, folder / "exam" / "perf" / f"{ds.SOPInstanceUID}.dcm")
    return folder


def expected_frames(frames, slices, rows, columns, slope=SLOPE, intercept=INTERCEPT):
    return np.stack(
        [
            [stored_pixels(t, z, rows, columns) * slope + intercept for z in range(slices)]
            for t in range(frames)
        ]
    )


def test_interleaved_series_grouped_ordered_by_clock_with_rescale_and_geometry(tmp_path):
    scrambled = np.random.default_rng(0).permutation(18)  # instance numbers must not decide the order
    write_interleaved(tmp_path, instances=scrambled)
    (tmp_path / "README.txt").write_text("exported by a PACS\n")
    (tmp_path / "DICOMDIR").write_bytes(b"\0" * 200)
    study = io.read_study(tmp_path)
    assert study.shape == (6, 3, 64, 48)
    np.testing.assert_array_equal(study.frames, expected_frames(6, 3, 64, 48))
    beats = np.concatenate([[0.0], np.cumsum(RR[:5])])
    np.testing.assert_allclose(study.frame_times, beats + (np.array(JITTER) - JITTER[0]) / 1000, atol=1e-5)
    np.testing.assert_allclose(study.spacing, (1.25, 1.5, 8.0), atol=1e-5)
    np.testing.assert_allclose(study.origin, CORNER, atol=1e-6)  # the lowest slice along the normal
    np.testing.assert_allclose(
        np.reshape(study.direction, (3, 3)), np.column_stack([ROW, COLUMN, NORMAL]), atol=1e-9
    )
    assert not study.single_slice
    assert study.meta["phase_encoding"] == "COL" and study.meta["acquisition_matrix"] == [40, 48]
    assert study.meta["measured_lines"] == {
        "lines": 40,
        "matrix": 64,
        "phase_axis": "rows",
        "source": "Acquisition Matrix 0018,1310 and In-plane Phase Encoding Direction COL",
    }
    assert study.meta["slice_trigger_times_ms"] == [330.0, 610.0, 50.0]
    assert study.meta["PatientID"] == "PGSR-TEST" and study.meta["SeriesNumber"] == "5"
    assert study.meta["dicom_source_folder"] == str(tmp_path.resolve())
    assert json.loads(json.dumps(study.meta)) == study.meta


def test_without_clock_frames_follow_instance_numbers_and_times_are_unknown(tmp_path):
    study = read_dicom_study(write_interleaved(tmp_path, clock=False))
    np.testing.assert_array_equal(study.frames, expected_frames(6, 3, 64, 48))
    assert study.frame_times is None  # trigger times restart every beat: no usable times
    assert "frame times unknown" in describe_study(study)


def test_describe_study_reports_size_resolution_and_timing(tmp_path):
    line = describe_study(read_dicom_study(write_interleaved(tmp_path)))
    assert line.startswith(
        "3 slices x 6 frames, 48x64 matrix (acquired 48x40), 1.25x1.5 mm, 8 mm slice spacing"
    )
    assert "frame interval 0.85 s (0.80-0.95 s) (trigger-synchronised)" in line


def write_slice_series(folder, counts=(5, 5), matrices=((32, 32), (32, 32))):
    study = generate_uid()
    for z, (frames, (rows, columns)) in enumerate(zip(counts, matrices)):
        series = generate_uid()
        for t in range(frames):
            ds = mr_image(
                stored_pixels(t, z, rows, columns),
                series=series,
                study=study,
                position=CORNER + 10.0 * z * NORMAL,
                instance=t + 1,
                moment=START + dt.timedelta(seconds=t + 0.3 * z),
                SeriesNumber=10 + z,
                SeriesDescription=f"perf slice {z + 1}",
            )
            save(ds, folder / f"slice{z + 1}" / f"im{t}.dcm")
    return folder


def test_one_series_per_slice_merged_into_one_study(tmp_path):
    study = read_dicom_study(write_slice_series(tmp_path))
    assert study.shape == (5, 2, 32, 32)
    np.testing.assert_array_equal(study.frames, expected_frames(5, 2, 32, 32))
    np.testing.assert_allclose(study.frame_times, np.arange(5.0), atol=1e-5)
    assert study.spacing[2] == pytest.approx(10.0)
    assert len(study.meta["series_instance_uids"]) == 2


@pytest.mark.parametrize("counts, matrices", [((5, 4), ((32, 32),) * 2), ((5, 5), ((32, 32), (32, 24)))])
def test_series_that_are_not_slices_of_one_acquisition_are_refused_with_a_listing(tmp_path, counts, matrices):
    with pytest.raises(PerfGenError, match="holds 2 series that are not the slices") as error:
        read_dicom_study(write_slice_series(tmp_path, counts, matrices))
    message = str(error.value)
    assert "series 10 'perf slice 1'" in message and "series 11 'perf slice 2'" in message
    assert (
        "in slice2" in message
        and message.endswith("point at the folder of one series")
        and "\n" not in message
    )


def test_unrelated_localizer_beside_the_perfusion_series_is_refused(tmp_path):
    write_interleaved(tmp_path, frames=3)
    localizer = mr_image(
        np.zeros((32, 32)),
        series=generate_uid(),
        study=generate_uid(),
        position=CORNER,
        instance=1,
        SeriesNumber=1,
        SeriesDescription="localizer",
        ImageOrientationPatient=[1, 0, 0, 0, 1, 0],
    )
    save(localizer, tmp_path / "loc" / "im.dcm")
    with pytest.raises(PerfGenError, match="series 1 'localizer' \\(1 images, 32x32, in loc\\)"):
        read_dicom_study(tmp_path)


def test_enhanced_multiframe_object(tmp_path):
    rows, columns, frames, slices = 64, 48, 4, 2
    order = np.random.default_rng(1).permutation([(t, z) for t in range(frames) for z in range(slices)])
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = pydicom.uid.EnhancedMRImageStorage, generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.Modality, ds.InstanceNumber = (
        generate_uid(),
        generate_uid(),
        "MR",
        1,
    )
    ds.Rows, ds.Columns, ds.NumberOfFrames = rows, columns, len(order)
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.ImageType = ["ORIGINAL", "PRIMARY", "PERFUSION", "NONE"]
    shared = Dataset()
    shared.PixelMeasuresSequence = Sequence([Dataset()])
    shared.PixelMeasuresSequence[0].PixelSpacing = [1.8, 1.6]
    shared.PlaneOrientationSequence = Sequence([Dataset()])
    shared.PlaneOrientationSequence[0].ImageOrientationPatient = [*ROW, *COLUMN]
    shared.PixelValueTransformationSequence = Sequence([Dataset()])
    shared.PixelValueTransformationSequence[0].RescaleSlope = 0.5
    shared.PixelValueTransformationSequence[0].RescaleIntercept = 10
    shared.MRFOVGeometrySequence = Sequence([Dataset()])
    geometry = shared.MRFOVGeometrySequence[0]
    geometry.InPlanePhaseEncodingDirection = "COL"
    geometry.MRAcquisitionPhaseEncodingStepsInPlane, geometry.MRAcquisitionFrequencyEncodingSteps = 30, 48
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per_frame = []
    for t, z in order:
        item = Dataset()
        item.PlanePositionSequence = Sequence([Dataset()])
        item.PlanePositionSequence[0].ImagePositionPatient = [*(CORNER + 12.0 * z * NORMAL)]
        item.FrameContentSequence = Sequence([Dataset()])
        moment = START + dt.timedelta(seconds=1.1 * t + 0.25 * z)
        item.FrameContentSequence[0].FrameAcquisitionDateTime = moment.strftime("%Y%m%d%H%M%S.%f")
        item.FrameContentSequence[0].TemporalPositionIndex = int(t) + 1
        item.CardiacSynchronizationSequence = Sequence([Dataset()])
        item.CardiacSynchronizationSequence[0].NominalCardiacTriggerDelayTime = 100 + 250 * int(z)
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    ds.PixelData = np.stack([stored_pixels(t, z, rows, columns) for t, z in order]).astype("<u2").tobytes()
    save(ds, tmp_path / "enhanced.dcm")
    study = read_dicom_study(tmp_path)
    np.testing.assert_allclose(study.frames, expected_frames(frames, slices, rows, columns, 0.5, 10))
    np.testing.assert_allclose(study.frame_times, 1.1 * np.arange(frames), atol=1e-5)
    np.testing.assert_allclose(study.spacing, (1.6, 1.8, 12.0), atol=1e-5)
    np.testing.assert_allclose(study.origin, CORNER, atol=1e-5)
    assert acquisition.measured_lines(study) == acquisition.MeasuredLines(
        30,
        64,
        "rows",
        "MR Acquisition Phase Encoding Steps in-plane 0018,9231 (MR FOV/Geometry Sequence) and "
        "In-plane Phase Encoding Direction COL",
    )
    assert study.meta["acquisition_matrix"] == [30, 48] and study.meta["slice_trigger_times_ms"] == [
        100.0,
        350.0,
    ]


# --- measured lines from the header: one table per header layout ----------------------------------------

CLASSIC = "Acquisition Matrix 0018,1310 and In-plane Phase Encoding Direction"
ENHANCED = "MR Acquisition Phase Encoding Steps in-plane 0018,9231 (MR FOV/Geometry Sequence) and In-plane Phase Encoding Direction"


def classic_header(**tags):
    ds = Dataset()
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    return ds


def enhanced_header(geometry=None, per_frame=False, partial_fourier=None, **tags):
    ds = classic_header(**tags)
    group = Dataset()
    if geometry is not None:
        group.MRFOVGeometrySequence = Sequence([classic_header(**geometry)])
    if partial_fourier is not None:
        group.MRModifierSequence = Sequence(
            [classic_header(PartialFourier="YES", PartialFourierDirection=partial_fourier)]
        )
    if per_frame:
        ds.SharedFunctionalGroupsSequence = Sequence([Dataset()])
        ds.PerFrameFunctionalGroupsSequence = Sequence([group, Dataset()])
    else:
        ds.SharedFunctionalGroupsSequence = Sequence([group])
    return ds


# header, (rows, columns), pixel spacing (row, column) -> lines, matrix, phase axis, words of the source
MEASURED_LINES = {
    "classic COL: phase steps in the fourth slot count the rows": (
        classic_header(AcquisitionMatrix=[96, 0, 0, 45], InPlanePhaseEncodingDirection="COL"),
        (128, 96), (1.5, 1.5), (45, 128, "rows"), f"{CLASSIC} COL",
    ),
    "classic ROW: phase steps in the third slot count the columns": (
        classic_header(AcquisitionMatrix=[0, 128, 34, 0], InPlanePhaseEncodingDirection="ROW"),
        (128, 96), (1.5, 1.5), (34, 96, "columns"), f"{CLASSIC} ROW",
    ),
    "Percent Sampling is in the matrix already, not applied twice": (
        classic_header(AcquisitionMatrix=[96, 0, 0, 45], InPlanePhaseEncodingDirection="COL", PercentSampling=35),
        (128, 96), (1.5, 1.5), (45, 128, "rows"), f"{CLASSIC} COL",
    ),
    "rectangular field of view reconstructed rectangular: Percent Phase FOV agrees, changes nothing": (
        classic_header(
            AcquisitionMatrix=[128, 0, 0, 34], InPlanePhaseEncodingDirection="COL", PercentPhaseFieldOfView=75
        ),
        (96, 128), (1.5, 1.5), (34, 96, "rows"), f"{CLASSIC} COL",
    ),
    "rectangular field of view reconstructed square: steps scaled by the fields of view": (
        classic_header(
            AcquisitionMatrix=[128, 0, 0, 34], InPlanePhaseEncodingDirection="COL", PercentPhaseFieldOfView=75
        ),
        (128, 128), (1.5, 1.5), (45, 128, "rows"), "Percent Phase Field of View 0018,0094 (75 %)",
    ),
    "non-square pixels: the fields of view in mm decide": (
        classic_header(
            AcquisitionMatrix=[64, 0, 0, 28], InPlanePhaseEncodingDirection="COL", PercentPhaseFieldOfView=150
        ),
        (80, 64), (1.5, 1.25), (28, 80, "rows"), f"{CLASSIC} COL",
    ),
    "full resolution: every line measured": (
        classic_header(AcquisitionMatrix=[96, 0, 0, 128], InPlanePhaseEncodingDirection="COL"),
        (128, 96), (1.5, 1.5), (128, 128, "rows"), f"{CLASSIC} COL",
    ),
    "more steps than the grid holds: at most the grid": (
        classic_header(AcquisitionMatrix=[96, 0, 0, 256], InPlanePhaseEncodingDirection="COL"),
        (128, 96), (1.5, 1.5), (128, 128, "rows"), f"{CLASSIC} COL",
    ),
    "no direction: no lines and no axis": (
        classic_header(AcquisitionMatrix=[96, 0, 0, 45]),
        (128, 96), (1.5, 1.5), (None, None, None), "no In-plane Phase Encoding Direction (0018,1312)",
    ),
    "direction neither ROW nor COL": (
        classic_header(AcquisitionMatrix=[96, 0, 0, 45], InPlanePhaseEncodingDirection="OBLIQUE"),
        (128, 96), (1.5, 1.5), (None, None, None), "is 'OBLIQUE', not ROW or COL",
    ),
    "no matrix: the axis from the direction, no lines": (
        classic_header(InPlanePhaseEncodingDirection="ROW"),
        (128, 96), (1.5, 1.5), (None, 96, "columns"), "no phase-encoding steps in Acquisition Matrix 0018,1310",
    ),
    "matrix contradicting the direction": (
        classic_header(AcquisitionMatrix=[0, 96, 45, 0], InPlanePhaseEncodingDirection="COL"),
        (128, 96), (1.5, 1.5), (None, 128, "rows"),
        "Acquisition Matrix (0018,1310) 0\\96\\45\\0 holds phase steps for ROW but In-plane Phase Encoding "
        "Direction (0018,1312) says COL",
    ),
    "Percent Phase FOV that cannot describe this image": (
        classic_header(
            AcquisitionMatrix=[96, 0, 0, 45], InPlanePhaseEncodingDirection="COL", PercentPhaseFieldOfView=20
        ),
        (128, 96), (1.5, 1.5), (None, 128, "rows"),
        "Percent Phase Field of View (0018,0094) 20 % gives a 29 mm phase field of view, the image's is 192 mm",
    ),
    "enhanced COL in the shared groups": (
        enhanced_header(
            {
                "InPlanePhaseEncodingDirection": "COL",
                "MRAcquisitionPhaseEncodingStepsInPlane": 45,
                "MRAcquisitionFrequencyEncodingSteps": 96,
            }
        ),
        (128, 96), (1.5, 1.5), (45, 128, "rows"), f"{ENHANCED} COL",
    ),
    "enhanced ROW in the first frame's groups, the geometry winning over a classic matrix": (
        enhanced_header(
            {"InPlanePhaseEncodingDirection": "ROW", "MRAcquisitionPhaseEncodingStepsInPlane": 30},
            per_frame=True,
            AcquisitionMatrix=[96, 0, 0, 45],
        ),
        (128, 96), (1.5, 1.5), (30, 96, "columns"), f"{ENHANCED} ROW",
    ),
    "enhanced Percent Phase FOV in the geometry": (
        enhanced_header(
            {
                "InPlanePhaseEncodingDirection": "COL",
                "MRAcquisitionPhaseEncodingStepsInPlane": 34,
                "PercentPhaseFieldOfView": 75,
            }
        ),
        (128, 128), (1.5, 1.5), (45, 128, "rows"), "Percent Phase Field of View 0018,0094 (75 %)",
    ),
    "enhanced partial Fourier along phase: said, the count kept": (
        enhanced_header(
            {"InPlanePhaseEncodingDirection": "COL", "MRAcquisitionPhaseEncodingStepsInPlane": 45},
            partial_fourier="PHASE",
        ),
        (128, 96), (1.5, 1.5), (45, 128, "rows"), "partial Fourier along phase (0018,9081)",
    ),
    "enhanced partial Fourier along frequency: not a phase matter": (
        enhanced_header(
            {"InPlanePhaseEncodingDirection": "COL", "MRAcquisitionPhaseEncodingStepsInPlane": 45},
            partial_fourier="FREQUENCY",
        ),
        (128, 96), (1.5, 1.5), (45, 128, "rows"), f"{ENHANCED} COL",
    ),
    "enhanced geometry without steps: the classic matrix, with the geometry's direction": (
        enhanced_header({"InPlanePhaseEncodingDirection": "ROW"}, AcquisitionMatrix=[0, 128, 30, 0]),
        (128, 96), (1.5, 1.5), (30, 96, "columns"), f"{CLASSIC} ROW",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", MEASURED_LINES)
def test_measured_lines_from_each_header_layout(case):
    header, (rows, columns), spacing, expected, words = MEASURED_LINES[case]
    found = acquisition.MeasuredLines(
        **acquisition.read_acquisition(header, rows, columns, spacing)["measured_lines"]
    )
    assert (found.lines, found.matrix, found.phase_axis) == expected and words in found.source, found.source
    if "partial Fourier along frequency" in case:
        assert "partial" not in found.source


def test_measured_lines_of_a_study_without_a_header():
    assert acquisition.measured_lines(Study(np.zeros((2, 1, 8, 8), np.float32))) is acquisition.NO_HEADER


def test_measured_lines_of_the_public_samples_pydicom_ships():
    """pydicom's own test files: a Siemens image with a rectangular phase field of view, cropped, and
    a Toshiba image without any acquisition tag."""
    from pydicom.data import get_testdata_file

    siemens, toshiba = get_testdata_file("examples_overlay.dcm"), get_testdata_file("MR_small.dcm")
    if siemens is None or toshiba is None:
        pytest.skip("pydicom's test files are not installed")
    header = pydicom.dcmread(siemens, stop_before_pixels=True)  # 256\0\0\134 COL, 75 % phase FOV, 300x484
    found = acquisition.read_acquisition(
        header, header.Rows, header.Columns, [float(v) for v in header.PixelSpacing]
    )
    assert found["percent_sampling"] == pytest.approx(69.79, abs=0.01)  # 134 = 256 x 69.79 % x 75 %
    assert found["measured_lines"] == {
        "lines": 111,  # 134 steps over a 262 mm phase field of view, of which the image shows 217 mm
        "matrix": 300,
        "phase_axis": "rows",
        "source": "Acquisition Matrix 0018,1310, In-plane Phase Encoding Direction COL and "
        "Percent Phase Field of View 0018,0094 (75 %)",
    }
    header = pydicom.dcmread(toshiba, stop_before_pixels=True)
    found = acquisition.read_acquisition(
        header, header.Rows, header.Columns, [float(v) for v in header.PixelSpacing]
    )
    assert found["measured_lines"]["lines"] is None and "0018,1312" in found["measured_lines"]["source"]


def one_image(folder, name="im.dcm", pixels=None, **extra):
    pixels = np.ones((16, 16), np.uint16) if pixels is None else pixels
    ds = mr_image(pixels, series="1.2.3.4", study="1.2.3", position=CORNER, instance=1, moment=START, **extra)
    save(ds, folder / name)
    return ds


def test_error_no_dicom_files(tmp_path):
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(PerfGenError, match="no DICOM files found here or in its sub-folders"):
        read_dicom_study(tmp_path)


def test_error_single_image_is_not_a_time_series(tmp_path):
    one_image(tmp_path)
    with pytest.raises(
        PerfGenError,
        match="1 image\\(s\\) at 1 slice position\\(s\\) is not a time series; PerfGenSR needs at least 2 frames",
    ):
        read_dicom_study(tmp_path)


def test_error_non_image_dicom(tmp_path):
    report = Dataset()
    report.SOPClassUID, report.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.88.11", generate_uid()
    save(report, tmp_path / "sr.dcm")
    with pytest.raises(PerfGenError, match="hold no images \\(Basic Text SR Storage\\)"):
        read_dicom_study(tmp_path)


def test_error_image_header_without_pixel_data(tmp_path):
    for name in ("a.dcm", "b.dcm"):
        ds = one_image(tmp_path, name)
        del ds.PixelData
        save(ds, tmp_path / name)
    with pytest.raises(PerfGenError, match="without pixel data"):
        read_dicom_study(tmp_path)


def test_error_colour_and_complex_data(tmp_path):
    one_image(
        tmp_path / "rgb",
        pixels=np.zeros((16, 48), np.uint16),
        SamplesPerPixel=3,
        PhotometricInterpretation="RGB",
    )
    with pytest.raises(PerfGenError, match="3 samples per pixel"):
        read_dicom_study(tmp_path / "rgb")
    one_image(tmp_path / "phase", ImageType=["ORIGINAL", "PRIMARY", "P", "ND"])
    with pytest.raises(PerfGenError, match="holds P \\(complex\\) image data; export the magnitude images"):
        read_dicom_study(tmp_path / "phase")


def test_error_inconsistent_matrix_and_frame_counts(tmp_path):
    one_image(tmp_path / "matrix", "a.dcm", InstanceNumber=1)
    one_image(tmp_path / "matrix", "b.dcm", pixels=np.ones((16, 12), np.uint16), InstanceNumber=2)
    with pytest.raises(
        PerfGenError, match="different matrix sizes \\(16x16 \\(1 images\\), 16x12 \\(1 images\\)\\)"
    ):
        read_dicom_study(tmp_path / "matrix")
    for t, offset in [(0, 0.0), (1, 0.0), (2, 0.0), (0, 5.0), (1, 5.0)]:
        one_image(
            tmp_path / "counts",
            f"{t}_{offset}.dcm",
            InstanceNumber=t + 1,
            ImagePositionPatient=list(CORNER + offset * NORMAL),
        )
    with pytest.raises(PerfGenError, match="slices hold different numbers of frames \\(3, 2\\)"):
        read_dicom_study(tmp_path / "counts")


def test_written_series_reads_back_with_same_values_geometry_and_times(tmp_path):
    source = read_dicom_study(write_interleaved(tmp_path / "in"))
    source = source.with_frames(
        source.frames + np.linspace(-0.3, 0.3, source.frames.size).reshape(source.shape)
    )
    out = io.write_study(source, tmp_path / "out", method="perfgen", model="small")
    files = sorted(out.glob("*.dcm"))
    assert len(files) == 18
    back = read_dicom_study(out)
    first = pydicom.dcmread(files[0])
    step = float(first.RescaleSlope)
    assert step == pytest.approx((source.frames.max() - source.frames.min()) / 65535, rel=1e-6)
    np.testing.assert_allclose(back.frames, source.frames, atol=step / 2 + 1e-4)
    for got, want in [
        (back.spacing, source.spacing),
        (back.origin, source.origin),
        (back.direction, source.direction),
    ]:
        np.testing.assert_allclose(got, want, atol=1e-4)
    np.testing.assert_allclose(back.frame_times, source.frame_times, atol=1e-3)
    assert (
        first.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        and first.SOPClassUID == pydicom.uid.MRImageStorage
    )
    assert (
        list(first.ImageType) == ["DERIVED", "SECONDARY"]
        and first.SeriesDescription == "PerfGen SR (perfgen, small)"
    )
    assert first.StudyInstanceUID == source.meta["StudyInstanceUID"] and first.PatientID == "PGSR-TEST"
    assert first.SeriesInstanceUID != source.meta["SeriesInstanceUID"] and first.SeriesNumber == 1005
    assert first.FrameOfReferenceUID == source.meta["FrameOfReferenceUID"]
    assert len({pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in files}) == 18


def test_writer_on_a_study_without_dicom_metadata(tmp_path):
    rng = np.random.default_rng(2)
    angle = 0.3
    direction = (np.cos(angle), -np.sin(angle), 0.0, np.sin(angle), np.cos(angle), 0.0, 0.0, 0.0, 1.0)
    times = np.array([0.0, 0.7, 1.5, 2.1])
    study = Study(
        rng.normal(-50, 400, (4, 24, 20)).astype(np.float32),
        spacing=(1.3, 1.1, 6.0),
        origin=(10.0, -20.0, 5.5),
        direction=direction,
        frame_times=times,
    )
    files = write_dicom_series(study, tmp_path / "out", method="zero-fill", series_number=42)
    first = pydicom.dcmread(files[0])
    assert (
        first.PatientName == "ANONYMOUS"
        and first.SeriesNumber == 42
        and first.SeriesDescription == "PerfGen SR (zero-fill)"
    )
    assert float(first.RescaleIntercept) < 0
    back = read_dicom_study(tmp_path / "out")
    assert back.shape == (4, 1, 24, 20) and back.single_slice
    np.testing.assert_allclose(back.frames, study.frames, atol=float(first.RescaleSlope) / 2 + 1e-3)
    np.testing.assert_allclose(back.direction, direction, atol=1e-4)
    np.testing.assert_allclose(back.origin, study.origin, atol=1e-4)
    np.testing.assert_allclose(back.spacing[:2], study.spacing[:2], atol=1e-4)
    np.testing.assert_allclose(back.frame_times, times, atol=1e-3)


def test_writer_keeps_integer_data_exact_and_unknown_times_unknown(tmp_path):
    frames = np.random.default_rng(3).integers(0, 4000, (3, 2, 16, 16)).astype(np.float32)
    write_dicom_series(Study(frames, single_slice=False), tmp_path / "out", method="bicubic")
    back = read_dicom_study(tmp_path / "out")
    np.testing.assert_array_equal(back.frames, frames)
    assert back.frame_times is None


def test_write_study_leaves_nothing_behind_when_the_writer_fails(tmp_path, monkeypatch):
    study = Study(np.ones((3, 2, 16, 16), np.float32), single_slice=False)
    target = tmp_path / "out"
    target.mkdir()
    (target / "previous.dcm").write_text("an earlier result")
    written = []
    real_save = dicom._save

    def failing_save(dataset, path):
        if len(written) == 3:
            raise OSError("disk full")
        written.append(path)
        real_save(dataset, path)

    monkeypatch.setattr(dicom, "_save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        io.write_study(study, target, method="perfgen")
    assert len(written) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no partial folder beside it
    assert [p.name for p in target.iterdir()] == ["previous.dcm"]
    monkeypatch.setattr(dicom, "_save", real_save)
    io.write_study(study, target, method="perfgen")
    assert len(list(target.glob("*.dcm"))) == 6 and not (target / "previous.dcm").exists()
