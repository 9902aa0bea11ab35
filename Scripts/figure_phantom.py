"""Contact sheet of phantom studies for eyeballing: per seed, the frames at baseline, RV peak, LV peak
and myocardial peak (full field of view, one window per study), a 96x96 heart crop at the LV peak
with the mask outlines, and the true curves.

    python Scripts/figure_phantom.py --seeds 0 1 2 3 --out /tmp/phantoms.png
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from PerfGenSRLib.phantom import HEART_CROP, make_phantom  # noqa: E402

COLOURS = {"lv_blood": "tab:red", "rv_blood": "tab:blue", "myocardium": "tab:green", "defect": "tab:orange"}


def key_frames(curves: dict[str, np.ndarray]) -> dict[str, int]:
    """Frame indices of baseline, RV, LV and myocardial peaks."""
    return {
        "baseline": 0,
        "RV peak": int(np.argmax(curves["rv_blood"])),
        "LV peak": int(np.argmax(curves["lv_blood"])),
        "myo peak": int(np.argmax(curves["myocardium"])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument(
        "--truth", action="store_true", help="show the noise-free truth instead of the noisy frames"
    )
    parser.add_argument("--out", type=Path, default=Path("/tmp/phantoms.png"))
    args = parser.parse_args()

    fig, axes = plt.subplots(len(args.seeds), 6, figsize=(22, 3.7 * len(args.seeds)), squeeze=False)
    for row, seed in zip(axes, args.seeds, strict=True):
        start = time.perf_counter()
        study = make_phantom(seed, args.frames)
        elapsed = time.perf_counter() - start
        images = study.truth if args.truth else study.frames
        picks = key_frames(study.curves)
        vmax = np.percentile(images[picks["LV peak"]], 99.7)
        for ax, (name, t) in zip(row, picks.items(), strict=False):
            ax.imshow(images[t], cmap="gray", vmin=0, vmax=vmax)
            ax.set_title(f"seed {seed} {name} (t={t})", fontsize=9)
        p = study.params
        row[0].set_ylabel(
            f"{p['matrix'][0]}x{p['matrix'][1]} @ {p['pixel_mm']:.2f} mm\n"
            f"{'stress' if p['stress'] else 'rest'}, defect {p['defect']['kind']}\n"
            f"SNR {p['noise']['snr']:.0f}, {elapsed:.2f} s",
            fontsize=8,
        )
        r, c = study.heart_center
        half = HEART_CROP // 2
        crop = images[picks["LV peak"], r - half : r + half, c - half : c + half]
        row[4].imshow(crop, cmap="gray", vmin=0, vmax=vmax)
        for name, mask in study.masks.items():
            if mask.any():
                row[4].contour(
                    mask[r - half : r + half, c - half : c + half],
                    [0.5],
                    colors=COLOURS[name],
                    linewidths=0.6,
                )
        row[4].set_title("96x96 crop, LV peak, masks", fontsize=9)
        for name, curve in study.curves.items():
            row[5].plot(study.frame_times, curve, color=COLOURS[name], label=name)
        row[5].legend(fontsize=7)
        row[5].set_xlabel("s", fontsize=8)
        for ax in row[:5]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=70)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
