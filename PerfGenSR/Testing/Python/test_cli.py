import json
import subprocess
import sys

import numpy as np
import pytest

from PerfGenSRLib import kspace
from PerfGenSRLib.cli import as_flags, build_parser, main

COMMANDS = ["demo", "phantom", "degrade", "curves", "super-resolve", "train"]


def test_help_lists_every_subcommand(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in COMMANDS)


@pytest.mark.parametrize("name", COMMANDS)
def test_each_subcommand_has_help(name, capsys):
    assert main([name, "--help"]) == 0 and "usage: perfgen-sr " + name in capsys.readouterr().out


def test_installed_command_runs():
    result = subprocess.run(
        [sys.executable, "-m", "PerfGenSRLib.cli", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "super-resolve" in result.stdout


@pytest.mark.parametrize("suffix", [".npy", ".nii.gz"])
def test_degrade_npy_and_nifti(tmp_path, suffix, studies):
    from PerfGenSRLib.io import read_study, write_study

    source = tmp_path / f"in{suffix}"
    write_study(studies[0], source)
    before = source.read_bytes()
    assert (
        main(
            [
                "degrade",
                "--input",
                str(source),
                "--fraction",
                "0.35",
                "--output",
                str(tmp_path / f"out{suffix}"),
            ]
        )
        == 0
    )
    result = read_study(tmp_path / f"out{suffix}")
    np.testing.assert_allclose(result.frames, kspace.degrade(studies[0].frames, 0.35), rtol=1e-5, atol=1e-4)
    assert source.read_bytes() == before


def test_super_resolve_zeropad_npy_in_npy_out(tmp_path, studies):
    np.save(tmp_path / "in.npy", studies[0].frames[:, 0])
    assert (
        main(
            [
                "super-resolve",
                "--input",
                str(tmp_path / "in.npy"),
                "--output",
                str(tmp_path / "out.npy"),
                "--method",
                "zeropad",
                "--fraction",
                "0.4",
            ]
        )
        == 0
    )
    out = np.load(tmp_path / "out.npy")
    assert out.shape == studies[0].frames[:, 0].shape


def _bad(tmp_path):
    np.save(tmp_path / "flat.npy", np.zeros((10,)))
    np.save(tmp_path / "nan.npy", np.full((3, 10, 10), np.nan))
    np.save(tmp_path / "ok.npy", np.ones((3, 16, 16)))
    (tmp_path / "text.npy").write_text("not an array")
    return {
        "missing": (["degrade", "--input", str(tmp_path / "none.npy"), "--output", "{out}"], "no such file"),
        "dimensionality": (
            ["degrade", "--input", str(tmp_path / "flat.npy"), "--output", "{out}"],
            "(T, H, W)",
        ),
        "nan": (["degrade", "--input", str(tmp_path / "nan.npy"), "--output", "{out}"], "NaN"),
        "text": (["degrade", "--input", str(tmp_path / "text.npy"), "--output", "{out}"], "not a readable"),
        "fraction high": (
            ["degrade", "--input", str(tmp_path / "ok.npy"), "--fraction", "1.5", "--output", "{out}"],
            "fraction",
        ),
        "fraction zero": (
            ["degrade", "--input", str(tmp_path / "ok.npy"), "--fraction", "0", "--output", "{out}"],
            "fraction",
        ),
        "model missing": (
            [
                "super-resolve",
                "--input",
                str(tmp_path / "ok.npy"),
                "--model",
                str(tmp_path / "m.safetensors"),
                "--output",
                "{out}",
            ],
            "m.safetensors",
        ),
        "device": (
            [
                "super-resolve",
                "--input",
                str(tmp_path / "ok.npy"),
                "--method",
                "zeropad",
                "--device",
                "cuda:9",
                "--output",
                "{out}",
            ],
            "cuda:9",
        ),
    }


@pytest.mark.parametrize(
    "case",
    ["missing", "dimensionality", "nan", "text", "fraction high", "fraction zero", "model missing", "device"],
)
def test_bad_input_one_line_nonzero_nothing_written(tmp_path, capsys, case):
    argv, message = _bad(tmp_path)[case]
    out = tmp_path / "result" / "out.npy"
    code = main([a.replace("{out}", str(out)) for a in argv])
    err = capsys.readouterr().err.strip()
    assert code != 0
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in err
    assert not out.exists() and not (out.parent.exists() and any(out.parent.iterdir()))


def test_parser_defaults_follow_the_paper():
    args = build_parser().parse_args(["train", "--phantom-cases", "4", "--out", "x"])
    assert (args.steps, args.batch, args.lr, args.preset) == (50_000, 128, 3e-5, "paper")


@pytest.mark.parametrize(
    "engine, printed",
    [
        (
            "`measured_lines` must be between 1 and 96, got 0",
            "--measured-lines must be between 1 and 96, got 0",
        ),
        ("`samples` and `batch` must be at least 1", "--samples and --batch must be at least 1"),
        (
            "needs VGG19 weights (`vgg_weights` FILE.safetensors)",
            "needs VGG19 weights (--vgg-weights FILE.safetensors)",
        ),
        ("add `overwrite` to replace it", "add --overwrite to replace it"),
        ("train one with `perfgen-sr train-gan`", "train one with `perfgen-sr train-gan`"),  # a command, kept
        ("`no_such_parameter` is wrong", "no_such_parameter is wrong"),  # no flag: the plain name
    ],
)
def test_engine_parameters_are_printed_as_this_command_lines_flags(engine, printed):
    assert as_flags(engine, build_parser()) == printed


def test_phantom_priors_file_changes_the_drawn_studies(tmp_path):
    (tmp_path / "low_snr.json").write_text(json.dumps({"acquisition": {"snr": [5, 5]}}))
    out = tmp_path / "studies"
    args = ["phantom", "--out", str(out), "--cases", "1", "--frames", "4", "--seed", "7"]
    assert main([*args, "--priors", str(tmp_path / "low_snr.json")]) == 0
    assert main([*args[:2], str(tmp_path / "default"), *args[3:]]) == 0
    noise = [
        json.loads((folder / "case_0000" / "metadata.json").read_text())["params"]["noise"]["snr"]
        for folder in (out, tmp_path / "default")
    ]
    assert noise[0] == pytest.approx(5.0) and noise[1] != pytest.approx(5.0)


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "no such file"),
        ("{acquisition", "is not readable JSON"),
        ("[1, 2]", "must hold a JSON object"),
        ('{"acquisition": {"snrr": [5, 5]}}', "unknown field(s) ['snrr']"),
        ('{"lighting": {}}', "unknown field(s) ['lighting']"),
    ],
)
def test_bad_priors_files_are_refused_before_any_work(tmp_path, capsys, content, message):
    priors = tmp_path / "priors.json"
    if content is not None:
        priors.write_text(content)
    out = tmp_path / "studies"
    assert main(["phantom", "--out", str(out), "--cases", "1", "--frames", "4", "--priors", str(priors)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()
