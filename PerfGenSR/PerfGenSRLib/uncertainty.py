"""PerfGen's per-pixel SD against the actual error of its estimate (the mean of its samples): per
study in the 96x96 FOV of every slice and frame, pooled over studies, as ``metrics.csv`` columns,
``uncertainty_calibration.csv`` and ``uncertainty.png`` for ``perfgen-sr evaluate``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .data import study_center
from .figures import save_calibration_figure
from .io import write_csv
from .metrics import FOV, calibration, fov_crop
from .study import Study

POOLED_PIXELS = 100_000  # pixels per study kept for the pooled calibration curve


def uncertainty_measures(
    study: Study, truth: np.ndarray | None, estimate: np.ndarray, sd: np.ndarray, seed: int = 0
) -> dict[str, dict]:
    """How well PerfGen's per-pixel SD predicts the error of its estimate (the mean of its samples)
    in the FOV of every slice and frame, against HR and (phantoms) the truth: ``metrics.calibration``
    per reference, plus ``pixels``, a random subset of (SD, error) pairs for the pooled curve."""
    references = {"HR": study.frames, **({"truth": truth} if truth is not None else {})}
    found = {}
    for reference, frames in references.items():
        spreads, errors = [], []
        for z in range(study.shape[1]):
            center = study_center(study, z)
            spreads.append(fov_crop(sd[:, z], center).ravel())
            errors.append((fov_crop(estimate[:, z], center) - fov_crop(frames[:, z], center)).ravel())
        spread, error = np.concatenate(spreads), np.concatenate(errors)
        keep = np.random.default_rng(seed).permutation(spread.size)[:POOLED_PIXELS]
        found[reference] = calibration(spread, error) | {"pixels": (spread[keep], error[keep])}
    return found


def summarise_uncertainty(
    calibrations: dict[str, dict[str, dict]], study_rows: list[dict], out: Path
) -> dict:
    """Per-study calibration numbers into PerfGen's study rows of ``metrics.csv`` (``sd_*`` columns,
    empty elsewhere), the curves into ``uncertainty_calibration.csv`` and ``uncertainty.png`` (one
    line per study and the pooled pixels); returns ``{reference: {study or "pooled": calibration}}``."""
    by_reference: dict[str, dict[str, dict]] = {}
    for name, found in calibrations.items():
        for reference, numbers in found.items():
            by_reference.setdefault(reference, {})[name] = numbers
    for by_study in by_reference.values():
        pixels = [np.concatenate(parts) for parts in zip(*(c.pop("pixels") for c in by_study.values()))]
        by_study["pooled"] = calibration(*pixels)
    columns = {"sd_spearman": "spearman", "sd_calibration_slope": "slope", "sd_error_ratio": "ratio"}
    for row in study_rows:
        numbers = (
            by_reference.get(row["reference"], {}).get(row["study"]) if row["method"] == "perfgen" else None
        )
        row.update({column: numbers[key] if numbers else "" for column, key in columns.items()})
    write_csv(
        [
            {"reference": r, "study": name, "bin": i, "predicted_sd": p, "observed_rms_error": o}
            for r, by_study in by_reference.items()
            for name, c in by_study.items()
            for i, (p, o) in enumerate(zip(c["predicted"], c["observed"]))
        ],
        out / "uncertainty_calibration.csv",
    )
    reference = "truth" if "truth" in by_reference else "HR"
    curves = {name: (c["predicted"], c["observed"]) for name, c in by_reference[reference].items()}
    save_calibration_figure(
        out / "uncertainty.png", curves, f"PerfGen SD against its error vs {reference} ({FOV}x{FOV} FOV)"
    )
    return by_reference
