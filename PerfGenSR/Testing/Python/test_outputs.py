"""Outputs are what they claim (issue 12, items 1, 3, 4, 7): every study format round-trips in any
letter case, through the engine and the command line; inputs that should simply work do; the input
is never written; a failed publication undoes every output; an unwritable folder is found first."""

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import smooth_study

from PerfGenSRLib import io, kspace
from PerfGenSRLib.cli import main
from PerfGenSRLib.outputs import plan_outputs
from PerfGenSRLib.study import Study

ROTATION = (0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0)  # a sagittal-like orientation, orthonormal
FORMATS = {  # extension (lower case): files a study written as "x" + extension leaves in its folder
    ".npy": ["{name}"],
    ".nii": ["{name}"],
    ".nii.gz": ["{name}"],
    ".nrrd": ["{name}"],
    ".mha": ["{name}"],
    ".mhd": ["{name}", "{stem}.zraw"],
}
CASES = {
    "lower": str.lower,
    "upper": str.upper,
    "mixed": lambda s: "".join(c.upper() if i % 2 else c for i, c in enumerate(s)),
}


def geometry_study(slices: int = 2) -> Study:
    """Whole-numbered intensities (exact in DICOM's uint16 too) with a non-trivial geometry."""
    rng = np.random.default_rng(4)
    frames = rng.integers(0, 1000, (3, slices, 16, 12)).astype(np.float32)
    return Study(
        frames,
        spacing=(1.5, 1.25, 8.0),
        origin=(10.0, -20.0, 30.0),
        direction=ROTATION,
        frame_times=np.arange(3) * 0.8,
        single_slice=slices == 1,
    )


def assert_same_study(back: Study, study: Study, atol: float = 0.0) -> None:
    assert back.shape == study.shape
    np.testing.assert_allclose(back.frames, study.frames, atol=atol, rtol=0)
    if back.meta.get("source_format") == "npy":
        return  # an array file has no geometry to keep
    np.testing.assert_allclose(back.spacing, study.spacing, atol=1e-4)
    np.testing.assert_allclose(back.origin, study.origin, atol=1e-4)
    np.testing.assert_allclose(back.direction, study.direction, atol=1e-6)
    np.testing.assert_allclose(back.times(), study.times(), atol=1e-3)


def files_for(extension: str, case: str) -> tuple[str, list[str]]:
    name = "x" + CASES[case](extension)
    stem = name[: -len(extension)]
    return name, sorted(f.format(name=name, stem=stem) for f in FORMATS[extension])


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("extension", [*FORMATS, ""])
def test_every_format_round_trips_in_any_letter_case(extension, case, tmp_path):
    if extension == "" and case != "lower":
        return  # a DICOM series is a folder: its name has no extension to spell
    study = geometry_study()
    name, expected = files_for(extension, case) if extension else ("series", ["series"])
    io.write_study(study, tmp_path / name, method="test")
    assert sorted(os.listdir(tmp_path)) == expected  # the data file of a .mhd too, and nothing else
    assert_same_study(io.read_study(tmp_path / name), study)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("extension", [*FORMATS, ""])
def test_every_format_round_trips_through_the_command_line(extension, case, tmp_path, capsys):
    if extension == "" and case != "lower":
        return
    study = geometry_study()
    io.write_study(study, tmp_path / "in.nii.gz")
    name, expected = files_for(extension, case) if extension else ("series", ["series"])
    out = tmp_path / "out"
    argv = ["degrade", "--input", str(tmp_path / "in.nii.gz"), "--output", str(out / name), "--fraction", "1"]
    assert main(argv) == 0, capsys.readouterr().err
    assert sorted(os.listdir(out)) == expected
    assert_same_study(io.read_study(out / name), study, atol=0.02 if extension else 0.6)


def test_single_slice_studies_keep_their_layout(tmp_path):
    study = geometry_study(slices=1)
    for name in ("a.NPY", "a.MHA", "a.Nii.Gz"):
        io.write_study(study, tmp_path / name)
        back = io.read_study(tmp_path / name)
        assert back.single_slice and back.shape == (3, 1, 16, 12)
        np.testing.assert_array_equal(back.frames, study.frames)
    assert np.load(tmp_path / "a.NPY").shape == (3, 16, 12)


# --- inputs that should simply work -----------------------------------------------------------------------


@pytest.fixture
def folder(tmp_path) -> Path:
    study = smooth_study(0, frames=4, shape=(40, 44))
    np.save(tmp_path / "study.npy", study.frames[:, 0])
    np.save(tmp_path / "one.npy", study.frames[:1, 0])
    np.save(tmp_path / "image.npy", study.frames[0, 0])  # a single (H, W) image
    labels = np.zeros((40, 44), np.int16)
    labels[10:20, 10:20], labels[25:30, 25:35] = 1, 3
    np.save(tmp_path / "labels2d.npy", labels)
    sitk.WriteImage(sitk.GetImageFromArray(labels), str(tmp_path / "labels2d.nii.gz"))  # a 2D image
    np.save(tmp_path / "huge.npy", np.clip(study.frames[:, 0] / 100, 0, 1) * np.float32(3.3e38))
    (tmp_path / "a$b_c^$.npy").write_bytes((tmp_path / "study.npy").read_bytes())
    return tmp_path


def read(path: Path) -> np.ndarray:
    return io.read_study(path, min_frames=1).frames


SHOULD_WORK = {  # case: (arguments, check of the result in the folder)
    "degrade a single frame": (
        ["degrade", "--input", "{d}/one.npy", "--output", "{d}/out.npy"],
        lambda d: read(d / "out.npy").shape == (1, 1, 40, 44),
    ),
    "degrade one 2D image": (
        ["degrade", "--input", "{d}/image.npy", "--output", "{d}/out.nii.gz"],
        lambda d: read(d / "out.nii.gz").shape == (1, 1, 40, 44),
    ),
    "super-resolve a single frame": (
        ["super-resolve", "--input", "{d}/one.npy", "--output", "{d}/out.npy", "--method", "zeropad"],
        lambda d: np.allclose(read(d / "out.npy"), read(d / "one.npy"), rtol=1e-5),
    ),
    "degrade into a DICOM series": (
        ["degrade", "--input", "{d}/study.npy", "--output", "{d}/series"],
        lambda d: io.read_study(d / "series").shape == (4, 1, 40, 44),
    ),
    "curves with a 2D label map (.npy)": (
        ["curves", "--input", "{d}/study.npy", "--rois", "{d}/labels2d.npy", "--out", "{d}/curves"],
        lambda d: (d / "curves" / "curves.csv").read_text().count("\n") == 5,
    ),
    "curves with a 2D label image (NIfTI)": (
        ["curves", "--input", "{d}/study.npy", "--rois", "{d}/labels2d.nii.gz", "--out", "{d}/curves"],
        lambda d: "study:myocardium:mean" in (d / "curves" / "curves.csv").read_text(),
    ),
    "curves of a file whose name reads as mathtext": (
        ["curves", "--input", "{d}/a$b_c^$.npy", "--rois", "{d}/labels2d.npy", "--out", "{d}/curves"],
        lambda d: (d / "curves" / "curves.png").stat().st_size > 1000,
    ),
    "super-resolve with phase encoding along the columns": (
        [
            "super-resolve",
            "--input",
            "{d}/study.npy",
            "--output",
            "{d}/out.npy",
            "--method",
            "zeropad",
            "--fraction",
            "0.5",
            "--phase-axis",
            "columns",
        ],
        lambda d: np.allclose(
            read(d / "out.npy"), kspace.degrade(read(d / "study.npy"), 0.5, axis=-1), atol=1e-4
        ),
    ),
    "degrade values near the float32 limit": (
        ["degrade", "--input", "{d}/huge.npy", "--output", "{d}/out.npy"],
        lambda d: np.isfinite(read(d / "out.npy")).all() and read(d / "out.npy").max() > 1e38,
    ),
    "super-resolve values near the float32 limit": (
        [
            "super-resolve",
            "--input",
            "{d}/huge.npy",
            "--output",
            "{d}/out.npy",
            "--method",
            "zeropad",
            "--fraction",
            "0.4",
        ],
        lambda d: np.isfinite(read(d / "out.npy")).all() and read(d / "out.npy").max() > 1e38,
    ),
    "replace an existing output with --overwrite": (
        ["degrade", "--input", "{d}/study.npy", "--output", "{d}/one.npy", "--overwrite"],
        lambda d: read(d / "one.npy").shape == (4, 1, 40, 44),
    ),
}


@pytest.mark.parametrize("case", SHOULD_WORK)
def test_inputs_that_should_simply_work(case, folder, capsys):
    argv, check = SHOULD_WORK[case]
    inputs = {
        p.name: p.read_bytes() for p in folder.iterdir() if p.name != "one.npy" or "--overwrite" not in argv
    }
    assert main([a.format(d=folder) for a in argv]) == 0, capsys.readouterr().err
    assert check(folder)
    assert {name: (folder / name).read_bytes() for name in inputs} == inputs  # inputs untouched
    assert not [p for p in folder.rglob("*") if ".partial" in p.name]


def test_phase_axis_columns_runs_the_model_along_the_columns(folder, monkeypatch, capsys):
    """A learned method sees the phase-encoding axis along its rows whatever --phase-axis says."""
    from PerfGenSRLib import sample

    seen = []

    def method(low_res, generator):
        seen.append(tuple(low_res.shape[-2:]))
        return low_res

    monkeypatch.setattr(sample, "load_method", lambda *a, **k: method)
    argv = ["super-resolve", "--input", str(folder / "study.npy"), "--output", str(folder / "out.npy")]
    assert main([*argv, "--method", "gan", "--phase-axis", "columns", "--samples", "1"]) == 0
    assert seen and set(seen) == {(44, 40)} and read(folder / "out.npy").shape == (4, 1, 40, 44)
    capsys.readouterr()


# --- all outputs or none --------------------------------------------------------------------------------------


def test_a_failed_publication_undoes_every_output_and_restores_what_was_replaced(tmp_path, monkeypatch):
    from PerfGenSRLib import outputs

    (tmp_path / "old.npy").write_bytes(b"the previous result")
    second = tmp_path / "sd" / "u.npy"
    plan = plan_outputs({"--output": tmp_path / "old.npy", "--uncertainty": second}, overwrite=True)
    real = os.replace

    def replace(source, target):  # the disk fills up as the second output is moved into place
        if Path(target) == second:
            raise OSError(28, "No space left on device", str(target))
        real(source, target)

    monkeypatch.setattr(outputs.os, "replace", replace)
    with pytest.raises(OSError, match="No space left"):
        with plan.staged() as staged:
            np.save(staged["--output"], np.zeros(3))
            np.save(staged["--uncertainty"], np.ones(3))
    assert (tmp_path / "old.npy").read_bytes() == b"the previous result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.npy"]


def test_an_interrupted_block_removes_the_folders_it_created(tmp_path):
    plan = plan_outputs(folders={"--out": tmp_path / "a" / "b" / "report"})
    with pytest.raises(KeyboardInterrupt):
        with plan.staged() as staged:
            (staged["--out"] / "report.md").write_text("half")
            raise KeyboardInterrupt
    assert not any(tmp_path.iterdir())


def test_an_existing_results_folder_is_merged_into_with_overwrite(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    (tmp_path / "out" / "curves.csv").write_text("old")
    plan = plan_outputs(folders={"--out": tmp_path / "out"}, overwrite=True)
    with plan.staged() as staged:
        (staged["--out"] / "curves.csv").write_text("new")
        (staged["--out"] / "studies").mkdir()
        (staged["--out"] / "studies" / "a.png").write_text("png")
    assert {
        p.relative_to(tmp_path / "out").as_posix(): p.read_text() for p in (tmp_path / "out").rglob("*.*")
    } == {
        "notes.txt": "mine",
        "curves.csv": "new",
        "studies/a.png": "png",
    }
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_an_unwritable_folder_is_refused_before_any_work(capsys):
    """--uncertainty into a read-only folder (root runs without the capability to write anywhere)."""
    work = Path(tempfile.mkdtemp(prefix="perfgen-readonly-"))
    try:
        work.chmod(0o755)
        np.save(work / "study.npy", smooth_study(0, frames=3, shape=(16, 16)).frames[:, 0])
        (work / "locked").mkdir()
        (work / "locked").chmod(
            stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH
        )
        unprivileged = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--"]
        result = subprocess.run(
            [
                *(unprivileged if os.geteuid() == 0 else []),
                sys.executable,
                "-m",
                "PerfGenSRLib.cli",
                "super-resolve",
                "--input",
                str(work / "study.npy"),
            ]
            + ["--output", str(work / "sr.npy"), "--uncertainty", str(work / "locked" / "sd.npy")]
            + ["--sampler", "ddim", "--samples", "2"],
            capture_output=True,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
            timeout=120,
        )
        assert result.returncode == 2
        assert result.stderr.strip() == (
            f"perfgen-sr super-resolve: error: --uncertainty {work / 'locked' / 'sd.npy'}: the folder "
            f"{work / 'locked'} is not writable; choose another place"
        )
        assert sorted(p.name for p in work.iterdir()) == ["locked", "study.npy"] and not any(
            (work / "locked").iterdir()
        )
    finally:
        shutil.rmtree(work)


def _exited_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", ""])
    child.wait()
    return child.pid


def _write_with_plan(target: Path) -> None:
    with plan_outputs(studies={"`out`": target}).staged() as staged:
        np.save(staged["`out`"], np.zeros(3))


@pytest.mark.parametrize(
    "write", [lambda p: io.write_study(Study(np.ones((2, 1, 4, 4))), p), _write_with_plan]
)
def test_a_killed_writers_staging_folder_is_removed_by_the_next_write(tmp_path, write):
    """Only staging folders of the same target whose process has ended go; a live writer's stays."""
    dead = _exited_pid()
    left = {  # staging folder name: kept by the next write of x.npy
        f"x.npy.{dead}.k1ll3d_1.partial": False,
        f"x.npy.{os.getpid()}.l1v3_123.partial": True,  # a writer still running
        f"y.npy.{dead}.0th3r_12.partial": True,  # another target
        f"x.npy.other.{dead}.n0tm1n3.partial": True,  # the target x.npy.other's
        "x.npy.n0p1d_12.partial": True,  # no process id in it: whose it is cannot be told
    }
    for name in left:
        (tmp_path / name).mkdir()
        (tmp_path / name / "x.npy").write_bytes(b"half written")
    write(tmp_path / "x.npy")
    assert np.load(tmp_path / "x.npy").size
    assert {p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")} == {
        n for n, kept in left.items() if kept
    }
