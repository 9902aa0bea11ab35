import numpy as np
import pytest

from PerfGenSRLib import curves
from PerfGenSRLib.errors import PerfGenError


def test_roi_curves_mean_and_sd_per_frame():
    frames = np.zeros((4, 10, 10))
    frames[:, 2:4, 2:4] = np.arange(4)[:, None, None]
    frames[:, 6, 6] = 5
    frames[:, 6, 7] = 7
    masks = {
        "lv_blood": np.zeros((10, 10), bool),
        "myocardium": np.zeros((10, 10), bool),
        "defect": np.zeros((10, 10), bool),
    }
    masks["lv_blood"][2:4, 2:4] = True
    masks["myocardium"][6, 6:8] = True
    result = curves.roi_curves(frames, masks)
    np.testing.assert_allclose(result["lv_blood"][0], [0, 1, 2, 3])
    np.testing.assert_allclose(result["myocardium"][0], 6)
    np.testing.assert_allclose(result["myocardium"][1], 1)
    assert "defect" not in result  # an empty ROI gives no curve


def test_xt_profile_samples_along_the_line():
    frames = np.tile(np.arange(20, dtype=float), (3, 20, 1)) * np.arange(1, 4)[:, None, None]
    profile = curves.xt_profile(frames, (10, 0), (10, 19))
    assert profile.shape == (3, 20)
    np.testing.assert_allclose(profile[1], 2 * np.arange(20))


def test_csv_and_figure(tmp_path):
    times = np.arange(5) * 0.8
    data = {
        "HR": {"lv_blood": (np.arange(5.0), np.ones(5))},
        "LR": {"lv_blood": (np.arange(5.0) / 2, np.ones(5))},
    }
    path = curves.write_curves_csv(tmp_path / "c.csv", times, data)
    lines = path.read_text().splitlines()
    assert lines[0] == "time_s,HR:lv_blood:mean,HR:lv_blood:sd,LR:lv_blood:mean,LR:lv_blood:sd"
    assert len(lines) == 6 and lines[2].startswith("0.8,1.0,1.0,0.5")
    png = curves.save_curves_figure(tmp_path / "c.png", times, data)
    assert png.read_bytes()[:4] == b"\x89PNG"


def gamma_variate(t, t0=4.0, alpha=3.0, beta=1.5, scale=100.0):
    """A first-pass bolus: peak at t0 + alpha * beta, steepest rise at t0 + (alpha - sqrt(alpha)) * beta."""
    s = np.clip(t - t0, 0, None)
    return scale * s**alpha * np.exp(-s / beta)


def test_time_to_peak_and_upslope_of_an_analytic_gamma_variate():
    times = np.arange(0, 40, 0.25)
    curve = gamma_variate(times)
    assert curves.time_to_peak(curve, times) == pytest.approx(4.0 + 3.0 * 1.5, abs=0.02)
    steepest = 4.0 + (3.0 - np.sqrt(3.0)) * 1.5
    s = steepest - 4.0
    slope = 100.0 * s**2 * np.exp(-s / 1.5) * (3.0 - s / 1.5)  # d/dt of the curve at its steepest
    assert curves.max_upslope(curve, times, smooth=0) == pytest.approx(slope, rel=0.005)
    # the light smoothing (1 frame) flattens the steepest rise a little, never much
    assert 0.95 * slope < curves.max_upslope(curve, times) < slope
    # a coarse, non-uniform frame clock still finds the peak between frames
    coarse = np.cumsum(np.r_[0, np.full(30, 1.0) + 0.1 * np.sin(np.arange(30))])
    assert curves.time_to_peak(gamma_variate(coarse), coarse, smooth=0) == pytest.approx(8.5, abs=0.05)


def test_jitter_of_a_known_noise_and_the_measures_against_a_reference():
    times = np.arange(60) * 0.8
    smooth = gamma_variate(times, t0=8.0, alpha=2.0, beta=3.0, scale=10.0) + 50
    noise = np.random.default_rng(0).standard_normal((2000, 60))
    # white noise of SD s adds sqrt(6) s to the RMS second difference
    jitters = [curves.curve_jitter(n) for n in noise[:200]]
    assert np.mean(jitters) == pytest.approx(np.sqrt(6), rel=0.02)
    reference = smooth + 2.0 * noise[0]
    twice = smooth + 4.0 * noise[1]
    measures = curves.temporal_measures(twice, reference, times)
    assert measures["jitter_ratio"] == pytest.approx(
        curves.curve_jitter(twice) / curves.curve_jitter(reference)
    )
    # twice the noise of the reference: twice its jitter (one pair scatters, 200 pairs do not)
    ratios = [
        curves.temporal_measures(smooth + 4 * noise[2 * i + 1], smooth + 2 * noise[2 * i], times)[
            "jitter_ratio"
        ]
        for i in range(200)
    ]
    assert np.median(ratios) == pytest.approx(2.0, rel=0.05)
    same = curves.temporal_measures(reference, reference, times)
    assert same == {
        "jitter_ratio": 1.0,
        "rmse_percent_of_peak": 0.0,
        "ttp_error": 0.0,
        "upslope_error_percent": 0.0,
    }
    late = curves.temporal_measures(np.interp(times - 1.6, times, smooth), smooth, times)
    assert late["ttp_error"] == pytest.approx(1.6, abs=0.1) and abs(late["upslope_error_percent"]) < 3
    halved = curves.temporal_measures(50 + (smooth - 50) / 2, smooth, times)
    assert halved["upslope_error_percent"] == pytest.approx(-50) and halved["ttp_error"] == pytest.approx(0)
    # the truth's bend hides the noise from the plain jitter; subtracting the truth shows it
    bent = 50 + 1000 * np.exp(-(((times - 10) / 2.0) ** 2))
    hr, noisier = bent + 1.0 * noise[2], bent + 1.5 * noise[3]
    assert curves.temporal_measures(noisier, hr, times)["jitter_ratio"] < 1.05
    assert curves.noise_jitter_ratio(noisier, hr, bent) == pytest.approx(1.5, rel=0.25)
    assert curves.noise_jitter_ratio(hr, hr, bent) == 1.0
    with pytest.raises(PerfGenError, match="at least 3 frames"):
        curves.curve_jitter(np.ones(2))
