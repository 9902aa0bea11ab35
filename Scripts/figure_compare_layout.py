"""Render the PerfGenSR compare layout as a figure (``Docs/compare-layout.png``, the extension's
screenshot until an application screenshot replaces it): the sample study (phantom seed 0) at the LV
peak as input, the simulated LR at 35 % of the lines, zero-padding and PerfGen with its uncertainty
(SD over samples) as a colour overlay, above the LV / RV / myocardium signal-time curves, laid out
as the module lays out Slicer's views. Drawn with matplotlib from the engine's own results; it is
not a capture of the Slicer window.

    python Scripts/figure_compare_layout.py --out Docs/compare-layout.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from PerfGenSRLib.phantom import make_phantom  # noqa: E402
from PerfGenSRLib.sample import super_resolve_study  # noqa: E402

VIEW_COLORS = ("#F34A33", "#6EB04B", "#EDD54C", "#4A90D9")  # as the compare layout's view bars
ROIS = {
    "LV blood": ("lv_blood", "#D9332E"),
    "RV blood": ("rv_blood", "#386BD9"),
    "Myocardium": ("myocardium", "#EBB84D"),
}
STYLES = {"Input": "-", "LR 35%": ":", "zero-pad": "-.", "PerfGen": "--"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("Docs/compare-layout.png"))
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    phantom = make_phantom(0, frames=40)
    study = phantom.to_study()
    zeropad = super_resolve_study(study, "zeropad", lr_fraction=0.35, device=args.device)
    perfgen = super_resolve_study(study, "perfgen", lr_fraction=0.35, sampler="ddim", device=args.device)
    series = {
        "Input": study.frames[:, 0],
        "LR 35%": zeropad.low_res.frames[:, 0],
        "zero-pad": zeropad.study.frames[:, 0],
        "PerfGen": perfgen.study.frames[:, 0],
    }
    sd = perfgen.uncertainty.frames[:, 0]
    lv = phantom.masks["lv_blood"]
    frame = int(np.argmax(study.frames[:, 0][:, lv].mean(axis=1)))
    low, high = np.percentile(study.frames, [0.5, 99.5])

    fig = plt.figure(figsize=(12, 7.2), facecolor="#1e1e1e")
    grid = fig.add_gridspec(2, 4, height_ratios=(1.15, 1), hspace=0.22, wspace=0.04)
    for i, (label, frames) in enumerate(series.items()):
        ax = fig.add_subplot(grid[0, i])
        ax.imshow(frames[frame], cmap="gray", vmin=low, vmax=high, interpolation="nearest")
        if label == "PerfGen":
            overlay = ax.imshow(sd[frame], cmap="inferno", alpha=0.5, interpolation="nearest")
            bar = fig.colorbar(overlay, ax=ax, fraction=0.035, pad=0.01)
            bar.set_label("SD over 8 samples", color="white", fontsize=8)
            bar.ax.tick_params(colors="white", labelsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f" {label}", loc="left", color="black", fontsize=10, backgroundcolor=VIEW_COLORS[i])
    plot = fig.add_subplot(grid[1, :])
    plot.set_facecolor("white")
    times = study.times()
    for roi, (mask_name, color) in ROIS.items():
        mask = phantom.masks[mask_name]
        for label, frames in series.items():
            plot.plot(
                times, frames[:, mask].mean(axis=1), STYLES[label], color=color, label=f"{roi} ({label})"
            )
    plot.axvline(times[frame], color="#888888", linewidth=0.8)
    plot.set_xlabel("Time (s)")
    plot.set_ylabel("Mean signal (a.u.)")
    plot.set_title("Signal-time curves", fontsize=10)
    plot.legend(ncol=3, fontsize=7, loc="upper right")
    fig.text(
        0.5,
        0.005,
        "Rendered with matplotlib from the engine's results, laid out as PerfGenSR's compare layout; "
        "not a capture of the Slicer window.",
        ha="center",
        color="#bbbbbb",
        fontsize=8,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=100, facecolor=fig.get_facecolor(), bbox_inches="tight")
    print(f"wrote {args.out} (frame {frame}, t = {times[frame]:.1f} s)")


if __name__ == "__main__":
    main()
