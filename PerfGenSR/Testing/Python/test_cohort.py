"""Cohorts (issue 14, item 4): `super-resolve --input FOLDER_OR_LIST --out FOLDER` finds the studies,
skips those done, publishes each atomically, resumes after an interruption, and under
`torchrun --nproc_per_node=2` (gloo, CPU) writes the same files as one process; `evaluate` sharded
over two processes writes the same metrics as one."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import smooth_study
from test_dicom import write_slice_series

from PerfGenSRLib import io
from PerfGenSRLib.cli import main
from PerfGenSRLib.cohort import find_studies, plan_cohort, super_resolve_cohort
from PerfGenSRLib.distributed import Distributed
from PerfGenSRLib.errors import PerfGenError

ZEROPAD = ["--method", "zeropad", "--fraction", "0.5", "--device", "cpu"]
ENGINE = Path(__file__).resolve().parents[2]  # PerfGenSR/, for the torchrun children


def write_cohort(folder: Path, count: int = 6) -> Path:
    """``count`` small studies, alternately .npy and .nii.gz."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        study = smooth_study(i, frames=4, shape=(24, 28))
        if i % 2:
            io.write_study(study, folder / f"study{i}.nii.gz")
        else:
            np.save(folder / f"study{i}.npy", study.frames[:, 0])
    return folder


def digest(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` by relative path: its SHA-256."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def mtimes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}


def torchrun(*argv: str, port: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ENGINE)}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}"]
    return subprocess.run(
        [*command, "-m", "PerfGenSRLib.cli", *argv], env=env, capture_output=True, text=True, timeout=300
    )


def test_what_an_input_names(tmp_path):
    cohort = write_cohort(tmp_path / "cohort", 2)
    write_slice_series(cohort / "dicom")  # a DICOM study in a sub-folder is one study of the cohort
    assert [p.name for p in find_studies(cohort)] == ["dicom", "study0.npy", "study1.nii.gz"]
    assert find_studies(cohort / "dicom") == [cohort / "dicom"]  # DICOM images at its top: one study
    assert find_studies(cohort / "study0.npy") == [cohort / "study0.npy"]
    (tmp_path / "list.txt").write_text("# two of them\ncohort/study1.nii.gz\n\n" + f"{cohort / 'dicom'}\n")
    assert find_studies(tmp_path / "list.txt") == [cohort / "study1.nii.gz", cohort / "dicom"]


def bad_inputs(root: Path) -> dict[str, tuple[Path, str]]:
    (root / "empty").mkdir()
    write_cohort(root / "stray", 1)
    (root / "stray" / "notes.csv").write_text("x")
    write_slice_series(root / "series")
    (root / "series" / "slice1").rename(root / "mixed")  # DICOM images at its top
    np.save(root / "mixed" / "extra.npy", np.zeros((2, 4, 4)))
    write_cohort(root / "twice", 1)
    io.write_study(smooth_study(0, frames=2, shape=(8, 8)), root / "twice" / "study0.nii.gz")
    (root / "missing.txt").write_text("twice/study0.npy\nnowhere.npy\ngone/\n")
    (root / "blank.txt").write_text("# nothing\n\n")
    (root / "wrong.txt").write_text("stray/notes.csv\n")
    return {  # case: (input, what the message says)
        "empty folder": (root / "empty", "holds no studies"),
        "unknown files": (root / "stray", "neither studies nor DICOM images: notes.csv"),
        "DICOM mixed with study files": (
            root / "mixed",
            r"mixes DICOM images with study files \(extra.npy\)",
        ),
        "two studies of one name": (root / "twice", "two studies named study0"),
        "list with missing paths": (root / "missing.txt", "do not exist: .*nowhere.npy, .*gone"),
        "empty list": (root / "blank.txt", "lists no studies"),
        "list of a non-study": (root / "wrong.txt", "not studies: notes.csv"),
        "no such input": (root / "nothing", "no such file or folder"),
    }


def test_bad_inputs_are_refused_by_name(tmp_path):
    for what, (source, message) in bad_inputs(tmp_path).items():
        with pytest.raises(PerfGenError, match=message):
            plan_cohort(source, tmp_path / "out")
            pytest.fail(what)
        assert not (tmp_path / "out").exists(), what


def test_outputs_follow_the_input_format_or_format(tmp_path):
    cohort = write_cohort(tmp_path / "cohort", 2)
    write_slice_series(cohort / "dicom")
    names = lambda plan: {s.name: s.outputs["out"].name for s in plan.studies}  # noqa: E731
    assert names(plan_cohort(cohort, tmp_path / "out")) == {
        "dicom": "dicom",
        "study0": "study0.npy",
        "study1": "study1.nii.gz",
    }
    assert set(names(plan_cohort(cohort, tmp_path / "out", format="mha")).values()) == {
        "dicom.mha",
        "study0.mha",
        "study1.mha",
    }
    assert main(["super-resolve", "--input", str(cohort), "--out", str(tmp_path / "out"), *ZEROPAD]) == 0
    series = io.read_study(tmp_path / "out" / "dicom")
    assert series.shape == io.read_study(cohort / "dicom").shape


def test_an_interrupted_cohort_resumes_without_redoing_finished_studies(tmp_path, capsys):
    cohort = write_cohort(tmp_path / "cohort")
    before = digest(cohort)
    assert main(["super-resolve", "--input", str(cohort), "--out", str(tmp_path / "whole"), *ZEROPAD]) == 0

    plan = plan_cohort(cohort, tmp_path / "out")

    def stop_after_two(done, total):
        if done == 2:
            raise KeyboardInterrupt

    runtime = Distributed(torch.device("cpu"))
    with pytest.raises(KeyboardInterrupt):
        super_resolve_cohort(plan, runtime, method="zeropad", lr_fraction=0.5, progress=stop_after_two)
    assert sorted(os.listdir(tmp_path / "out")) == ["study0.npy", "study1.nii.gz"]  # no partial
    first = mtimes(tmp_path / "out")

    # a Ctrl-C inside the fourth study, through the command line: three kept, nothing else
    import PerfGenSRLib.sample as sample

    real, calls = sample.super_resolve_study, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    sample.super_resolve_study = interrupted
    try:
        argv = ["super-resolve", "--input", str(cohort), "--out", str(tmp_path / "out"), *ZEROPAD]
        assert main(argv) == 130
    finally:
        sample.super_resolve_study = real
    assert "finished studies are kept" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path / "out")) == ["study0.npy", "study1.nii.gz", "study2.npy"]
    assert {k: v for k, v in mtimes(tmp_path / "out").items() if k in first} == first

    assert main(argv) == 0
    assert "3 already done, skipped" in capsys.readouterr().out
    assert {k: v for k, v in mtimes(tmp_path / "out").items() if k in first} == first
    assert digest(tmp_path / "out") == digest(tmp_path / "whole")
    assert digest(cohort) == before  # the input is never modified

    redone = mtimes(tmp_path / "out")
    assert main([*argv, "--overwrite"]) == 0
    assert all(mtimes(tmp_path / "out")[k] != redone[k] for k in redone)
    assert digest(tmp_path / "out") == digest(tmp_path / "whole")


def test_an_unreadable_study_is_reported_and_the_others_written(tmp_path, capsys):
    cohort = write_cohort(tmp_path / "cohort", 3)
    (cohort / "study1.nii.gz").write_bytes(b"not an image")
    argv = ["super-resolve", "--input", str(cohort), "--out", str(tmp_path / "out"), *ZEROPAD]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "study1: " in err and "1 of 3 studies failed" in err
    assert sorted(os.listdir(tmp_path / "out")) == ["study0.npy", "study2.npy"]


def test_format_without_out_and_a_file_as_out_are_refused(tmp_path, capsys):
    cohort = write_cohort(tmp_path / "cohort", 1)
    assert main(["super-resolve", "--input", str(cohort), "--output", "x.npy", "--format", "npy"]) == 2
    assert "--format is the format of a cohort's outputs (--out)" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    assert main(["super-resolve", "--input", str(cohort), "--out", str(tmp_path / "file"), *ZEROPAD]) == 2
    assert f"--out {tmp_path / 'file'} is a file" in capsys.readouterr().err


def test_two_processes_write_the_same_files_as_one(tmp_path):
    cohort = write_cohort(tmp_path / "cohort", 6)
    assert main(["super-resolve", "--input", str(cohort), "--out", str(tmp_path / "one"), *ZEROPAD]) == 0
    (tmp_path / "two").mkdir()
    done = tmp_path / "two" / "study3.nii.gz"  # already done: skipped, not rewritten
    done.write_bytes((tmp_path / "one" / "study3.nii.gz").read_bytes())
    os.utime(done, ns=(1, 1))
    result = torchrun(
        "super-resolve", "--input", str(cohort), "--out", str(tmp_path / "two"), *ZEROPAD, port=29531
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("super-resolved 5 of 6 studies") == 1  # rank 0 alone reports
    assert "(1 already done, skipped)" in result.stdout
    assert digest(tmp_path / "two") == digest(tmp_path / "one")
    assert done.stat().st_mtime_ns == 1
    for path in (tmp_path / "one").iterdir():
        np.testing.assert_array_equal(
            io.read_study(path).frames, io.read_study(tmp_path / "two" / path.name).frames
        )


def test_evaluate_over_two_processes_writes_the_metrics_of_one(tmp_path):
    cohort = write_cohort(tmp_path / "cohort", 3)
    argv = ["evaluate", "--data", str(cohort), "--methods", "zeropad", "--device", "cpu", "--max-frames", "3"]
    assert main([*argv, "--out", str(tmp_path / "one")]) == 0
    result = torchrun(*argv, "--out", str(tmp_path / "two"), port=29532)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("wrote ") == 1
    one, two = tmp_path / "one", tmp_path / "two"
    assert (two / "metrics.csv").read_text() == (one / "metrics.csv").read_text()
    assert sorted(digest(two)) == sorted(digest(one))  # every study's figures, from either rank
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]
