"""One training loop for every learned method (PerfGen here, the GAN baseline in ``gan.py``).

A method is an *objective*: it owns its networks and optimisers, makes one optimisation step from
a batch of normalised (LR, HR) pairs, super-resolves LR crops for validation and exports its
weights. The loop around it brings data, determinism, EMA-free bookkeeping, validation, logs,
atomic checkpoints, ``--resume`` and DistributedDataParallel under ``torchrun``.

Determinism: every step re-seeds torch from ``(seed, step, rank)`` and draws its batch from a
DistributedSampler epoch order plus per-item seeds, so a resumed run continues bit for bit.
"""

from __future__ import annotations

import copy
import csv
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from .augment import AcquisitionRanges
from .data import PairDataset, denormalise, split_studies
from .errors import PerfGenError
from .metrics import psnr
from .models import load_model, save_model
from .schedule import DiffusionSchedule
from .unet import PRESETS, UNet

CHECKPOINT = "checkpoint.pt"
LOG = "log.csv"


@dataclass
class TrainConfig:
    """Hyper-parameters of a run; the defaults are the paper's (``paper`` preset)."""

    preset: str = "paper"
    steps: int = 50_000
    batch: int = 128
    lr: float = 3e-5
    weight_decay: float = 1e-2
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    seed: int = 0
    workers: int = 2
    log_every: int = 50
    val_every: int = 1000
    checkpoint_every: int = 1000
    val_pairs: int = 32
    val_steps: int = 20
    bf16: bool = True  # autocast on CUDA (a small network may run faster without)
    time_limit: float | None = None  # minutes: checkpoint and stop after this long (resume later)
    residual_scale: float = 5.0  # PerfGen diffuses (HR - LR) * scale; 0 diffuses the HR itself as the paper
    prediction: str = "epsilon"  # what the network predicts: epsilon (the paper), sample or v_prediction
    min_snr_gamma: float | None = None  # min-SNR-gamma loss weighting (Hang et al. 2023); None: plain L1
    mean_fraction: float = 0.0  # share of each batch at the top noise level (trains the one-pass mean)
    crop: int = 96  # training crop side (the network is fully convolutional; inference sees any size)
    vary_acquisition: bool = False  # vary each HR frame as another scanner would (augment.AcquisitionRanges)
    val_sampler: str = "ddim"  # PerfGen's sampler for validation PSNR: ddim (val_steps steps) or mean
    init: str | None = None  # start from this model's weights (fine-tuning) instead of random ones
    extra: dict = field(default_factory=dict)


class Distributed:
    """Rank, world size and device of this process (one process without ``torchrun``)."""

    def __init__(self, device: torch.device):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.device = device
        if self.world > 1 and not dist.is_initialized():
            if device.type == "cuda":
                local = int(os.environ.get("LOCAL_RANK", "0"))
                self.device = torch.device("cuda", local)
                torch.cuda.set_device(self.device)
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        """The module as trained: DistributedDataParallel when several processes run."""
        return DistributedDataParallel(module) if self.world > 1 else module

    def close(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


class DiffusionObjective:
    """PerfGen: L1 between predicted and true noise (eq. 9), AdamW, EMA of the weights.

    With ``residual_scale`` > 0 the diffused quantity is the scaled residual ``(HR - LR) * scale``
    rather than the HR image (residual diffusion, as SRDiff): the same network, schedule and loss,
    but a model that has learnt little still returns the LR, and training converges far sooner.
    """

    name = "perfgen"

    def __init__(self, config: TrainConfig, runtime: Distributed, schedule: DiffusionSchedule | None = None):
        if config.preset not in PRESETS:
            raise PerfGenError(f"unknown preset '{config.preset}'; choose one of {', '.join(PRESETS)}")
        self.config, self.runtime = config, runtime
        self.schedule = schedule or DiffusionSchedule(prediction=config.prediction)
        self.net_config = PRESETS[config.preset]
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

    def training_step(self, lr: torch.Tensor, hr: torch.Tensor) -> dict[str, float]:
        batch = lr.shape[0]
        sqrt_gamma = self.schedule.sample_training_noise_level(batch, device=lr.device)
        top = torch.rand(batch, device=lr.device) < self.config.mean_fraction
        top_level = self.schedule.noise_level(self.schedule.num_timesteps, device=lr.device)
        sqrt_gamma = torch.where(top, top_level, sqrt_gamma)
        noise = torch.randn_like(hr)
        y0 = (hr - lr) * self.config.residual_scale if self.config.residual_scale else hr
        noisy = self.schedule.add_noise(y0, noise, sqrt_gamma)
        target = self.schedule.training_target(y0, noise, sqrt_gamma)
        with autocast(lr.device, self.config.bf16):
            predicted = self.trained(lr, noisy, sqrt_gamma)
        weight = self.schedule.loss_weight(sqrt_gamma, self.config.min_snr_gamma).to(lr.device)
        weight = torch.where(top, torch.ones_like(weight), weight)  # the one-pass mean is trained unweighted
        loss = (weight * (predicted.float() - target).abs().mean(dim=(1, 2, 3))).mean()
        grad_norm = optimise(loss, self.optimizer, self.network, self.config, ema=self.ema)
        return {"loss": loss.item(), "grad_norm": grad_norm}

    @torch.no_grad()
    def super_resolve(self, lr: torch.Tensor) -> torch.Tensor:
        from .sample import DiffusionSampler

        sampler = DiffusionSampler(
            self.ema,
            self.schedule,
            sampler=self.config.val_sampler,
            steps=1 if self.config.val_sampler == "mean" else self.config.val_steps,
            residual_scale=self.config.residual_scale,
            flips=1,
        )
        return sampler(lr, generator=torch.Generator(lr.device).manual_seed(0))

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


class BatchKeys:
    """Per step, this rank's ``(item, seed)`` keys: DistributedSampler epochs, resumable at any step."""

    def __init__(self, n: int, config: TrainConfig, runtime: Distributed, start_step: int):
        self.sampler = DistributedSampler(
            range(n),
            num_replicas=runtime.world,
            rank=runtime.rank,
            shuffle=True,
            seed=config.seed,
            drop_last=n >= runtime.world,
        )
        self.batch, self.seed, self.start, self.steps = config.batch, config.seed, start_step, config.steps
        self.per_epoch = max(1, len(self.sampler) // self.batch)

    def __len__(self) -> int:
        return max(0, self.steps - self.start)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        step = self.start
        while step < self.steps:
            epoch, offset = divmod(step, self.per_epoch)
            self.sampler.set_epoch(epoch)
            order = list(self.sampler)
            order = (order * math.ceil(self.batch / len(order)))[: max(self.batch, len(order))]
            seed = self.seed * 1_000_003 + epoch
            for position in range(offset, self.per_epoch):
                if step >= self.steps:
                    return
                yield [(i, seed) for i in order[position * self.batch : (position + 1) * self.batch]]
                step += 1


def validation_batch(studies, config: TrainConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed set of held-back pairs (no augmentation, 40% of the lines) for validation PSNR."""
    dataset = PairDataset(studies, augment=False)
    picks = np.linspace(0, len(dataset) - 1, min(config.val_pairs, len(dataset))).round().astype(int)
    pairs = [dataset[int(i)] for i in picks]
    return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])


def validation_psnr(
    objective, lr: torch.Tensor, hr: torch.Tensor, device: torch.device
) -> tuple[float, float]:
    """Mean PSNR (0-255 scale, per-crop HR peak) of the objective's SR and of zero-padding."""
    sr = torch.cat([objective.super_resolve(chunk.to(device)).cpu() for chunk in lr.split(16)])
    to_image = [denormalise(x.numpy()[:, 0], 1.0) for x in (sr, lr, hr)]
    peaks = to_image[2].max(axis=(-2, -1))
    scores = [
        float(np.mean([psnr(a[i], to_image[2][i], peaks[i]) for i in range(len(peaks))]))
        for a in to_image[:2]
    ]
    return scores[0], scores[1]


def save_checkpoint(path: Path, state: dict) -> None:
    """Write a checkpoint atomically (temporary file, then rename)."""
    tmp = path.with_name(path.name + ".partial")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict:
    """Read a checkpoint of ours without unpickling arbitrary objects."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any corruption reads as one message
        raise PerfGenError(f"{path}: not a readable PerfGenSR checkpoint ({type(error).__name__})") from None


def train(
    objective_factory: Callable[[TrainConfig, Distributed], object],
    train_studies: list,
    val_studies: list,
    config: TrainConfig,
    out: str | os.PathLike,
    device: torch.device,
    resume: bool = False,
    progress: Callable[[int, int, dict], None] | None = None,
) -> Path:
    """Train an objective on studies, checkpointing into ``out``; returns the exported model path."""
    out = Path(out)
    runtime = Distributed(device)
    torch.manual_seed(config.seed)
    objective = objective_factory(config, runtime)
    checkpoint_path, log_path, model_path = out / CHECKPOINT, out / LOG, out / "model.safetensors"
    start = 0
    if resume:
        if not checkpoint_path.exists():
            raise PerfGenError(f"--resume: no checkpoint in {out}; start without --resume")
        state = load_checkpoint(checkpoint_path)
        objective.load_state(state["objective"])
        start = int(state["step"])
    elif checkpoint_path.exists():
        raise PerfGenError(f"{out} already holds a run; add --resume to continue it or choose another --out")
    if runtime.main:
        out.mkdir(parents=True, exist_ok=True)
        _remove_partials(out)
        (out / "config.json").write_text(json.dumps(asdict(config), indent=2))
        _trim_log(log_path, start)
    acquisition = AcquisitionRanges() if config.vary_acquisition else None
    dataset = PairDataset(train_studies, crop=config.crop, acquisition=acquisition)
    loader = DataLoader(
        dataset,
        batch_sampler=BatchKeys(len(dataset), config, runtime, start),
        num_workers=config.workers,
        persistent_workers=False,
        pin_memory=runtime.device.type == "cuda",
    )
    val = validation_batch(val_studies, config) if (val_studies and runtime.main) else None
    training_info = {
        "objective": objective.name,
        "config": asdict(config),
        "train_studies": len(train_studies),
        "val_studies": len(val_studies),
        "acquisition": acquisition.config() if acquisition else None,
    }

    def checkpoint(step: int) -> None:
        if runtime.main:
            save_checkpoint(checkpoint_path, {"step": step, "objective": objective.state()})
            objective.export(model_path, {**training_info, "step": step})

    step, started = start, time.perf_counter()
    try:
        for lr, hr in loader:
            torch.manual_seed(hash((config.seed, step, runtime.rank)) % 2**63)
            objective_train_mode(objective, True)
            metrics = objective.training_step(
                lr.to(runtime.device, non_blocking=True), hr.to(runtime.device, non_blocking=True)
            )
            step += 1
            row = {"step": step, **metrics, "seconds": round(time.perf_counter() - started, 2)}
            if val is not None and (step % config.val_every == 0 or step == config.steps):
                objective_train_mode(objective, False)
                row["val_psnr"], row["val_psnr_zeropad"] = validation_psnr(objective, *val, runtime.device)
            if runtime.main and (step % config.log_every == 0 or "val_psnr" in row or step == config.steps):
                _append_log(log_path, row)
            if step % config.checkpoint_every == 0 or step == config.steps:
                checkpoint(step)
            if progress and runtime.main:
                progress(step, config.steps, row)
            if (
                config.time_limit
                and time.perf_counter() - started > 60 * config.time_limit
                and step < config.steps
            ):
                checkpoint(step)
                break
    except KeyboardInterrupt:
        checkpoint(step)
        raise
    finally:
        runtime.close()
    return model_path


def objective_train_mode(objective, training: bool) -> None:
    """Switch every trained network of an objective between train and eval mode."""
    for value in vars(objective).values():
        if isinstance(value, torch.nn.Module) and value is not getattr(objective, "ema", None):
            value.train(training)


def _remove_partials(out: Path) -> None:
    """Delete what a killed run was writing when it died (``*.partial``); its finished files are whole."""
    for stale in out.glob("*.partial"):
        if stale.is_dir():
            shutil.rmtree(stale)
        else:
            stale.unlink()


def _trim_log(path: Path, step: int) -> None:
    if not path.exists():
        return
    with open(path, newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if int(r["step"]) <= step]
    path.unlink()
    for row in rows:
        _append_log(path, row)


LOG_COLUMNS = ["step", "loss", "grad_norm", "val_psnr", "val_psnr_zeropad", "seconds"]


def _append_log(path: Path, row: dict) -> None:
    columns = LOG_COLUMNS + [k for k in row if k not in LOG_COLUMNS]
    new = not path.exists()
    if not new:
        with open(path, newline="") as handle:
            columns = next(csv.reader(handle))
    with open(path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow(row)


def gather_studies(
    data: list[str] | None,
    phantom_cases: int | None,
    phantom_frames: int,
    phantom_seed: int,
    workers: int = 1,
) -> list:
    """Training studies from paths, or phantom studies generated in memory (seeds ``phantom_seed + i``)."""
    from .data import load_studies

    if data:
        return load_studies(data)
    from .phantom import make_phantom

    if not phantom_cases or phantom_cases < 2:
        raise PerfGenError(
            "--phantom-cases must be at least 2 (studies are split into training and validation)"
        )
    seeds = range(phantom_seed, phantom_seed + phantom_cases)
    if workers > 1:
        from multiprocessing import get_context

        with get_context("spawn").Pool(workers) as pool:
            phantoms = pool.starmap(make_phantom, [(s, phantom_frames) for s in seeds])
    else:
        phantoms = [make_phantom(s, phantom_frames) for s in seeds]
    return [p.to_study() for p in phantoms]


def run_training(
    config: TrainConfig,
    out: str | os.PathLike,
    *,
    data: list[str] | None = None,
    phantom_cases: int | None = None,
    phantom_frames: int = 40,
    phantom_seed: int = 0,
    val_studies: int = 2,
    device: str = "auto",
    resume: bool = False,
    progress: Callable[[int, int, dict], None] | None = None,
    objective: str = "perfgen",
) -> Path:
    """Gather studies, split them by study and train ``objective`` (``perfgen`` or ``gan``)."""
    from .models import resolve_device

    if config.steps < 1 or config.batch < 1:
        raise PerfGenError("--steps and --batch must be at least 1")
    torch_device = resolve_device(device)
    studies = gather_studies(
        data, phantom_cases, phantom_frames, phantom_seed, workers=max(1, config.workers)
    )
    train_set, val_set = split_studies(studies, val_studies, seed=config.seed)
    factories = {"perfgen": DiffusionObjective}
    if objective == "gan":
        from .gan import GanObjective

        factories["gan"] = GanObjective
    return train(
        factories[objective], train_set, val_set, config, out, torch_device, resume=resume, progress=progress
    )
