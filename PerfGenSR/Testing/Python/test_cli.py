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


# --- prospective DICOM input: the measured lines from the header -------------------------------------------

PHASE_35 = {  # 80 rows x 64 columns, 1.5 x 1.25 mm: 28 of 80 phase steps (35 %) along COL
    "AcquisitionMatrix": [64, 0, 0, 28],
    "InPlanePhaseEncodingDirection": "COL",
    "PercentSampling": 35,
    "PercentPhaseFieldOfView": 150,  # 80 x 1.5 mm of 64 x 1.25 mm
}
FROM_HEADER = "measured lines: 28 of 80 along rows (from Acquisition Matrix 0018,1310 and In-plane Phase Encoding Direction COL)"


def _super_resolve_dicom(tmp_path, monkeypatch, capsys, acquisition, *flags):
    """``super-resolve`` of a synthetic 80x64 DICOM series by a learned method that returns zeros (so
    the result is exactly what data consistency keeps); the input, the result and stderr."""
    from test_dicom import write_interleaved

    from PerfGenSRLib import sample
    from PerfGenSRLib.dicom import read_dicom_study

    folder = write_interleaved(tmp_path / "in", rows=80, columns=64, acquisition=acquisition)
    seen = []

    def zeros(low_res, generator):
        seen.append(tuple(low_res.shape[-2:]))
        return low_res * 0

    monkeypatch.setattr(sample, "load_method", lambda *a, **k: zeros)
    argv = ["super-resolve", "--input", str(folder), "--output", str(tmp_path / "sr.npy"), "--method", "gan"]
    assert main([*argv, *flags]) == 0, capsys.readouterr().err
    err = capsys.readouterr().err
    return read_dicom_study(folder).frames, np.load(tmp_path / "sr.npy"), err, set(seen)


def test_a_35_percent_series_is_super_resolved_with_data_consistency_from_its_header(
    tmp_path, monkeypatch, capsys
):
    """Done when: a DICOM series whose header says 35 % phase resolution is super-resolved with data
    consistency on without any flag, and the printed summary names the measured lines and their source."""
    frames, result, err, seen = _super_resolve_dicom(tmp_path, monkeypatch, capsys, PHASE_35)
    assert FROM_HEADER in err.splitlines()
    assert seen == {(80, 64)}
    np.testing.assert_allclose(result, kspace.resample_lines(frames, 28), rtol=1e-4, atol=1e-2)


ROW_22 = {"AcquisitionMatrix": [0, 80, 22, 0], "InPlanePhaseEncodingDirection": "ROW"}
OFF = "data consistency is off unless --measured-lines is given"
# header tags, flags -> the line printed, the lines kept along which axis (None: none kept)
HEADER_CASES = {
    "an explicit --measured-lines wins and says so": (
        PHASE_35,
        ["--measured-lines", "20"],
        "measured lines: 20 of 80 along rows (from --measured-lines, not the header's 28 of 80 along rows)",
        (20, -2),
    ),
    "the header's ROW picks the columns": (
        ROW_22,
        [],
        "measured lines: 22 of 64 along columns (from Acquisition Matrix 0018,1310 and In-plane Phase "
        "Encoding Direction ROW)",
        (22, -1),
    ),
    "--phase-axis against the header's direction: its lines do not apply": (
        ROW_22,
        ["--phase-axis", "rows"],
        f"measured lines: the header's 22 of 64 run along columns, not along --phase-axis rows; {OFF}",
        None,
    ),
    "a header without phase steps: said, data consistency off": (
        {"InPlanePhaseEncodingDirection": "COL"},
        [],
        "measured lines: none in the header (no phase-encoding steps in Acquisition Matrix 0018,1310; "
        f"In-plane Phase Encoding Direction COL); {OFF}",
        None,
    ),
    "a contradictory header: said, data consistency off": (
        {"AcquisitionMatrix": [0, 64, 28, 0], "InPlanePhaseEncodingDirection": "COL"},
        [],
        "measured lines: none in the header (Acquisition Matrix (0018,1310) 0\\64\\28\\0 holds phase steps "
        f"for ROW but In-plane Phase Encoding Direction (0018,1312) says COL); {OFF}",
        None,
    ),
    "a header saying full resolution: nothing to keep": (
        {"AcquisitionMatrix": [64, 0, 0, 80], "InPlanePhaseEncodingDirection": "COL"},
        [],
        "measured lines: 80 of 80 along rows (from Acquisition Matrix 0018,1310 and In-plane Phase Encoding "
        "Direction COL): the header says full resolution, nothing for data consistency to keep",
        None,
    ),
    "--no-data-consistency: found, not kept": (
        PHASE_35,
        ["--no-data-consistency"],
        f"{FROM_HEADER}; not kept (--no-data-consistency)",
        None,
    ),
}


@pytest.mark.parametrize("case", HEADER_CASES)
def test_measured_lines_and_phase_axis_from_the_header_or_the_flags(case, tmp_path, monkeypatch, capsys):
    tags, flags, line, kept = HEADER_CASES[case]
    frames, result, err, seen = _super_resolve_dicom(tmp_path, monkeypatch, capsys, tags, *flags)
    assert line in err.splitlines(), err
    if kept is None:  # the zeros come back untouched (as constant frames)
        assert np.ptp(result, axis=(-2, -1)).max() < 1e-3
    else:
        lines, axis = kept
        assert seen == {(80, 64) if axis == -2 else (64, 80)}  # the phase axis along the model's rows
        np.testing.assert_allclose(
            result, kspace.resample_lines(frames, lines, axis=axis), rtol=1e-4, atol=1e-2
        )


def test_degrade_follows_the_header_phase_direction(tmp_path):
    from test_dicom import write_interleaved

    from PerfGenSRLib.dicom import read_dicom_study

    folder = write_interleaved(tmp_path / "in", rows=80, columns=64, acquisition=ROW_22)
    assert (
        main(["degrade", "--input", str(folder), "--output", str(tmp_path / "lr.npy"), "--fraction", "0.5"])
        == 0
    )
    frames = read_dicom_study(folder).frames
    np.testing.assert_allclose(
        np.load(tmp_path / "lr.npy"), kspace.degrade(frames, 0.5, axis=-1), rtol=1e-4, atol=1e-2
    )
