"""What the Slicer panel needs to know about the engine without importing its heavy part (no torch,
no safetensors in Slicer's process; of the engine only the standard-library-only ``defaults`` and
``errors`` are imported): which packages are missing or too old, which models are bundled
and what they are (read from their JSON descriptions and model cards), which devices to offer, and how to word the
engine's error messages for the panel (:func:`user_message`).
Devices need torch, so they are asked of an engine process: ``python -m PerfGenSRSlicer.engineinfo``
prints them as one JSON line (:func:`probe_command`, parsed by :func:`parse_probe`).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from PerfGenSRLib.defaults import LEARNED_METHODS
from PerfGenSRLib.errors import PerfGenError

# pip name -> minimum version: the engine's dependencies (pyproject.toml; a test keeps them equal)
REQUIREMENTS = {
    "numpy": "1.24",
    "scipy": "1.10",
    "torch": "2.1",
    "SimpleITK": "2.3",
    "pydicom": "2.4",
    "highdicom": "0.22",
    "safetensors": "0.4",
    "matplotlib": "3.7",
    "tqdm": "4.60",
}
TORCH = "torch"  # installed through the PyTorch extension (PyTorchUtils), not plain pip
MODELS_DIR_ENV = "PERFGEN_MODELS_DIR"  # as PerfGenSRLib.models: overrides the bundled models folder
MODELS_DIR = Path(__file__).resolve().parents[1] / "Resources" / "Models"
BUNDLED = ""  # a model setting meaning "the bundled model": nothing machine-specific is saved


def _version_tuple(version: str) -> tuple[int, ...]:
    """Leading numeric release parts of a version string: '2.13.0+cpu' -> (2, 13, 0)."""
    parts = []
    for part in re.split(r"[.+-]", version):
        match = re.match(r"\d+", part)
        if not match:
            break
        parts.append(int(match.group()))
    return tuple(parts)


def version_at_least(installed: str, minimum: str) -> bool:
    """Whether version ``installed`` is ``minimum`` or newer (release numbers compared)."""
    return _version_tuple(installed) >= _version_tuple(minimum)


def installed_version(package: str) -> str | None:
    """The installed version of distribution ``package``, or None (read from metadata, not imported)."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def missing_requirements(versions: dict[str, str | None] | None = None) -> dict[str, str]:
    """Engine packages absent or older than required: pip name -> requirement (``'scipy>=1.10'``).

    ``versions`` (pip name -> installed version or None) defaults to what this Python has.
    """
    missing = {}
    for package, minimum in REQUIREMENTS.items():
        version = versions.get(package) if versions is not None else installed_version(package)
        if version is None or not version_at_least(version, minimum):
            missing[package] = f"{package}>={minimum}"
    return missing


def describe_missing(missing: dict[str, str], versions: dict[str, str | None] | None = None) -> str:
    """One line naming what is missing and what is too old."""
    versions = versions if versions is not None else {p: installed_version(p) for p in missing}
    parts = [
        f"{requirement} (installed: {versions[package]})" if versions.get(package) else requirement
        for package, requirement in missing.items()
    ]
    return ", ".join(parts)


# --- models -----------------------------------------------------------------------------------------


def models_dir() -> Path:
    """The bundled models folder: ``$PERFGEN_MODELS_DIR`` if set, else the module's Resources/Models."""
    override = os.environ.get(MODELS_DIR_ENV)
    return Path(override).expanduser() if override else MODELS_DIR


def bundled_model(method: str) -> Path | None:
    """The bundled model of ``method`` when its weights and description are both there."""
    path = models_dir() / f"{method}.safetensors"
    return path if path.is_file() and path.with_suffix(".json").is_file() else None


def available_methods() -> list[str]:
    """Zero-pad, then each learned method that has a bundled model."""
    return ["zeropad", *(m for m in LEARNED_METHODS if bundled_model(m) is not None)]


def model_for(method: str, setting: str) -> str | None:
    """The model file to give the engine for a saved setting: None for the bundled one.

    ``setting`` is :data:`BUNDLED` or a user's file. A path to a bundled model file of an earlier
    install (``…/Resources/Models/<method>.safetensors`` that no longer exists) counts as bundled.
    """
    if setting == BUNDLED:
        return None
    path = Path(setting)
    if not path.exists() and path.name == f"{method}.safetensors" and path.parent.name == "Models":
        return None
    return setting


@dataclass(frozen=True)
class ModelInfo:
    """What the panel shows of a model: its file, kind, format version, training and model card."""

    path: Path
    bundled: bool
    architecture: str = "unknown"
    version: str = "?"
    preset: str = ""
    steps: int | None = None
    card: Path | None = None
    problem: str = ""

    def summary(self) -> str:
        """One line, e.g. 'bundled perfgen.safetensors: perfgen-unet small, format v1, 20000 steps'."""
        where = "bundled " if self.bundled else ""
        if self.problem:
            return f"{where}{self.path.name}: {self.problem}"
        details = " ".join(filter(None, [self.architecture, self.preset]))
        trained = f", {self.steps} training steps" if self.steps else ""
        return f"{where}{self.path.name}: {details}, format v{self.version}{trained}"


def model_info(method: str, setting: str) -> ModelInfo | None:
    """The model a run of ``method`` would use with ``setting`` (None for zero-pad or no model)."""
    if method not in LEARNED_METHODS:
        return None
    chosen = model_for(method, setting)
    path = Path(chosen) if chosen else bundled_model(method)
    if path is None:
        return None
    card = path.with_suffix(".md")
    card = card if card.is_file() else None
    try:
        description = json.loads(path.with_suffix(".json").read_text())
        training = description.get("training", {})
        config = training.get("config", {}) if isinstance(training, dict) else {}
        return ModelInfo(
            path,
            bundled=chosen is None,
            architecture=str(description.get("architecture", "unknown")),
            version=str(description.get("version", "?")),
            preset=str(config.get("preset", "")),
            steps=config.get("steps") if isinstance(config.get("steps"), int) else None,
            card=card,
        )
    except (OSError, ValueError, AttributeError):
        return ModelInfo(path, chosen is None, card=card, problem="no readable description (.json) beside it")


# --- error messages ---------------------------------------------------------------------------------

_PARAMETER = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*)`")  # the engine names a parameter: `steps`
_FLAG = re.compile(r"(?<![\w/.-])--([a-z][a-z0-9]*(?:-[a-z0-9]+)*)\b")  # the command line's spelling: --steps


def user_message(error: BaseException | str) -> str:
    """The message of an engine error as the panel shows it: parameters by name, never as CLI flags.

    The engine names a parameter in backticks (`` `steps` must be between 1 and 2000 ``) and its
    command line turns that into the flag (``--steps``); either reads here as the name in words
    (``steps``, ``measured lines``), as the panel's settings are named. The rest is kept as it is.
    """
    text = _PARAMETER.sub(lambda match: match.group(1).replace("_", " "), str(error))
    return _FLAG.sub(lambda match: match.group(1).replace("-", " "), text)


@contextlib.contextmanager
def user_errors():
    """Re-raise an engine error (:class:`PerfGenError`, of the same type) worded by :func:`user_message`."""
    try:
        yield
    except PerfGenError as error:
        raise type(error)(user_message(error)) from error


# --- devices ----------------------------------------------------------------------------------------

AUTO = ("auto", "auto")
CPU = ("CPU", "cpu")


def probe_command(python: str) -> list[str]:
    """The command that asks an engine process which devices torch finds."""
    return [python, "-m", f"{__package__}.engineinfo"]


def parse_probe(lines: list[str]) -> list[tuple[str, str]]:
    """The (label, device) list from the probe's output (its last JSON line); CPU only if none."""
    for line in reversed(lines):
        try:
            found = json.loads(line)
        except ValueError:
            continue
        if isinstance(found, dict) and isinstance(found.get("devices"), list):
            return [tuple(pair) for pair in found["devices"] if isinstance(pair, list) and len(pair) == 2]
    return [CPU]


def device_choices(saved: str, found: list[tuple[str, str]] | None) -> tuple[list[tuple[str, str]], int, str]:
    """The device list to show, the index of the saved device in it, and a warning ('' if none).

    ``found`` is what the engine found (None while it is still being asked). A saved device that is
    not found is listed as not available and selected, with a warning, never silently replaced.
    """
    choices = [AUTO, *(found if found is not None else [CPU])]
    devices = [device for _, device in choices]
    warning = ""
    if saved not in devices:
        if found is None:
            choices.append((f"{saved} (checking...)", saved))
        else:
            choices.append((f"{saved} (not available here)", saved))
            warning = f"The saved device {saved} is not available here; choose another device."
    return choices, [device for _, device in choices].index(saved), warning


def find_devices() -> list[tuple[str, str]]:
    """CPU, each CUDA GPU and Apple MPS, as torch sees them (imports torch: engine process only)."""
    import torch

    devices = [CPU]
    if torch.cuda.is_available():
        devices += [
            (f"GPU {i}: {torch.cuda.get_device_name(i)}", f"cuda:{i}")
            for i in range(torch.cuda.device_count())
        ]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append(("Apple GPU (MPS)", "mps"))
    return devices


def main() -> int:
    """Print the devices as one JSON line (the engine-process side of :func:`probe_command`)."""
    try:
        devices = find_devices()
    except ImportError as error:
        print(f"torch could not be imported: {error}", file=sys.stderr)
        devices = [CPU]
    print(json.dumps({"devices": [list(pair) for pair in devices]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
