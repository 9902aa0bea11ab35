"""Sampling benchmark: speed and quality of the one-pass mean (with and without its mirror image),
ddpm-2000 and DDIM step counts, batch 1 against batched, fp32 against bf16 (CUDA), ``torch.compile``
and CUDA graphs (``--compile``, default on CUDA), beside zero-padding and the GAN, on held-out phantom
frames, all measured side by side in one run (on a CPU, ddpm-2000 runs batched only: batch 1 would
take many minutes). Last, the paper preset's FLOP floor: its FLOPs per forward at 96x96 (counted on
the meta device), what ddpm-2000 on a 3-slice x 60-frame study costs at an H100/H200's bf16 peak,
and, on CUDA, the measured time of a whole-study batch beside that floor.

    python Scripts/bench_sampling.py [--model M] [--device auto] [--frames 16] [--ddim 10,20,50,100] [--ddpm-frames 8] [--samples 1,4]

Speed is reported as images/s and as a ratio to the naive baseline (fp32, batch 1, same sampler)
measured in this run; quality as PSNR/SSIM against the noisy HR and the noise-free truth (96x96 FOV,
metrics.py scaling). ddpm-2000 runs on the first ``--ddpm-frames`` frames, and every DDIM setting is
also scored on exactly those frames so the comparison is like for like.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from PerfGenSRLib import kspace
from PerfGenSRLib.data import denormalise, frame_peak, normalise
from PerfGenSRLib.metrics import fov_crop, frame_metrics
from PerfGenSRLib.models import bundled_model_path, load_model, resolve_device
from PerfGenSRLib.phantom import make_phantom
from PerfGenSRLib.sample import DiffusionSampler, sampler_for
from PerfGenSRLib.unet import PRESETS, UNet

PEAK_BF16_FLOPS = 989e12  # dense bf16 tensor-core peak of an H100 / H200 SXM (NVIDIA datasheets)
STUDY_FRAMES = 3 * 60  # a 3-slice x 60-frame study
FRACTION = 0.35  # LR keeps 35 % of the lines; results keep them too (data consistency, as super-resolve does)
SEEDS = (91_001, 91_002)  # never used in training (training seeds start at 0, demo at 90_001)


def held_out_frames(n: int):
    """``n`` frames (LR at 35 %, HR, truth) cropped to the FOV, from phantoms of unseen seeds."""
    lows, highs, truths = [], [], []
    per_study = int(np.ceil(n / len(SEEDS)))
    for seed in SEEDS:
        phantom = make_phantom(seed, frames=40)
        picks = np.linspace(0, 39, per_study).round().astype(int)
        crop = [fov_crop(a[picks], phantom.heart_center) for a in (phantom.frames, phantom.truth)]
        lows.append(kspace.degrade(fov_crop(phantom.frames[picks], phantom.heart_center), FRACTION))
        highs.append(crop[0])
        truths.append(crop[1])
    return [np.concatenate(a)[:n] for a in (lows, highs, truths)]


def run(
    sampler: DiffusionSampler, low: np.ndarray, batch: int, device: torch.device, samples: int = 1
) -> tuple[np.ndarray, float]:
    """Super-resolve ``low`` in batches, averaging ``samples`` draws; returns the SR frames and images/s."""
    out = []
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    generator = torch.Generator(device).manual_seed(0)
    for i in range(0, len(low), batch):
        chunk = low[i : i + batch]
        peak = frame_peak(chunk)
        x = torch.from_numpy(normalise(chunk, peak)[:, None].astype(np.float32)).to(device)
        draws = np.stack(
            [denormalise(sampler(x, generator).float().cpu().numpy()[:, 0], peak) for _ in range(samples)]
        )
        out.append(
            kspace.data_consistency(draws, chunk[None], kspace.kept_lines(chunk.shape[-2], FRACTION)).mean(0)
        )
    if device.type == "cuda":
        torch.cuda.synchronize()
    return np.concatenate(out), len(low) / (time.perf_counter() - start)


def forward_flops(preset: str, side: int = 96) -> float:
    """FLOPs of one network evaluation on one ``side`` x ``side`` frame (2 per multiply-add), counted on
    the meta device, so no memory or time is spent."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        network = UNet(PRESETS[preset])
        frame = torch.zeros(1, 1, side, side)
        level = torch.zeros(1)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        network(frame, frame, level)
    return float(counter.get_total_flops())


def floor_report(device: torch.device, compiled: bool, repeats: int = 5) -> None:
    """The paper preset's ddpm-2000 cost for a whole study at bf16 peak, and on CUDA the measured time
    of one network evaluation of the whole study batched (fp32, bf16, compiled) beside it."""
    flops = forward_flops("paper")
    total = flops * 2000 * STUDY_FRAMES
    floor = total / PEAK_BF16_FLOPS
    print(
        f"paper preset: {flops / 1e9:.1f} GFLOP per forward at 96x96; ddpm-2000 on a 3-slice x 60-frame "
        f"study: {total / 1e15:.1f} PFLOP, {floor:.1f} s at the {PEAK_BF16_FLOPS / 1e12:.0f} TFLOP/s bf16 peak"
    )
    if device.type != "cuda":
        return
    network = UNet(PRESETS["paper"]).to(device).eval()
    variants = [("fp32", network, False), ("bf16", network, True)]
    if compiled:
        variants += [
            ("bf16 compile", torch.compile(network), True),
            ("bf16 CUDA graphs", torch.compile(network, mode="reduce-overhead"), True),
        ]
    frames = torch.zeros(STUDY_FRAMES, 1, 96, 96, device=device)
    level = torch.full((STUDY_FRAMES,), 0.5, device=device)
    for name, module, bf16 in variants:
        with torch.inference_mode(), torch.autocast("cuda", torch.bfloat16, enabled=bf16):
            for _ in range(3):  # warm-up (and compilation)
                module(frames, frames, level)
            torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(repeats):
                module(frames, frames, level)
            torch.cuda.synchronize()
        step = (time.perf_counter() - start) / repeats
        print(
            f"  {name:<18} one step of the whole study {step * 1e3:8.1f} ms; ddpm-2000 {2000 * step:7.1f} s "
            f"= {2000 * step / floor:5.1f}x the floor ({flops * STUDY_FRAMES / step / 1e12:.0f} TFLOP/s)",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(bundled_model_path("perfgen")))
    parser.add_argument("--gan", default=str(bundled_model_path("gan")), help="GAN timed beside (none: skip)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--ddpm-frames", type=int, default=8, help="frames for ddpm-2000 (0: skip ddpm)")
    parser.add_argument("--ddim", default="10,20,50,100")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument(
        "--samples",
        default="1",
        help="sample counts averaged per frame, e.g. 1,4 (K > 1: DDIM, batched, fp32)",
    )
    parser.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="add torch.compile and CUDA-graph rows (default: on CUDA only)",
    )
    args = parser.parse_args()
    device = resolve_device(args.device)
    compiled = device.type == "cuda" if args.compile is None else args.compile
    loaded = load_model(args.model, "perfgen-unet", device=device)
    low, high, truth = held_out_frames(args.frames)
    ddpm_n = min(args.ddpm_frames, args.frames) or args.frames  # 0: no ddpm, score on all frames
    print(f"device {device}, model {args.model}, {args.frames} frames 96x96 (ddpm on the first {ddpm_n})")
    precisions = [False, True] if device.type == "cuda" else [False]
    counts = [int(k) for k in args.samples.split(",")]
    settings = (
        [("mean", 1, 1), ("mean", 1, 2)]
        + [("ddpm", 2000, 1)] * (args.ddpm_frames > 0)
        + [("ddim", int(s), 1) for s in filter(None, args.ddim.split(","))]
    )

    def score(sr, sl):
        peak_hr, peak_truth = high[sl].max(), truth[sl].max()
        hr = frame_metrics(sr, high[sl], peak_hr)
        tr = frame_metrics(sr, truth[sl], peak_truth)
        return hr["psnr"].mean(), tr["psnr"].mean(), tr["ssim"].mean()

    zp = score(low[:ddpm_n], slice(0, ddpm_n))
    print(
        f"zero-pad (first {ddpm_n} frames): PSNR vs HR {zp[0]:.2f} dB, vs truth {zp[1]:.2f} dB, SSIM vs truth {zp[2]:.3f}"
    )
    header = (
        f"{'sampler':<10}{'steps':>6}{'K':>3}{'batch':>6}{'prec':>6}{'img/s':>9}{'s/img':>7}{'x naive':>9}"
        f"{'PSNR-HR':>9}{'PSNR-tr':>9}{'SSIM-tr':>8}{'ddpm-set PSNR-tr':>18}{'peak MB':>9}"
    )
    print(header)
    baselines = [("zero-pad", lambda x, generator: x)]
    if args.gan != "none":
        gan = load_model(args.gan, "regain-generator", device=device).module
        baselines.append(("GAN", lambda x, generator: gan(x)))
    for name, method in baselines:
        with torch.inference_mode():
            sr, speed = run(method, low, args.batch, device)
        quality = score(sr, slice(0, args.frames))
        print(
            f"{name:<10}{'-':>6}{1:>3}{args.batch:>6}{'fp32':>6}{speed:>9.2f}{1 / speed:>7.3f}{'':>9}"
            f"{quality[0]:>9.2f}{quality[1]:>9.2f}{quality[2]:>8.3f}",
            flush=True,
        )
    for name, steps, flips in settings:
        sampler = sampler_for(loaded, sampler=name, steps=steps, flips=flips)
        label = f"mean x{flips}" if name == "mean" else name
        frames = ddpm_n if name == "ddpm" else args.frames
        naive = None
        runs = [
            (1, bf16, batch)
            for bf16 in precisions
            for batch in ((args.batch,) if (name == "ddpm" and device.type != "cuda") else (1, args.batch))
        ]
        runs += [(k, False, args.batch) for k in counts if k > 1 and name == "ddim"]
        plain = sampler.network
        variants = [(run_, "") for run_ in runs]
        if compiled and name != "ddpm":  # compiled once per setting, timed at the last precision and batch
            variants += [(runs[-1 if name == "mean" else 0], "compile"), (runs[0], "graphs")]
        for (samples, bf16, batch), compile_mode in variants:
            sampler.bf16 = bf16
            sampler.network = (
                plain
                if not compile_mode
                else torch.compile(plain, mode="reduce-overhead" if compile_mode == "graphs" else None)
            )
            if compile_mode:  # warm-up: compilation is not part of the speed
                run(sampler, low[:batch], batch, device, 1)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            sr, speed = run(sampler, low[:frames], batch, device, samples)
            naive = naive or speed
            quality = score(sr, slice(0, frames))
            on_ddpm_set = score(sr[:ddpm_n], slice(0, ddpm_n))[1]
            memory = (
                torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else float("nan")
            )
            print(
                f"{label + (' ' + compile_mode if compile_mode else ''):<10}{steps:>6}{samples:>3}{batch:>6}"
                f"{'bf16' if bf16 else 'fp32':>6}{speed:>9.2f}"
                f"{1 / speed:>7.3f}{speed / naive:>9.2f}"
                f"{quality[0]:>9.2f}{quality[1]:>9.2f}{quality[2]:>8.3f}{on_ddpm_set:>18.2f}{memory:>9.0f}",
                flush=True,
            )
        sampler.network = plain
    floor_report(device, compiled)


if __name__ == "__main__":
    main()
