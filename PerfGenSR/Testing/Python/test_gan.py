import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage

from PerfGenSRLib import kspace
from PerfGenSRLib.defaults import TrainConfig
from PerfGenSRLib.distributed import Distributed
from PerfGenSRLib.errors import PerfGenError
from PerfGenSRLib.gan import PRESETS, Discriminator, Generator, relativistic_loss, vgg19_stack
from PerfGenSRLib.models import load_model
from PerfGenSRLib.objectives import GanObjective, gan_losses
from PerfGenSRLib.train import load_checkpoint, train

CPU = torch.device("cpu")


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(
    "preset,low,high", [("paper", 16.0e6, 17.0e6), ("small", 0.8e6, 1.5e6), ("tiny", 1e3, 2e4)]
)
def test_generator_sizes_and_shapes(preset, low, high):
    with torch.device("meta"):  # sizes and shapes without allocating the 16.6M-parameter network
        generator = Generator(PRESETS[preset].generator)
        assert low < count(generator) < high
        assert generator(torch.empty(2, 1, 23, 30)).shape == (2, 1, 23, 30)


def test_generator_starts_as_the_identity():
    generator = Generator(PRESETS["small"].generator)
    x = torch.randn(2, 1, 23, 30)
    with torch.no_grad():
        torch.testing.assert_close(generator(x), x)  # the last convolution starts at zero: zero-padding


@pytest.mark.parametrize("preset,stages", [("paper", 4), ("small", 4), ("tiny", 2)])
def test_discriminator_gives_a_patch_map(preset, stages):
    config = PRESETS[preset].discriminator
    discriminator = Discriminator(config)
    assert config.stages == stages and count(discriminator) > 0
    with torch.no_grad():
        assert discriminator(torch.randn(3, 1, 64, 48)).shape == (3, 1, 64 // 2**stages, 48 // 2**stages)


def tiny_config(**changes) -> TrainConfig:
    settings = dict(
        preset="tiny",
        steps=6,
        batch=4,
        lr=1e-4,
        workers=0,
        val_every=3,
        checkpoint_every=3,
        log_every=1,
        val_pairs=4,
        extra={"pretrain_steps": 2},
    )
    return TrainConfig(**{**settings, **changes})


def fixed_batch():
    """Blocky images and their 30% LR, normalised: far from each other, so the step has work to do."""
    rng = np.random.default_rng(0)
    hr = (
        ndimage.gaussian_filter(ndimage.zoom(rng.random((8, 8, 8)), (1, 4, 4), order=0), (0, 0.7, 0.7)) * 2
        - 1
    )
    lr = kspace.degrade(hr, 0.3)
    return torch.tensor(lr[:, None], dtype=torch.float32), torch.tensor(hr[:, None], dtype=torch.float32)


def test_one_adversarial_step_lowers_the_pixel_loss():
    torch.manual_seed(0)
    objective = GanObjective(tiny_config(lr=1e-3, extra={"pretrain_steps": 0}), Distributed(CPU))
    lr, hr = fixed_batch()
    discriminator_before = [p.clone() for p in objective.discriminator.parameters()]
    with torch.no_grad():
        before = F.mse_loss(objective.generator(lr), hr).item()
    row = objective.training_step(lr, hr)
    with torch.no_grad():
        after = F.mse_loss(objective.generator(lr), hr).item()
    assert after < 0.995 * before
    assert (
        row["pixel"] == pytest.approx(before, rel=1e-5)
        and row["adversarial"] > 0
        and row["discriminator"] > 0
    )
    assert any(
        not torch.equal(a, b) for a, b in zip(discriminator_before, objective.discriminator.parameters())
    )


def test_pretraining_leaves_the_discriminator_alone():
    objective = GanObjective(tiny_config(extra={"pretrain_steps": 1}), Distributed(CPU))
    before = [p.clone() for p in objective.discriminator.parameters()]
    row = objective.training_step(*fixed_batch())
    assert row["adversarial"] != row["adversarial"] and row["discriminator"] != row["discriminator"]  # NaN
    assert all(torch.equal(a, b) for a, b in zip(before, objective.discriminator.parameters()))


def test_relativistic_loss_is_symmetric_in_its_roles():
    real, fake = torch.tensor([2.0, 1.0]), torch.tensor([-1.0, 0.0])
    discriminator = relativistic_loss(real, fake, real_is_real=True)
    generator = relativistic_loss(real, fake, real_is_real=False)
    assert discriminator < 0.3 < generator  # D is winning here, so G's loss is large
    torch.testing.assert_close(relativistic_loss(fake, real, real_is_real=False), discriminator)


def test_loss_settings_and_the_perceptual_term(tmp_path):
    losses = gan_losses(TrainConfig(steps=100))
    assert (losses.pixel, losses.fft, losses.adversarial, losses.perceptual) == (1.0, 0.1, 1e-3, 0.0)
    assert losses.pretrain_steps == 20 and losses.vgg_weights is None
    assert GanObjective(TrainConfig(preset="tiny"), Distributed(CPU)).perceptual is None
    with pytest.raises(PerfGenError, match="not found"):
        GanObjective(
            TrainConfig(preset="tiny", extra={"vgg_weights": str(tmp_path / "vgg.safetensors")}),
            Distributed(CPU),
        )
    with pytest.raises(PerfGenError, match="`vgg_weights`"):
        gan_losses(TrainConfig(extra={"perceptual": 0.1}))
    with pytest.raises(PerfGenError, match="unknown GAN setting"):
        gan_losses(TrainConfig(extra={"adversarial_weight": 0.1}))
    with pytest.raises(PerfGenError, match="unknown GAN preset"):
        GanObjective(TrainConfig(preset="huge"), Distributed(CPU))
    stack = vgg19_stack()
    convolutions = [k for k in stack.state_dict() if k.endswith(".weight")]
    assert len(convolutions) == 16 and convolutions[-1] == "34.weight"  # torchvision's conv5_4


def test_train_and_resume_through_the_shared_loop(tmp_path, studies):
    train(GanObjective, studies[:2], studies[2:], tiny_config(), tmp_path / "straight", CPU)
    train(GanObjective, studies[:2], studies[2:], tiny_config(steps=3), tmp_path / "split", CPU)
    train(GanObjective, studies[:2], studies[2:], tiny_config(), tmp_path / "split", CPU, resume=True)
    straight = load_checkpoint(tmp_path / "straight" / "checkpoint.pt")["objective"]
    split = load_checkpoint(tmp_path / "split" / "checkpoint.pt")["objective"]
    for part in ("generator", "discriminator", "ema"):
        for key, value in straight[part].items():
            assert torch.equal(value, split[part][key]), (part, key)
    log = (tmp_path / "split" / "log.csv").read_text().splitlines()
    assert len(log) == 7 and all(
        c in log[0] for c in ("pixel", "fft", "adversarial", "discriminator", "val_psnr")
    )
    model = load_model(tmp_path / "split" / "model.safetensors", "regain-generator")
    assert model.meta["training"]["step"] == 6 and model.meta["losses"]["pretrain_steps"] == 2
    assert model.meta["training"]["objective"] == "gan"


def test_models_load_a_generator_without_importing_gan_first(tmp_path, studies):
    train(GanObjective, studies[:2], [], tiny_config(steps=1), tmp_path / "run", CPU)
    script = (
        "import sys; from PerfGenSRLib.models import load_model; "
        f"m = load_model({str(tmp_path / 'run')!r}, 'regain-generator'); "
        "print(type(m.module).__name__, 'PerfGenSRLib.gan' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["Generator", "True"]
