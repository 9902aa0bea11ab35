import math
from itertools import pairwise

import pytest
import torch

from PerfGenSRLib.errors import PerfGenError
from PerfGenSRLib.schedule import DiffusionSchedule


def _oracle_eps(schedule: DiffusionSchedule, y_t: torch.Tensor, y0: torch.Tensor, t: int) -> torch.Tensor:
    """The noise a perfect network would predict at step ``t`` for clean image ``y0``."""
    gamma = schedule.gammas[t].item()
    return (y_t - math.sqrt(gamma) * y0) / math.sqrt(1.0 - gamma)


def test_schedule_buffers_follow_the_paper():
    schedule = DiffusionSchedule()
    assert schedule.num_timesteps == 2000 and schedule.gammas.dtype == torch.float64
    assert schedule.gammas[0] == 1.0 and schedule.betas[1].item() == pytest.approx(1e-6)
    assert schedule.betas[-1].item() == pytest.approx(1e-2)
    assert torch.allclose(schedule.gammas[1:], torch.cumprod(1.0 - schedule.betas[1:], 0))
    assert torch.all(schedule.gammas[1:] < schedule.gammas[:-1])
    assert schedule.gammas[-1] < 1e-4  # y_T is (nearly) pure noise
    rebuilt = DiffusionSchedule(**schedule.config())
    assert torch.equal(rebuilt.gammas, schedule.gammas)
    with pytest.raises(PerfGenError):
        DiffusionSchedule(beta_start=0.1, beta_end=0.01)


def test_add_noise_has_the_moments_of_q_yt_given_y0():
    schedule = DiffusionSchedule(100)
    generator = torch.Generator().manual_seed(0)
    y0 = torch.linspace(-1, 1, 12, dtype=torch.float64).reshape(1, 1, 3, 4)
    draws = 20000
    for t in (1, 30, 100):
        sqrt_gamma = schedule.noise_level(t).double().expand(draws)
        noise = torch.randn(draws, 1, 3, 4, generator=generator, dtype=torch.float64)
        y_t = schedule.add_noise(y0.expand(draws, -1, -1, -1), noise, sqrt_gamma)
        gamma = schedule.gammas[t].item()
        assert torch.allclose(y_t.mean(0), math.sqrt(gamma) * y0[0], atol=4 * math.sqrt((1 - gamma) / draws))
        assert torch.allclose(y_t.var(0), torch.full_like(y0[0], 1 - gamma), rtol=0.05)


def test_add_noise_uses_one_noise_level_per_item_and_keeps_dtype():
    schedule = DiffusionSchedule(10)
    y0, noise = torch.ones(2, 1, 4, 4), torch.zeros(2, 1, 4, 4)
    y_t = schedule.add_noise(y0, noise, torch.tensor([1.0, 0.5]))
    assert y_t.dtype == torch.float32
    assert torch.allclose(y_t[0], y0[0]) and torch.allclose(y_t[1], 0.5 * y0[1])


def test_training_noise_levels_lie_between_neighbouring_steps():
    schedule = DiffusionSchedule(50)
    levels = schedule.sample_training_noise_level(4000, generator=torch.Generator().manual_seed(1))
    assert levels.shape == (4000,) and levels.dtype == torch.float32
    assert levels.min() >= schedule.sqrt_gammas[-1].item() - 1e-6 and levels.max() <= 1.0
    # the step t with sqrt(gamma_t) <= level < sqrt(gamma_{t-1}); t must be uniform on 1..T
    steps = 1 + (schedule.sqrt_gammas[None, 1:] > levels.double()[:, None]).sum(1)
    counts = torch.bincount(steps, minlength=51)[1:]
    assert counts.min() > 40 and counts.max() < 130  # 80 expected per step
    again = schedule.sample_training_noise_level(4000, generator=torch.Generator().manual_seed(1))
    assert torch.equal(levels, again)


def test_ddpm_step_mean_is_the_true_posterior_mean_and_variance_is_one_minus_alpha():
    schedule = DiffusionSchedule(200)
    generator = torch.Generator().manual_seed(2)
    y0 = torch.randn(3, 1, 8, 8, generator=generator, dtype=torch.float64)
    for t in (2, 57, 200):
        eps = torch.randn(y0.shape, generator=generator, dtype=torch.float64)
        y_t = schedule.add_noise(y0, eps, schedule.sqrt_gammas[t].expand(3))
        alpha, gamma, gamma_prev = (
            schedule.alphas[t].item(),
            schedule.gammas[t].item(),
            schedule.gammas[t - 1].item(),
        )
        posterior_mean = (
            math.sqrt(gamma_prev) * (1 - alpha) / (1 - gamma) * y0
            + math.sqrt(alpha) * (1 - gamma_prev) / (1 - gamma) * y_t
        )
        zeros, ones = torch.zeros_like(y0), torch.ones_like(y0)
        mean = schedule.ddpm_step(eps, t, y_t, variance_noise=zeros)
        assert torch.allclose(mean, posterior_mean, atol=1e-9)
        clipped_branch = schedule.ddpm_step(eps, t, y_t, clip_y0=1e6, variance_noise=zeros)
        assert torch.allclose(clipped_branch, posterior_mean, atol=1e-9)
        shifted = schedule.ddpm_step(eps, t, y_t, variance_noise=ones)
        assert torch.allclose(shifted - mean, torch.full_like(y0, math.sqrt(1 - alpha)))


def test_ddpm_last_step_adds_no_noise_and_clipping_bounds_y0():
    schedule = DiffusionSchedule(20)
    y_1 = torch.randn(2, 1, 5, 5)
    eps = torch.randn(2, 1, 5, 5)
    first = schedule.ddpm_step(eps, 1, y_1, generator=torch.Generator().manual_seed(0))
    second = schedule.ddpm_step(eps, 1, y_1, generator=torch.Generator().manual_seed(1))
    assert torch.equal(first, second)
    assert torch.allclose(first, schedule.predict_y0(y_1, eps, 1), atol=1e-5)  # gamma_0 = 1: the mean is y0
    clipped = schedule.ddpm_step(10 * eps, 1, y_1, clip_y0=0.5)
    assert clipped.abs().max() <= 0.5 + 1e-6


def test_ancestral_chain_with_a_perfect_denoiser_ends_at_y0():
    schedule = DiffusionSchedule(100, beta_start=1e-4, beta_end=0.1)
    generator = torch.Generator().manual_seed(3)
    y0 = torch.rand(2, 1, 6, 6, generator=generator, dtype=torch.float64) * 2 - 1
    y = torch.randn(y0.shape, generator=generator, dtype=torch.float64)
    for t in range(schedule.num_timesteps, 0, -1):
        y = schedule.ddpm_step(_oracle_eps(schedule, y, y0, t), t, y, generator=generator)
    assert torch.allclose(y, y0, atol=1e-8)


def test_ddim_with_true_noise_recovers_y0_in_one_step():
    schedule = DiffusionSchedule()
    generator = torch.Generator().manual_seed(4)
    y0 = torch.randn(2, 1, 7, 9, generator=generator, dtype=torch.float64)
    eps = torch.randn(y0.shape, generator=generator, dtype=torch.float64)
    for t in (1, 800, 2000):
        y_t = schedule.add_noise(y0, eps, schedule.sqrt_gammas[t].expand(2))
        assert torch.allclose(schedule.ddim_step(eps, t, 0, y_t), y0, atol=1e-8)
        assert torch.allclose(schedule.predict_y0(y_t, eps, torch.tensor([t, t])), y0, atol=1e-8)


def test_ddim_step_with_eta_zero_stays_on_the_noise_trajectory_and_eta_adds_noise():
    schedule = DiffusionSchedule(1000)
    generator = torch.Generator().manual_seed(5)
    y0 = torch.randn(1, 1, 8, 8, generator=generator, dtype=torch.float64)
    eps = torch.randn(y0.shape, generator=generator, dtype=torch.float64)
    y_t = schedule.add_noise(y0, eps, schedule.sqrt_gammas[900].reshape(1))
    expected = schedule.add_noise(y0, eps, schedule.sqrt_gammas[400].reshape(1))
    assert torch.allclose(schedule.ddim_step(eps, 900, 400, y_t), expected, atol=1e-9)
    noisy = schedule.ddim_step(eps, 900, 400, y_t, eta=1.0, generator=generator)
    assert not torch.allclose(noisy, expected, atol=1e-3)
    with pytest.raises(ValueError):
        schedule.ddim_step(eps, 400, 900, y_t)


def test_ddim_chain_with_a_perfect_denoiser_and_clipping_ends_at_y0():
    schedule = DiffusionSchedule(500)
    generator = torch.Generator().manual_seed(6)
    y0 = torch.rand(2, 1, 6, 6, generator=generator) * 2 - 1
    y = torch.randn(y0.shape, generator=generator)
    timesteps = schedule.ddim_timesteps(10)
    for t, t_prev in zip(timesteps, timesteps[1:] + [0], strict=True):
        y = schedule.ddim_step(
            _oracle_eps(schedule, y, y0, t), t, t_prev, y, eta=0.5, clip_y0=1.0, generator=generator
        )
    assert y.dtype == torch.float32 and torch.allclose(y, y0, atol=1e-4)


def test_ddim_timesteps_are_a_descending_subsequence_starting_at_T():
    schedule = DiffusionSchedule(2000)
    for steps in (1, 2, 7, 50, 1000, 2000):
        timesteps = schedule.ddim_timesteps(steps)
        assert len(timesteps) == steps and timesteps[0] == 2000
        assert all(a > b for a, b in pairwise(timesteps))
        assert all(1 <= t <= 2000 for t in timesteps)
    assert schedule.ddim_timesteps(2000) == list(range(2000, 0, -1))
    gaps = torch.diff(torch.tensor(schedule.ddim_timesteps(50)))
    assert gaps.max() - gaps.min() <= 1  # evenly spread
    for steps in (0, 2001):
        with pytest.raises(PerfGenError):
            schedule.ddim_timesteps(steps)


def test_noise_level_is_sqrt_gamma_and_rejects_out_of_range_steps():
    schedule = DiffusionSchedule(30)
    assert schedule.noise_level(0).item() == 1.0
    levels = schedule.noise_level(torch.tensor([1, 30]))
    assert levels.dtype == torch.float32
    assert torch.allclose(levels.double(), schedule.gammas[[1, 30]].sqrt())
    with pytest.raises(ValueError):
        schedule.noise_level(31)
    with pytest.raises(ValueError):
        schedule.ddpm_step(torch.zeros(1), 0, torch.zeros(1))


@pytest.mark.parametrize("prediction", ["epsilon", "sample", "v_prediction"])
def test_each_prediction_splits_back_into_the_noise_and_the_image_it_was_made_from(prediction):
    schedule = DiffusionSchedule(prediction=prediction)
    assert DiffusionSchedule(**schedule.config()).prediction == prediction
    generator = torch.Generator().manual_seed(3)
    y0 = torch.randn(3, 1, 5, 6, generator=generator, dtype=torch.float64)
    noise = torch.randn(3, 1, 5, 6, generator=generator, dtype=torch.float64)
    t = torch.tensor([5, 900, 2000])
    y_t = schedule.add_noise(y0, noise, schedule.sqrt_gammas[t])
    output = schedule.training_target(y0, noise, schedule.sqrt_gammas[t])
    eps, image = schedule.split(output, y_t, t)
    assert torch.allclose(eps, noise, atol=1e-6) and torch.allclose(image, y0, atol=1e-6)
    # a perfect prediction takes DDIM straight to the clean image, from any step
    for step in (2000, 700, 3):
        y_step = schedule.add_noise(y0, noise, schedule.sqrt_gammas[step])
        perfect = schedule.training_target(y0, noise, schedule.sqrt_gammas[step])
        assert torch.allclose(schedule.ddim_step(perfect, step, 0, y_step), y0, atol=1e-5)


def test_min_snr_weights_weigh_the_image_error_alike_for_every_prediction():
    levels = DiffusionSchedule().sqrt_gammas[torch.tensor([10, 300, 1200, 2000])]
    gamma = levels.square()
    snr = gamma / (1 - gamma)
    weights = {
        p: DiffusionSchedule(prediction=p).loss_weight(levels, 5.0).double()
        for p in ("epsilon", "sample", "v_prediction")
    }
    # an image error e is an output error e*sqrt(snr) for epsilon, e for the image, e*sqrt(snr+1)... in L2:
    # weight * (d output / d y0)^2 must be the same min(snr, 5) for all three
    assert torch.allclose(weights["sample"], snr.clamp_max(5.0).float().double(), rtol=1e-5)
    assert torch.allclose(weights["epsilon"] * snr, weights["sample"], rtol=1e-4)
    assert torch.allclose(weights["v_prediction"] * (snr + 1), weights["sample"], rtol=1e-4)
    assert torch.equal(DiffusionSchedule().loss_weight(levels, None), torch.ones(4))
    with pytest.raises(PerfGenError, match="unknown prediction"):
        DiffusionSchedule(prediction="velocity")
