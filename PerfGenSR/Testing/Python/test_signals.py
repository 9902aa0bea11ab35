"""Interruptions leave nothing behind (issue 12, item 4): SIGINT, SIGTERM and SIGHUP stop every command
cleanly, exit 128 + the signal's number, say what was kept in one line and leave no file of the run,
visible or hidden; a training run keeps its checkpoint to be resumed. The signal is sent by the
process to itself at a chosen moment (while writing a DICOM series, between two outputs, after the
first study of an evaluation), so every row interrupts at the same point on any machine."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import smooth_study
from test_dicom import write_slice_series

from PerfGenSRLib import io, train

# The child: wraps MODULE.FUNCTION so that its CALL-th call first signals this process, then runs main.
HOOK = """
import importlib, os, signal, sys
module, name, call, signame, *argv = sys.argv[1:]
target = importlib.import_module(module)
real, calls = getattr(target, name), []
def hooked(*args, **kwargs):
    calls.append(1)
    if len(calls) == int(call):
        os.kill(os.getpid(), getattr(signal, signame))
    return real(*args, **kwargs)
setattr(target, name, hooked)
from PerfGenSRLib.cli import main
sys.exit(main(argv))
"""
SR = ["super-resolve", "--input", "{d}/study.npy", "--method", "zeropad"]
COMMANDS = {  # command: (hooked function, its call that signals, arguments)
    "degrade into DICOM": (
        "PerfGenSRLib.dicom._save",
        5,
        ["degrade", "--input", "{d}/dicom", "--output", "{d}/out/series"],
    ),
    "super-resolve between two outputs": (
        "PerfGenSRLib.io._write_sitk",
        2,
        [
            "super-resolve",
            "--input",
            "{d}/study.npy",
            "--model",
            "{d}/perfgen.safetensors",
            "--sampler",
            "ddim",
            "--steps",
            "1",
            "--samples",
            "2",
            "--device",
            "cpu",
            "--output",
            "{d}/out/sr.nii.gz",
            "--uncertainty",
            "{d}/out/sd.nii.gz",
        ],
    ),
    "super-resolve replacing a DICOM series": (
        "PerfGenSRLib.dicom._save",
        3,
        [*SR, "--output", "{d}/previous", "--overwrite"],
    ),
    "curves between CSV and PNG": (
        "PerfGenSRLib.curves.save_curves_figure",
        1,
        ["curves", "--input", "{d}/study.npy", "--rois", "{d}/labels.npy", "--out", "{d}/out/curves"],
    ),
    "evaluate into an existing folder": (
        "PerfGenSRLib.evaluate.save_case_figures",
        2,
        [
            "evaluate",
            "--data",
            "{d}/study.npy",
            "{d}/study2.npy",
            "--out",
            "{d}/report",
            "--overwrite",
            "--methods",
            "zeropad",
            "--device",
            "cpu",
        ],
    ),
    "phantom after the first study": (
        "PerfGenSRLib.phantom.files._write_case",
        2,
        ["phantom", "--out", "{d}/out/phantoms", "--cases", "2", "--frames", "2"],
    ),
}
CASES = [(c, s) for c in COMMANDS for s in ("SIGINT", "SIGTERM")] + [("degrade into DICOM", "SIGHUP")]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    from PerfGenSRLib.models import save_model
    from PerfGenSRLib.schedule import DiffusionSchedule
    from PerfGenSRLib.unet import PRESETS, UNet

    folder = tmp_path_factory.mktemp("signals")
    for seed, name in enumerate(("study.npy", "study2.npy")):
        np.save(folder / name, smooth_study(seed, frames=3, shape=(24, 24)).frames[:, 0])
    labels = np.zeros((24, 24), np.int16)
    labels[8:16, 8:16] = 1
    np.save(folder / "labels.npy", labels)
    write_slice_series(folder / "dicom", counts=(6,))
    earlier = smooth_study(2, frames=3, shape=(24, 24))
    io.write_study(
        earlier, folder / "previous", method="earlier"
    )  # an earlier result, replaced with --overwrite
    (folder / "report").mkdir()
    (folder / "report" / "notes.md").write_text("kept")
    config = PRESETS["tiny"]
    extra = {"schedule": DiffusionSchedule().config()}
    save_model(folder / "perfgen.safetensors", UNet(config), "perfgen-unet", config, extra=extra)
    return folder


def snapshot(folder: Path) -> dict:
    """Every path under ``folder`` (hidden ones too) with its size and modification time."""
    return {str(p.relative_to(folder)): (p.lstat().st_size, p.lstat().st_mtime_ns) for p in folder.rglob("*")}


def _as_a_terminal_gives_them() -> None:
    """Default SIGINT and SIGHUP in the child, even under ``nohup`` or a background job (which ignore
    them, and which the CLI rightly keeps ignoring)."""
    for signum in (signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


def interrupted_run(hook: str, call: int, signame: str, argv: list[str]) -> subprocess.CompletedProcess:
    module, name = hook.rsplit(".", 1)
    return subprocess.run(
        [sys.executable, "-c", HOOK, module, name, str(call), signame, *argv],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        preexec_fn=_as_a_terminal_gives_them,
        timeout=300,
    )


@pytest.mark.parametrize("command,signame", CASES)
def test_a_signal_leaves_nothing_of_the_run(command, signame, inputs):
    hook, call, argv = COMMANDS[command]
    before = snapshot(inputs)
    result = interrupted_run(hook, call, signame, [a.format(d=inputs) for a in argv])
    assert result.returncode == 128 + getattr(signal, signame), result.stderr
    lines = [line for line in result.stderr.splitlines() if "perfgen-sr" in line]
    assert lines == [f"perfgen-sr {argv[0]}: interrupted ({signame}); nothing was written"], result.stderr
    assert "Traceback" not in result.stderr
    assert (
        snapshot(inputs) == before
    )  # nothing new, nothing hidden, the replaced series and notes as they were


@pytest.mark.parametrize("signame", ("SIGINT", "SIGTERM"))
def test_a_signal_checkpoints_a_training_run_and_a_refused_one_leaves_no_folder(signame, inputs, tmp_path):
    out = tmp_path / "run"
    argv = [
        "train",
        "--data",
        str(inputs / "study.npy"),
        str(inputs / "study2.npy"),
        *("--out", str(out), "--preset", "tiny", "--steps", "50", "--batch", "2", "--workers", "0"),
        *("--val-studies", "1", "--val-every", "1000", "--log-every", "1", "--device", "cpu"),
    ]
    result = interrupted_run("PerfGenSRLib.train._append_log", 3, signame, argv)
    assert result.returncode == 128 + getattr(signal, signame), result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"perfgen-sr train: interrupted ({signame}); the run in {out} is checkpointed; continue it with --resume"
    )
    assert train.load_checkpoint(out / train.CHECKPOINT)["step"] == 3
    assert not [p for p in out.rglob("*") if "partial" in p.name]

    early = tmp_path / "early"  # stopped while reading its data: no checkpoint, so no run folder either
    result = interrupted_run(
        "PerfGenSRLib.train.PairDataset", 1, signame, [a if a != str(out) else str(early) for a in argv]
    )
    assert result.returncode == 128 + getattr(signal, signame), result.stderr
    assert result.stderr.strip().splitlines()[-1].endswith("nothing was written")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
