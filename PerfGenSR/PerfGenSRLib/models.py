"""Saving and loading networks as a pair of files, and finding the bundled model.

A model is ``name.safetensors`` (the weights, read without pickle) beside ``name.json``::

    {"format": "perfgen-sr-model", "version": 1, "architecture": "perfgen-unet",
     "config": {...the architecture's config dataclass...}, "schedule": {...}, "normalisation": {...}, ...}

The architecture name selects a (config dataclass, module class) pair from :data:`ARCHITECTURES`.
Legacy PyTorch checkpoints (``.pt``/``.pth``) are read only when trusted, and only as a dict::

    {"state_dict": {name: tensor}, "config": {...}, "architecture": "perfgen-unet", ...other JSON-able keys}

loaded with ``torch.load(weights_only=True)``; ``architecture`` may be left out when the caller names
the one it expects.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import pickle
import typing
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .errors import PerfGenError, UntrustedModel
from .gan import Generator, GeneratorConfig
from .io import atomic_path, write_json
from .schedule import DiffusionSchedule
from .unet import UNet, UNetConfig

FORMAT, VERSION = "perfgen-sr-model", 1
LEGACY_SUFFIXES = (".pt", ".pth")
MODELS_DIR = Path(__file__).resolve().parents[1] / "Resources" / "Models"
MODELS_DIR_ENV = "PERFGEN_MODELS_DIR"

# Every architecture a model file may name: its config dataclass, module class and its name in errors.
ARCHITECTURES: dict[str, tuple[type, type]] = {
    "perfgen-unet": (UNetConfig, UNet),
    "regain-generator": (GeneratorConfig, Generator),
}
DESCRIPTIONS = {"perfgen-unet": "a PerfGen U-Net", "regain-generator": "a GAN generator"}


@dataclass
class LoadedModel:
    """A network ready for inference (eval mode), its architecture name, config and the saved metadata."""

    module: nn.Module
    architecture: str
    config: object
    meta: dict
    path: Path | None = None


def save_model(
    path: str | os.PathLike, module: nn.Module, architecture: str, config, extra: dict | None = None
) -> Path:
    """Write ``module``'s weights to ``path`` (``.safetensors``) and its description beside it, atomically."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise PerfGenError(
            f"model path {path} must end in .safetensors, e.g. {path.with_suffix('.safetensors')}"
        )
    config_cls, _ = _architecture(architecture)
    if not isinstance(config, config_cls):
        raise ValueError(
            f"config of {architecture} must be a {config_cls.__name__}, got {type(config).__name__}"
        )
    extra = dict(extra or {})
    reserved = {"format", "version", "architecture", "config"} & extra.keys()
    if reserved:
        raise ValueError(f"extra metadata may not set {sorted(reserved)}")
    state = {name: tensor.detach().to("cpu").contiguous() for name, tensor in module.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata={"format": "pt", "architecture": architecture})
    description = {
        "format": FORMAT,
        "version": VERSION,
        "architecture": architecture,
        "config": asdict(config),
    }
    write_json({**description, **extra}, path.with_suffix(".json"))
    return path


def load_model(
    path: str | os.PathLike,
    expected_architecture: str | None = None,
    device: str | torch.device = "cpu",
    trust_checkpoint: bool = False,
) -> LoadedModel:
    """Load a model saved by :func:`save_model` (the ``.safetensors``, its ``.json`` or their folder)."""
    weights_path = _weights_path(Path(path))
    target = resolve_device(device)
    if weights_path.suffix.lower() in LEGACY_SUFFIXES:
        meta, state = _read_legacy(weights_path, expected_architecture, trust_checkpoint)
    else:
        meta = _read_description(weights_path.with_suffix(".json"))
        try:
            state = load_file(str(weights_path))
        except (SafetensorError, OSError, ValueError, RuntimeError) as error:
            raise PerfGenError(
                f"model weights {weights_path} are unreadable ({_first_line(error)}); the file is damaged: "
                "copy or train it again"
            ) from None
    architecture = meta["architecture"]
    if expected_architecture is not None and architecture != expected_architecture:
        raise PerfGenError(
            f"model file {weights_path} is {_describe(architecture)}, not {_describe(expected_architecture)}; "
            "choose a model of the kind this method needs"
        )
    config_cls, module_cls = _architecture(architecture, weights_path)
    _check_description(meta, config_cls, weights_path)
    try:
        config = config_cls(**meta["config"])
        module = module_cls(config)
    except (TypeError, ValueError, ArithmeticError) as error:
        raise PerfGenError(f"model description for {weights_path} has an invalid config: {error}") from None
    _check_weights(module, state, weights_path)
    module.load_state_dict(state)
    return LoadedModel(module.to(target).eval(), architecture, config, meta, weights_path)


def models_dir() -> Path:
    """Folder of bundled models: ``$PERFGEN_MODELS_DIR`` if set, else ``PerfGenSR/Resources/Models``."""
    override = os.environ.get(MODELS_DIR_ENV)
    return Path(override).expanduser() if override else MODELS_DIR


def bundled_model_path(name: str = "perfgen") -> Path:
    """Path of the bundled model ``name`` (which may not exist)."""
    return models_dir() / f"{name}.safetensors"


def has_bundled_model(name: str = "perfgen") -> bool:
    """Whether the bundled model ``name`` and its description are present."""
    path = bundled_model_path(name)
    return path.is_file() and path.with_suffix(".json").is_file()


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"`` as a usable device."""
    if isinstance(device, str) and device.strip().lower() == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device.strip().lower() if isinstance(device, str) else device)
    except (RuntimeError, TypeError):
        resolved = None
    if resolved is None or resolved.type not in ("cpu", "cuda", "mps"):
        raise PerfGenError(f"unknown device '{device}'; use auto, cpu, cuda, cuda:N or mps")
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise PerfGenError(
            f"device '{device}' requested but Apple MPS is not available here; use cpu or auto"
        )
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise PerfGenError(
                f"device '{device}' requested but CUDA is not available here; use `device` cpu or auto"
            )
        count = torch.cuda.device_count()
        if resolved.index is not None and resolved.index >= count:
            raise PerfGenError(
                f"device '{device}' does not exist: this machine has {count} CUDA device(s), cuda:0..cuda:{count - 1}"
            )
    return resolved


def _describe(name: str) -> str:
    return DESCRIPTIONS.get(name, f"a '{name}' model")


def _architecture(name: str, source: Path | None = None) -> tuple[type, type]:
    if name not in ARCHITECTURES:
        where = f" in {source}" if source is not None else ""
        raise PerfGenError(
            f"unknown model architecture '{name}'{where}; known: {', '.join(sorted(ARCHITECTURES))}"
        )
    return ARCHITECTURES[name]


def _weights_path(path: Path) -> Path:
    """The weights file named by ``path``: the file itself, the ``.safetensors`` beside a ``.json``, or in a folder."""
    if path.is_dir():
        candidates = sorted(path.glob("*.safetensors"))
        if (path / "model.safetensors").is_file():
            return path / "model.safetensors"
        if len(candidates) == 1:
            return candidates[0]
        found = "none" if not candidates else ", ".join(c.name for c in candidates)
        raise PerfGenError(
            f"folder {path} must hold model.safetensors or exactly one .safetensors file (found {found})"
        )
    suffix = path.suffix.lower()
    if suffix == ".json":
        path = path.with_suffix(".safetensors")
    elif suffix != ".safetensors" and suffix not in LEGACY_SUFFIXES:
        raise PerfGenError(f"{path} is not a model file; pass a .safetensors file, its .json or their folder")
    if not path.is_file():
        raise PerfGenError(
            f"model file {path} not found; check the path or train a model with `perfgen-sr train`"
        )
    return path


def _read_description(json_path: Path) -> dict:
    if not json_path.is_file():
        raise PerfGenError(
            f"model description {json_path} is missing; keep the .json written beside the .safetensors weights"
        )
    try:
        meta = json.loads(json_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PerfGenError(f"model description {json_path} is not valid JSON ({error}); restore it") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise PerfGenError(f'{json_path} is not a PerfGenSR model description (no "format": "{FORMAT}")')
    if not isinstance(meta.get("version"), int) or meta["version"] > VERSION:
        raise PerfGenError(
            f"{json_path} has model format version {meta.get('version')!r}; this PerfGenSR reads up to "
            f"{VERSION}: update PerfGenSR"
        )
    if not isinstance(meta.get("architecture"), str) or not isinstance(meta.get("config"), dict):
        raise PerfGenError(f'{json_path} lacks an "architecture" name or a "config" object; restore it')
    return meta


def _check_description(meta: dict, config_cls: type, path: Path) -> None:
    """Refuse, in one line, a description whose fields a model cannot be built or sampled from."""
    where = f"model description for {path}"
    hints = typing.get_type_hints(config_cls)
    known = {f.name: hints[f.name] for f in fields(config_cls)}
    for name, value in meta["config"].items():
        if name not in known:
            raise PerfGenError(
                f"{where}: unknown config field '{name}'; restore the .json written with the weights"
            )
        kind = typing.get_origin(known[name]) or known[name]
        if kind is tuple:
            ok = isinstance(value, list) and value and all(_is_int(v) and v >= 1 for v in value)
        elif kind is int:
            ok = _is_int(value) and value >= 1
        elif kind is float:
            ok = _is_number(value)
        else:
            ok = isinstance(value, str)
        if not ok:
            raise PerfGenError(
                f"{where}: config field '{name}' has the invalid value {value!r}; restore the .json"
            )
    schedule = meta.get("schedule", {})
    known = inspect.signature(DiffusionSchedule).parameters
    if not isinstance(schedule, dict) or set(schedule) - set(known):
        raise PerfGenError(f'{where}: "schedule" may hold only {", ".join(known)}; restore the .json')
    if "num_timesteps" in schedule and not (
        _is_int(schedule["num_timesteps"]) and schedule["num_timesteps"] >= 1
    ):
        raise PerfGenError(
            f"{where}: schedule num_timesteps {schedule['num_timesteps']!r} is not a positive whole number"
        )
    for name in ("beta_start", "beta_end"):
        if name in schedule and not (_is_number(schedule[name]) and 0 < schedule[name] < 1):
            raise PerfGenError(f"{where}: schedule {name} {schedule[name]!r} is not a number in (0, 1)")
    if "prediction" in schedule and not isinstance(schedule["prediction"], str):
        raise PerfGenError(f"{where}: schedule prediction {schedule['prediction']!r} is not a name")
    try:
        DiffusionSchedule(**schedule)
    except PerfGenError as error:
        raise PerfGenError(f"{where}: {error}; restore the .json") from None
    scale = meta.get("residual_scale", 0.0)
    if not (_is_number(scale) and scale >= 0):
        raise PerfGenError(f"{where}: residual_scale {scale!r} is not a number >= 0; restore the .json")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _read_legacy(path: Path, expected_architecture: str | None, trust: bool) -> tuple[dict, dict]:
    if not trust:
        raise UntrustedModel(
            f"{path} is a legacy PyTorch checkpoint, loaded only from a trusted source; use a .safetensors model"
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # the safe loader met classes or code: never run, never advised to
        raise PerfGenError(
            f"checkpoint {path} holds objects other than tensors and plain values, which are never loaded; "
            "save its state_dict and config as a .safetensors model"
        ) from None
    except Exception:  # torch raises many types for damaged files
        raise PerfGenError(f"checkpoint {path} is unreadable: damaged or not a PyTorch checkpoint") from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise PerfGenError(
            f'checkpoint {path} is not a dict with a "state_dict"; see models.py for the layout'
        )
    if not isinstance(checkpoint.get("config"), dict):
        raise PerfGenError(f'checkpoint {path} lacks a "config" dict; see models.py for the layout')
    architecture = checkpoint.get("architecture", expected_architecture)
    if not isinstance(architecture, str):
        raise PerfGenError(f'checkpoint {path} does not name its "architecture"; say which model it holds')
    meta = {key: value for key, value in checkpoint.items() if key != "state_dict"}
    meta.update(format=FORMAT, version=VERSION, architecture=architecture)
    return meta, checkpoint["state_dict"]


def _check_weights(module: nn.Module, state: dict, path: Path) -> None:
    """Raise a one-line error naming the first weight that does not fit ``module``."""
    expected = module.state_dict()
    for name, tensor in expected.items():
        if name not in state:
            raise PerfGenError(f"model weights {path} do not fit its config: weight '{name}' is missing")
        if not isinstance(state[name], torch.Tensor) or tuple(state[name].shape) != tuple(tensor.shape):
            found = (
                tuple(state[name].shape)
                if isinstance(state[name], torch.Tensor)
                else type(state[name]).__name__
            )
            raise PerfGenError(
                f"model weights {path} do not fit its config: '{name}' has shape {found}, "
                f"expected {tuple(tensor.shape)}"
            )
    for name in state:
        if name not in expected:
            raise PerfGenError(f"model weights {path} do not fit its config: unexpected weight '{name}'")


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
