"""Robustness (issue 7): every bad input is refused with one clear line, a non-zero exit code, no
traceback and nothing written, for every command and the scene logic (one test per row of the
tables below); the out-of-memory fallback; nothing lost on Ctrl-C, on a cancel or when a training
run is killed; a DICOM perfusion series in, a derived DICOM series of the same study out."""

import argparse
import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import matplotlib.image
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
import torch
from conftest import smooth_study
from pydicom.uid import CTImageStorage, generate_uid
from test_dicom import CORNER, NORMAL, mr_image, save, write_interleaved, write_slice_series

from PerfGenSRLib import gan, io, sample, train
from PerfGenSRLib.cli import main
from PerfGenSRLib.dicom import read_dicom_study
from PerfGenSRLib.errors import Cancelled, PerfGenError
from PerfGenSRLib.models import save_model
from PerfGenSRLib.schedule import DiffusionSchedule
from PerfGenSRLib.study import Study
from PerfGenSRLib.unet import PRESETS, UNet

CHILD_ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """One folder with every input of the tables: good studies and models, and each kind of bad input."""
    folder = tmp_path_factory.mktemp("inputs")
    good = smooth_study(0, frames=4, shape=(40, 44)).frames[:, 0]
    np.save(folder / "study.npy", good)
    np.save(folder / "study2.npy", smooth_study(1, frames=4, shape=(40, 44)).frames[:, 0])
    labels = np.zeros((1, 40, 44), np.int16)
    labels[0, 15:25, 15:25] = 1
    np.save(folder / "labels.npy", labels)
    np.save(folder / "labels_small.npy", labels[:, :20, :20])
    np.save(folder / "labels_empty.npy", np.zeros_like(labels))
    np.save(folder / "labels_slices.npy", np.concatenate([labels, labels]))
    write_slice_series(folder / "dicom", counts=(4,))

    (folder / "link.npy").symlink_to(folder / "gone.npy")
    (folder / "folder.npy").mkdir()
    (folder / "text.npy").write_text("frame,value\n0,1\n")
    (folder / "text.nii.gz").write_text("not an image\n")
    matplotlib.image.imsave(folder / "image.png", good[0], cmap="gray")
    ct = sitk.GetImageFromArray(np.full((40, 32, 32), -1000, np.int16))  # 40 axial slices, no time axis
    ct.SetSpacing((0.7, 0.7, 2.5))
    sitk.WriteImage(ct, str(folder / "ct.nii.gz"))
    write_ct_series(folder / "ct_dicom")
    write_slice_series(folder / "two_series", counts=(5, 4))
    (folder / "no_dicom").mkdir()
    (folder / "no_dicom" / "notes.txt").write_text("the images were not exported\n")
    np.save(folder / "one_frame.npy", good[:1])
    broken = good.copy()
    broken[1, 3, 4], broken[2, 5, 6] = np.nan, np.inf
    np.save(folder / "nan.npy", broken)
    np.save(folder / "complex.npy", good.astype(np.complex64))
    np.save(folder / "pixel.npy", np.ones((4, 1, 1), np.float32))
    np.save(folder / "wide.npy", np.ones((2, 16, 10_000), np.float32))
    np.save(folder / "empty.npy", np.zeros((4, 0, 40, 44), np.float32))
    np.save(folder / "float64.npy", good.astype(np.float64) * 1e300)
    with open(folder / "huge.npy", "wb") as handle:  # a header claiming 1.5 TiB, then a few bytes
        header = {"descr": "<f4", "fortran_order": False, "shape": (6000, 64, 1024, 1024)}
        np.lib.format.write_array_header_1_0(handle, header)
        handle.write(b"\0" * 64)
    io.write_study(Study(good), folder / "whole.nii.gz")
    whole = (folder / "whole.nii.gz").read_bytes()
    (folder / "truncated.nii.gz").write_bytes(whole[: len(whole) // 2])
    (folder / "whole.nii.gz").unlink()

    torch.manual_seed(0)
    unet = UNet(PRESETS["tiny"])
    save_model(
        folder / "perfgen.safetensors",
        unet,
        "perfgen-unet",
        PRESETS["tiny"],
        extra={"schedule": DiffusionSchedule().config()},
    )
    generator = gan.PRESETS["tiny"].generator
    save_model(folder / "gan.safetensors", gan.Generator(generator), "regain-generator", generator)
    weights = (folder / "perfgen.safetensors").read_bytes()
    (folder / "corrupt.safetensors").write_bytes(weights[: len(weights) // 2])
    (folder / "corrupt.json").write_text((folder / "perfgen.json").read_text())
    legacy = {
        "state_dict": unet.state_dict(),
        "config": asdict(PRESETS["tiny"]),
        "architecture": "perfgen-unet",
    }
    torch.save(legacy, folder / "legacy.pt")
    torch.save({**legacy, "payload": Payload()}, folder / "evil.pt")
    description = json.loads((folder / "perfgen.json").read_text())
    for name, change in DAMAGED_DESCRIPTIONS.items():
        (folder / f"{name}.safetensors").write_bytes(weights)
        damaged = {**description, **change, "config": {**description["config"], **change.get("config", {})}}
        (folder / f"{name}.json").write_text(json.dumps(damaged))
    return folder


class Payload:
    """An object a pickled checkpoint could carry: the safe loader must refuse to build it."""


DAMAGED_DESCRIPTIONS = {  # model descriptions beside valid weights, each with one bad field
    "zero_groups": {"config": {"norm_groups": 0}},
    "text_channels": {"config": {"base_channels": "sixteen"}},
    "no_steps": {"schedule": {"num_timesteps": 0, "beta_start": 1e-6, "beta_end": 1e-2}},
    "text_residual": {"residual_scale": "five"},
}


def write_ct_series(folder: Path) -> None:
    """A CT volume as DICOM: one image per slice position, all at one time."""
    series, study = generate_uid(), generate_uid()
    for k in range(6):
        ds = mr_image(
            np.full((32, 32), 24, np.uint16),
            series=series,
            study=study,
            position=CORNER + 2.5 * k * NORMAL,
            instance=k + 1,
            SOPClassUID=CTImageStorage,
            Modality="CT",
            ImageType=["ORIGINAL", "PRIMARY", "AXIAL"],
        )
        save(ds, folder / f"ct{k}.dcm")


def snapshot(folder: Path) -> dict:
    """Names, sizes and modification times of everything under ``folder`` (links not followed)."""
    return {str(p.relative_to(folder)): (p.lstat().st_size, p.lstat().st_mtime_ns) for p in folder.rglob("*")}


def run_refused(argv: list[str], inputs: Path, tmp_path: Path, capsys) -> str:
    """Run the command; check exit code, one ``error:`` line, no traceback, nothing written; return that line."""
    before = snapshot(inputs)
    out = tmp_path / "result"
    code = main([a.format(d=inputs, out=out) for a in argv])
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if "error:" in line]
    assert code != 0
    assert len(errors) == 1, captured.err
    assert "Traceback" not in captured.err + captured.out
    assert not out.exists() or not any(out.iterdir())
    assert snapshot(inputs) == before
    line = errors[0]
    command = next(a for a in argv if not a.startswith("-"))
    assert set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", line)) <= options_of(command), (
        line
    )  # only its own flags
    assert "weights_only" not in line and ".partial" not in line, line  # no torch advice, no temporary paths
    return line


def options_of(command: str) -> set[str]:
    """The long options of a ``perfgen-sr`` command."""
    from PerfGenSRLib.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    return {option for action in sub._actions for option in action.option_strings if option.startswith("--")}


# --- bad input files: every command that reads a study ----------------------------------------------

BAD_FILES = {  # kind: (file in the inputs folder, what the message says)
    "missing path": ("missing.npy", "no such file or folder"),
    "broken link": ("link.npy", "no such file or folder"),
    "folder where a file is expected": ("folder.npy", "is a folder, not a file"),
    "text file named .npy": ("text.npy", "not a readable NumPy array file"),
    "PNG image": ("image.png", "unsupported file type"),
    "text file named .nii.gz": ("text.nii.gz", "could not read this file as an image"),
    "3D CT volume (NIfTI)": ("ct.nii.gz", "a 3D volume, not a 2D+t series"),
    "CT series (DICOM)": ("ct_dicom", "a CT series, not an MR series"),
    "DICOM folder with several series": ("two_series", "holds 2 series that are not the slices of one"),
    "folder without DICOM files": ("no_dicom", "no DICOM files found"),
    "single frame": ("one_frame.npy", "needs at least 2 frames"),
    "truncated .nii.gz": ("truncated.nii.gz", "truncated or damaged"),
    ".npy whose header claims 1.5 TiB": ("huge.npy", "truncated: its header describes"),
    "an axis of length 0": ("empty.npy", "is empty (an axis of length 0"),
    "values beyond single precision": ("float64.npy", "beyond single precision"),
    "NaN/Inf values": ("nan.npy", "contains 2 NaN/Inf values"),
    "complex data": ("complex.npy", "holds complex values"),
    "1-pixel matrix": ("pixel.npy", "has a 1x1 matrix"),
    "10k-pixel matrix": ("wide.npy", "has a 16x10000 matrix"),
}
READING_COMMANDS = {  # command: its arguments with the study to read as {input}
    "degrade": ["degrade", "--input", "{input}", "--output", "{out}/lr.npy"],
    "super-resolve": [
        "super-resolve",
        "--input",
        "{input}",
        "--output",
        "{out}/sr.npy",
        "--method",
        "zeropad",
    ],
    "curves": ["curves", "--input", "{input}", "--rois", "{d}/labels.npy", "--out", "{out}/curves"],
    "train": [
        "train",
        "--data",
        "{input}",
        "{d}/study.npy",
        "{d}/study2.npy",
        "--out",
        "{out}/run",
        "--preset",
        "tiny",
        "--steps",
        "1",
        "--workers",
        "0",
        "--val-studies",
        "1",
        "--device",
        "cpu",
    ],
    "evaluate": [
        "evaluate",
        "--data",
        "{input}",
        "--out",
        "{out}/report",
        "--methods",
        "zeropad",
        "--device",
        "cpu",
    ],
}


ACCEPTED = {"single frame": {"degrade", "super-resolve"}}  # inputs some commands take (see test_inputs.py)


@pytest.mark.parametrize(
    "kind,command",
    [(k, c) for k in BAD_FILES for c in READING_COMMANDS if c not in ACCEPTED.get(k, ())],
)
def test_bad_input_file_is_refused(kind, command, inputs, tmp_path, capsys):
    name, message = BAD_FILES[kind]
    argv = [a.replace("{input}", "{d}/" + name) for a in READING_COMMANDS[command]]
    line = run_refused(argv, inputs, tmp_path, capsys)
    assert line.startswith(f"perfgen-sr {command}: error: ") and message in line and name in line


# --- bad options: each command's own ------------------------------------------------------------------

SR = ["super-resolve", "--input", "{d}/study.npy", "--output", "{out}/sr.npy"]
TRAIN = [
    "train",
    "--data",
    "{d}/study.npy",
    "{d}/study2.npy",
    "--out",
    "{out}/run",
    "--preset",
    "tiny",
    "--steps",
    "2",
    "--workers",
    "0",
    "--val-studies",
    "1",
]
EVALUATE = ["evaluate", "--data", "{d}/study.npy", "--out", "{out}/report", "--steps", "1"]
FRACTIONS = ["0", "-0.1", "1.5", "nan"]
BAD_OPTIONS = {  # case: (arguments, what the message says)
    **{
        f"degrade: fraction {f}": (
            ["degrade", "--input", "{d}/study.npy", "--output", "{out}/lr.npy", "--fraction", f],
            "argument --fraction: must be a number > 0 and <= 1",
        )
        for f in FRACTIONS
    },
    **{
        f"super-resolve: fraction {f}": (
            [*SR, "--method", "zeropad", "--fraction", f],
            "argument --fraction: must be a number > 0 and <= 1",
        )
        for f in FRACTIONS
    },
    **{
        f"evaluate: fraction {f}": (
            [*EVALUATE, "--methods", "zeropad", "--fraction", f],
            "argument --fraction: must be a number > 0 and <= 1",
        )
        for f in FRACTIONS
    },
    "degrade: unsupported output type": (
        ["degrade", "--input", "{d}/study.npy", "--output", "{out}/lr.png"],
        "unsupported output type",
    ),
    "degrade: output inside a file": (
        ["degrade", "--input", "{d}/study.npy", "--output", "{d}/study.npy/lr.npy"],
        "study.npy is a file, not a folder",
    ),
    "degrade: output is the input": (
        ["degrade", "--input", "{d}/study.npy", "--output", "{d}/study.npy"],
        "is the input; choose another path",
    ),
    "super-resolve: unsupported output type": (
        [*SR[:-1], "{out}/sr.png", "--method", "zeropad"],
        "unsupported output type",
    ),
    "super-resolve: output is the input": (
        [*SR[:-1], "{d}/study.npy", "--method", "zeropad"],
        "is the input; choose another path",
    ),
    "super-resolve: DICOM output into a folder of other files": (
        [*SR[:-1], "{d}/no_dicom", "--method", "zeropad"],
        "holds files other than DICOM",
    ),
    "super-resolve: --uncertainty with one sample": (
        [*SR, "--model", "{d}/perfgen.safetensors", "--samples", "1", "--uncertainty", "{out}/sd.npy"],
        "--uncertainty needs a stochastic --sampler and 2 or more --samples",
    ),
    "super-resolve: measured lines 0": (
        [*SR, "--method", "gan", "--model", "{d}/gan.safetensors", "--measured-lines", "0"],
        "argument --measured-lines: must be a whole number >= 1, got 0",
    ),
    "super-resolve: batch 0": (
        [*SR, "--method", "zeropad", "--batch", "0"],
        "argument --batch: must be a whole number >= 1, got 0",
    ),
    "super-resolve: PerfGen given a GAN generator": (
        [*SR, "--model", "{d}/gan.safetensors"],
        "is a GAN generator, not a PerfGen U-Net",
    ),
    "super-resolve: GAN given a PerfGen U-Net": (
        [*SR, "--method", "gan", "--model", "{d}/perfgen.safetensors"],
        "is a PerfGen U-Net, not a GAN generator",
    ),
    "super-resolve: corrupt model": ([*SR, "--model", "{d}/corrupt.safetensors"], "the file is damaged"),
    "super-resolve: missing model": ([*SR, "--model", "{d}/none.safetensors"], "not found"),
    "super-resolve: legacy .pt without --trust-checkpoint": (
        [*SR, "--model", "{d}/legacy.pt"],
        "legacy PyTorch checkpoint",
    ),
    "super-resolve: device tpu": ([*SR, "--method", "zeropad", "--device", "tpu"], "unknown device 'tpu'"),
    "super-resolve: device cuda:9": ([*SR, "--method", "zeropad", "--device", "cuda:9"], "device 'cuda:9'"),
    "curves: labels on another grid": (
        ["curves", "--input", "{d}/study.npy", "--rois", "{d}/labels_small.npy", "--out", "{out}/curves"],
        "have shape 1x20x20 (slices x rows x columns), the study 1x40x44",
    ),
    "curves: labels without ROIs": (
        ["curves", "--input", "{d}/study.npy", "--rois", "{d}/labels_empty.npy", "--out", "{out}/curves"],
        "holds no ROI labels",
    ),
    "train: steps 0": ([*TRAIN[:-5], "0", *TRAIN[-4:]], "argument --steps: must be a whole number >= 1"),
    "train: all studies held back": ([*TRAIN[:-1], "2"], "cannot hold back 2 of 2 studies"),
    "train: --resume without a run": ([*TRAIN, "--resume"], "no checkpoint"),
    "train: --init is a GAN generator": (
        [*TRAIN, "--init", "{d}/gan.safetensors"],
        "is a GAN generator, not a PerfGen U-Net",
    ),
    "train: corrupt --init": ([*TRAIN, "--init", "{d}/corrupt.safetensors"], "the file is damaged"),
    "train: device tpu": ([*TRAIN, "--device", "tpu"], "unknown device 'tpu'"),
    "train: device cuda:9": ([*TRAIN, "--device", "cuda:9"], "device 'cuda:9'"),
    "evaluate: PerfGen given a GAN generator": (
        [*EVALUATE, "--methods", "zeropad,perfgen", "--models", "perfgen={d}/gan.safetensors"],
        "is a GAN generator, not a PerfGen",
    ),
    "evaluate: corrupt model": (
        [*EVALUATE, "--methods", "perfgen", "--models", "perfgen={d}/corrupt.safetensors"],
        "the file is damaged",
    ),
    "evaluate: missing model": (
        [*EVALUATE, "--methods", "perfgen", "--models", "perfgen={d}/none.safetensors"],
        "does not exist",
    ),
    "evaluate: unknown method": ([*EVALUATE, "--methods", "bicubic"], "unknown method 'bicubic'"),
    "evaluate: device tpu": ([*EVALUATE, "--methods", "zeropad", "--device", "tpu"], "unknown device 'tpu'"),
    "evaluate: device cuda:9": ([*EVALUATE, "--methods", "zeropad", "--device", "cuda:9"], "device 'cuda:9'"),
    "phantom: no cases": (
        ["phantom", "--out", "{out}/phantoms", "--cases", "0"],
        "argument --cases: must be a whole number >= 1, got 0",
    ),
    "phantom: single frame": (
        ["phantom", "--out", "{out}/phantoms", "--frames", "1"],
        "argument --frames: must be a whole number >= 2, got 1",
    ),
    "phantom: seed -1": (
        ["phantom", "--out", "{out}/p", "--seed", "-1"],
        "argument --seed: must be a whole number >= 0",
    ),
    "phantom: seed 2**40": (["phantom", "--out", "{out}/p", "--seed", str(2**40)], "<= 4294967295, got"),
    "phantom: seed + cases past the range": (
        ["phantom", "--out", "{out}/p", "--seed", str(2**32 - 1), "--cases", "2"],
        "--seed + --cases - 1 must be at most",
    ),
    "super-resolve: seed -1": ([*SR, "--method", "zeropad", "--seed", "-1"], "argument --seed: must be"),
    "super-resolve: steps 0": ([*SR, "--steps", "0"], "argument --steps: must be a whole number >= 1"),
    "super-resolve: samples text": (
        [*SR, "--samples", "many"],
        "argument --samples: expected a whole number",
    ),
    "train: lr nan": ([*TRAIN, "--lr", "nan"], "argument --lr: must be a number > 0, got nan"),
    "train: lr 0": ([*TRAIN, "--lr", "0"], "argument --lr: must be a number > 0"),
    "train: val-every 0": ([*TRAIN, "--val-every", "0"], "argument --val-every: must be a whole number >= 1"),
    "train: checkpoint-every 0": (
        [*TRAIN, "--checkpoint-every", "0"],
        "argument --checkpoint-every: must be a whole number >= 1",
    ),
    "train: ema-decay 2": (
        [*TRAIN, "--ema-decay", "2"],
        "argument --ema-decay: must be a number >= 0 and <= 1",
    ),
    "train: time-limit inf": ([*TRAIN, "--time-limit", "inf"], "argument --time-limit: must be a number > 0"),
    "train-gan: weight -1": (
        ["train-gan", *TRAIN[1:], "--fft-weight", "-1"],
        "argument --fft-weight: must be a number >= 0",
    ),
    "evaluate: max-frames 1": (
        [*EVALUATE, "--max-frames", "1"],
        "argument --max-frames: must be a whole number >= 2",
    ),
    **{
        f"super-resolve: model description with {name.replace('_', ' ')}": (
            [*SR, "--model", "{d}/" + name + ".safetensors"],
            message,
        )
        for name, message in {
            "zero_groups": "config field 'norm_groups' has the invalid value 0",
            "text_channels": "config field 'base_channels' has the invalid value 'sixteen'",
            "no_steps": "schedule num_timesteps 0 is not a positive whole number",
            "text_residual": "residual_scale 'five' is not a number >= 0",
        }.items()
    },
    "super-resolve: --uncertainty with a deterministic method": (
        [*SR, "--method", "zeropad", "--samples", "2", "--uncertainty", "{out}/sd.npy"],
        "--uncertainty needs --method perfgen: zeropad is deterministic",
    ),
    "super-resolve: --uncertainty is --output": (
        [
            *SR,
            "--method",
            "zeropad",
            "--samples",
            "2",
            "--method",
            "perfgen",
            "--sampler",
            "ddim",
            "--uncertainty",
            "{out}/SR.NPY",
        ],
        "share a path; give each output its own",
    ),
    "super-resolve: --uncertainty inside a DICOM --output": (
        [*SR[:-1], "{out}/series", "--sampler", "ddim", "--uncertainty", "{out}/series/sd.npy"],
        "share a path",
    ),
    "super-resolve: --uncertainty under a file": (
        [*SR, "--sampler", "ddim", "--uncertainty", "{d}/study.npy/sd.npy"],
        "--uncertainty {d}/study.npy/sd.npy: {d}/study.npy is a file, not a folder",
    ),
    "super-resolve: --output inside the input DICOM folder": (
        ["super-resolve", "--input", "{d}/dicom", "--output", "{d}/dicom/sr", "--method", "zeropad"],
        "lies inside the input folder",
    ),
    "super-resolve: --output holds the input": (
        ["super-resolve", "--input", "{d}/dicom/slice1", "--output", "{d}/dicom", "--method", "zeropad"],
        "holds the input",
    ),
    "super-resolve: existing output": (
        [*SR[:-1], "{d}/study2.npy", "--method", "zeropad"],
        "study2.npy already exists; add --overwrite to replace it",
    ),
    "super-resolve: existing DICOM series": (
        [*SR[:-1], "{d}/dicom/slice1", "--method", "zeropad"],
        "already holds a DICOM series; add --overwrite",
    ),
    "super-resolve: unsupported extension in capitals": (
        [*SR[:-1], "{out}/sr.PNG", "--method", "zeropad"],
        "unsupported output type '.PNG'",
    ),
    "super-resolve: legacy .pt with code in it (trusted)": (
        [*SR, "--model", "{d}/evil.pt", "--trust-checkpoint"],
        "holds objects other than tensors and plain values, which are never loaded",
    ),
    "evaluate: legacy .pt": (
        [*EVALUATE, "--methods", "perfgen", "--models", "perfgen={d}/legacy.pt"],
        "is a legacy PyTorch checkpoint, loaded only from a trusted source",
    ),
    "evaluate: a model for zeropad": (
        [*EVALUATE, "--methods", "zeropad", "--models", "zeropad={d}/perfgen.safetensors"],
        "zeropad takes no model",
    ),
    "evaluate: existing --out": (
        ["evaluate", "--data", "{d}/study.npy", "--out", "{d}/dicom", "--methods", "zeropad"],
        "already holds files; add --overwrite",
    ),
    "train: --init is a legacy .pt": (
        [*TRAIN, "--init", "{d}/legacy.pt"],
        "is a legacy PyTorch checkpoint, loaded only from a trusted source",
    ),
    "curves: labels of another slice count": (
        ["curves", "--input", "{d}/study.npy", "--rois", "{d}/labels_slices.npy", "--out", "{out}/curves"],
        "have shape 2x40x44 (slices x rows x columns), the study 1x40x44",
    ),
    "curves: existing --out": (
        ["curves", "--input", "{d}/study.npy", "--rois", "{d}/labels.npy", "--out", "{d}/dicom"],
        "already holds files; add --overwrite",
    ),
    "phantom: --out is a file": (
        ["phantom", "--out", "{d}/study.npy", "--frames", "2"],
        "--out {d}/study.npy is a file; give a folder path",
    ),
}


@pytest.mark.parametrize("case", BAD_OPTIONS)
def test_bad_option_is_refused(case, inputs, tmp_path, capsys):
    argv, message = BAD_OPTIONS[case]
    line = run_refused(argv, inputs, tmp_path, capsys)
    assert line.startswith(f"perfgen-sr {argv[0]}: error: ")
    assert message.format(d=inputs, out=tmp_path / "result") in line


def test_nifti_keeps_time_on_the_fourth_axis_and_a_single_image_still_serves_as_labels(
    inputs, tmp_path, capsys
):
    study = io.read_study(inputs / "study.npy")
    io.write_study(study, tmp_path / "series.nii.gz")
    image = sitk.ReadImage(str(tmp_path / "series.nii.gz"))
    assert image.GetSize() == (44, 40, 1, 4) and image.GetMetaData("dim[0]") == "4"  # (x, y, 1, t)
    back = io.read_study(tmp_path / "series.nii.gz")
    assert back.single_slice and back.shape == (4, 1, 40, 44)
    np.testing.assert_array_equal(back.frames, study.frames)
    labels = sitk.GetImageFromArray(np.load(inputs / "labels.npy"))  # (x, y, 1): one image, as phantom masks
    sitk.WriteImage(labels, str(tmp_path / "masks.nii.gz"))
    assert (
        main(
            [
                "curves",
                "--input",
                str(tmp_path / "series.nii.gz"),
                "--rois",
                str(tmp_path / "masks.nii.gz"),
                "--out",
                str(tmp_path / "curves"),
            ]
        )
        == 0
    )
    assert (tmp_path / "curves" / "curves.csv").exists()
    capsys.readouterr()


def test_debug_shows_the_traceback(inputs, tmp_path):
    with pytest.raises(PerfGenError, match="no such file or folder"):
        main(
            [
                "--debug",
                "degrade",
                "--input",
                str(inputs / "missing.npy"),
                "--output",
                str(tmp_path / "lr.npy"),
            ]
        )
    assert not any(tmp_path.iterdir())


# --- the scene logic ------------------------------------------------------------------------------------

SCENE_CASES = {  # case: (superResolveSequence options, input frames, what the message says)
    **{
        f"fraction {f}": (
            {"method": "zeropad", "simulateFraction": float(f)},
            None,
            "fraction must be in (0, 1]",
        )
        for f in FRACTIONS
    },
    "unknown method": ({"method": "bicubic"}, None, "unknown method 'bicubic'"),
    "PerfGen given a GAN generator": (
        {"model": "gan.safetensors"},
        None,
        "is a GAN generator, not a PerfGen U-Net",
    ),
    "corrupt model": ({"model": "corrupt.safetensors"}, None, "the file is damaged"),
    "legacy .pt": ({"model": "legacy.pt"}, None, "legacy PyTorch checkpoint"),
    "device tpu": ({"method": "zeropad", "device": "tpu"}, None, "unknown device 'tpu'"),
    "device cuda:9": ({"method": "zeropad", "device": "cuda:9"}, None, "device 'cuda:9'"),
    "batch 0": ({"method": "zeropad", "batch": 0}, None, "`batch` must be at least 1"),
    "single frame": ({"method": "zeropad"}, "one_frame.npy", "needs at least 2 frames"),
    "NaN/Inf values": ({"method": "zeropad"}, "nan.npy", "NaN/Inf values"),
}


@pytest.mark.parametrize("case", SCENE_CASES)
def test_scene_refuses_bad_options_and_adds_nothing(case, inputs):
    import slicer

    from PerfGenSRSlicer import results, scene

    options, frames, message = SCENE_CASES[case]
    if "model" in options:
        options = {**options, "model": str(inputs / options["model"])}
    array = np.load(inputs / (frames or "study.npy"))
    mrml = slicer.vtkMRMLScene()
    sequence = scene.studyToSequence(mrml, Study(array[:, None]), "Perfusion", None)
    scene.browserForSequence(mrml, sequence)
    nodes = [mrml.GetNthNode(i).GetID() for i in range(mrml.GetNumberOfNodes())]
    with pytest.raises(PerfGenError, match=re.escape(message)):
        results.superResolveSequence(mrml, sequence, **options)
    assert [mrml.GetNthNode(i).GetID() for i in range(mrml.GetNumberOfNodes())] == nodes


# --- out of GPU memory ------------------------------------------------------------------------------------


def fake_method(calls: list, limit: int | None, error: type = torch.cuda.OutOfMemoryError):
    """A deterministic method that runs out of memory on batches larger than ``limit`` (always when None)."""

    def run(low_res, generator):
        calls.append(len(low_res))
        if limit is None or len(low_res) > limit:
            raise error("CUDA out of memory. Tried to allocate 2.00 GiB")
        return torch.tanh(low_res) * 0.9

    return run


@pytest.mark.parametrize("error", [torch.cuda.OutOfMemoryError, RuntimeError])
def test_out_of_memory_halves_the_batch_and_gives_the_normal_result(error, monkeypatch):
    study = smooth_study(3, frames=7, shape=(16, 16))
    calls = []
    monkeypatch.setattr(sample, "load_method", lambda *a, **k: fake_method(calls, 2, error))
    result = sample.super_resolve_study(study, "zeropad", device="cpu", batch=8).study
    assert calls == [7, 4, 2, 2, 2, 1]  # the same chunk again at half the batch, then on at that batch
    normal = sample.super_resolve_study(study, "zeropad", device="cpu", batch=2).study
    np.testing.assert_array_equal(result.frames, normal.frames)


def test_out_of_memory_at_batch_one_stops_with_advice(inputs, tmp_path, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(sample, "load_method", lambda *a, **k: fake_method(calls, None))
    with pytest.raises(PerfGenError, match="out of GPU memory even with `batch` 1; use `device` cpu"):
        sample.super_resolve_study(
            smooth_study(0, frames=3, shape=(16, 16)), "zeropad", device="cpu", batch=4
        )
    assert calls == [3, 2, 1]
    line = run_refused([*SR, "--method", "zeropad", "--batch", "3"], inputs, tmp_path, capsys)
    assert "out of GPU memory even with --batch 1" in line


def test_other_runtime_errors_are_not_taken_for_out_of_memory(monkeypatch):
    def broken(low_res, generator):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    monkeypatch.setattr(sample, "load_method", lambda *a, **k: broken)
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        sample.super_resolve_study(smooth_study(0, frames=3, shape=(16, 16)), "zeropad", device="cpu")


# --- nothing lost: cancel, Ctrl-C, a killed training run -----------------------------------------------------


def test_cancel_after_the_first_batch_raises_and_the_command_writes_nothing(
    inputs, tmp_path, monkeypatch, capsys
):
    reports = []
    with pytest.raises(Cancelled):
        sample.super_resolve_study(
            smooth_study(0, frames=6, shape=(16, 16)),
            "zeropad",
            device="cpu",
            batch=2,
            progress=lambda done, total: reports.append(done),
            cancel=lambda: len(reports) > 1,
        )
    assert reports == [0, 2]

    real = sample.super_resolve_study

    def cancelled_after_first_batch(*args, progress, **kwargs):
        seen = []

        def report(done, total, *rest):
            seen.append(done)
            progress(done, total, *rest)

        return real(*args, progress=report, cancel=lambda: len(seen) > 1, **kwargs)

    monkeypatch.setattr(sample, "super_resolve_study", cancelled_after_first_batch)
    line = run_refused(
        [*SR, "--method", "zeropad", "--batch", "1", "--progress-lines"], inputs, tmp_path, capsys
    )
    assert "cancelled by the user; nothing was written" in line


def cli_process(*arguments, **options) -> subprocess.Popen:
    """The CLI in a child process that takes Ctrl-C as a terminal would give it, even when this test
    runs in a background job (which starts with SIGINT ignored, and children inherit that)."""
    return subprocess.Popen(
        [sys.executable, "-m", "PerfGenSRLib.cli", *map(str, arguments)],
        env=CHILD_ENV,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        **options,
    )


def wait_for_progress(
    process: subprocess.Popen, at_least: int, ready=lambda: True, timeout: float = 120
) -> int:
    """Read PROGRESS lines until one reports ``at_least`` done and ``ready()`` holds; return that count."""
    deadline = time.monotonic() + timeout
    for line in process.stdout:
        if line.startswith("PROGRESS") and int(line.split()[1]) >= at_least and ready():
            return int(line.split()[1])
        assert time.monotonic() < deadline, "no progress in time"
    raise AssertionError(f"the command ended (exit {process.wait()}) before reporting progress")


def test_ctrl_c_during_super_resolve_leaves_no_partial_output(inputs, tmp_path):
    np.save(tmp_path / "study.npy", smooth_study(5, frames=12, shape=(32, 32)).frames[:, 0])
    out = tmp_path / "out" / "sr.nii.gz"
    process = cli_process(
        "super-resolve",
        "--input",
        tmp_path / "study.npy",
        "--output",
        out,
        "--method",
        "perfgen",
        "--model",
        inputs / "perfgen.safetensors",
        "--sampler",
        "ddim",
        "--steps",
        400,
        "--batch",
        1,
        "--device",
        "cpu",
        "--progress-lines",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert wait_for_progress(process, 1) < 12
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130
    lines = stderr.strip().splitlines()
    assert lines[-1] == "perfgen-sr super-resolve: interrupted (SIGINT); nothing was written"
    assert "Traceback" not in stderr and len(lines) == 2  # the study description, then the message
    assert not out.parent.exists()


def test_killed_training_resumes_from_its_last_checkpoint_as_if_never_stopped(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for seed in range(3):
        np.save(data / f"study{seed}.npy", smooth_study(seed, frames=4).frames[:, 0])

    def command(out: Path) -> list:
        return [
            "train",
            "--data",
            data,
            "--out",
            out,
            "--preset",
            "tiny",
            "--steps",
            30,
            "--batch",
            2,
            "--workers",
            0,
            "--checkpoint-every",
            5,
            "--val-studies",
            1,
            "--val-every",
            1000,
            "--val-steps",
            1,
            "--log-every",
            1,
            "--device",
            "cpu",
            "--progress-lines",
        ]

    run, reference = tmp_path / "run", tmp_path / "reference"
    uninterrupted = cli_process(*command(reference), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    killed = cli_process(*command(run), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        wait_for_progress(killed, 8, ready=(run / train.CHECKPOINT).exists)
        killed.send_signal(signal.SIGKILL)
        assert killed.wait(timeout=30) == -signal.SIGKILL
    finally:
        killed.kill()
    saved = train.load_checkpoint(run / train.CHECKPOINT)
    assert saved["step"] >= 5 and saved["step"] % 5 == 0
    (run / "checkpoint.pt.partial").write_bytes(b"half a checkpoint")  # as if killed while writing
    (run / ".model.safetensors.x1y2.partial").mkdir(exist_ok=True)

    resumed = subprocess.run(
        [sys.executable, "-m", "PerfGenSRLib.cli", *map(str, command(run)), "--resume"],
        env=CHILD_ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert not list(run.glob("*.partial"))
    assert uninterrupted.wait(timeout=300) == 0, uninterrupted.stderr.read()
    final, expected = (train.load_checkpoint(folder / train.CHECKPOINT) for folder in (run, reference))
    assert final["step"] == expected["step"] == 30
    for part in ("network", "ema"):
        weights, wanted = final["objective"][part], expected["objective"][part]
        assert weights.keys() == wanted.keys()
        assert all(torch.equal(weights[name], wanted[name]) for name in wanted)

    def log(folder: Path) -> list[dict]:
        with open(folder / train.LOG, newline="") as handle:
            return list(csv.DictReader(handle))

    rows = log(run)
    assert [int(row["step"]) for row in rows] == list(range(1, 31))  # one row per step, none twice
    assert [row["loss"] for row in rows] == [row["loss"] for row in log(reference)]


# --- done when: a DICOM perfusion series in, a derived DICOM series out ---------------------------------------


def test_super_resolve_dicom_series_writes_a_derived_series_of_the_same_study(tmp_path, capsys):
    source_folder = write_interleaved(tmp_path / "in")  # 3 slices x 6 frames, 64x48, one interleaved series
    out = tmp_path / "sr"
    assert (
        main(["super-resolve", "--input", str(source_folder), "--output", str(out), "--method", "zeropad"])
        == 0
    )
    assert "3 slices x 6 frames" in capsys.readouterr().err
    source_files = sorted(source_folder.rglob("*.dcm"))
    original = pydicom.dcmread(source_files[0])
    written = [
        pydicom.dcmread(path) for path in sorted(out.iterdir())
    ]  # strict reading: proper Part 10 files
    assert len(written) == len(source_files) == 18
    assert {ds.StudyInstanceUID for ds in written} == {original.StudyInstanceUID}
    assert {ds.PatientID for ds in written} == {original.PatientID}
    assert {ds.FrameOfReferenceUID for ds in written} == {original.FrameOfReferenceUID}
    assert (
        len({ds.SeriesInstanceUID for ds in written}) == 1
        and written[0].SeriesInstanceUID != original.SeriesInstanceUID
    )
    assert len({ds.SOPInstanceUID for ds in written}) == 18
    assert all(list(ds.ImageType) == ["DERIVED", "SECONDARY"] and ds.Modality == "MR" for ds in written)
    assert all(ds.pixel_array.shape == (64, 48) for ds in written)
    assert "zeropad" in written[0].SeriesDescription and "zeropad" in written[0].DerivationDescription

    source, back = read_dicom_study(source_folder), read_dicom_study(out)
    assert back.shape == source.shape == (6, 3, 64, 48)
    np.testing.assert_allclose(back.frames, source.frames, atol=float(written[0].RescaleSlope))
    np.testing.assert_allclose(back.spacing, source.spacing, atol=1e-4)
    np.testing.assert_allclose(back.origin, source.origin, atol=1e-4)
    np.testing.assert_allclose(back.direction, source.direction, atol=1e-6)
    np.testing.assert_allclose(back.frame_times, source.frame_times, atol=1e-3)
