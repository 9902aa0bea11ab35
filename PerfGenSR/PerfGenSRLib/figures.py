"""Figures of the paper, shared by ``demo`` and ``evaluate``: image panels at the first-pass phases,
signal-time curves and x-t profiles. matplotlib with the Agg backend, PNG written atomically.
Text comes from data (file and study names), so it is drawn as it is, never read as mathtext."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from .io import atomic_path
from .metrics import fov_crop

PHASES = ("baseline", "RV peak", "LV peak", "myo peak")


def pyplot():
    """matplotlib.pyplot on the Agg backend (no screen needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plain_text(function):
    """Run a figure function with mathtext off: a ``$`` in a file name is a dollar sign, not markup."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        import matplotlib

        with matplotlib.rc_context({"text.parse_math": False}):
            return function(*args, **kwargs)

    return wrapper


def save_figure(fig, path: str | os.PathLike) -> Path:
    """Write ``fig`` as PNG to ``path`` atomically and close it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    pyplot().close(fig)
    return Path(path)


def phase_frames(curves: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, int]:
    """Frame index of baseline, RV peak, LV peak and myocardial peak from reference ROI curves."""
    peak = {
        roi: int(np.argmax(curves[roi][0])) for roi in ("rv_blood", "lv_blood", "myocardium") if roi in curves
    }
    return {
        "baseline": 0,
        "RV peak": peak.get("rv_blood", 0),
        "LV peak": peak.get("lv_blood", 0),
        "myo peak": peak.get("myocardium", 0),
    }


@plain_text
def save_phase_panel(
    path: str | os.PathLike,
    images: dict[str, np.ndarray],
    reference: str,
    phases: dict[str, int],
    center: tuple[int, int],
    error_maps: bool = True,
) -> Path:
    """Rows of methods (reference last) at each phase in the 96x96 FOV, same window; optional |error| rows."""
    plt = pyplot()
    names = [n for n in images if n != reference] + [reference]
    crops = {n: fov_crop(images[n], center) for n in names}
    vmax = float(np.percentile(crops[reference], 99.7))
    rows = names + ([f"|{n} - {reference}|" for n in names if n != reference] if error_maps else [])
    fig, axes = plt.subplots(
        len(rows), len(phases), figsize=(2.2 * len(phases), 2.2 * len(rows)), dpi=110, squeeze=False
    )
    for r, row in enumerate(rows):
        for c, (phase, t) in enumerate(phases.items()):
            ax = axes[r, c]
            if row in crops:
                ax.imshow(crops[row][t], cmap="gray", vmin=0, vmax=vmax)
            else:
                name = names[r - len(names)]
                ax.imshow(
                    np.abs(crops[name][t] - crops[reference][t]), cmap="inferno", vmin=0, vmax=0.25 * vmax
                )
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"{phase} (t={t})", fontsize=9)
            if c == 0:
                ax.set_ylabel(row, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


@plain_text
def save_xt_profiles(path: str | os.PathLike, profiles: dict[str, np.ndarray], times: np.ndarray) -> Path:
    """x-t plots (position across, time down) of one profile line per method, same window."""
    plt = pyplot()
    vmax = float(max(np.percentile(p, 99.7) for p in profiles.values()))
    fig, axes = plt.subplots(1, len(profiles), figsize=(2.4 * len(profiles), 4), dpi=110, squeeze=False)
    for ax, (name, profile) in zip(axes[0], profiles.items()):
        ax.imshow(
            profile,
            cmap="gray",
            vmin=0,
            vmax=vmax,
            aspect="auto",
            extent=(0, profile.shape[1], float(times[-1]), float(times[0])),
        )
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("position (px)")
    axes[0, 0].set_ylabel("time (s)")
    fig.tight_layout()
    return save_figure(fig, path)


@plain_text
def save_metric_boxplots(
    path: str | os.PathLike, values: dict[str, dict[str, np.ndarray]], titles: dict[str, str] | None = None
) -> Path:
    """One box plot per metric (``values[metric][method]`` = per-study values), methods side by side."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(values), figsize=(3.2 * len(values), 3.6), dpi=110, squeeze=False)
    for ax, (metric, by_method) in zip(axes[0], values.items()):
        ax.boxplot(list(by_method.values()), showmeans=True)
        ax.set_xticks(range(1, len(by_method) + 1), list(by_method), fontsize=8)
        ax.set_title((titles or {}).get(metric, metric), fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


@plain_text
def save_calibration_figure(
    path: str | os.PathLike, curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str = ""
) -> Path:
    """Observed RMS error against predicted RMS SD per quantile bin of the SD: one line per study
    (``curves[name] = (predicted, observed)``), the one named ``pooled`` thick and black, and the
    diagonal of a calibrated SD."""
    fig, ax = pyplot().subplots(figsize=(5, 4.5), dpi=110)
    top = max(max(float(np.max(p)), float(np.max(o))) for p, o in curves.values())
    ax.plot([0, top], [0, top], ":", color="grey", label="calibrated (error = SD)")
    for name, (predicted, observed) in curves.items():
        pooled = name == "pooled"
        ax.plot(
            predicted,
            observed,
            "-o",
            color="black" if pooled else None,
            linewidth=2.5 if pooled else 1,
            markersize=4 if pooled else 2.5,
            label=name,
        )
    ax.set_xlabel("predicted: RMS SD of the samples in the bin")
    ax.set_ylabel("observed: RMS error in the bin")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize="x-small")
    fig.tight_layout()
    return save_figure(fig, path)
