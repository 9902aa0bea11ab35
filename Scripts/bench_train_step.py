"""Training-step benchmark on the CPU: eager against channels_last and ``torch.compile``, side by side.

    python Scripts/bench_train_step.py [--threads 1] [--steps 12] [--crop 64] [--batch 16]

Times full PerfGen training steps (forward, backward, AdamW, EMA) of the bundled recipe (small
preset, v-prediction, residual x5) on the same random batches, after two warm-up steps (which also
compile), and prints seconds per step and the speed-up over eager measured in this run.
"""

from __future__ import annotations

import argparse
import time

import torch

from PerfGenSRLib.defaults import TrainConfig
from PerfGenSRLib.distributed import Distributed
from PerfGenSRLib.objectives import DiffusionObjective

WARMUP = 2


def seconds_per_step(variant: str, args: argparse.Namespace) -> float:
    """Mean wall time of one training step of ``variant`` (eager, channels_last or compile)."""
    torch.manual_seed(0)
    config = TrainConfig(
        preset="small",
        batch=args.batch,
        crop=args.crop,
        prediction="v_prediction",
        mean_fraction=0.5,
        residual_scale=5.0,
        bf16=False,
        workers=0,
    )
    objective = DiffusionObjective(config, Distributed(torch.device("cpu")))
    memory_format = torch.channels_last if variant == "channels_last" else torch.contiguous_format
    objective.network.to(memory_format=memory_format)
    if variant == "compile":
        objective.trained = torch.compile(objective.network)
    shape = (args.batch, 1, args.crop, args.crop)
    batches = [
        tuple(torch.rand(shape).contiguous(memory_format=memory_format) for _ in range(2))
        for _ in range(WARMUP + args.steps)
    ]
    for low, high in batches[:WARMUP]:
        objective.training_step(low, high)
    start = time.perf_counter()
    for low, high in batches[WARMUP:]:
        objective.training_step(low, high)
    return (time.perf_counter() - start) / args.steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{args.threads} thread(s), batch {args.batch} x {args.crop}^2, {args.steps} timed steps")
    print("| variant | s / step | speed-up |")
    print("|---|---|---|")
    eager = None
    for variant in ("eager", "channels_last", "compile"):
        seconds = seconds_per_step(variant, args)
        eager = eager or seconds
        print(f"| {variant} | {seconds:.3f} | {eager / seconds:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
