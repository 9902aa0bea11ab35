import numpy as np
import pytest

from PerfGenSRLib.augment import AcquisitionRanges, add_noise, limit_kspace, vary_acquisition, zoom_frame

NEVER = dict(
    transpose=0.0, zoom_probability=0.0, recon_probability=0.0, taper_probability=0.0, noise_probability=0.0
)


def _dot(shape=(40, 52), at=(12, 30)) -> np.ndarray:
    frame = np.zeros(shape, np.float32)
    frame[at[0] - 1 : at[0] + 2, at[1] - 1 : at[1] + 2] = 1.0
    return frame


def test_the_centre_follows_the_anatomy_through_transposition_and_zoom():
    for changes in (
        dict(transpose=1.0),
        dict(zoom_probability=1.0, zoom=(1.3, 1.3)),
        dict(zoom_probability=1.0, zoom=(0.8, 0.8)),
    ):
        frame = _dot()
        before = frame.copy()
        out, center = vary_acquisition(
            frame, (12, 30), np.random.default_rng(0), AcquisitionRanges(**{**NEVER, **changes})
        )
        np.testing.assert_array_equal(frame, before)  # input untouched
        peak = np.unravel_index(np.argmax(out), out.shape)
        assert abs(peak[0] - center[0]) <= 1 and abs(peak[1] - center[1]) <= 1, changes


def test_nothing_drawn_leaves_the_frame_as_it_was():
    frame = np.random.default_rng(1).random((30, 34)).astype(np.float32)
    out, center = vary_acquisition(frame, (3, 4), np.random.default_rng(0), AcquisitionRanges(**NEVER))
    np.testing.assert_array_equal(out, frame)
    assert center == (3, 4)


def test_limit_kspace_empties_the_outer_kspace_and_keeps_the_inner():
    frame = np.random.default_rng(2).random((64, 64)).astype(np.float32) + 1
    np.testing.assert_allclose(limit_kspace(frame, 1.0), frame, rtol=1e-5)
    spectrum = np.abs(np.fft.fftshift(np.fft.fft2(limit_kspace(frame, 0.5))))
    assert spectrum[:12].max() < 1e-3 * spectrum.max()  # outer quarter (rows) nearly empty after |.|
    assert zoom_frame(frame, 1.5).shape == (96, 96)


@pytest.mark.parametrize("snr", [5.0, 40.0])
def test_added_noise_has_the_asked_snr(snr):
    frame = np.full((200, 200), 100.0, np.float32)
    noisy = add_noise(frame, snr, np.random.default_rng(3))
    assert np.std(noisy) == pytest.approx(100.0 / snr, rel=0.1)
