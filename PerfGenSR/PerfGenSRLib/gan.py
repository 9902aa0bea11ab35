"""The GAN baseline: a REGAIN-style super-resolution GAN (Yoon et al., Radiology 2023), written from its
description, trained (:class:`objectives.GanObjective`) by the shared loop of :mod:`train` on the same pairs as
PerfGen. This module holds the networks and loss functions only.

* Generator: a 3x3 convolution, a stack of residual-in-residual dense blocks (each three dense blocks
  of five densely connected 3x3 convolutions, LeakyReLU 0.2, residual scaling 0.2; ESRGAN's RRDB),
  a trunk convolution and two convolutions back to one channel. No upsampling: the input is the
  zero-padded LR on the HR grid (normalised as in :mod:`data`), the output its HR estimate, learnt as a
  residual on top of the input. Fully convolutional.
* Discriminator: a 3x3 convolution, then VGG-style stages (a stride-2 4x4 convolution and a 3x3
  convolution, each with BatchNorm and LeakyReLU 0.2), ending in a one-channel patch map.
* Losses (weighted by :class:`objectives.GanLosses`): pixel MSE, L1 between 2D FFT magnitudes, the relativistic-average
  adversarial loss (RaGAN) and, only with user-supplied VGG19 weights, a perceptual loss on
  VGG19 ``conv5_4`` features. The first ``pretrain_steps`` train the generator on the content losses
  alone (ESRGAN's PSNR-oriented warm-up); the discriminator starts after them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .errors import PerfGenError


@dataclass
class GeneratorConfig:
    """Architecture of :class:`Generator`."""

    features: int = 64
    growth: int = 32  # channels added by each convolution of a dense block
    blocks: int = 23  # residual-in-residual dense blocks
    dense_per_block: int = 3
    branch_scale: float = 0.2  # each dense block's output is scaled by this before it is added
    channels: int = 1

    def __post_init__(self):
        if min(self.features, self.growth, self.blocks, self.dense_per_block, self.channels) < 1:
            raise ValueError("features, growth, blocks, dense_per_block and channels must be positive")


@dataclass
class DiscriminatorConfig:
    """Architecture of :class:`Discriminator`: ``stages`` halvings, features doubling up to 8x."""

    features: int = 64
    stages: int = 4
    channels: int = 1


@dataclass
class GanPreset:
    """A generator with the discriminator trained against it."""

    generator: GeneratorConfig
    discriminator: DiscriminatorConfig


PRESETS: dict[str, GanPreset] = {
    # The published size (ESRGAN's RRDBNet with one channel in and out): about 16.6M generator parameters.
    "paper": GanPreset(GeneratorConfig(), DiscriminatorConfig()),
    # 6 blocks of 32 features (about 1.1M parameters): about 0.2 s per 96x96 frame on two CPU cores.
    "small": GanPreset(GeneratorConfig(features=32, growth=16, blocks=6), DiscriminatorConfig(features=32)),
    # For tests.
    "tiny": GanPreset(
        GeneratorConfig(features=8, growth=4, blocks=1, dense_per_block=1),
        DiscriminatorConfig(features=8, stages=2),
    ),
}
VGG19_LAYERS = (
    64,
    64,
    "M",
    128,
    128,
    "M",
    256,
    256,
    256,
    256,
    "M",
    512,
    512,
    512,
    512,
    "M",
    512,
    512,
    512,
    512,
)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _lrelu() -> nn.Module:
    return nn.LeakyReLU(0.2, inplace=True)


class DenseBlock(nn.Module):
    """Five 3x3 convolutions, each seeing the block input and every earlier output; scaled residual."""

    def __init__(self, features: int, growth: int, scale: float):
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv2d(features + i * growth, growth if i < 4 else features, 3, padding=1) for i in range(5)
        )
        self.activation, self.scale = _lrelu(), scale

    def forward(self, x: Tensor) -> Tensor:
        outputs = [x]
        for i, conv in enumerate(self.convs):
            y = conv(torch.cat(outputs, dim=1))
            outputs.append(self.activation(y) if i < 4 else y)
        return x + self.scale * outputs[-1]


class ResidualInResidualBlock(nn.Module):
    """Dense blocks in sequence inside one more scaled residual (ESRGAN's RRDB)."""

    def __init__(self, config: GeneratorConfig):
        super().__init__()
        self.dense = nn.Sequential(
            *(
                DenseBlock(config.features, config.growth, config.branch_scale)
                for _ in range(config.dense_per_block)
            )
        )
        self.scale = config.branch_scale

    def forward(self, x: Tensor) -> Tensor:
        return x + self.scale * self.dense(x)


class Generator(nn.Module):
    """Normalised zero-padded LR ``(B, 1, H, W)`` -> normalised HR estimate of the same shape."""

    def __init__(self, config: GeneratorConfig):
        super().__init__()
        f = config.features
        self.head = nn.Conv2d(config.channels, f, 3, padding=1)
        self.body = nn.Sequential(*(ResidualInResidualBlock(config) for _ in range(config.blocks)))
        self.trunk = nn.Conv2d(f, f, 3, padding=1)
        self.tail = nn.Sequential(
            nn.Conv2d(f, f, 3, padding=1), _lrelu(), nn.Conv2d(f, config.channels, 3, padding=1)
        )
        for module in self.body.modules():  # ESRGAN's initialisation: Kaiming scaled by 0.1 in the blocks
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, a=0.2)
                module.weight.data.mul_(0.1)
                nn.init.zeros_(module.bias)
        nn.init.zeros_(self.tail[-1].weight)  # starts as the identity: the zero-padded LR
        nn.init.zeros_(self.tail[-1].bias)

    def forward(self, low_res: Tensor) -> Tensor:
        features = self.head(low_res)
        features = features + self.trunk(self.body(features))
        return low_res + self.tail(features)


class Discriminator(nn.Module):
    """VGG-style stride-2 stages ending in a patch map of real/fake logits ``(B, 1, H/2^s, W/2^s)``."""

    def __init__(self, config: DiscriminatorConfig):
        super().__init__()
        layers, width = [nn.Conv2d(config.channels, config.features, 3, padding=1), _lrelu()], config.features
        for stage in range(config.stages):
            out = config.features * 2 ** min(stage + 1, 3)
            layers += [
                nn.Conv2d(width, width, 4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(width),
                _lrelu(),
                nn.Conv2d(width, out, 3, padding=1, bias=False),
                nn.BatchNorm2d(out),
                _lrelu(),
            ]
            width = out
        layers.append(nn.Conv2d(width, 1, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, image: Tensor) -> Tensor:
        return self.net(image)


def vgg19_stack() -> nn.Sequential:
    """The layers of torchvision's ``vgg19().features`` up to ``conv5_4`` (index 34, before its ReLU)."""
    layers, channels = [], 3
    for item in VGG19_LAYERS:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(channels, item, 3, padding=1), nn.ReLU(inplace=True)]
            channels = item
    return nn.Sequential(*layers[:-1])


def vgg19_features(weights: str | os.PathLike) -> nn.Sequential:
    """:func:`vgg19_stack` with weights from a safetensors file (keys ``N.weight`` or ``features.N.weight``)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(weights)
    if not path.is_file():
        raise PerfGenError(
            f"VGG19 weights {path} not found; give a safetensors file of torchvision's vgg19 features"
        )
    network = vgg19_stack()
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as error:
        raise PerfGenError(f"VGG19 weights {path} are unreadable ({error})") from None
    state = {key.removeprefix("features."): value for key, value in state.items()}
    missing = [key for key in network.state_dict() if key not in state]
    if missing:
        raise PerfGenError(
            f"VGG19 weights {path} lack '{missing[0]}'; give torchvision-layout vgg19 features"
        )
    network.load_state_dict({key: state[key] for key in network.state_dict()})
    return network.eval().requires_grad_(False)


class PerceptualLoss(nn.Module):
    """L1 between VGG19 features of normalised one-channel images (shown to VGG as grey RGB)."""

    def __init__(self, weights: str | os.PathLike):
        super().__init__()
        self.features = vgg19_features(weights)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN)[None, :, None, None])
        self.register_buffer("std", torch.tensor(IMAGENET_STD)[None, :, None, None])

    def forward(self, prediction: Tensor, target: Tensor) -> Tensor:
        def embed(x):
            return self.features((((x + 1) / 2).expand(-1, 3, -1, -1) - self.mean) / self.std)

        return F.l1_loss(embed(prediction), embed(target))


def fft_magnitude_loss(prediction: Tensor, target: Tensor) -> Tensor:
    """L1 between the magnitudes of the orthonormal 2D FFTs (float32)."""
    return F.l1_loss(
        torch.fft.fft2(prediction.float(), norm="ortho").abs(),
        torch.fft.fft2(target.float(), norm="ortho").abs(),
    )


def relativistic_loss(real: Tensor, fake: Tensor, real_is_real: bool) -> Tensor:
    """RaGAN: each side's logits judged relative to the other side's mean; ``real_is_real`` for D."""
    real, fake = real.float(), fake.float()
    real_rel, fake_rel = real - fake.mean(), fake - real.mean()
    ones, zeros = torch.ones_like(real_rel), torch.zeros_like(fake_rel)
    real_target, fake_target = (ones, zeros) if real_is_real else (zeros, ones)
    return (
        F.binary_cross_entropy_with_logits(real_rel, real_target)
        + F.binary_cross_entropy_with_logits(fake_rel, fake_target)
    ) / 2
