"""The SR3/DDPM noise schedule of PerfGen (paper section 2.2): forward noising, the ancestral (DDPM)
step of equation 8 and the deterministic-or-not DDIM step. Knows nothing of the network.

Timesteps run ``1..T`` as in the paper, with ``gamma_0 := 1`` (a clean image). The coefficient
buffers are float64 tensors of length ``T + 1`` indexed by ``t`` directly (``alphas[0] = gammas[0] = 1``).
Coefficients are computed in float64; images stay in their own dtype and device.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .defaults import PREDICTIONS
from .errors import PerfGenError


class DiffusionSchedule:
    """Linear-beta variance schedule with ``alpha_t = 1 - beta_t`` and ``gamma_t = prod_{i<=t} alpha_i``.

    ``prediction`` says what the network's output means (:data:`PREDICTIONS`); the steps take that
    output and convert it with :meth:`split`, so samplers never need to know.
    """

    def __init__(
        self,
        num_timesteps: int = 2000,
        beta_start: float = 1e-6,
        beta_end: float = 1e-2,
        prediction: str = "epsilon",
    ):
        if prediction not in PREDICTIONS:
            raise PerfGenError(f"unknown prediction '{prediction}'; choose one of {', '.join(PREDICTIONS)}")
        if int(num_timesteps) < 1:
            raise PerfGenError(f"num_timesteps must be at least 1, got {num_timesteps}")
        if not 0.0 < beta_start <= beta_end < 1.0:
            raise PerfGenError(
                f"betas must satisfy 0 < beta_start <= beta_end < 1, got {beta_start} and {beta_end}"
            )
        self.num_timesteps = int(num_timesteps)
        self.beta_start = float(beta_start)
        self.beta_end = float(beta_end)
        self.prediction = prediction
        betas = torch.linspace(self.beta_start, self.beta_end, self.num_timesteps, dtype=torch.float64)
        self.betas = torch.cat([torch.zeros(1, dtype=torch.float64), betas])
        self.alphas = 1.0 - self.betas
        self.gammas = torch.cumprod(self.alphas, dim=0)
        self.sqrt_gammas = self.gammas.sqrt()

    def __repr__(self) -> str:
        args = ", ".join(f"{key}={value!r}" for key, value in self.config().items())
        return f"{type(self).__name__}({args})"

    def config(self) -> dict:
        """Constructor arguments, JSON-able: ``DiffusionSchedule(**schedule.config())`` rebuilds it."""
        return {
            "num_timesteps": self.num_timesteps,
            "beta_start": self.beta_start,
            "beta_end": self.beta_end,
            "prediction": self.prediction,
        }

    def sample_training_noise_level(
        self, batch: int, generator: torch.Generator | None = None, device: torch.device | str | None = None
    ) -> Tensor:
        """SR3's continuous noise levels: ``t ~ U{1..T}``, ``sqrt_gamma ~ U(sqrt(gamma_t), sqrt(gamma_{t-1}))``."""
        draw_device = generator.device if generator is not None else torch.device("cpu")
        t = torch.randint(1, self.num_timesteps + 1, (batch,), generator=generator, device=draw_device).cpu()
        u = torch.rand(batch, generator=generator, device=draw_device, dtype=torch.float64).cpu()
        low, high = self.sqrt_gammas[t], self.sqrt_gammas[t - 1]
        return (low + u * (high - low)).to(device=device, dtype=torch.float32)

    def noise_level(self, t: int | Tensor, device: torch.device | str | None = None) -> Tensor:
        """``sqrt(gamma_t)`` as float32, the value the network is conditioned on at inference."""
        return self._lookup(self.sqrt_gammas, t).to(device=device, dtype=torch.float32)

    def add_noise(self, y0: Tensor, noise: Tensor, sqrt_gamma: Tensor) -> Tensor:
        """Sample ``q(y_t | y_0)`` (equation 3): ``sqrt(g) y0 + sqrt(1 - g) noise``, one ``sqrt(g)`` per item."""
        sqrt_gamma = torch.as_tensor(sqrt_gamma, device=y0.device).to(torch.float64)
        sqrt_one_minus = (1.0 - sqrt_gamma.square()).clamp_min(0.0).sqrt()
        return self._broadcast(sqrt_gamma, y0) * y0 + self._broadcast(sqrt_one_minus, noise) * noise

    def training_target(self, y0: Tensor, noise: Tensor, sqrt_gamma: Tensor) -> Tensor:
        """What the network should output for ``add_noise(y0, noise, sqrt_gamma)``, by :attr:`prediction`."""
        if self.prediction == "epsilon":
            return noise
        if self.prediction == "sample":
            return y0
        signal = self._broadcast(torch.as_tensor(sqrt_gamma, dtype=torch.float64), y0)
        return signal * noise - (1.0 - signal.square()).clamp_min(0.0).sqrt() * y0

    def loss_weight(self, sqrt_gamma: Tensor, min_snr_gamma: float | None) -> Tensor:
        """Min-SNR-gamma weights (Hang et al. 2023) of a loss in the prediction's own space (ones if None).

        With ``snr = g / (1 - g)``: ``min(snr, gamma) / snr`` for noise, ``min(snr, gamma)`` for the image
        and ``min(snr, gamma) / (snr + 1)`` for ``v``, so every prediction weighs the image error alike.
        """
        gamma = torch.as_tensor(sqrt_gamma, dtype=torch.float64).square().clamp(1e-12, 1 - 1e-12)
        if not min_snr_gamma:
            return torch.ones_like(gamma, dtype=torch.float32)
        snr = gamma / (1.0 - gamma)
        clipped = snr.clamp_max(float(min_snr_gamma))
        divisor = {"epsilon": snr, "sample": torch.ones_like(snr), "v_prediction": snr + 1.0}[self.prediction]
        return (clipped / divisor).float()

    def split(self, output: Tensor, y_t: Tensor, t: int | Tensor) -> tuple[Tensor, Tensor]:
        """The noise and clean-image estimates ``(eps, y0)`` that network ``output`` at step ``t`` implies."""
        if self.prediction == "epsilon":
            return output, self.predict_y0(y_t, output, t)
        gamma = self._lookup(self.gammas, t)
        signal, noise_coef = (self._broadcast(gamma.sqrt(), y_t), self._broadcast((1.0 - gamma).sqrt(), y_t))
        if self.prediction == "sample":
            y0 = output
            eps = (y_t - signal * y0) / noise_coef.clamp_min(1e-12)
        else:
            y0 = signal * y_t - noise_coef * output
            eps = noise_coef * y_t + signal * output
        return eps.to(y_t.dtype), y0.to(y_t.dtype)

    def predict_y0(self, y_t: Tensor, eps: Tensor, t: int | Tensor) -> Tensor:
        """The clean image implied by noise estimate ``eps`` at step ``t``: ``(y_t - sqrt(1-g_t) eps) / sqrt(g_t)``."""
        gamma = self._lookup(self.gammas, t)
        noise_coef, signal_coef = (
            self._broadcast((1.0 - gamma).sqrt(), y_t),
            self._broadcast(gamma.sqrt(), y_t),
        )
        return (y_t - noise_coef * eps) / signal_coef

    def ddpm_step(
        self,
        output: Tensor,
        t: int,
        y_t: Tensor,
        generator: torch.Generator | None = None,
        clip_y0: float | None = None,
        variance_noise: Tensor | None = None,
    ) -> Tensor:
        """One ancestral step ``y_t -> y_{t-1}`` (equation 8, ``sigma_t^2 = 1 - alpha_t``; no noise at ``t = 1``).

        ``output`` is the network's prediction (:attr:`prediction`). The mean is the posterior mean of
        ``q(y_{t-1} | y_t, y_0)`` for the implied clean image (identical to equation 7), clipped to
        ``[-clip_y0, clip_y0]`` first when given. ``variance_noise`` replaces the Gaussian draw (for tests).
        """
        self._check_t(t)
        alpha, gamma, gamma_prev = self.alphas[t].item(), self.gammas[t].item(), self.gammas[t - 1].item()
        eps, y0 = self.split(output, y_t, t)
        if clip_y0 is None and self.prediction == "epsilon":
            mean = (y_t - ((1.0 - alpha) / math.sqrt(1.0 - gamma)) * eps) / math.sqrt(alpha)
        else:
            y0 = y0 if clip_y0 is None else y0.clamp(-clip_y0, clip_y0)
            y0_coef = math.sqrt(gamma_prev) * (1.0 - alpha) / (1.0 - gamma)
            y_t_coef = math.sqrt(alpha) * (1.0 - gamma_prev) / (1.0 - gamma)
            mean = y0_coef * y0 + y_t_coef * y_t
        if t == 1:
            return mean.to(y_t.dtype)
        noise = variance_noise if variance_noise is not None else _randn_like(y_t, generator)
        return (mean + math.sqrt(1.0 - alpha) * noise).to(y_t.dtype)

    def ddim_timesteps(self, steps: int) -> list[int]:
        """``steps`` timesteps evenly spread over ``T..1``, descending, starting at ``T`` (and ending at 1)."""
        if not 1 <= int(steps) <= self.num_timesteps:
            raise PerfGenError(
                f"the number of sampling steps must be between 1 and {self.num_timesteps}, got {steps}"
            )
        if steps == 1:
            return [self.num_timesteps]
        spaced = torch.linspace(self.num_timesteps, 1, int(steps), dtype=torch.float64).round().long()
        return [int(t) for t in spaced]

    def ddim_step(
        self,
        output: Tensor,
        t: int,
        t_prev: int,
        y_t: Tensor,
        eta: float = 0.0,
        generator: torch.Generator | None = None,
        clip_y0: float | None = None,
        variance_noise: Tensor | None = None,
    ) -> Tensor:
        """One DDIM step ``y_t -> y_{t_prev}`` (``t_prev = 0``: the final clean image); ``eta = 0`` is deterministic.

        ``output`` is the network's prediction (:attr:`prediction`).
        With ``clip_y0`` the implied clean image is clipped to ``[-clip_y0, clip_y0]`` and the noise estimate
        recomputed from it, so the step stays consistent. ``variance_noise`` replaces the Gaussian draw.
        """
        self._check_t(t)
        if not 0 <= t_prev < t:
            raise ValueError(f"t_prev must satisfy 0 <= t_prev < t, got t={t}, t_prev={t_prev}")
        gamma, gamma_prev = self.gammas[t].item(), self.gammas[t_prev].item()
        eps, y0 = self.split(output, y_t, t)
        if clip_y0 is not None:
            y0 = y0.clamp(-clip_y0, clip_y0)
            eps = (y_t - math.sqrt(gamma) * y0) / math.sqrt(1.0 - gamma)
        sigma = eta * math.sqrt((1.0 - gamma_prev) / (1.0 - gamma) * (1.0 - gamma / gamma_prev))
        y_prev = math.sqrt(gamma_prev) * y0 + math.sqrt(max(1.0 - gamma_prev - sigma**2, 0.0)) * eps
        if sigma > 0.0:
            noise = variance_noise if variance_noise is not None else _randn_like(y_t, generator)
            y_prev = y_prev + sigma * noise
        return y_prev.to(y_t.dtype)

    def _check_t(self, t: int) -> None:
        if not 1 <= t <= self.num_timesteps:
            raise ValueError(f"timestep must be in 1..{self.num_timesteps}, got {t}")

    def _lookup(self, buffer: Tensor, t: int | Tensor) -> Tensor:
        if isinstance(t, Tensor):
            index = t.detach().to(device="cpu", dtype=torch.long)
            if index.numel() and (index.min() < 0 or index.max() > self.num_timesteps):
                raise ValueError(f"timesteps must be in 0..{self.num_timesteps}")
            return buffer[index]
        if not 0 <= t <= self.num_timesteps:
            raise ValueError(f"timestep must be in 0..{self.num_timesteps}, got {t}")
        return buffer[int(t)]

    @staticmethod
    def _broadcast(values: Tensor, like: Tensor) -> Tensor:
        """Per-item float64 coefficients ``(B,)`` (or a scalar) shaped, typed and placed to multiply ``like``."""
        values = values.to(device=like.device, dtype=like.dtype)
        return values if values.dim() == 0 else values.reshape(-1, *([1] * (like.dim() - 1)))


def _randn_like(like: Tensor, generator: torch.Generator | None) -> Tensor:
    """Standard normal noise shaped like ``like``, drawn on the generator's device when one is given."""
    device = generator.device if generator is not None else like.device
    return torch.randn(like.shape, generator=generator, device=device, dtype=like.dtype).to(like.device)
