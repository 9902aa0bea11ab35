import os

import numpy as np
import pytest

from PerfGenSRLib import io
from PerfGenSRLib.errors import PerfGenError
from PerfGenSRLib.study import Study


def test_npy_round_trip_keeps_layout(tmp_path):
    frames = np.random.default_rng(0).random((5, 20, 24)).astype(np.float32)
    np.save(tmp_path / "in.npy", frames)
    study = io.read_study(tmp_path / "in.npy")
    assert study.shape == (5, 1, 20, 24) and study.single_slice
    io.write_study(study, tmp_path / "out.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), frames)
    four = np.random.default_rng(1).random((3, 2, 20, 24)).astype(np.float32)
    np.save(tmp_path / "four.npy", four)
    io.write_study(io.read_study(tmp_path / "four.npy"), tmp_path / "four_out.npy")
    assert np.load(tmp_path / "four_out.npy").shape == (3, 2, 20, 24)


@pytest.mark.parametrize("slices", [1, 3])
def test_nifti_round_trip_keeps_geometry_and_times(tmp_path, slices):
    frames = np.random.default_rng(2).random((4, slices, 16, 12)).astype(np.float32)
    study = Study(
        frames,
        spacing=(1.5, 1.8, 8.0),
        origin=(10.0, -5.0, 3.0),
        frame_times=np.arange(4) * 0.9,
        single_slice=slices == 1,
    )
    if slices == 1:
        study.origin = (10.0, -5.0, 0.0)
        study.spacing = (1.5, 1.8, 1.0)
    io.write_study(study, tmp_path / "s.nii.gz")
    back = io.read_study(tmp_path / "s.nii.gz")
    np.testing.assert_allclose(back.frames, frames)
    assert back.spacing == pytest.approx(study.spacing) and back.origin == pytest.approx(study.origin)
    np.testing.assert_allclose(back.frame_times, study.frame_times)


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    with pytest.raises(RuntimeError):
        with io.atomic_path(tmp_path / "x.npy") as tmp:
            np.save(tmp, np.zeros(3))
            raise RuntimeError("crash")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["w.safetensors", "s.mhd"])
def test_atomic_write_publishes_with_a_new_files_mode(tmp_path, name):
    (tmp_path / "plain").write_text("")
    expected = (tmp_path / "plain").stat().st_mode & 0o777  # 0o644 under the usual umask
    with io.atomic_path(tmp_path / name) as tmp:  # a writer making private files, as safetensors does
        for path in (tmp, *io.companion_files(tmp)):
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    for path in (tmp_path / name, *io.companion_files(tmp_path / name)):
        assert path.stat().st_mode & 0o777 == expected


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda p: None, "no such file"),
        (lambda p: p.write_text("hello"), "unsupported file type"),
        (lambda p: np.save(p.with_suffix(".npy"), np.zeros((2, 1, 1, 10, 10))), "expected a"),
        (lambda p: np.save(p.with_suffix(".npy"), np.full((2, 10, 10), np.nan)), "NaN"),
        (lambda p: np.save(p.with_suffix(".npy"), np.zeros((2, 10, 10), complex)), "complex"),
        (lambda p: np.save(p.with_suffix(".npy"), np.zeros((2, 1, 10))), "matrix"),
    ],
)
def test_bad_inputs_are_refused(tmp_path, make, message):
    path = tmp_path / "bad.txt"
    make(path)
    target = path.with_suffix(".npy") if path.with_suffix(".npy").exists() else path
    with pytest.raises(PerfGenError, match=message):
        io.read_study(target)
