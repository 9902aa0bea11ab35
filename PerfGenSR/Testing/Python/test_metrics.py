import numpy as np
import pytest
from scipy import stats
from skimage.metrics import normalized_root_mse, peak_signal_noise_ratio, structural_similarity

from PerfGenSRLib import metrics


@pytest.fixture
def pair():
    rng = np.random.default_rng(0)
    ref = rng.random((3, 40, 36)) * 500
    pred = ref + rng.normal(0, 20, ref.shape)
    return pred, ref


def test_psnr_matches_scikit_image_on_255_scale(pair):
    pred, ref = pair
    peak = ref.max()
    ours = metrics.psnr(pred, ref, peak)
    for t in range(3):
        theirs = peak_signal_noise_ratio(ref[t] * 255 / peak, pred[t] * 255 / peak, data_range=255)
        assert ours[t] == pytest.approx(theirs, abs=1e-9)


def test_ssim_matches_scikit_image_gaussian_wang(pair):
    pred, ref = pair
    peak = ref.max()
    ours = metrics.ssim(pred, ref, peak)
    for t in range(3):
        theirs = structural_similarity(
            ref[t] * 255 / peak,
            pred[t] * 255 / peak,
            data_range=255,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
        assert ours[t] == pytest.approx(theirs, abs=1e-9)
    assert metrics.ssim(ref, ref, peak) == pytest.approx(np.ones(3))


def test_nrmse_matches_scikit_image_min_max(pair):
    pred, ref = pair
    for t in range(3):
        assert metrics.nrmse(pred, ref)[t] == pytest.approx(
            normalized_root_mse(ref[t], pred[t], normalization="min-max")
        )


def test_fov_crop_is_96_and_stays_inside():
    frames = np.zeros((2, 120, 100))
    assert metrics.fov_crop(frames, (5, 95)).shape == (2, 96, 96)
    rows, cols = metrics.fov_box((120, 100), (5, 95))
    assert rows == slice(0, 96) and cols == slice(4, 100)
    assert metrics.fov_crop(np.zeros((1, 64, 80)), (30, 40)).shape == (1, 64, 80)


def test_paired_tests_match_scipy():
    a = np.array([31.2, 30.1, 33.4, 29.8, 32.0, 30.9])
    b = np.array([30.8, 29.0, 33.0, 29.9, 31.1, 30.2])
    result = metrics.paired_tests(a, b)
    assert result["p_ttest"] == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert result["p_wilcoxon"] == pytest.approx(stats.wilcoxon(a, b).pvalue)
    assert result["relative_change_percent"] == pytest.approx(100 * (a - b).mean() / b.mean())


def test_calibration_of_a_perfect_a_scaled_and_a_useless_sd():
    rng = np.random.default_rng(0)
    sd = rng.uniform(0.5, 5.0, 200_000)
    exact = metrics.calibration(sd, sd * rng.choice([-1, 1], sd.size))  # |error| = SD
    assert exact["spearman"] == pytest.approx(1.0) and exact["slope"] == pytest.approx(1.0)
    assert exact["ratio"] == pytest.approx(1.0)
    drawn = metrics.calibration(sd, sd * rng.standard_normal(sd.size))  # error ~ N(0, SD^2): calibrated
    assert drawn["slope"] == pytest.approx(1.0, abs=0.02) and drawn["ratio"] == pytest.approx(1.0, abs=0.02)
    assert drawn["spearman"] > 0.2
    np.testing.assert_allclose(drawn["observed"], drawn["predicted"], rtol=0.05)
    assert np.all(np.diff(drawn["predicted"]) > 0) and len(drawn["predicted"]) == metrics.CALIBRATION_BINS
    small = metrics.calibration(sd / 3, sd * rng.standard_normal(sd.size))  # SD a third of the error
    assert small["slope"] == pytest.approx(3.0, rel=0.03)
    useless = metrics.calibration(rng.permutation(sd), sd * rng.standard_normal(sd.size))
    assert abs(useless["spearman"]) < 0.01 and np.ptp(useless["observed"]) < 0.1
    assert np.isnan(metrics.calibration(np.zeros(100), rng.standard_normal(100))["slope"])
    with pytest.raises(ValueError, match="paired values"):
        metrics.calibration(sd[:5], sd[:5])
