"""One training loop for every learned method, generic over an *objective* (:mod:`objectives`).

The objective owns its networks and optimisers, makes one optimisation step from a batch of
normalised (LR, HR) pairs, super-resolves LR crops for validation and exports its weights. The loop
around it brings data, determinism, validation, logs, atomic checkpoints, ``--resume`` and
DistributedDataParallel under ``torchrun`` (:mod:`distributed`).

Determinism: every step re-seeds torch from ``(seed, step, rank)`` and draws its batch from a
DistributedSampler epoch order plus per-item seeds, so a resumed run continues bit for bit.
"""

from __future__ import annotations

import csv
import functools
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler

from .augment import AcquisitionRanges
from .data import PairDataset, denormalise, load_studies, split_studies
from .defaults import TrainConfig
from .distributed import Distributed
from .errors import PerfGenError
from .io import atomic_path, write_json
from .metrics import psnr
from .models import resolve_device
from .objectives import OBJECTIVES
from .phantom import PhantomPriors, make_phantom

CHECKPOINT = "checkpoint.pt"
LOG = "log.csv"


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
    objective, low_res: torch.Tensor, high_res: torch.Tensor, device: torch.device
) -> tuple[float, float]:
    """Mean PSNR (0-255 scale, per-crop HR peak) of the objective's SR and of zero-padding."""
    estimate = torch.cat([objective.super_resolve(chunk.to(device)).cpu() for chunk in low_res.split(16)])
    to_image = [denormalise(x.numpy()[:, 0], 1.0) for x in (estimate, low_res, high_res)]
    peaks = to_image[2].max(axis=(-2, -1))
    scores = [
        float(np.mean([psnr(a[i], to_image[2][i], peaks[i]) for i in range(len(peaks))]))
        for a in to_image[:2]
    ]
    return scores[0], scores[1]


def save_checkpoint(path: Path, state: dict) -> None:
    """Write a checkpoint atomically (temporary file, then rename)."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


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
    data_info: dict | None = None,
) -> Path:
    """Train an objective on studies, checkpointing into ``out``; returns the exported model path.
    ``data_info`` (where the studies came from) is recorded with the model's training metadata."""
    out = Path(out)
    runtime = Distributed(device)
    torch.manual_seed(config.seed)
    objective = objective_factory(config, runtime)
    checkpoint_path, log_path, model_path = out / CHECKPOINT, out / LOG, out / "model.safetensors"
    start = 0
    if resume:
        if not checkpoint_path.exists():
            raise PerfGenError(f"`resume`: no checkpoint in {out}; start without `resume`")
        state = load_checkpoint(checkpoint_path)
        objective.load_state(state["objective"])
        start = int(state["step"])
    elif checkpoint_path.exists():
        raise PerfGenError(f"{out} already holds a run; add `resume` to continue it or choose another `out`")
    if runtime.main:
        out.mkdir(parents=True, exist_ok=True)
        _remove_partials(out)
        write_json(asdict(config), out / "config.json")
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
        **({"data": data_info} if data_info else {}),
    }

    def checkpoint(step: int) -> None:
        if runtime.main:
            save_checkpoint(checkpoint_path, {"step": step, "objective": objective.state()})
            objective.export(model_path, {**training_info, "step": step})

    step, started = start, time.perf_counter()
    try:
        for low_res, high_res in loader:
            torch.manual_seed(hash((config.seed, step, runtime.rank)) % 2**63)
            objective_train_mode(objective, True)
            metrics = objective.training_step(
                low_res.to(runtime.device, non_blocking=True), high_res.to(runtime.device, non_blocking=True)
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
    priors: PhantomPriors = PhantomPriors(),  # noqa: B008 (frozen, so a shared default is safe)
) -> list:
    """Training studies from paths, or phantom studies drawn from ``priors`` in memory (seeds
    ``phantom_seed + i``)."""
    if data:
        return load_studies(data)
    if not phantom_cases or phantom_cases < 2:
        raise PerfGenError(
            "`phantom_cases` must be at least 2 (studies are split into training and validation)"
        )
    seeds = range(phantom_seed, phantom_seed + phantom_cases)
    draw = functools.partial(make_phantom, frames=phantom_frames, priors=priors)
    if workers > 1:
        from multiprocessing import get_context

        with get_context("spawn").Pool(workers) as pool:
            phantoms = pool.map(draw, seeds)
    else:
        phantoms = [draw(s) for s in seeds]
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
    priors: dict | None = None,
) -> Path:
    """Gather studies, split them by study and train ``objective`` (a key of :data:`objectives.OBJECTIVES`).
    ``priors``: changes to the phantom's :class:`~phantom.PhantomPriors` table (a nested dict)."""
    if config.steps < 1 or config.batch < 1:
        raise PerfGenError("`steps` and `batch` must be at least 1")
    torch_device = resolve_device(device)
    table = PhantomPriors.from_dict(priors or {})
    studies = gather_studies(
        data, phantom_cases, phantom_frames, phantom_seed, workers=max(1, config.workers), priors=table
    )
    train_set, val_set = split_studies(studies, val_studies, seed=config.seed)
    data_info = (
        {"paths": [str(p) for p in data]}
        if data
        else {
            "phantom_cases": phantom_cases,
            "phantom_frames": phantom_frames,
            "phantom_seed": phantom_seed,
            "priors_changed": priors or {},
        }
    )
    return train(
        OBJECTIVES[objective],
        train_set,
        val_set,
        config,
        out,
        torch_device,
        resume=resume,
        progress=progress,
        data_info=data_info,
    )
