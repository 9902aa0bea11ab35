"""Super-resolve whole studies: every frame and slice, batched, with any method behind one interface.

A *method* turns normalised LR frames ``(B, 1, H, W)`` into normalised SR frames of the same shape
(``zeropad``: the LR itself; ``perfgen``: the diffusion sampler; ``gan``: the generator). Studies are
normalised per frame (:mod:`data`), passed through in batches and brought back to the input's scale.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import kspace
from .data import denormalise, frame_peak, normalise
from .defaults import DEFAULT_DDIM_STEPS, DEFAULT_MEAN_FLIPS, DEFAULT_SAMPLER, METHODS, SAMPLERS, samples_for
from .errors import Cancelled, PerfGenError
from .models import LoadedModel, bundled_model_path, load_model, resolve_device
from .scaling import rescale, safe_scale
from .schedule import DiffusionSchedule
from .study import Study

CLIP_Y0 = 3.0  # predicted y0 clipped to +-3 while sampling (SR3 clips to the data range); data sit within it
Method = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


class DiffusionSampler:
    """Reverse diffusion conditioned on LR frames: the posterior ``mean`` in one network evaluation,
    ancestral ``ddpm`` (eq. 8) or ``ddim`` over ``steps``.

    ``mean`` evaluates the network once at the top noise level and returns its clean-image estimate
    (with ``flips`` = 2, the average of that estimate for the frame and for its mirror image). The
    network runs under bf16 autocast where ``bf16`` says so (default: on CUDA only). A model trained
    on the residual (``residual_scale`` > 0) returns ``LR + y0 / residual_scale``.
    """

    def __init__(
        self,
        network: torch.nn.Module,
        schedule: DiffusionSchedule,
        sampler: str = DEFAULT_SAMPLER,
        steps: int | None = None,
        eta: float = 0.0,
        cancel: Callable[[], bool] | None = None,
        bf16: bool | None = None,
        residual_scale: float = 0.0,
        clip_y0: float | None = CLIP_Y0,
        flips: int = DEFAULT_MEAN_FLIPS,
    ):
        if sampler not in SAMPLERS:
            raise PerfGenError(f"unknown sampler '{sampler}'; choose one of {', '.join(SAMPLERS)}")
        if steps is None:
            steps = {"ddpm": schedule.num_timesteps, "mean": 1}.get(sampler, DEFAULT_DDIM_STEPS)
        if not 1 <= steps <= schedule.num_timesteps:
            raise PerfGenError(f"`steps` must be between 1 and {schedule.num_timesteps}, got {steps}")
        if sampler == "mean" and steps != 1:
            raise PerfGenError("the mean sampler takes one step; `steps` is for ddim and ddpm")
        if flips not in (1, 2):
            raise PerfGenError(f"flips must be 1 or 2, got {flips}")
        self.network, self.schedule, self.sampler, self.eta = network, schedule, sampler, eta
        self.timesteps = (
            list(range(schedule.num_timesteps, 0, -1))
            if sampler == "ddpm"
            else schedule.ddim_timesteps(steps)
        )
        self.cancel, self.bf16, self.residual_scale, self.clip_y0 = cancel, bf16, residual_scale, clip_y0
        self.flips = flips if sampler == "mean" else 1

    @torch.inference_mode()
    def __call__(self, low_res: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        y = torch.randn(low_res.shape, generator=generator, device=low_res.device, dtype=low_res.dtype)
        if self.flips == 2:  # the frame and its mirror image in one batch, mirrored back and averaged
            both = self._denoise(
                torch.cat([low_res, low_res.flip(-1)]), torch.cat([y, y.flip(-1)]), generator
            )
            first, mirrored = both.chunk(2)
            y = (first + mirrored.flip(-1)) / 2
        else:
            y = self._denoise(low_res, y, generator)
        return low_res + y / self.residual_scale if self.residual_scale else y

    def _denoise(self, low_res: torch.Tensor, y: torch.Tensor, generator: torch.Generator | None):
        """Run the reverse process from ``y`` at the first timestep to the clean (scaled) target."""
        for i, t in enumerate(self.timesteps):
            if self.cancel is not None and self.cancel():
                raise Cancelled("cancelled by the user; nothing was written")
            level = self.schedule.noise_level(t).to(low_res.device, torch.float32).expand(low_res.shape[0])
            bf16 = low_res.device.type == "cuda" if self.bf16 is None else self.bf16
            with torch.autocast(low_res.device.type, dtype=torch.bfloat16, enabled=bf16):
                output = self.network(low_res, y, level).float()
            if self.sampler == "ddpm":
                y = self.schedule.ddpm_step(output, t, y, generator=generator, clip_y0=self.clip_y0)
            else:
                t_prev = self.timesteps[i + 1] if i + 1 < len(self.timesteps) else 0
                y = self.schedule.ddim_step(
                    output, t, t_prev, y, eta=self.eta, generator=generator, clip_y0=self.clip_y0
                )
        return y


def available_methods(models_dir: str | os.PathLike | None = None) -> list[str]:
    """Methods usable without a user model: ``zeropad`` always, learned ones when bundled weights exist."""
    from .models import has_bundled_model

    if models_dir:
        return [m for m in METHODS if m == "zeropad" or (Path(models_dir) / f"{m}.safetensors").exists()]
    return [m for m in METHODS if m == "zeropad" or has_bundled_model(m)]


def load_method(
    method: str,
    model: str | os.PathLike | None = None,
    *,
    device: torch.device,
    sampler: str = DEFAULT_SAMPLER,
    steps: int | None = None,
    trust_checkpoint: bool = False,
    cancel: Callable[[], bool] | None = None,
) -> Method:
    """The method as a function of normalised LR batches (and a generator for stochastic ones)."""
    if method == "zeropad":
        return lambda low_res, generator: low_res
    if method not in METHODS:
        raise PerfGenError(f"unknown method '{method}'; choose one of {', '.join(METHODS)}")
    path = Path(model) if model else bundled_model_path(method)
    if not model and not path.exists():
        raise PerfGenError(f"no bundled {method} model in {path.parent}; give one with `model`")
    if method == "gan":
        generator_net = load_model(
            path, "regain-generator", device=device, trust_checkpoint=trust_checkpoint
        ).module.requires_grad_(False)
        return lambda low_res, generator: generator_net(low_res)
    loaded = load_model(path, "perfgen-unet", device=device, trust_checkpoint=trust_checkpoint)
    return sampler_for(loaded, sampler=sampler, steps=steps, cancel=cancel)


def sampler_for(loaded: LoadedModel, **options) -> DiffusionSampler:
    """The diffusion sampler of a loaded PerfGen model, with the schedule and target it was trained with."""
    schedule = DiffusionSchedule(**loaded.meta.get("schedule", {}))
    return DiffusionSampler(
        loaded.module, schedule, residual_scale=float(loaded.meta.get("residual_scale", 0.0)), **options
    )


def _out_of_memory(error: RuntimeError) -> bool:
    return isinstance(error, torch.cuda.OutOfMemoryError) or "out of memory" in str(error).lower()


@dataclass
class SuperResolution:
    """The result of super-resolving a study."""

    study: Study  # same geometry and times as the input, intensities on the input's scale
    uncertainty: Study | None  # per-pixel SD over samples when samples > 1
    low_res: Study  # the LR frames the method saw


def super_resolve_study(
    study: Study,
    method: str = "perfgen",
    *,
    model: str | os.PathLike | None = None,
    sampler: str = DEFAULT_SAMPLER,
    steps: int | None = None,
    samples: int | None = None,
    seed: int = 0,
    device: str = "auto",
    batch: int = 8,
    lr_fraction: float | None = None,
    trust_checkpoint: bool = False,
    measured_lines: int | None = None,
    data_consistency: bool = True,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> SuperResolution:
    """Super-resolve every frame of ``study`` (never modified) with ``method``.

    ``lr_fraction`` simulates LR from the study first (retrospective use); otherwise the study is the
    LR input on the HR grid, of which ``measured_lines`` central phase-encoding lines were acquired.
    When the measured lines are known (either way) and ``data_consistency`` is on, every learned
    result keeps exactly the measured central k-space lines (:func:`kspace.data_consistency`), so a
    method only ever adds the outer lines. ``samples`` > 1 averages samples and returns their SD
    (default: :data:`~.defaults.DEFAULT_SAMPLES` for PerfGen's stochastic samplers, else one).
    Out of GPU memory, a batch is retried at half its size (down to one frame) and the run goes on at
    that size.
    """
    samples = samples_for(method, samples, sampler)
    if samples < 1 or batch < 1:
        raise PerfGenError("`samples` and `batch` must be at least 1")
    torch_device = resolve_device(device)
    frames = study.frames.reshape(-1, *study.shape[2:])
    scale = safe_scale(frames)  # any finite magnitude: normalisation then never overflows
    frames = frames / scale if scale != 1.0 else frames
    low_res = kspace.degrade(frames, lr_fraction) if lr_fraction is not None else frames.copy()
    if lr_fraction is not None:
        measured_lines = kspace.kept_lines(frames.shape[-2], lr_fraction)
    if measured_lines is not None and not 1 <= measured_lines <= frames.shape[-2]:
        raise PerfGenError(f"`measured_lines` must be between 1 and {frames.shape[-2]}, got {measured_lines}")
    keep = measured_lines if (data_consistency and method != "zeropad") else None
    run = load_method(
        method,
        model,
        device=torch_device,
        sampler=sampler,
        steps=steps,
        trust_checkpoint=trust_checkpoint,
        cancel=cancel,
    )
    generator = torch.Generator(torch_device).manual_seed(seed)
    mean, std = np.empty_like(low_res), np.zeros_like(low_res)
    start, total = 0, len(low_res)
    if progress:
        progress(0, total)
    while start < total:
        if cancel is not None and cancel():
            raise Cancelled("cancelled by the user; nothing was written")
        chunk = low_res[start : start + batch]
        peak = frame_peak(chunk)
        lr = torch.from_numpy(normalise(chunk, peak)[:, None].astype(np.float32)).to(torch_device)
        state = generator.get_state()
        try:
            draws = np.stack(
                [denormalise(run(lr, generator).float().cpu().numpy()[:, 0], peak) for _ in range(samples)]
            )
        except RuntimeError as error:  # torch.cuda.OutOfMemoryError is one
            if not _out_of_memory(error):
                raise
            if batch == 1:
                raise PerfGenError(
                    "out of GPU memory even with `batch` 1; use `device` cpu or a smaller model"
                ) from None
            batch //= 2  # the same chunk again, at half the batch, from the same random state
            generator.set_state(state)
            if torch_device.type == "cuda":
                torch.cuda.empty_cache()
            continue
        if keep:
            draws = kspace.data_consistency(draws, chunk[None], keep)
        mean[start : start + len(chunk)] = draws.mean(axis=0)
        std[start : start + len(chunk)] = draws.std(axis=0)
        start += len(chunk)
        if progress:
            progress(start, total)
    shape = study.shape
    info = {
        "data_consistency_lines": keep,
        "method": method,
        "model": str(model) if model else ("bundled" if method != "zeropad" else None),
        "sampler": sampler if method == "perfgen" else None,
        "steps": steps,
        "samples": samples,
        "seed": seed,
    }
    result = study.with_frames(rescale(mean, scale).reshape(shape))
    result.meta["super_resolution"] = info
    return SuperResolution(
        study=result,
        uncertainty=study.with_frames(rescale(std, scale).reshape(shape)) if samples > 1 else None,
        low_res=study.with_frames(rescale(low_res, scale).reshape(shape)),
    )
