"""``report.md`` and the terminal summary of ``perfgen-sr evaluate``: paired tests across studies
for each pair of methods, and the paper's tables and sentences written from the numbers."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .defaults import (
    CURVE_ROIS,
    DEFAULT_DDIM_STEPS,
    DEFAULT_SAMPLER,
    METHOD_NAMES,
    ROI_BY_KEY,
)
from .metrics import FOV, LOWER_IS_BETTER, METRIC_NAMES, METRICS, paired_tests

COMPARISONS = (("perfgen", "gan"), ("perfgen", "zeropad"), ("gan", "zeropad"))  # (a, b): a minus b
ALPHA = 0.05


def comparison_tests(
    by_method: dict[str, dict[str, np.ndarray]],
) -> dict[tuple[str, str], dict[str, dict[str, float]]]:
    """Paired tests across studies for each comparison whose two methods were run (``a`` minus ``b``)."""
    tests = {}
    for a, b in COMPARISONS:
        if a in by_method and b in by_method:
            tests[(a, b)] = {m: _paired(by_method[a][m], by_method[b][m]) for m in METRICS}
    return tests


def _paired(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    if len(a) < 2 or np.allclose(a, b, rtol=0, atol=0):
        change = float(100 * (a.mean() - b.mean()) / b.mean()) if b.mean() else math.nan
        return {
            "t": math.nan,
            "p_ttest": math.nan,
            "p_wilcoxon": math.nan,
            "mean_difference": float(a.mean() - b.mean()),
            "relative_change_percent": change,
        }
    return paired_tests(a, b)


def scaled(metric: str, values: np.ndarray) -> np.ndarray:
    """Values as tables show them: nRMSE in percent, the rest as they are."""
    return 100 * values if metric == "nrmse" else values


def mean_sd(values, digits: int = 2) -> str:
    """``mean ± SD`` (sample SD; 0 for one value) of values, rounded to ``digits``."""
    values = np.asarray(values, float)
    sd = values.std(ddof=1) if len(values) > 1 else 0.0
    return f"{values.mean():.{digits}f} ± {sd:.{digits}f}"


def _mean_sd(metric: str, values: np.ndarray) -> str:
    return mean_sd(scaled(metric, np.asarray(values, float)), 3 if metric == "ssim" else 2)


def _p(value: float) -> str:
    if not math.isfinite(value):
        return "n/a"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def _p_phrase(value: float) -> str:
    return f"P {_p(value)}" if value < 0.001 else f"P = {_p(value)}"


def comparison_sentence(
    a: str, b: str, metric: str, values: dict[str, dict[str, np.ndarray]], test: dict[str, float]
) -> str:
    """One sentence stating from the numbers whether method ``a`` beat method ``b`` in ``metric``."""
    change = test["relative_change_percent"]
    difference = test["mean_difference"]
    better = difference < 0 if LOWER_IS_BETTER[metric] else difference > 0
    unit = {"nrmse": "%", "psnr": " dB", "ssim": ""}[metric]
    means = (
        f"{_mean_sd(metric, values[a][metric])}{unit} for {METHOD_NAMES[a]} vs. "
        f"{_mean_sd(metric, values[b][metric])}{unit} for {METHOD_NAMES[b]}"
    )
    p = test["p_ttest"]
    if not math.isfinite(p):
        significance = "no paired test (fewer than two studies or identical results)"
    else:
        significance = (
            f"paired t-test {_p_phrase(p)}, {'' if p < ALPHA else 'not '}significant at P < {ALPHA}"
        )
    name = METRIC_NAMES[metric].split(" ")[0]
    if difference == 0:
        return f"{METHOD_NAMES[a]} and {METHOD_NAMES[b]} gave the same {name} ({means})."
    words = {
        "nrmse": ("reduction", "increase"),
        "psnr": ("decrease", "increase"),
        "ssim": ("decrease", "improvement"),
    }
    amount = f"{abs(change):.1f}% {words[metric][change > 0]}"
    amount = f"{'an' if amount.startswith(('8', '11.', '18.')) else 'a'} {amount}"
    if better:
        return (
            f"{METHOD_NAMES[a]} achieved {amount} in {name} over {METHOD_NAMES[b]} ({means}; {significance})."
        )
    return (
        f"**{METHOD_NAMES[a]} did not beat {METHOD_NAMES[b]} in {name}**: {amount} ({means}; {significance})."
    )


def format_report(values, tests, roi_values, settings, names, figures, out: Path) -> str:
    """The Markdown report: settings, the paper's table per reference, tests, sentences, ROI tables, figures."""
    methods = settings["methods"]
    model_lines = [f"{METHOD_NAMES[m]}: `{p}`" for m, p in settings["models"].items() if p is not None]
    lines = [
        "# PerfGenSR evaluation",
        "",
        f"{settings['studies']} studies ({settings['frames']} frames) from `{settings['data']}`, "
        f"LR = central {settings['fraction']:.0%} of the phase-encoding lines, zero-padded. "
        f"Metrics in the {FOV}x{FOV} field of view around the heart (paper section 2.3): nRMSE per frame "
        "normalised by the reference frame's range, PSNR and SSIM on the 0-255 scale of the study's "
        "reference maximum; each study is the mean over its frames, tables give mean ± SD across studies.",
        "",
        "Models: "
        + ("; ".join(model_lines) if model_lines else "none (zero-padding only)")
        + ". "
        + (_perfgen_setting(settings) if "perfgen" in methods else "")
        + f"Device {settings['device']}, {settings['seconds']:.0f} s.",
        "",
    ]
    for reference, by_method in values.items():
        title = "HR images" if reference == "HR" else "the noise-free truth (phantoms)"
        lines += [
            f"## Image quality against {title}",
            "",
            "| Method | " + " | ".join(METRIC_NAMES[m] for m in METRICS) + " |",
            "|---|" + "---|" * len(METRICS),
        ]
        lines += [
            f"| {METHOD_NAMES[m]} | " + " | ".join(_mean_sd(k, by_method[m][k]) for k in METRICS) + " |"
            for m in methods
        ]
        if tests[reference]:
            n = len(next(iter(by_method.values()))["psnr"])
            lines += [
                "",
                f"Paired tests across studies (n = {n}); relative change = (mean A − mean B) / mean B:",
                "",
                "| A vs B | Metric | Relative change | paired t-test P | Wilcoxon P |",
                "|---|---|---|---|---|",
            ]
            for (a, b), by_metric in tests[reference].items():
                lines += [
                    f"| {METHOD_NAMES[a]} vs {METHOD_NAMES[b]} | {METRIC_NAMES[m].split(' ')[0]} | "
                    f"{by_metric[m]['relative_change_percent']:+.1f}% | {_p(by_metric[m]['p_ttest'])} | "
                    f"{_p(by_metric[m]['p_wilcoxon'])} |"
                    for m in METRICS
                ]
            lines.append("")
            lines += [
                f"- {comparison_sentence(a, b, m, by_method, by_metric[m])}"
                for (a, b), by_metric in tests[reference].items()
                for m in METRICS
            ]
        lines.append("")
    lines += curve_sections(roi_values, methods)
    contrast = roi_values.get("defect_remote_ratio_relative_to_hr:defect")
    if contrast:
        hr_ratio = roi_values["defect_remote_ratio:defect"]["HR"]
        lines += [
            "## Defect-to-remote contrast",
            "",
            "Mean signal in the defect over mean signal in the remote myocardium at the HR's remote-myocardium "
            f"peak, divided by the same ratio in HR (1 = as in HR; HR ratio {mean_sd(hr_ratio, 3)}, "
            f"{len(hr_ratio)} {'study' if len(hr_ratio) == 1 else 'studies'} with a defect):",
            "",
            "| Method | Ratio relative to HR |",
            "|---|---|",
        ]
        lines += [f"| {METHOD_NAMES[m]} | {mean_sd(contrast[m], 3)} |" for m in methods]
        lines.append("")
    if "perfgen" in methods:
        lines += uncertainty_section(settings)
    lines += [
        "## Figures",
        "",
        "![box plots](boxplots.png)",
        "",
        "Per study (`studies/NAME/`): `panel.png` (LR / GAN / PerfGen / HR at the first-pass phases with "
        "|error| maps), `curves.png` and `curves.csv` (where masks exist), `xt_profiles.png` (a line "
        "through the LV centre across the heart).",
        "",
    ]
    first = names[0]
    lines += [
        f"![{first} {p.stem}]({p.relative_to(out).as_posix()})" for p in figures[first] if p.suffix == ".png"
    ]
    lines += [
        "",
        "Other studies: " + ", ".join(f"[{n}](studies/{n}/panel.png)" for n in names[1:])
        if names[1:]
        else "",
        "",
        "Per-frame and per-study values: `metrics.csv` (nRMSE as a fraction)"
        + ("; ROI measures: `roi_metrics.csv`." if roi_values else "."),
        "",
    ]
    return "\n".join(lines)


CURVE_MEASURES = {  # roi_metrics.csv measure -> what its table shows (against the section's reference)
    "curve_rmse_percent_of_peak": "Curve RMSE, in % of the reference curve's peak",
    "jitter_ratio": "Jitter: RMS of the curve's second difference over the reference curve's "
    "(1 = as jittery as the reference; frame-to-frame noise raises it, smoothing lowers it)",
    "noise_jitter_ratio": "Noise jitter: RMS of the second difference of (curve minus truth) over HR's "
    "(1 = as much frame-to-frame noise as HR; the truth's own bends cancel out)",
    "ttp_error_s": "Time-to-peak error in s (method minus reference; peaks found after a 1-frame "
    "Gaussian smoothing, refined by a parabola)",
    "upslope_error_percent": "Maximal-upslope error, in % of the reference curve's (largest rise per "
    "second between frames, after the same smoothing)",
}


def curve_sections(roi_values: dict, methods: list[str]) -> list[str]:
    """The signal-time-curve tables against HR and against the truth: one table per measure,
    method x ROI, mean ± SD across studies with masks (the truth's own jitter as an extra row)."""
    lines = []
    for suffix, title in (("", "HR"), ("_vs_truth", "the noise-free truth (phantoms)")):
        tables = []
        for measure, caption in CURVE_MEASURES.items():
            keys = [
                f"{measure}{suffix}:{roi}" for roi in CURVE_ROIS if f"{measure}{suffix}:{roi}" in roi_values
            ]
            if not keys:
                continue
            rows = [*methods, *(["truth"] if any("truth" in roi_values[k] for k in keys) else [])]
            tables += [
                f"{caption}:",
                "",
                "| Method | " + " | ".join(ROI_BY_KEY[k.split(":")[1]].name for k in keys) + " |",
                "|---|" + "---|" * len(keys),
                *(
                    f"| {METHOD_NAMES.get(m, 'Truth (noise-free)')} | "
                    + " | ".join(mean_sd(roi_values[k][m]) if m in roi_values[k] else "–" for k in keys)
                    + " |"
                    for m in rows
                ),
                "",
            ]
        if tables:
            lines += [
                f"## Signal-time curves against {title}",
                "",
                "Mean ROI curves of slice 0, each method against the reference's, mean ± SD across studies "
                "with masks (PerfGenSR's `Docs/temporal.md` explains the measures).",
                "",
                *tables,
            ]
    return lines


def uncertainty_section(settings: dict) -> list[str]:
    """PerfGen's uncertainty against its error: per study and pooled, or why there is none."""
    found = settings.get("uncertainty") or {}
    lines = ["## Uncertainty (PerfGen's per-pixel SD over its samples)", ""]
    if not found:
        return lines + [
            f"Not measured: PerfGen ran with sampler {settings.get('sampler', DEFAULT_SAMPLER)} and "
            f"{settings.get('samples', 1)} sample(s) per frame, which give no SD. Run with a stochastic "
            "sampler and two or more samples (`--sampler ddim --samples 8`) to measure how well the SD "
            "predicts the error.",
            "",
        ]
    lines += [
        f"Every pixel of the {FOV}x{FOV} FOV of every frame: the SD of PerfGen's samples against the error "
        "of their mean. Spearman: rank correlation of SD and |error| (1 = the SD orders pixels by error, "
        "0 = chance); slope: observed RMS error over predicted RMS SD across 10 quantile bins of the SD "
        "(through the origin; 1 = calibrated, > 1 = the SD understates the error); ratio: RMS error / "
        "RMS SD over all pixels.",
        "",
    ]
    for reference, by_study in found.items():
        title = "HR" if reference == "HR" else "the noise-free truth"
        numbers = {n: c for n, c in by_study.items() if n != "pooled"}
        lines += [
            f"Against {title}:",
            "",
            "| Study | Spearman | Calibration slope | Error / SD |",
            "|---|---|---|---|",
            *(
                f"| {n} | {c['spearman']:.3f} | {c['slope']:.2f} | {c['ratio']:.2f} |"
                for n, c in numbers.items()
            ),
            "| mean ± SD | "
            + " | ".join(
                mean_sd([c[k] for c in numbers.values()], d)
                for k, d in (("spearman", 3), ("slope", 2), ("ratio", 2))
            )
            + " |",
            f"| pooled pixels | {by_study['pooled']['spearman']:.3f} | {by_study['pooled']['slope']:.2f} | "
            f"{by_study['pooled']['ratio']:.2f} |",
            "",
        ]
    return lines + [
        "![calibration curve](uncertainty.png)",
        "",
        "Per-study `sd_*` columns in `metrics.csv`; the binned curves in `uncertainty_calibration.csv`; "
        "PerfGenSR's `Docs/uncertainty.md` says how to read the SD.",
        "",
    ]


def format_summary(values: dict, tests: dict, studies: int) -> str:
    """Plain-text mean ± SD table per reference and the sentences on PerfGen vs GAN, for the terminal."""
    lines = []
    for reference, by_method in values.items():
        lines.append(f"against {reference} ({studies} studies, mean ± SD):")
        lines.append(f"  {'method':<15}" + "".join(f"{METRIC_NAMES[m]:>20}" for m in METRICS))
        lines += [
            f"  {METHOD_NAMES[method]:<15}" + "".join(f"{_mean_sd(m, values[m]):>20}" for m in METRICS)
            for method, values in by_method.items()
        ]
        pair = tests[reference].get(("perfgen", "gan"))
        if pair:
            lines += [
                "  " + comparison_sentence("perfgen", "gan", m, by_method, pair[m]).replace("**", "")
                for m in METRICS
            ]
    return "\n".join(lines)


def _perfgen_setting(settings: dict) -> str:
    """One sentence naming PerfGen's sampler, steps and draws per frame."""
    if settings.get("sampler", DEFAULT_SAMPLER) == "mean":
        return "PerfGen: posterior mean in one pass (sampler mean). "
    steps = settings["steps"] or DEFAULT_DDIM_STEPS
    draws = settings["samples"]
    return f"PerfGen: {settings['sampler']} with {steps} step(s), {draws} sample{'s' if draws > 1 else ''} per frame. "
