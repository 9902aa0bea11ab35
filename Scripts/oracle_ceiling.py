"""The most any data-consistent method can gain over zero-padding on a phantom test set.

    python Scripts/oracle_ceiling.py FOLDER [FOLDER ...] [--fraction 0.35] [--max-frames N]

For every phantom study (a folder with ``metadata.json`` and its noise-free truth) the oracle is the
truth with its central measured k-space lines replaced by those of the LR input
(:func:`kspace.data_consistency`): it knows everything the measurement lacks and keeps what was
measured, noise included, as every learned method does by default. Scored like ``perfgen-sr
evaluate`` (96x96 FOV, PSNR with the reference's peak, per-study means) against the truth, beside
zero-padding, so the printed difference bounds what PerfGen or the GAN can gain on that study.
"""

from __future__ import annotations

import argparse

import numpy as np

from PerfGenSRLib import kspace
from PerfGenSRLib.evaluate import case_frame_metrics, load_cases, study_means


def ceiling_rows(folders: list[str], fraction: float, max_frames: int | None) -> list[dict]:
    """Per-study mean PSNR/SSIM against the truth of zero-padding and of the data-consistent oracle."""
    rows = []
    for case in load_cases(folders, max_frames=max_frames):
        if case.truth is None:
            raise SystemExit(f"{case.name} has no noise-free truth: the oracle needs a phantom study")
        hr = case.study.frames
        low_res = kspace.degrade(hr, fraction)
        oracle = kspace.data_consistency(case.truth, low_res, kspace.kept_lines(hr.shape[-2], fraction))
        means = study_means(case_frame_metrics(case, {"zeropad": low_res, "oracle": oracle}))
        by_method = {r["method"]: r for r in means if r["reference"] == "truth"}
        rows.append(
            {"study": case.name, **{f"{m}_{k}": by_method[m][k] for m in by_method for k in ("psnr", "ssim")}}
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+")
    parser.add_argument("--fraction", type=float, default=0.35)
    parser.add_argument("--max-frames", type=int, default=None, help="first N frames (default: all)")
    args = parser.parse_args()
    rows = ceiling_rows(args.folders, args.fraction, args.max_frames)
    print("| study | zero-pad PSNR / SSIM | oracle PSNR / SSIM | ceiling over zero-pad |")
    print("|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['study']} | {r['zeropad_psnr']:.2f} / {r['zeropad_ssim']:.3f} | "
            f"{r['oracle_psnr']:.2f} / {r['oracle_ssim']:.3f} | {r['oracle_psnr'] - r['zeropad_psnr']:+.2f} dB |"
        )
    gain = np.mean([r["oracle_psnr"] - r["zeropad_psnr"] for r in rows])
    print(f"mean ceiling over zero-padding: {gain:+.2f} dB over {len(rows)} studies")


if __name__ == "__main__":
    main()
