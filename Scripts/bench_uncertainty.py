"""How well PerfGen's per-pixel SD predicts its error for several sample counts K: the numbers behind
``Docs/uncertainty.md``.

    python Scripts/bench_uncertainty.py DATA [--studies 2] [--first 9] [--frames 6] [--samples 2,4,8] [--steps 5] [--device cpu] [--out DIR]

Frames ``first .. first + frames - 1`` (the first pass, not the baseline that ``--max-frames``
keeps) of the first ``studies`` studies in DATA (phantom folders, e.g. ``Scripts/make_heldout.py``'s
``in-range``) are degraded to 35 % of the lines and super-resolved by the bundled PerfGen with DDIM,
one draw per seed 0 .. max(K) - 1 (data consistency on each, as ``super-resolve`` does). Each K then
takes the first K draws: their mean is the estimate, their SD the uncertainty, so every K is scored
on the same draws. Printed per K and reference (truth, HR): the Spearman correlation of SD and
|error| (pooled pixels and per study), the calibration slope and error/SD ratio of the pooled pixels
(``metrics.calibration``), PSNR of the estimate and the seconds the draws took. ``OUT/calibration.png``
holds the pooled calibration curve of each K against the truth.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from PerfGenSRLib.data import study_center
from PerfGenSRLib.evaluate import Case, load_cases
from PerfGenSRLib.figures import save_calibration_figure
from PerfGenSRLib.metrics import calibration, fov_crop, frame_metrics
from PerfGenSRLib.sample import super_resolve_study
from PerfGenSRLib.uncertainty import uncertainty_measures


def frames_window(case: Case, first: int, count: int) -> Case:
    """``case`` cut to frames ``first .. first + count - 1`` (truth alike; masks unchanged)."""
    window = slice(first, first + count)
    study = case.study
    times = study.frame_times[window] if study.frame_times is not None else None
    truth = case.truth[window] if case.truth is not None else None
    return Case(case.name, study.with_frames(study.frames[window], frame_times=times), truth, case.masks)


def psnr(case: Case, estimate: np.ndarray, reference: np.ndarray) -> float:
    """Mean PSNR over frames and slices in the FOV (metrics.py scaling)."""
    values = []
    for z in range(case.study.shape[1]):
        center = study_center(case.study, z)
        ref = fov_crop(reference[:, z], center)
        values.append(frame_metrics(fov_crop(estimate[:, z], center), ref, peak=ref.max())["psnr"])
    return float(np.mean(values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--studies", type=int, default=2)
    parser.add_argument("--first", type=int, default=9)
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--samples", default="2,4,8")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    counts = [int(v) for v in args.samples.split(",")]
    cases = [frames_window(c, args.first, args.frames) for c in load_cases([args.data], args.studies)]
    out = args.out or Path(tempfile.mkdtemp(prefix="bench_uncertainty_"))
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    draws = {}
    for case in cases:
        with torch.inference_mode():
            draws[case.name] = np.stack(
                [
                    super_resolve_study(
                        case.study,
                        "perfgen",
                        sampler="ddim",
                        steps=args.steps,
                        samples=1,
                        seed=seed,
                        device=args.device,
                        lr_fraction=0.35,
                    ).study.frames
                    for seed in range(max(counts))
                ]
            )
    seconds = time.perf_counter() - started
    frames = sum(c.study.shape[0] * c.study.shape[1] for c in cases)
    print(
        f"{len(cases)} studies x frames {args.first}-{args.first + args.frames - 1} ({frames} frames), "
        f"ddim {args.steps} steps, {max(counts)} draws per frame in {seconds:.0f} s "
        f"({seconds / frames / max(counts):.1f} s per draw)"
    )
    print(
        "| K | reference | Spearman (pooled) | Spearman per study | slope (pooled) | error / SD (pooled) | PSNR (dB) |"
    )
    print("|---|---|---|---|---|---|---|")
    curves = {}
    for k in counts:
        found = {
            case.name: uncertainty_measures(
                case.study, case.truth, draws[case.name][:k].mean(0), draws[case.name][:k].std(0)
            )
            for case in cases
        }
        for reference in found[cases[0].name]:
            pixels = [np.concatenate(p) for p in zip(*(found[c.name][reference]["pixels"] for c in cases))]
            pooled = calibration(*pixels)
            per_study = ", ".join(f"{found[c.name][reference]['spearman']:.2f}" for c in cases)
            references = {"HR": lambda c: c.study.frames, "truth": lambda c: c.truth}[reference]
            quality = np.mean([psnr(c, draws[c.name][:k].mean(0), references(c)) for c in cases])
            print(
                f"| {k} | {reference} | {pooled['spearman']:.3f} | {per_study} | {pooled['slope']:.2f} | "
                f"{pooled['ratio']:.2f} | {quality:.2f} |"
            )
            if reference == "truth":
                curves[f"K = {k}"] = (pooled["predicted"], pooled["observed"])
    save_calibration_figure(out / "calibration.png", curves, "PerfGen SD vs error against the truth, pooled")
    print(f"figure: {out / 'calibration.png'}")


if __name__ == "__main__":
    main()
