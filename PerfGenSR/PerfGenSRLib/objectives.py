"""What one training step means for each learned method: the *objectives* that :func:`train.train`
drives, and :data:`OBJECTIVES`, the one place they are registered.

An objective is built as ``Objective(config, runtime)`` and offers ``name``, ``state()`` /
``load_state()`` (for checkpoints), ``training_step(low_res, high_res) -> dict`` of logged numbers,
``super_resolve(low_res)`` (validation) and ``export(path, training)`` (the model file). It owns its
networks and optimisers; the loop owns data, determinism, logs, checkpoints and validation.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from .defaults import TrainConfig
from .distributed import Distributed
from .errors import PerfGenError
from .gan import PRESETS as GAN_PRESETS
from .gan import Discriminator, Generator, PerceptualLoss, fft_magnitude_loss, relativistic_loss
from .models import load_model, save_model
from .sample import DiffusionSampler
from .schedule import DiffusionSchedule
from .unet import PRESETS, UNet, UNetConfig

PRETRAIN_FRACTION = 0.2  # share of a GAN run spent on the content losses alone
PERCEPTUAL_DEFAULT = 1e-2  # weight used when VGG19 weights are given without a weight


@dataclass
class GanLosses:
    """Loss weights (losses on the normalised [-1, 1] scale) and the generator's warm-up length."""

    pixel: float = 1.0  # MSE
    fft: float = 0.1  # L1 between |FFT2| (orthonormal), which is on the pixel scale by Parseval
    adversarial: float = 1e-3  # RaGAN, generator side
    perceptual: float = 0.0  # L1 on VGG19 conv5_4 features; needs ``vgg_weights``
    vgg_weights: str | None = None  # safetensors of torchvision-layout ``vgg19().features``
    pretrain_steps: int | None = None  # content losses only; None: PRETRAIN_FRACTION of the run


class DiffusionObjective:
    """PerfGen: L1 between the network's output and its target (the noise in the paper's eq. 9, or the
    image or v, as ``prediction`` says), AdamW, EMA of the weights.

    With ``residual_scale`` > 0 the diffused quantity is the scaled residual ``(HR - LR) * scale``
    rather than the HR image (residual diffusion, as SRDiff): the same network, schedule and loss,
    but a model that has learnt little still returns the LR, and training converges far sooner.
    """

    name = "perfgen"

    def __init__(
        self,
        config: TrainConfig,
        runtime: Distributed,
        schedule: DiffusionSchedule | None = None,
        net_config: UNetConfig | None = None,
    ):
        if net_config is None and config.preset not in PRESETS:
            raise PerfGenError(f"unknown preset '{config.preset}'; choose one of {', '.join(PRESETS)}")
        self.config, self.runtime = config, runtime
        self.schedule = schedule or DiffusionSchedule(prediction=config.prediction)
        self.net_config = net_config or PRESETS[config.preset]  # an explicit one: Scripts/bench_recipe.py
        self.network = UNet(self.net_config).to(runtime.device)
        if config.init:
            self.network.load_state_dict(load_model(config.init, "perfgen-unet").module.state_dict())
        self.ema = copy.deepcopy(self.network).eval().requires_grad_(False)
        self.trained = runtime.wrap(self.network)
        self.optimizer = torch.optim.AdamW(
            self.network.parameters(), lr=config.lr, weight_decay=config.weight_decay
        )

    def state(self) -> dict:
        return {
            "network": self.network.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
        }

    def load_state(self, state: dict) -> None:
        self.network.load_state_dict(state["network"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])

    def training_step(self, low_res: torch.Tensor, high_res: torch.Tensor) -> dict[str, float]:
        batch = low_res.shape[0]
        sqrt_gamma = self.schedule.sample_training_noise_level(batch, device=low_res.device)
        top = torch.rand(batch, device=low_res.device) < self.config.mean_fraction
        top_level = self.schedule.noise_level(self.schedule.num_timesteps, device=low_res.device)
        sqrt_gamma = torch.where(top, top_level, sqrt_gamma)
        noise = torch.randn_like(high_res)
        y0 = (high_res - low_res) * self.config.residual_scale if self.config.residual_scale else high_res
        noisy = self.schedule.add_noise(y0, noise, sqrt_gamma)
        target = self.schedule.training_target(y0, noise, sqrt_gamma)
        with autocast(low_res.device, self.config.bf16):
            predicted = self.trained(low_res, noisy, sqrt_gamma)
        weight = self.schedule.loss_weight(sqrt_gamma, self.config.min_snr_gamma).to(low_res.device)
        weight = torch.where(top, torch.ones_like(weight), weight)  # the one-pass mean is trained unweighted
        loss = (weight * (predicted.float() - target).abs().mean(dim=(1, 2, 3))).mean()
        grad_norm = optimise(loss, self.optimizer, self.network, self.config, ema=self.ema)
        return {"loss": loss.item(), "grad_norm": grad_norm}

    @torch.no_grad()
    def super_resolve(self, low_res: torch.Tensor) -> torch.Tensor:
        sampler = DiffusionSampler(
            self.ema,
            self.schedule,
            sampler=self.config.val_sampler,
            steps=1 if self.config.val_sampler == "mean" else self.config.val_steps,
            residual_scale=self.config.residual_scale,
            flips=1,
        )
        return sampler(low_res, generator=torch.Generator(low_res.device).manual_seed(0))

    def export(self, path: Path, training: dict) -> None:
        save_model(
            path,
            self.ema,
            "perfgen-unet",
            self.net_config,
            extra={
                "schedule": self.schedule.config(),
                "residual_scale": self.config.residual_scale,
                "training": training,
            },
        )


def optimise(
    loss: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    module: torch.nn.Module,
    config: TrainConfig,
    ema: torch.nn.Module | None = None,
) -> float:
    """One optimiser step on ``loss`` with gradient clipping, then the EMA update; returns the gradient norm."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(module.parameters(), config.grad_clip)
    optimizer.step()
    if ema is not None:
        with torch.no_grad():
            for ema_p, p in zip(ema.parameters(), module.parameters()):
                ema_p.lerp_(p, 1 - config.ema_decay)
    return float(grad_norm)


def autocast(device: torch.device, enabled: bool = True):
    """bf16 autocast on CUDA when ``enabled``, nothing elsewhere."""
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=enabled and device.type == "cuda")


def gan_losses(config: TrainConfig) -> GanLosses:
    """Loss weights of a run: :class:`GanLosses` defaults overridden by ``TrainConfig.extra``."""
    known = {f.name for f in fields(GanLosses)}
    unknown = sorted(set(config.extra) - known)
    if unknown:
        raise PerfGenError(f"unknown GAN setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    losses = GanLosses(**config.extra)
    if losses.pretrain_steps is None:
        losses.pretrain_steps = int(PRETRAIN_FRACTION * config.steps)
    if losses.vgg_weights and "perceptual" not in config.extra:
        losses.perceptual = PERCEPTUAL_DEFAULT
    if losses.perceptual > 0 and not losses.vgg_weights:
        raise PerfGenError("the perceptual loss needs VGG19 weights (`vgg_weights` FILE.safetensors)")
    if min(losses.pixel, losses.fft, losses.adversarial, losses.perceptual, losses.pretrain_steps) < 0:
        raise PerfGenError("GAN loss weights and `pretrain_steps` must not be negative")
    return losses


class GanObjective:
    """The GAN baseline: generator and discriminator updates,
    Adam (betas 0.9, 0.99) for both, an EMA of the generator for validation and export."""

    name = "gan"

    def __init__(self, config: TrainConfig, runtime: Distributed):
        if config.preset not in GAN_PRESETS:
            raise PerfGenError(
                f"unknown GAN preset '{config.preset}'; choose one of {', '.join(GAN_PRESETS)}"
            )
        self.config, self.runtime = config, runtime
        self.preset, self.losses = GAN_PRESETS[config.preset], gan_losses(config)
        device = runtime.device
        self.generator = Generator(self.preset.generator).to(device)
        if config.init:
            self.generator.load_state_dict(load_model(config.init, "regain-generator").module.state_dict())
        self.discriminator = Discriminator(self.preset.discriminator).to(device)
        self.ema = copy.deepcopy(self.generator).eval().requires_grad_(False)
        self.trained_generator = runtime.wrap(self.generator)
        self.trained_discriminator = runtime.wrap(self.discriminator)
        self.perceptual = (
            PerceptualLoss(self.losses.vgg_weights).to(device) if self.losses.perceptual > 0 else None
        )
        self.generator_optimizer = torch.optim.Adam(
            self.generator.parameters(), lr=config.lr, betas=(0.9, 0.99)
        )
        self.discriminator_optimizer = torch.optim.Adam(
            self.discriminator.parameters(), lr=config.lr, betas=(0.9, 0.99)
        )
        self.step = 0

    def state(self) -> dict:
        return {
            "generator": self.generator.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "ema": self.ema.state_dict(),
            "generator_optimizer": self.generator_optimizer.state_dict(),
            "discriminator_optimizer": self.discriminator_optimizer.state_dict(),
            "step": torch.tensor(self.step),
        }

    def load_state(self, state: dict) -> None:
        self.generator.load_state_dict(state["generator"])
        self.discriminator.load_state_dict(state["discriminator"])
        self.ema.load_state_dict(state["ema"])
        self.generator_optimizer.load_state_dict(state["generator_optimizer"])
        self.discriminator_optimizer.load_state_dict(state["discriminator_optimizer"])
        self.step = int(state["step"])

    def content_losses(self, estimate: Tensor, high_res: Tensor) -> dict[str, Tensor]:
        """Pixel MSE, FFT-magnitude L1 and (when enabled) the perceptual loss, unweighted."""
        losses = {
            "pixel": F.mse_loss(estimate.float(), high_res),
            "fft": fft_magnitude_loss(estimate, high_res),
        }
        if self.perceptual is not None:
            losses["perceptual"] = self.perceptual(estimate.float(), high_res)
        return losses

    def training_step(self, low_res: Tensor, high_res: Tensor) -> dict[str, float]:
        adversarial = self.step >= self.losses.pretrain_steps
        with autocast(low_res.device, self.config.bf16):
            estimate = self.trained_generator(low_res)
        terms = self.content_losses(estimate, high_res)
        if adversarial:
            self.discriminator.requires_grad_(False)  # the plain module: no DDP reduction for this pass
            with autocast(low_res.device, self.config.bf16):
                real, fake = self.discriminator(torch.cat([high_res, estimate])).chunk(2)
            terms["adversarial"] = relativistic_loss(real.detach(), fake, real_is_real=False)
            self.discriminator.requires_grad_(True)
        loss = sum(getattr(self.losses, name) * value for name, value in terms.items())
        grad_norm = optimise(loss, self.generator_optimizer, self.generator, self.config, ema=self.ema)
        row = {"loss": loss.item(), "grad_norm": grad_norm, **{k: v.item() for k, v in terms.items()}}
        row.setdefault("adversarial", math.nan)  # the log's columns are fixed by its first row
        row["discriminator"] = math.nan
        if adversarial:
            with autocast(low_res.device, self.config.bf16):
                logits = self.trained_discriminator(torch.cat([high_res, estimate.detach()]))
            real, fake = logits.chunk(2)
            discriminator_loss = relativistic_loss(real, fake, real_is_real=True)
            optimise(discriminator_loss, self.discriminator_optimizer, self.discriminator, self.config)
            row["discriminator"] = discriminator_loss.item()
        self.step += 1
        return row

    @torch.no_grad()
    def super_resolve(self, low_res: Tensor) -> Tensor:
        return self.ema(low_res)

    def export(self, path: Path, training: dict) -> None:
        save_model(
            path,
            self.ema,
            "regain-generator",
            self.preset.generator,
            extra={
                "training": training,
                "losses": asdict(self.losses),
                "discriminator": asdict(self.preset.discriminator),
            },
        )


OBJECTIVES = {"perfgen": DiffusionObjective, "gan": GanObjective}
