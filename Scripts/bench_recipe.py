"""Training-recipe benchmark: PerfGen objectives trained side by side on the same data for the same
CPU time, then scored on the same held-out phantom frames against the noise-free truth.

    python Scripts/bench_recipe.py [--minutes 6] [--recipes base,v,x0,v-minsnr,v-scratch] [--init M]
    python Scripts/bench_recipe.py --minutes 8 --recipes v-scratch,wide-scratch,deep-scratch,shallow-scratch

Each recipe starts from ``--init`` (default: the bundled PerfGen) unless its name ends in
``-scratch``; the ``-scratch`` recipes with their own ``net`` compare U-Net widths and depths at
equal CPU cost (a costlier network takes fewer steps in the same minutes). Every recipe draws the
same batches (same seeds) from the same phantom studies, and stops after
``--minutes`` of this process's CPU time (robust to other work on the machine). Scores: PSNR/SSIM
of the one-pass posterior mean (``mean``, no mirror) and of one DDIM-5 sample, with data consistency,
in the 96x96 FOV (``bench_sampling.held_out_frames``), beside zero-padding.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch
from bench_sampling import FRACTION, held_out_frames, run

from PerfGenSRLib.data import PairDataset, split_studies
from PerfGenSRLib.defaults import TrainConfig
from PerfGenSRLib.distributed import Distributed
from PerfGenSRLib.metrics import frame_metrics
from PerfGenSRLib.models import bundled_model_path
from PerfGenSRLib.objectives import DiffusionObjective
from PerfGenSRLib.phantom import make_phantom
from PerfGenSRLib.sample import DiffusionSampler
from PerfGenSRLib.train import objective_train_mode
from PerfGenSRLib.unet import PRESETS, UNetConfig

BASE = TrainConfig(
    preset="small", batch=16, lr=1e-4, ema_decay=0.995, workers=0, bf16=False, residual_scale=5.0
)
V = dict(prediction="v_prediction", mean_fraction=0.5, crop=64)  # the bundled model's recipe since stage 4
RECIPES = {
    # the bundled model's recipe so far: noise prediction, 96x96 crops, no top-level share
    "base": dict(prediction="epsilon", crop=96),
    "v": V,
    "x0": dict(V, prediction="sample"),
    "v-minsnr": dict(V, min_snr_gamma=5.0),
    "v96": dict(V, crop=96),
    "v-scratch": V,  # the "small" preset
    # at equal CPU cost against v-scratch: 1.5x wider with one ResNet block per level, 0.75x narrower
    # with three, and 1.5x wider with three levels instead of five
    "wide-scratch": dict(V, net=dataclasses.replace(PRESETS["small"], base_channels=24, num_res_blocks=1)),
    "deep-scratch": dict(
        V, net=dataclasses.replace(PRESETS["small"], base_channels=12, norm_groups=4, num_res_blocks=3)
    ),
    "shallow-scratch": dict(
        V, net=dataclasses.replace(PRESETS["small"], base_channels=24, channel_mults=(1, 2, 4))
    ),
}


def train_for(
    config: TrainConfig, studies, minutes: float, net: UNetConfig | None = None
) -> tuple[DiffusionObjective, int]:
    """Train one objective (network ``net``, else the preset's) on ``studies`` for ``minutes`` of CPU
    time; returns it and its step count."""
    torch.manual_seed(0)
    objective = DiffusionObjective(config, Distributed(torch.device("cpu")), net_config=net)
    dataset = PairDataset(studies, crop=config.crop)
    order = np.random.default_rng(0).permutation(len(dataset))
    start, step = time.process_time(), 0
    objective_train_mode(objective, True)
    while time.process_time() - start < 60 * minutes:
        picks = order[(step * config.batch + np.arange(config.batch)) % len(order)]
        pairs = [dataset[(int(i), step)] for i in picks]
        torch.manual_seed(step)
        objective.training_step(torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs]))
        step += 1
    objective_train_mode(objective, False)
    return objective, step


def score(images: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """Mean PSNR and SSIM of ``images`` against ``truth`` (peak: the truth's maximum, as bench_sampling)."""
    metrics = frame_metrics(images, truth, truth.max())
    return float(metrics["psnr"].mean()), float(metrics["ssim"].mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=6.0, help="CPU minutes of training per recipe")
    parser.add_argument("--recipes", default="base,v,x0,v-minsnr,v-scratch")
    parser.add_argument("--init", default=str(bundled_model_path("perfgen")))
    parser.add_argument("--studies", type=int, default=40)
    parser.add_argument("--frames", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(1)
    studies = [make_phantom(seed, 20).to_study() for seed in range(args.studies)]
    studies, _ = split_studies(studies, 0)
    low, _, truth = held_out_frames(args.frames)
    device = torch.device("cpu")
    print(
        f"{args.studies} phantom studies, {args.minutes:g} CPU minutes per recipe; {len(low)} held-out frames"
    )
    print(f"zero-pad: PSNR {score(low, truth)[0]:.2f} dB, SSIM {score(low, truth)[1]:.3f}")
    print("| recipe | parameters | steps | mean: PSNR | SSIM | DDIM-5 x1: PSNR | SSIM |")
    print("|---|---|---|---|---|---|---|")
    for name in args.recipes.split(","):
        init = None if name.endswith("-scratch") else args.init
        recipe = dict(RECIPES[name])
        net = recipe.pop("net", None)
        config = dataclasses.replace(BASE, init=init, **recipe)
        objective, steps = train_for(config, studies, args.minutes, net)
        parameters = sum(p.numel() for p in objective.network.parameters())
        row = [name, f"{parameters / 1e6:.2f}M", str(steps)]
        for sampler, steps_ in (("mean", 1), ("ddim", 5)):
            sr = DiffusionSampler(
                objective.ema, objective.schedule, sampler=sampler, steps=steps_, residual_scale=5.0, flips=1
            )
            images, _ = run(sr, low, 8, device)
            row += [f"{v:.2f}" if i == 0 else f"{v:.3f}" for i, v in enumerate(score(images, truth))]
        print("| " + " | ".join(row) + " |", flush=True)
    print(f"(LR keeps {FRACTION:.0%} of the lines; results keep them too)")


if __name__ == "__main__":
    main()
