import numpy as np
import pytest
import torch

from PerfGenSRLib import kspace
from PerfGenSRLib.errors import PerfGenError


def paper_truncation(image: np.ndarray, fraction: float) -> np.ndarray:
    """Independent reference: per frame, shifted 2D FFT, zero all but the central rows, IFFT, |.|."""
    out = np.empty_like(image, dtype=float)
    for index in np.ndindex(image.shape[:-2]):
        k = np.fft.fftshift(np.fft.fft2(image[index]))
        n = k.shape[0]
        m = max(1, int(round(fraction * n)))
        mask = np.zeros(n, bool)
        mask[n // 2 - m // 2 : n // 2 - m // 2 + m] = True
        k[~mask] = 0
        out[index] = np.abs(np.fft.ifft2(np.fft.ifftshift(k)))
    return out


@pytest.mark.parametrize("shape", [(3, 64, 48), (2, 65, 47), (1, 2, 33, 30), (4, 96, 96)])
@pytest.mark.parametrize("fraction", [0.3, 0.35, 0.5, 0.77])
def test_degrade_matches_independent_truncation(shape, fraction):
    image = np.random.default_rng(0).random(shape).astype(np.float32) * 100
    result = kspace.degrade(image, fraction)
    assert result.shape == image.shape and result.dtype == image.dtype
    assert np.abs(result - paper_truncation(image, fraction)).max() <= 1e-4 * image.max()


@pytest.mark.parametrize("n", [64, 65])
def test_kept_lines_equal_hr_lines_and_others_are_zero(n):
    image = np.random.default_rng(1).random((n, 40))
    keep = kspace.kept_lines(n, 0.4)
    # a real image's degraded version is complex before the magnitude; check the complex k-space directly
    k_hr = kspace.to_kspace(image)
    lr_complex = kspace.from_kspace(
        np.where(np.isin(np.arange(n), np.r_[kspace.central_block(n, keep)])[:, None], k_hr, 0)
    )
    k_lr = kspace.to_kspace(lr_complex)
    block = kspace.central_block(n, keep)
    np.testing.assert_allclose(k_lr[block], k_hr[block], atol=1e-9)
    outside = np.ones(n, bool)
    outside[block] = False
    assert np.abs(k_lr[outside]).max() < 1e-9
    # the block is symmetric about DC the way fftshift lays it out
    assert block.start <= n // 2 < block.stop and n // 2 - block.start == keep // 2


def test_fraction_one_is_identity_and_columns_axis():
    image = np.random.default_rng(2).random((2, 31, 44))
    np.testing.assert_allclose(kspace.degrade(image, 1.0), image, atol=1e-9)
    rows = kspace.degrade(image, 0.4, axis=-2)
    cols = kspace.degrade(image.swapaxes(-1, -2), 0.4, axis=-1).swapaxes(-1, -2)
    np.testing.assert_allclose(rows, cols, atol=1e-9)


def test_parseval_energy_of_kept_part():
    image = np.random.default_rng(3).random((48, 40))
    keep = kspace.kept_lines(48, 0.35)
    k = kspace.to_kspace(image)
    kept = np.zeros_like(k)
    kept[kspace.central_block(48, keep)] = k[kspace.central_block(48, keep)]
    complex_lr = kspace.from_kspace(kept)
    # image-domain energy equals the kept k-space energy / N (numpy's unnormalised FFT)
    assert np.isclose(np.sum(np.abs(complex_lr) ** 2), np.sum(np.abs(kept) ** 2) / image.size)
    # and the magnitude image has exactly that energy
    assert np.isclose(np.sum(kspace.degrade(image, 0.35) ** 2), np.sum(np.abs(kept) ** 2) / image.size)


@pytest.mark.parametrize("n,fraction", [(160, 0.35), (161, 0.35), (96, 0.5), (97, 0.3)])
def test_prospective_zero_padding_equals_simulated_truncation(n, fraction):
    image = np.random.default_rng(4).random((n, 36))
    keep = kspace.kept_lines(n, fraction)
    # a true LR acquisition: the central lines only, reconstructed on their own small grid
    k = kspace.to_kspace(image)[kspace.central_block(n, keep)]
    acquired = kspace.from_kspace(k * (keep / n))  # complex, as the scanner reconstructs it
    padded = kspace.zero_pad(acquired, n)
    assert padded.shape == image.shape and not np.iscomplexobj(padded)
    np.testing.assert_allclose(padded, kspace.degrade(image, fraction), atol=1e-9)


def test_torch_and_numpy_agree_on_batches():
    image = np.random.default_rng(5).random((2, 3, 40, 33)).astype(np.float32)
    np.testing.assert_allclose(
        kspace.degrade(torch.from_numpy(image), 0.4).numpy(), kspace.degrade(image, 0.4), atol=1e-5
    )


def test_data_consistency_restores_measured_lines():
    rng = np.random.default_rng(6)
    hr = rng.random((64, 64))
    keep = kspace.kept_lines(64, 0.35)
    lr = kspace.degrade(hr, 0.35)
    estimate = rng.random((64, 64))
    corrected = kspace.data_consistency(estimate, lr, keep)
    assert np.abs(corrected - lr).mean() < np.abs(estimate - lr).mean()
    # an estimate that already agrees with the measurement is (nearly) unchanged
    assert np.abs(kspace.data_consistency(hr, lr, keep) - hr).mean() < 0.05 * np.abs(estimate - hr).mean()


@pytest.mark.parametrize("fraction", [0, -0.1, 1.2, float("nan"), "0.3"])
def test_bad_fraction_is_refused(fraction):
    with pytest.raises(PerfGenError, match="fraction"):
        kspace.degrade(np.ones((8, 8)), fraction)
