"""What the panel knows of the engine without importing torch: requirements and versions (kept
equal to pyproject.toml), bundled models and their descriptions, model settings that stay valid on
another machine, device choices that never hide an unavailable saved device, and the device probe
run in a real engine process."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from PerfGenSRSlicer import engineinfo
from PerfGenSRSlicer.process import engine_environment

ROOT = Path(__file__).resolve().parents[3]


def test_requirements_are_the_engine_dependencies_of_pyproject():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    declared = dict(re.fullmatch(r"([A-Za-z0-9_.-]+)>=([0-9.]+)", d).groups() for d in dependencies)
    assert declared == engineinfo.REQUIREMENTS


@pytest.mark.parametrize(
    "installed, minimum, ok",
    [
        ("2.13.0+cpu", "2.1", True),
        ("2.0.1", "2.1", False),
        ("0.4.5", "0.4", True),
        ("1.10", "1.10", True),
        ("4.9.0", "4.60", False),
        ("1.26.4", "1.24", True),
        ("2.1.0rc1", "2.1", True),
    ],
)
def test_versions_are_compared_by_release_numbers(installed, minimum, ok):
    assert engineinfo.version_at_least(installed, minimum) is ok


def test_missing_and_too_old_packages_are_named_with_their_requirement():
    versions = {package: "99" for package in engineinfo.REQUIREMENTS}
    versions.update(safetensors=None, torch="2.0.1")
    missing = engineinfo.missing_requirements(versions)
    assert missing == {"torch": "torch>=2.1", "safetensors": "safetensors>=0.4"}
    assert engineinfo.describe_missing(missing, versions) == "torch>=2.1 (installed: 2.0.1), safetensors>=0.4"
    assert engineinfo.missing_requirements({p: "99" for p in engineinfo.REQUIREMENTS}) == {}
    assert engineinfo.missing_requirements() == {}  # this test environment has the engine


def test_checking_packages_and_models_does_not_import_torch():
    code = (
        "import sys\n"
        "from PerfGenSRSlicer import engineinfo\n"
        "engineinfo.missing_requirements(); engineinfo.available_methods()\n"
        "engineinfo.model_info('perfgen', ''); engineinfo.device_choices('auto', None)\n"
        "print(sorted({'torch', 'safetensors'} & set(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=engine_environment(), check=True
    )
    assert result.stdout.strip() == "[]"


def test_bundled_models_and_their_descriptions(monkeypatch, tmp_path):
    assert engineinfo.models_dir() == ROOT / "PerfGenSR" / "Resources" / "Models"
    assert engineinfo.available_methods() == ["zeropad", "gan", "perfgen"]
    info = engineinfo.model_info("perfgen", engineinfo.BUNDLED)
    assert info.bundled and info.path.name == "perfgen.safetensors" and info.card.name == "perfgen.md"
    assert info.summary().startswith("bundled perfgen.safetensors: perfgen-unet small, format v1")
    assert engineinfo.model_info("zeropad", "") is None

    monkeypatch.setenv(engineinfo.MODELS_DIR_ENV, str(tmp_path))  # as the engine's models_dir()
    assert engineinfo.available_methods() == ["zeropad"]
    assert engineinfo.model_info("perfgen", "") is None
    (tmp_path / "perfgen.safetensors").write_bytes(b"")
    assert engineinfo.available_methods() == ["zeropad"]  # weights without a description do not count
    (tmp_path / "perfgen.json").write_text("{broken")
    user = engineinfo.model_info("perfgen", str(tmp_path / "perfgen.safetensors"))
    assert not user.bundled and "no readable description" in user.summary()


@pytest.mark.parametrize(
    "setting, expected",
    [
        ("", None),  # the bundled model: nothing machine-specific saved
        ("/elsewhere/PerfGenSR/Resources/Models/perfgen.safetensors", None),  # a stale bundled path
        ("/elsewhere/mine/perfgen.safetensors", "/elsewhere/mine/perfgen.safetensors"),
        ("/elsewhere/Models/other.safetensors", "/elsewhere/Models/other.safetensors"),
    ],
)
def test_model_settings_stay_valid_on_another_machine(setting, expected):
    assert engineinfo.model_for("perfgen", setting) == expected


@pytest.mark.parametrize(
    "saved, found, labels, index, warned",
    [
        ("auto", [("CPU", "cpu")], ["auto", "CPU"], 0, False),
        ("cuda:0", [("CPU", "cpu"), ("GPU 0: X", "cuda:0")], ["auto", "CPU", "GPU 0: X"], 2, False),
        ("cuda:1", [("CPU", "cpu")], ["auto", "CPU", "cuda:1 (not available here)"], 2, True),
        ("mps", [("CPU", "cpu"), ("Apple GPU (MPS)", "mps")], ["auto", "CPU", "Apple GPU (MPS)"], 2, False),
        ("cuda:1", None, ["auto", "CPU", "cuda:1 (checking...)"], 2, False),
    ],
)
def test_a_saved_device_that_is_not_available_is_shown_as_such(saved, found, labels, index, warned):
    choices, current, warning = engineinfo.device_choices(saved, found)
    assert [label for label, _ in choices] == labels and current == index
    assert choices[current][1] == saved
    assert bool(warning) is warned and (not warned or saved in warning)


def test_the_device_probe_runs_in_an_engine_process():
    command = engineinfo.probe_command(sys.executable)
    result = subprocess.run(command, capture_output=True, text=True, env=engine_environment(), check=True)
    devices = engineinfo.parse_probe(result.stdout.splitlines())
    assert devices[0] == engineinfo.CPU and all(device for _, device in devices)
    assert json.loads(result.stdout.splitlines()[-1])["devices"][0] == ["CPU", "cpu"]
    assert engineinfo.parse_probe(["torch could not be imported", "not json"]) == [engineinfo.CPU]


@pytest.mark.parametrize(
    "engine, shown",
    [
        ("`steps` must be between 1 and 2000, got 5000", "steps must be between 1 and 2000, got 5000"),
        ("--steps must be between 1 and 2000, got 5000", "steps must be between 1 and 2000, got 5000"),
        (
            "`measured_lines` must be between 1 and 96, got 0",
            "measured lines must be between 1 and 96, got 0",
        ),
        (
            "--measured-lines must be between 1 and 96, got 0",
            "measured lines must be between 1 and 96, got 0",
        ),
        ("`samples` and `batch` must be at least 1", "samples and batch must be at least 1"),
        (
            "out of GPU memory even with --batch 1; use --device cpu",
            "out of GPU memory even with batch 1; use device cpu",
        ),
        ("no bundled gan model; give one with `model`", "no bundled gan model; give one with model"),
        ("/tmp/a--b/x.npy: no such file or folder", "/tmp/a--b/x.npy: no such file or folder"),  # paths kept
        ("the LR fraction must be in (0, 1], got 1.5", "the LR fraction must be in (0, 1], got 1.5"),
        ("give magnitude images (`np.abs` of the data)", "give magnitude images (`np.abs` of the data)"),
        ("", ""),
    ],
)
def test_engine_messages_name_parameters_not_command_line_flags(engine, shown):
    assert engineinfo.user_message(engine) == shown
    assert engineinfo.user_message(ValueError(engine)) == shown


def test_engine_errors_are_reraised_worded_and_of_their_type():
    from PerfGenSRLib.errors import Cancelled, PerfGenError

    with pytest.raises(PerfGenError, match="^steps must be at least 1$"), engineinfo.user_errors():
        raise PerfGenError("`steps` must be at least 1")
    with pytest.raises(Cancelled, match="^cancelled by the user$"), engineinfo.user_errors():
        raise Cancelled("cancelled by the user")
    with pytest.raises(ValueError, match="`steps`"), engineinfo.user_errors():  # not the engine's: as is
        raise ValueError("`steps`")
