"""``perfgen-sr evaluate``: the paper's comparison (sections 2.3 and 3.1) on any test set.

Every frame of every study is degraded to an LR fraction of its phase-encoding lines and
super-resolved by each method (``zeropad``, ``gan``, ``perfgen``). Then, in the 96x96 field of view
around the heart: nRMSE, PSNR and SSIM per frame against the HR (and, for phantoms, against the
noise-free truth), their means per study, mean +- SD across studies, paired t-tests and Wilcoxon
tests across studies; where ROI masks exist (phantoms), signal-time curve RMSE against HR and the
defect-to-remote contrast ratio relative to HR. Writes ``metrics.csv``, ``roi_metrics.csv``,
``report.md``, box plots and per-study figures (phase panel, curves, x-t profiles) into one folder.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .curves import (
    noise_jitter_ratio,
    roi_curves,
    save_curves_figure,
    temporal_measures,
    write_curves_csv,
    xt_profile,
)
from .data import is_phantom_folder, study_center, study_paths
from .defaults import CURVE_ROIS, DEFAULT_SAMPLER, METHOD_NAMES, METHOD_SHORT_NAMES, METHODS, samples_for
from .distributed import Distributed
from .errors import PerfGenError
from .figures import (
    phase_frames,
    save_metric_boxplots,
    save_phase_panel,
    save_xt_profiles,
)
from .io import NIFTI_SUFFIXES, atomic_path, read_study, write_csv, write_study
from .metrics import FOV, METRIC_NAMES, METRICS, fov_crop, frame_metrics
from .models import bundled_model_path, resolve_device
from .report import comparison_tests, format_report, format_summary, scaled
from .sample import super_resolve_study
from .study import Study
from .uncertainty import summarise_uncertainty, uncertainty_measures


@dataclass
class Case:
    """A test study with what is known about it: noise-free truth and ROI masks for phantoms."""

    name: str
    study: Study
    truth: np.ndarray | None = None  # (T, Z, H, W) like the study
    masks: dict[str, np.ndarray] | None = None  # (H, W) per ROI, on slice 0


@dataclass
class Evaluation:
    """Per-study means ``values[reference][method][metric]`` (one value per study) and the outputs."""

    studies: list[str]
    values: dict[str, dict[str, dict[str, np.ndarray]]]
    tests: dict[str, dict[tuple[str, str], dict[str, dict[str, float]]]]
    roi_values: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    report: Path | None = None
    uncertainty: dict[str, dict[str, dict]] = field(default_factory=dict)  # summarise_uncertainty's

    def summary(self) -> str:
        """The terminal summary: mean ± SD per method and the PerfGen-vs-GAN sentences."""
        return format_summary(self.values, self.tests, len(self.studies))


def load_cases(
    paths: list[str | os.PathLike], studies: int | None = None, max_frames: int | None = None
) -> list[Case]:
    """The test studies named by ``paths`` (phantom folders keep their truth and masks), first ``studies``."""
    found = [p for root in paths for p in study_paths(Path(root))]
    if studies is not None:
        if studies < 1:
            raise PerfGenError("`studies` must be at least 1")
        found = found[:studies]
    if max_frames is not None and max_frames < 2:
        raise PerfGenError("`max_frames` must be at least 2")
    cases, names = [], set()
    for path in found:
        case = _read_case(path)
        if max_frames is not None:
            case = _first_frames(case, max_frames)
        while case.name in names:
            case.name += "_"
        names.add(case.name)
        cases.append(case)
    return cases


def _read_case(path: Path) -> Case:
    name = path.name
    if path.is_file():
        name = next((name[: -len(s)] for s in (".npy", *NIFTI_SUFFIXES) if name.lower().endswith(s)), name)
    if is_phantom_folder(path):
        from .phantom import read_phantom_study

        phantom = read_phantom_study(path)
        study = phantom.to_study()
        truth = np.asarray(phantom.truth, np.float32).reshape(study.shape)
        return Case(name, study, truth, {k: np.asarray(v, bool) for k, v in phantom.masks.items()})
    return Case(name, read_study(path))


def _first_frames(case: Case, n: int) -> Case:
    study = case.study
    times = study.frame_times[:n] if study.frame_times is not None else None
    truth = case.truth[:n] if case.truth is not None else None
    return Case(case.name, study.with_frames(study.frames[:n], frame_times=times), truth, case.masks)


def resolve_models(methods: list[str], models: dict[str, str] | None = None) -> dict[str, Path | None]:
    """The model file of each method (``zeropad``: none), refusing unknown methods and missing models."""
    models = dict(models or {})
    if not methods:
        raise PerfGenError("`methods` names no method; choose from zeropad, gan, perfgen")
    for method in [*methods, *models]:
        if method not in METHODS:
            raise PerfGenError(f"unknown method '{method}'; choose from {', '.join(METHODS)}")
    if "zeropad" in models:
        raise PerfGenError(f"zeropad takes no model; remove zeropad={models['zeropad']} from `models`")
    extra = sorted(set(models) - set(methods))
    if extra:
        raise PerfGenError(f"`models` gives a model for {', '.join(extra)}, which `methods` leaves out")
    resolved: dict[str, Path | None] = {}
    for method in methods:
        if method == "zeropad":
            resolved[method] = None
            continue
        path = Path(models[method]) if method in models else bundled_model_path(method)
        if not path.exists():
            train = "train" if method == "perfgen" else "train-gan"
            where = "given" if method in models else "bundled"
            raise PerfGenError(
                f"the {where} {method} model {path} does not exist; pass `models` {method}=PATH "
                f"(train one with `perfgen-sr {train}`) or leave {method} out of `methods`"
            )
        resolved[method] = path
    return resolved


def case_frame_metrics(case: Case, images: dict[str, np.ndarray]) -> list[dict]:
    """Rows of per-frame nRMSE, PSNR and SSIM in the FOV for each method against HR (and truth)."""
    references = {"HR": case.study.frames, **({"truth": case.truth} if case.truth is not None else {})}
    rows = []
    for z in range(case.study.shape[1]):
        center = study_center(case.study, z)
        for reference, ref_frames in references.items():
            ref = fov_crop(ref_frames[:, z], center)
            for method, frames in images.items():
                values = frame_metrics(fov_crop(frames[:, z], center), ref, peak=ref.max())
                rows += [
                    {
                        "study": case.name,
                        "level": "frame",
                        "slice": z,
                        "frame": t,
                        "reference": reference,
                        "method": method,
                        **{m: float(values[m][t]) for m in METRICS},
                    }
                    for t in range(len(ref))
                ]
    return rows


def study_means(rows: list[dict]) -> list[dict]:
    """Per-study rows: the mean of the frame rows of each (study, reference, method)."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["study"], row["reference"], row["method"]), []).append(row)
    return [
        {
            "study": s,
            "level": "study",
            "slice": "",
            "frame": "",
            "reference": r,
            "method": m,
            **{k: float(np.mean([g[k] for g in group])) for k in METRICS},
        }
        for (s, r, m), group in groups.items()
    ]


ROI_MEASURES = {  # curves.temporal_measures' keys -> roi_metrics.csv's measure names (against HR)
    "rmse_percent_of_peak": "curve_rmse_percent_of_peak",
    "jitter_ratio": "jitter_ratio",
    "ttp_error": "ttp_error_s",
    "upslope_error_percent": "upslope_error_percent",
}


def roi_measures(case: Case, images: dict[str, np.ndarray]) -> list[dict]:
    """Per ROI of slice 0 and method: curve RMSE, jitter ratio, time-to-peak and maximal-upslope
    error against HR (and, suffixed ``_vs_truth``, the truth), with a truth the noise jitter ratio
    to HR's (``curves.noise_jitter_ratio``) and the truth's own jitter ratio to HR, and the
    defect-to-remote contrast ratio relative to HR. Times in seconds (frames without times)."""
    if not case.masks:
        return []
    hr, times = case.study.frames[:, 0], case.study.times()
    masks = {roi: case.masks[roi] for roi in CURVE_ROIS if roi in case.masks and case.masks[roi].any()}
    references = {"HR": roi_curves(hr, masks)}
    if case.truth is not None:
        references["truth"] = roi_curves(case.truth[:, 0], masks)
    rows = []

    def add(method: str, measure: str, roi: str, value: float) -> None:
        rows.append({"study": case.name, "method": method, "measure": measure, "roi": roi, "value": value})

    for method, frames in images.items():
        for roi, (mean, _) in roi_curves(frames[:, 0], masks).items():
            for reference, curves in references.items():
                suffix = "" if reference == "HR" else "_vs_truth"
                for key, value in temporal_measures(mean, curves[roi][0], times).items():
                    add(method, ROI_MEASURES[key] + suffix, roi, value)
            if "truth" in references:
                add(
                    method,
                    "noise_jitter_ratio_vs_truth",
                    roi,
                    noise_jitter_ratio(mean, *(references[r][roi][0] for r in ("HR", "truth"))),
                )
    for roi, (mean, _) in references.get("truth", {}).items():
        add(
            "truth",
            "jitter_ratio",
            roi,
            temporal_measures(mean, references["HR"][roi][0], times)["jitter_ratio"],
        )
    defect = case.masks.get("defect")
    if defect is not None and defect.any() and "myocardium" in case.masks:
        remote = case.masks["myocardium"] & ~defect
        peak = int(np.argmax(hr[:, remote].mean(axis=1)))

        def ratio(frames):
            return float(frames[peak][defect].mean() / max(frames[peak][remote].mean(), 1e-12))

        hr_ratio = ratio(hr)
        for method, frames in images.items():
            add(method, "defect_remote_ratio_relative_to_hr", "defect", ratio(frames[:, 0]) / hr_ratio)
        add("HR", "defect_remote_ratio", "defect", hr_ratio)
    return rows


def save_case_figures(folder: Path, case: Case, images: dict[str, np.ndarray]) -> list[Path]:
    """Phase panel with |error| maps, signal-time curves (with masks) and x-t profiles of slice 0."""
    folder.mkdir(parents=True, exist_ok=True)
    hr = case.study.frames[:, 0]
    shown = {METHOD_SHORT_NAMES[m]: frames[:, 0] for m, frames in images.items()} | {"HR": hr}
    center = study_center(case.study, 0)
    times = case.study.times()
    written = []
    masks = {
        roi: case.masks[roi]
        for roi in CURVE_ROIS
        if case.masks and roi in case.masks and case.masks[roi].any()
    }
    if masks:
        curves = {name: roi_curves(frames, masks) for name, frames in {"HR": hr, **shown}.items()}
        phases = phase_frames(curves["HR"])
        written.append(
            save_curves_figure(
                folder / "curves.png", times, curves, title=f"{case.name}: signal-time curves (solid: HR)"
            )
        )
        written.append(write_curves_csv(folder / "curves.csv", times, curves))
        row = float(np.argwhere(masks.get("lv_blood", next(iter(masks.values())))).mean(axis=0)[0])
    else:
        heart = fov_crop(hr, center, 24).mean(axis=(-2, -1))
        phases = {"baseline": 0, "peak": int(np.argmax(heart)), "last": len(hr) - 1}
        row = float(center[0])
    written.append(save_phase_panel(folder / "panel.png", shown, "HR", phases, center))
    half = min(FOV, hr.shape[-1]) // 2
    start, end = (row, max(0.0, center[1] - half)), (row, min(hr.shape[-1] - 1.0, center[1] + half - 1))
    profiles = {name: xt_profile(frames, start, end) for name, frames in shown.items()}
    written.append(save_xt_profiles(folder / "xt_profiles.png", profiles, times))
    return written


def evaluate(
    data: list[str | os.PathLike],
    out: str | os.PathLike,
    *,
    studies: int | None = None,
    max_frames: int | None = None,
    **options,
) -> Evaluation:
    """Evaluate the studies named by ``data`` (see :func:`evaluate_cases` for the options).

    Where ``out`` did not exist, a failed or interrupted run removes what it had written there.
    """
    resolve_models(
        list(options.get("methods", METHODS)), options.get("models")
    )  # refuse before reading studies
    cases = load_cases(list(data), studies, max_frames)
    if not cases:
        raise PerfGenError(f"no studies found in {', '.join(map(str, data))}")
    created = not Path(out).exists()
    try:
        return evaluate_cases(cases, out, source=", ".join(map(str, data)), **options)
    except BaseException:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise


def evaluate_cases(
    cases: list[Case],
    out: str | os.PathLike,
    *,
    fraction: float = 0.35,
    methods: list[str] = METHODS,
    models: dict[str, str] | None = None,
    sampler: str = DEFAULT_SAMPLER,
    steps: int | None = None,
    samples: int | None = None,
    device: str = "auto",
    batch: int = 8,
    seed: int = 0,
    source: str = "memory",
    dicom: bool = False,
    progress: Callable[[int, int], None] | None = None,
    runtime: Distributed | None = None,
) -> Evaluation | None:
    """Super-resolve every case with every method and write metrics, statistics, report and figures.

    With ``dicom`` each method's result is also written as a derived DICOM series in the source
    study, under ``out/dicom/<study>/<method>/``. Under ``torchrun`` (``runtime``) each rank takes
    cases rank, rank + N, ... and writes their figures into the same ``out``; rank 0 gathers the rows
    in case order, so its files equal one process's, writes them and returns the evaluation (the
    other ranks return None); ``progress`` counts rank 0's share."""
    from . import kspace

    kspace.check_fraction(fraction)
    methods = list(dict.fromkeys(methods))
    model_paths = resolve_models(methods, models)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    mine = runtime.shard(list(enumerate(cases))) if runtime else list(enumerate(cases))
    measured = {}  # case index: (frame rows, ROI rows, figures, PerfGen's SD calibration or None)
    if progress:
        progress(0, len(mine))
    for done, (index, case) in enumerate(mine, 1):
        with torch.inference_mode():
            results = {
                method: super_resolve_study(
                    case.study,
                    method,
                    model=model_paths[method],
                    sampler=sampler,
                    steps=steps,
                    samples=samples if method == "perfgen" else None,
                    seed=seed,
                    device=device,
                    batch=batch,
                    lr_fraction=fraction,
                )
                for method in methods
            }
        images = {method: result.study.frames for method, result in results.items()}
        calibration = None
        if "perfgen" in results and results["perfgen"].uncertainty is not None:
            calibration = uncertainty_measures(
                case.study, case.truth, images["perfgen"], results["perfgen"].uncertainty.frames, seed
            )
        if dicom:
            for method, result in results.items():
                write_study(
                    result.study,
                    out / "dicom" / case.name / method,
                    method=METHOD_NAMES[method],
                    model=str(model_paths[method] or "none"),
                )
        measured[index] = (
            case_frame_metrics(case, images),
            roi_measures(case, images),
            save_case_figures(out / "studies" / case.name, case, images),
            calibration,
        )
        if progress:
            progress(done, len(mine))
    if runtime:
        measured = {i: rows for part in runtime.gather(measured) for i, rows in part.items()}
        if not runtime.main:
            return None
    frame_rows = [row for i in range(len(cases)) for row in measured[i][0]]
    roi_rows = [row for i in range(len(cases)) for row in measured[i][1]]
    figures = {case.name: measured[i][2] for i, case in enumerate(cases)}
    calibrations = {case.name: measured[i][3] for i, case in enumerate(cases) if measured[i][3] is not None}
    study_rows = study_means(frame_rows)
    uncertainty = summarise_uncertainty(calibrations, study_rows, out) if calibrations else {}
    write_csv(study_rows + frame_rows, out / "metrics.csv")
    if roi_rows:
        write_csv(roi_rows, out / "roi_metrics.csv")
    names = [case.name for case in cases]
    values = per_study_values(study_rows)
    tests = {reference: comparison_tests(by_method) for reference, by_method in values.items()}
    roi_values: dict[str, dict[str, list[float]]] = {}
    for row in roi_rows:
        roi_values.setdefault(f"{row['measure']}:{row['roi']}", {}).setdefault(row["method"], []).append(
            row["value"]
        )
    save_metric_boxplots(
        out / "boxplots.png",
        {m: {METHOD_NAMES[k]: scaled(m, v[m]) for k, v in values["HR"].items()} for m in METRICS},
        {m: f"{METRIC_NAMES[m]} vs HR" for m in METRICS},
    )
    settings = {
        "data": source,
        "studies": len(cases),
        "frames": int(sum(c.study.shape[0] for c in cases)),
        "fraction": fraction,
        "methods": methods,
        "models": model_paths,
        "sampler": sampler,
        "steps": steps,
        "samples": samples_for("perfgen", samples, sampler),
        "device": str(resolve_device(device)),
        "uncertainty": uncertainty,
        "seconds": time.perf_counter() - started,
    }
    report = out / "report.md"
    with atomic_path(report) as tmp:
        tmp.write_text(format_report(values, tests, roi_values, settings, names, figures, out))
    return Evaluation(names, values, tests, roi_values, report, uncertainty)


def per_study_values(study_rows: list[dict]) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """``values[reference][method][metric]``: per-study means, in study order, over the studies that have the reference."""
    values: dict[str, dict[str, dict[str, list]]] = {}
    for row in study_rows:
        by_metric = values.setdefault(row["reference"], {}).setdefault(
            row["method"], {m: [] for m in METRICS}
        )
        for metric in METRICS:
            by_metric[metric].append(row[metric])
    return {
        ref: {
            method: {m: np.array(v) for m, v in by_metric.items()} for method, by_metric in by_method.items()
        }
        for ref, by_method in values.items()
    }
