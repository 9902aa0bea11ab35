import csv
import re

import numpy as np
import pytest
import torch
from conftest import smooth_study
from scipy import stats

from PerfGenSRLib.cli import main
from PerfGenSRLib.errors import PerfGenError
from PerfGenSRLib.evaluate import evaluate
from PerfGenSRLib.gan import PRESETS as GAN_PRESETS
from PerfGenSRLib.gan import Generator
from PerfGenSRLib.models import save_model
from PerfGenSRLib.phantom import write_phantom_dataset
from PerfGenSRLib.report import comparison_sentence, comparison_tests, mean_sd
from PerfGenSRLib.schedule import DiffusionSchedule
from PerfGenSRLib.unet import PRESETS, UNet

FRAMES, STUDIES = 4, 3


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """Three phantom studies evaluated with tiny random PerfGen and GAN models."""
    root = tmp_path_factory.mktemp("evaluate")
    write_phantom_dataset(root / "data", STUDIES, FRAMES, seed=70_000, progress=False)
    torch.manual_seed(0)
    perfgen = save_model(
        root / "perfgen.safetensors",
        UNet(PRESETS["tiny"]),
        "perfgen-unet",
        PRESETS["tiny"],
        extra={"schedule": DiffusionSchedule().config()},
    )
    generator = Generator(GAN_PRESETS["tiny"].generator)
    with torch.no_grad():
        generator.tail[-1].weight.normal_(0, 0.05)  # not the identity, so GAN and zero-padding differ
    gan = save_model(root / "gan.safetensors", generator, "regain-generator", GAN_PRESETS["tiny"].generator)
    progress = []
    result = evaluate(
        [root / "data"],
        root / "out",
        models={"perfgen": str(perfgen), "gan": str(gan)},
        device="cpu",
        progress=lambda done, total: progress.append((done, total)),
    )
    return root / "out", result, progress


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_report_has_every_table_row_and_figure(evaluated):
    out, result, progress = evaluated
    report = result.report.read_text()
    assert progress[0] == (0, STUDIES) and progress[-1] == (STUDIES, STUDIES)
    for heading in (
        "## Image quality against HR images",
        "## Image quality against the noise-free truth",
        "## Signal-time curves against HR",
        "## Defect-to-remote contrast",
        "## Figures",
    ):
        assert heading in report
    for label in ("LR (zero-pad)", "GAN", "PerfGen"):
        assert (
            len(re.findall(rf"^\| {re.escape(label)} \|", report, re.M)) == 2 + 4 + 5 + 1
        )  # HR, truth, 4 curve measures against HR and 5 against the truth (noise jitter too), contrast
    assert len(re.findall(r"^\| Truth \(noise-free\) \|", report, re.M)) == 1  # its jitter against HR's
    assert "## Signal-time curves against the noise-free truth" in report
    assert "## Uncertainty" in report and "Not measured: PerfGen ran with sampler mean" in report
    for pair in ("PerfGen vs GAN", "PerfGen vs LR (zero-pad)", "GAN vs LR (zero-pad)"):
        assert len(re.findall(rf"^\| {re.escape(pair)} \| (nRMSE|PSNR|SSIM) \|", report, re.M)) == 6
    linked = re.findall(r"\]\(([^)]+\.png)\)", report)
    assert "boxplots.png" in linked and all((out / path).is_file() for path in linked)
    for name in result.studies:
        for figure in ("panel.png", "curves.png", "xt_profiles.png", "curves.csv"):
            assert (out / "studies" / name / figure).is_file()
    rows = read_rows(out / "metrics.csv")
    methods, references = 3, 2
    assert sum(r["level"] == "frame" for r in rows) == STUDIES * FRAMES * methods * references
    assert sum(r["level"] == "study" for r in rows) == STUDIES * methods * references
    zeropad = [float(r["psnr"]) for r in rows if r["method"] == "zeropad" and r["level"] == "frame"]
    assert all(np.isfinite(zeropad)) and np.mean(zeropad) > 20
    roi = read_rows(out / "roi_metrics.csv")
    assert {r["roi"] for r in roi} >= {"lv_blood", "rv_blood", "myocardium"}
    measures = {r["measure"] for r in roi}
    for measure in ("curve_rmse_percent_of_peak", "jitter_ratio", "ttp_error_s", "upslope_error_percent"):
        assert {measure, f"{measure}_vs_truth"} <= measures
    assert not (out / "uncertainty.png").exists() and "sd_spearman" not in rows[0]


def test_curve_table_numbers_are_the_roi_rows_and_hr_against_itself_is_exact(evaluated):
    out, result, _ = evaluated
    roi = read_rows(out / "roi_metrics.csv")

    def values(measure, method, roi=None):
        return [
            float(r["value"])
            for r in rows
            if r["measure"] == measure and r["method"] == method and roi in (None, r["roi"])
        ]

    rows = roi
    jitter = values("jitter_ratio", "perfgen")
    assert len(jitter) == STUDIES * 3 and all(v > 0 for v in jitter)
    tables = result.report.read_text().split("## Signal-time curves against the noise-free truth")
    assert f"| PerfGen | {mean_sd(values('jitter_ratio', 'perfgen', 'lv_blood'))} |" in tables[0]
    assert f"| GAN | {mean_sd(values('ttp_error_s_vs_truth', 'gan', 'lv_blood'))} |" in tables[1]
    truth = values("jitter_ratio", "truth", "lv_blood")  # the noise-free curve against HR
    assert len(truth) == STUDIES and f"| Truth (noise-free) | {mean_sd(truth)} |" in tables[0]
    noise = values("noise_jitter_ratio_vs_truth", "perfgen", "myocardium")
    assert (
        len(noise) == STUDIES
        and f"| PerfGen | {mean_sd(values('noise_jitter_ratio_vs_truth', 'perfgen', 'lv_blood'))} | "
        in tables[1]
    )


def test_uncertainty_of_a_stochastic_sampler_is_measured_and_reported(evaluated, tmp_path):
    out, _, _ = evaluated
    models = {"perfgen": str(out.parent / "perfgen.safetensors")}
    options = dict(methods=["perfgen"], models=models, sampler="ddim", steps=1, device="cpu")
    result = evaluate([out.parent / "data"], tmp_path / "ddim", studies=2, max_frames=3, samples=2, **options)
    report = result.report.read_text()
    section = report.split("## Uncertainty")[1].split("## Figures")[0]
    assert "Against the noise-free truth:" in section and "Against HR:" in section
    rows = [r for r in read_rows(tmp_path / "ddim" / "metrics.csv") if r["level"] == "study"]
    truth = [r for r in rows if r["reference"] == "truth"]
    assert len(truth) == 2 and all(-1 <= float(r["sd_spearman"]) <= 1 for r in truth)
    for row in truth:
        assert (
            f"| {row['study']} | {float(row['sd_spearman']):.3f} | {float(row['sd_calibration_slope']):.2f} |"
            in section
        )
    assert "| pooled pixels |" in section and (tmp_path / "ddim" / "uncertainty.png").is_file()
    curve = read_rows(tmp_path / "ddim" / "uncertainty_calibration.csv")
    assert len(curve) == 2 * 3 * 10  # 2 references x (2 studies + pooled) x 10 bins
    frames = [r for r in read_rows(tmp_path / "ddim" / "metrics.csv") if r["level"] == "frame"]
    assert all(r["sd_spearman"] == "" for r in frames)


def test_statistics_and_sentences_on_a_hand_made_example():
    perfgen = {
        "nrmse": np.array([0.025, 0.026, 0.024, 0.027, 0.022]),
        "psnr": np.array([32.0, 31.0, 33.5, 30.0, 32.2]),
        "ssim": np.array([0.89, 0.88, 0.90, 0.87, 0.91]),
    }
    gan = {
        "nrmse": np.array([0.027, 0.0275, 0.026, 0.028, 0.024]),
        "psnr": np.array([32.5, 31.2, 33.9, 30.1, 32.9]),
        "ssim": np.array([0.88, 0.88, 0.89, 0.86, 0.90]),
    }
    tests = comparison_tests({"perfgen": perfgen, "gan": gan})
    assert list(tests) == [("perfgen", "gan")]
    nrmse = tests[("perfgen", "gan")]["nrmse"]
    assert nrmse["p_ttest"] == pytest.approx(stats.ttest_rel(perfgen["nrmse"], gan["nrmse"]).pvalue)
    assert nrmse["p_wilcoxon"] == pytest.approx(stats.wilcoxon(perfgen["nrmse"], gan["nrmse"]).pvalue)
    change = 100 * (perfgen["nrmse"].mean() - gan["nrmse"].mean()) / gan["nrmse"].mean()
    values = {"perfgen": perfgen, "gan": gan}
    better = comparison_sentence("perfgen", "gan", "nrmse", values, nrmse)
    assert better.startswith(f"PerfGen achieved a {abs(change):.1f}% reduction in nRMSE over GAN")
    assert "2.48 ± 0.19% for PerfGen" in better and "significant at P < 0.05" in better
    worse = comparison_sentence("perfgen", "gan", "psnr", values, tests[("perfgen", "gan")]["psnr"])
    assert worse.startswith("**PerfGen did not beat GAN in PSNR**") and "decrease" in worse
    assert mean_sd([1.0, 2.0, 3.0]) == "2.00 ± 1.00"


def test_user_studies_without_masks_and_zero_padding_only(tmp_path):
    for seed in range(2):
        np.save(tmp_path / f"study{seed}.npy", smooth_study(seed, frames=4).frames[:, 0])
    result = evaluate([tmp_path], tmp_path / "out", methods=["zeropad"], device="cpu", max_frames=3)
    report = result.report.read_text()
    assert result.studies == ["study0", "study1"] and "| LR (zero-pad) |" in report
    assert "Signal-time curves" not in report and "noise-free truth" not in report
    assert (tmp_path / "out" / "studies" / "study0" / "panel.png").is_file()
    assert not (tmp_path / "out" / "roi_metrics.csv").exists()


def test_missing_models_are_named(tmp_path, monkeypatch):
    monkeypatch.setenv("PERFGEN_MODELS_DIR", str(tmp_path))
    with pytest.raises(PerfGenError, match=r"gan model .* does not exist; pass `models` gan=PATH"):
        evaluate([tmp_path], tmp_path / "out", methods=["zeropad", "gan"])
    with pytest.raises(PerfGenError, match="unknown method 'sr3'"):
        evaluate([tmp_path], tmp_path / "out", methods=["sr3"])
    with pytest.raises(PerfGenError, match="leaves out"):
        evaluate([tmp_path], tmp_path / "out", methods=["zeropad"], models={"perfgen": "x.safetensors"})


def test_cli_evaluate_and_train_gan(tmp_path, capsys):
    for name in ("evaluate", "train-gan"):
        assert main([name, "--help"]) == 0 and f"usage: perfgen-sr {name}" in capsys.readouterr().out
    for seed in range(3):
        np.save(tmp_path / f"study{seed}.npy", smooth_study(seed, frames=4).frames[:, 0])
    assert (
        main(
            [
                "train-gan",
                "--data",
                str(tmp_path),
                "--out",
                str(tmp_path / "run"),
                "--preset",
                "tiny",
                "--steps",
                "2",
                "--batch",
                "2",
                "--workers",
                "0",
                "--val-studies",
                "1",
                "--progress-lines",
                "--adversarial-weight",
                "0.01",
                "--pretrain-steps",
                "1",
            ]
        )
        == 0
    )
    model = tmp_path / "run" / "model.safetensors"
    assert (
        main(
            [
                "evaluate",
                "--data",
                str(tmp_path),
                "--out",
                str(tmp_path / "eval"),
                "--methods",
                "zeropad,gan",
                "--models",
                f"gan={model}",
                "--studies",
                "2",
                "--device",
                "cpu",
                "--progress-lines",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "PROGRESS 2 2" in out and "GAN" in out and (tmp_path / "eval" / "report.md").is_file()
    assert main(["evaluate", "--data", str(tmp_path), "--out", str(tmp_path / "bad"), "--models", "gan"]) == 2
    assert "METHOD=PATH" in capsys.readouterr().err


def test_results_written_as_derived_dicom_series(tmp_path):
    from PerfGenSRLib.dicom import read_dicom_study
    from PerfGenSRLib.kspace import degrade

    study = smooth_study(0, frames=4)
    np.save(tmp_path / "study0.npy", study.frames[:, 0])
    evaluate([tmp_path / "study0.npy"], tmp_path / "out", methods=["zeropad"], device="cpu", dicom=True)
    series = tmp_path / "out" / "dicom" / "study0" / "zeropad"
    back = read_dicom_study(series)
    assert back.shape == study.shape and len(list(series.iterdir())) == 4
    expected = degrade(study.frames, 0.35)
    assert np.abs(back.frames - expected).max() <= 2e-5 * (expected.max() - expected.min()) + 1e-3
