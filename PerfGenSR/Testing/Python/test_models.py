import json
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from PerfGenSRLib import models
from PerfGenSRLib.errors import PerfGenError
from PerfGenSRLib.gan import Generator, GeneratorConfig
from PerfGenSRLib.models import (
    ARCHITECTURES,
    bundled_model_path,
    has_bundled_model,
    load_model,
    resolve_device,
    save_model,
)
from PerfGenSRLib.schedule import DiffusionSchedule
from PerfGenSRLib.unet import PRESETS, UNet, UNetConfig


@dataclass
class _LinearConfig:
    features: int = 3


class _Linear(nn.Module):
    def __init__(self, config: _LinearConfig):
        super().__init__()
        self.layer = nn.Linear(config.features, 1)


@pytest.fixture(autouse=True)
def test_architecture(monkeypatch):
    """A stand-in architecture for these tests, in the one registry, for their duration only."""
    monkeypatch.setitem(models.ARCHITECTURES, "test-linear", (_LinearConfig, _Linear))
    monkeypatch.setitem(models.DESCRIPTIONS, "test-linear", "a test linear model")


def _saved_tiny(tmp_path, seed: int = 0):
    torch.manual_seed(seed)
    model = UNet(PRESETS["tiny"])
    extra = {"schedule": DiffusionSchedule(50).config(), "normalisation": {"scale": 2.5}}
    path = save_model(tmp_path / "model.safetensors", model, "perfgen-unet", PRESETS["tiny"], extra)
    return model, path


def _inputs():
    generator = torch.Generator().manual_seed(1)
    return torch.randn(2, 1, 13, 17, generator=generator), torch.randn(2, 1, 13, 17, generator=generator)


def test_round_trip_gives_identical_outputs(tmp_path):
    model, path = _saved_tiny(tmp_path)
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["format"] == "perfgen-sr-model" and meta["version"] == 1
    assert meta["architecture"] == "perfgen-unet" and meta["normalisation"] == {"scale": 2.5}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "model.safetensors"]  # no leftovers
    lr, y_t = _inputs()
    with torch.inference_mode():
        expected = model.eval()(lr, y_t, torch.tensor([0.2, 0.8]))
    for where in (path, path.with_suffix(".json"), tmp_path):
        loaded = load_model(where, expected_architecture="perfgen-unet")
        assert loaded.config == PRESETS["tiny"] and not loaded.module.training
        assert DiffusionSchedule(**loaded.meta["schedule"]).num_timesteps == 50
        with torch.inference_mode():
            assert torch.equal(loaded.module(lr, y_t, torch.tensor([0.2, 0.8])), expected)


def test_truncated_weights_are_refused(tmp_path):
    _, path = _saved_tiny(tmp_path)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(PerfGenError, match="damaged"):
        load_model(path)


def test_missing_or_invalid_description_is_refused(tmp_path):
    _, path = _saved_tiny(tmp_path)
    json_path = path.with_suffix(".json")
    json_path.write_text("{not json")
    with pytest.raises(PerfGenError, match="not valid JSON"):
        load_model(path)
    json_path.unlink()
    with pytest.raises(PerfGenError, match="missing"):
        load_model(path)
    with pytest.raises(PerfGenError, match="not found"):
        load_model(tmp_path / "absent.safetensors")


def test_unknown_or_unexpected_architecture_is_refused(tmp_path):
    _, path = _saved_tiny(tmp_path)
    json_path = path.with_suffix(".json")
    meta = json.loads(json_path.read_text())
    json_path.write_text(json.dumps({**meta, "architecture": "test-linear"}))
    with pytest.raises(PerfGenError, match="is a test linear model, not a PerfGen U-Net"):
        load_model(path, expected_architecture="perfgen-unet")
    json_path.write_text(json.dumps({**meta, "architecture": "wavenet"}))
    with pytest.raises(PerfGenError, match="unknown model architecture 'wavenet'"):
        load_model(path)


def test_weights_that_do_not_fit_the_config_are_refused_naming_the_key(tmp_path):
    _, path = _saved_tiny(tmp_path)
    json_path = path.with_suffix(".json")
    meta = json.loads(json_path.read_text())
    wider = {**meta["config"], "base_channels": 16}
    json_path.write_text(json.dumps({**meta, "config": wider}))
    with pytest.raises(
        PerfGenError, match=r"'noise_mlp\.1\.weight' has shape \(32, 8\), expected \(64, 16\)"
    ):
        load_model(path)
    deeper = {**meta["config"], "channel_mults": [1, 2, 2, 2]}
    json_path.write_text(json.dumps({**meta, "config": deeper}))
    with pytest.raises(PerfGenError, match="is missing"):
        load_model(path)
    json_path.write_text(json.dumps({**meta, "config": {**meta["config"], "colour": "blue"}}))
    with pytest.raises(PerfGenError, match="unknown config field 'colour'"):
        load_model(path)


def test_save_refuses_a_config_of_another_architecture(tmp_path):
    with pytest.raises(ValueError):
        save_model(tmp_path / "m.safetensors", _Linear(_LinearConfig()), "perfgen-unet", _LinearConfig())
    with pytest.raises(PerfGenError):
        save_model(tmp_path / "m.pt", UNet(PRESETS["tiny"]), "perfgen-unet", PRESETS["tiny"])


def test_legacy_checkpoints_need_trust(tmp_path):
    torch.manual_seed(0)
    model = _Linear(_LinearConfig(features=4))
    path = tmp_path / "old.pt"
    torch.save({"state_dict": model.state_dict(), "config": {"features": 4}, "epoch": 7}, path)
    with pytest.raises(PerfGenError, match="trust"):
        load_model(path, expected_architecture="test-linear")
    loaded = load_model(path, expected_architecture="test-linear", trust_checkpoint=True)
    assert loaded.architecture == "test-linear" and loaded.meta["epoch"] == 7
    assert torch.equal(loaded.module.layer.weight, model.layer.weight)
    torch.save({"weights": model.state_dict()}, path)
    with pytest.raises(PerfGenError, match="state_dict"):
        load_model(path, trust_checkpoint=True)


def test_registry_and_bundled_model_lookup(tmp_path, monkeypatch):
    assert ARCHITECTURES["perfgen-unet"] == (UNetConfig, UNet)
    assert ARCHITECTURES["regain-generator"] == (GeneratorConfig, Generator)
    assert models.MODELS_DIR.parts[-3:] == ("PerfGenSR", "Resources", "Models")
    monkeypatch.setenv("PERFGEN_MODELS_DIR", str(tmp_path))
    assert bundled_model_path() == tmp_path / "perfgen.safetensors"
    assert not has_bundled_model("perfgen")
    save_model(bundled_model_path(), UNet(PRESETS["tiny"]), "perfgen-unet", PRESETS["tiny"])
    assert has_bundled_model("perfgen") and not has_bundled_model("gan")


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    for bad in ("banana", "cuda:7" if torch.cuda.device_count() < 8 else "cuda:99", "mps:x"):
        with pytest.raises(PerfGenError):
            resolve_device(bad)
