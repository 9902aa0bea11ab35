"""Does PerfGen's initial noise make its ROI curves jitter? The noise jitter ratio (``curves.noise_jitter_ratio``,
HR = 1) of PerfGen's default sampler with a fresh initial noise per frame (as shipped) and with one
noise image shared by every frame, numbers in ``Docs/temporal.md``.

    python Scripts/bench_shared_noise.py DATA [STUDIES]

DATA: phantom folders (``Scripts/make_heldout.py``'s ``in-range``); their first 20 frames, 35 % of
the lines, the bundled PerfGen on the CPU. The shared noise is an experiment, not an engine option:
``torch.randn`` is replaced for the second run by one seeded draw repeated over the batch.
"""

import sys
import time

import torch

from PerfGenSRLib import sample
from PerfGenSRLib.curves import noise_jitter_ratio, roi_curves
from PerfGenSRLib.evaluate import load_cases

ROIS = ("lv_blood", "rv_blood", "myocardium")
fresh_randn = torch.randn


def shared_randn(shape, *args, **kwargs):
    """One seeded ``(1, ...)`` draw repeated over the batch: every frame of every batch starts alike."""
    kwargs["generator"] = torch.Generator(kwargs.get("device") or "cpu").manual_seed(0)
    return fresh_randn((1, *shape[1:]), *args, **kwargs).expand(*shape).clone()


def main() -> None:
    cases = load_cases([sys.argv[1]], int(sys.argv[2]) if len(sys.argv) > 2 else 3, 20)
    for case in cases:
        masks = {k: case.masks[k] for k in ROIS}
        hr, truth = roi_curves(case.study.frames[:, 0], masks), roi_curves(case.truth[:, 0], masks)
        parts = []
        for mode, randn in (("per-frame", fresh_randn), ("shared", shared_randn)):
            torch.randn = randn
            started = time.perf_counter()
            try:
                with torch.inference_mode():
                    result = sample.super_resolve_study(case.study, "perfgen", device="cpu", lr_fraction=0.35)
            finally:
                torch.randn = fresh_randn
            curves = roi_curves(result.study.frames[:, 0], masks)
            ratios = " ".join(
                f"{r}={noise_jitter_ratio(curves[r][0], hr[r][0], truth[r][0]):.2f}" for r in ROIS
            )
            parts.append(f"{mode} {ratios} ({time.perf_counter() - started:.0f}s)")
        print(case.name, " | ".join(parts), flush=True)
    print("noise jitter ratio: RMS second difference of (curve - truth) over HR's; 1 = as noisy as HR")


if __name__ == "__main__":
    main()
