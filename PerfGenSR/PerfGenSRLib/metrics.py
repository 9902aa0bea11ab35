"""Image-quality metrics of paper section 2.3 and the statistics across studies.

Scaling: PSNR and SSIM are computed on the 0-255 scale, images being mapped by the *reference
study's* intensity range in the field of view, ``x * 255 / max(reference)`` with ``max`` taken over all
frames of the study (one scale per study, so late and baseline frames are judged on the same scale
as a reader's fixed window would show them). nRMSE (eq. 10) is normalised per frame by the reference
frame's ``max - min``, as the equation writes it. All metrics are taken in the 96x96 field of view
around the heart (:func:`fov_crop`).

Uncertainty (:func:`calibration`): how well a per-pixel SD predicts the actual error of the estimate
it comes with, as a rank correlation and a calibration curve over quantile bins of the SD.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage, stats

FOV = 96
METRICS = ("nrmse", "psnr", "ssim")
METRIC_NAMES = {"nrmse": "nRMSE (%)", "psnr": "PSNR (dB)", "ssim": "SSIM"}
LOWER_IS_BETTER = {"nrmse": True, "psnr": False, "ssim": False}
SSIM_SIGMA, SSIM_TRUNCATE, SSIM_K1, SSIM_K2 = 1.5, 3.5, 0.01, 0.03  # 11x11 Gaussian window, Wang et al. 2004


def fov_box(shape: tuple[int, int], center: tuple[float, float], size: int = FOV) -> tuple[slice, slice]:
    """Row/column slices of a ``size`` square around ``center`` (row, col), kept inside the image."""
    box = []
    for extent, c in zip(shape, center):
        side = min(size, extent)
        start = int(round(c)) - side // 2
        start = min(max(start, 0), extent - side)
        box.append(slice(start, start + side))
    return tuple(box)


def fov_crop(frames: np.ndarray, center: tuple[float, float], size: int = FOV) -> np.ndarray:
    """The ``size`` x ``size`` field of view of ``(..., H, W)`` frames around ``center``."""
    rows, cols = fov_box(frames.shape[-2:], center, size)
    return frames[..., rows, cols]


def nrmse(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Eq. 10 per frame of ``(..., H, W)``: RMSE over the reference frame's max - min."""
    rmse = np.sqrt(np.mean((pred.astype(float) - ref) ** 2, axis=(-2, -1)))
    spread = ref.max(axis=(-2, -1)) - ref.min(axis=(-2, -1))
    return rmse / np.maximum(spread, np.finfo(float).tiny)


def psnr(pred: np.ndarray, ref: np.ndarray, peak: float) -> np.ndarray:
    """Eq. 11 per frame on the 0-255 scale, both images scaled by ``255 / peak``."""
    mse = np.mean(((pred.astype(float) - ref) * (255.0 / peak)) ** 2, axis=(-2, -1))
    return 10 * np.log10(255.0**2 / np.maximum(mse, 1e-12))


def ssim(pred: np.ndarray, ref: np.ndarray, peak: float) -> np.ndarray:
    """Eq. 12 per frame on the 0-255 scale (Gaussian window 11, sigma 1.5, Wang 2004 constants)."""
    x = np.asarray(pred, float) * (255.0 / peak)
    y = np.asarray(ref, float) * (255.0 / peak)
    c1, c2 = (SSIM_K1 * 255) ** 2, (SSIM_K2 * 255) ** 2
    sigmas = [0.0] * (x.ndim - 2) + [SSIM_SIGMA, SSIM_SIGMA]

    def blur(a):
        return ndimage.gaussian_filter(a, sigmas, truncate=SSIM_TRUNCATE, mode="reflect")

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    ssim_map = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    pad = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)
    return ssim_map[..., pad:-pad, pad:-pad].mean(axis=(-2, -1))


def frame_metrics(pred: np.ndarray, ref: np.ndarray, peak: float | None = None) -> dict[str, np.ndarray]:
    """nRMSE, PSNR and SSIM per frame of ``(..., H, W)`` arrays (already cropped to the FOV)."""
    peak = float(ref.max()) if peak is None else float(peak)
    return {"nrmse": nrmse(pred, ref), "psnr": psnr(pred, ref, peak), "ssim": ssim(pred, ref, peak)}


CALIBRATION_BINS = 10


def calibration_curve(
    sd: np.ndarray, error: np.ndarray, bins: int = CALIBRATION_BINS
) -> tuple[np.ndarray, np.ndarray]:
    """Pixels binned by predicted SD into ``bins`` quantile bins (equal counts): per bin the
    predicted RMS SD and the observed RMS error, ``(predicted, observed)``, in the SD's units."""
    sd, error = np.ravel(np.asarray(sd, float)), np.ravel(np.asarray(error, float))
    if sd.shape != error.shape or sd.size < bins:
        raise ValueError(f"need {bins}+ paired values, got {sd.size} SDs and {error.size} errors")
    order = np.argsort(sd, kind="stable")
    groups = np.array_split(order, bins)
    predicted = np.array([np.sqrt(np.mean(sd[g] ** 2)) for g in groups])
    observed = np.array([np.sqrt(np.mean(error[g] ** 2)) for g in groups])
    return predicted, observed


def calibration(sd: np.ndarray, error: np.ndarray, bins: int = CALIBRATION_BINS) -> dict:
    """How well the per-pixel ``sd`` predicts the per-pixel ``error`` (estimate minus reference).

    ``spearman``: rank correlation of SD and |error| (1: the SD orders pixels exactly by error,
    0: no better than chance); ``slope``: least-squares slope through the origin of the calibration
    curve's observed RMS error on predicted RMS SD (1: calibrated, above 1: the SD is too small);
    ``ratio``: RMS error over RMS SD over all pixels; ``predicted``/``observed``: the curve.
    """
    predicted, observed = calibration_curve(sd, error, bins)
    sd, error = np.ravel(np.asarray(sd, float)), np.ravel(np.asarray(error, float))
    spread = float(np.sqrt(np.mean(sd**2)))
    rho = (
        float(stats.spearmanr(sd, np.abs(error)).statistic)
        if np.ptp(sd) > 0 and np.ptp(error) > 0
        else np.nan
    )
    return {
        "spearman": rho,
        "slope": float(predicted @ observed / (predicted @ predicted)) if spread > 0 else np.nan,
        "ratio": float(np.sqrt(np.mean(error**2)) / spread) if spread > 0 else np.nan,
        "predicted": predicted,
        "observed": observed,
    }


def paired_tests(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Paired t-test and Wilcoxon signed-rank test of per-study values ``a`` against ``b``."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    t = stats.ttest_rel(a, b)
    differences = a - b
    wilcoxon_p = (
        float(stats.wilcoxon(a, b).pvalue) if np.any(differences != 0) and len(a) > 1 else float("nan")
    )
    return {
        "t": float(t.statistic),
        "p_ttest": float(t.pvalue),
        "p_wilcoxon": wilcoxon_p,
        "mean_difference": float(differences.mean()),
        "relative_change_percent": float(100 * differences.mean() / b.mean()) if b.mean() else float("nan"),
    }
