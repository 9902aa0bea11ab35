import numpy as np

from PerfGenSRLib import curves


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
