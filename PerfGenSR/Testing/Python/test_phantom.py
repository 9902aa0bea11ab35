"""Synthetic perfusion studies: determinism, geometry, masks, physiology, Rician truth, files."""

import json
import time

import numpy as np
import pytest

from PerfGenSRLib.defaults import ROI_BY_KEY
from PerfGenSRLib.errors import PerfGenError
from PerfGenSRLib.phantom import (
    HEART_CROP,
    labels_from_masks,
    make_phantom,
    masks_from_labels,
    read_masks,
    read_phantom_study,
    rice_mean,
    write_phantom_dataset,
    write_phantom_study,
)

FRAMES = 24


@pytest.fixture(scope="module")
def studies():
    """A few studies covering rest/stress and each defect kind."""
    return [
        make_phantom(1, FRAMES, stress=False, defect=None),
        make_phantom(2, FRAMES, stress=True, defect="transmural"),
        make_phantom(3, FRAMES, stress=True, defect="subendocardial"),
        make_phantom(4, FRAMES),
    ]


def onset(curve: np.ndarray) -> int:
    """First frame where a curve has risen half-way from its baseline to its maximum."""
    base = curve[:3].mean()
    return int(np.argmax(curve >= base + 0.5 * (curve.max() - base)))


def test_same_seed_same_study_other_seed_other_study():
    a, b, c = make_phantom(7, 12), make_phantom(7, 12), make_phantom(8, 12)
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.truth, b.truth)
    assert all(np.array_equal(a.masks[k], b.masks[k]) for k in a.masks)
    assert a.params == b.params
    assert a.frames.shape != c.frames.shape or not np.array_equal(a.frames, c.frames)


def test_frame_count_changes_timing_not_anatomy():
    short, long = make_phantom(9, 12), make_phantom(9, 20)
    assert short.frames.shape[1:] == long.frames.shape[1:] and short.heart_center == long.heart_center
    assert all(np.array_equal(short.masks[k], long.masks[k]) for k in short.masks)


def test_shapes_dtypes_and_geometry(studies):
    for study in studies:
        t, h, w = study.frames.shape
        assert t == FRAMES and study.truth.shape == (t, h, w)
        assert study.frames.dtype == np.float32 and study.truth.dtype == np.float32
        assert 96 <= h <= 192 and 112 <= w <= 224
        assert all(1.6 <= s <= 2.8 for s in study.spacing)
        assert np.all(np.diff(study.frame_times) > 0.5) and np.all(np.diff(study.frame_times) < 1.3)
        for mask in study.masks.values():
            assert mask.dtype == bool and mask.shape == (h, w)
        assert set(study.masks) == set(ROI_BY_KEY)
        assert all(curve.shape == (t,) for curve in study.curves.values())
        json.dumps(study.params)


def test_matrix_varies_and_can_be_chosen():
    shapes = {make_phantom(seed, 4).frames.shape[1:] for seed in range(5)}
    assert len(shapes) > 2
    assert make_phantom(0, 4, matrix=(128, 144)).frames.shape[1:] == (128, 144)
    with pytest.raises(PerfGenError):
        make_phantom(0, 4, matrix=(40, 40))


def test_masks_are_disjoint_and_the_heart_fits_the_crop(studies):
    for study in studies:
        m = study.masks
        for name in ("lv_blood", "rv_blood", "myocardium"):
            assert m[name].sum() > 20, name
        assert not (m["lv_blood"] & m["rv_blood"]).any()
        assert not (m["lv_blood"] & m["myocardium"]).any()
        assert not (m["rv_blood"] & m["myocardium"]).any()
        assert not (m["defect"] & ~m["myocardium"]).any()
        r, c = study.heart_center
        h, w = m["lv_blood"].shape
        half = HEART_CROP // 2
        assert half <= r <= h - half and half <= c <= w - half
        heart = m["lv_blood"] | m["rv_blood"] | m["myocardium"]
        rows, cols = np.nonzero(heart)
        assert (
            rows.min() >= r - half
            and rows.max() < r + half
            and cols.min() >= c - half
            and cols.max() < c + half
        )
        assert m["lv_blood"][r - 2 : r + 3, c - 2 : c + 3].any()  # the centre is the LV's


def test_defect_kinds(studies):
    none, transmural, subendo, _ = studies
    assert not none.masks["defect"].any() and "defect" not in none.curves
    for study, kind in ((transmural, "transmural"), (subendo, "subendocardial")):
        assert study.params["defect"]["kind"] == kind
        assert study.masks["defect"].sum() > 3 and "defect" in study.curves


def test_rv_before_lv_before_myocardium(studies):
    for study in studies:
        c = study.curves
        assert onset(c["rv_blood"]) < onset(c["lv_blood"]) < onset(c["myocardium"])
        assert int(np.argmax(c["myocardium"])) > int(np.argmax(c["rv_blood"]))
        assert c["lv_blood"].max() > 3 * c["lv_blood"][0]  # blood enhances strongly
        assert c["myocardium"].max() > 1.5 * c["myocardium"][0]


def test_defect_enhances_less_than_the_myocardium(studies):
    for study, margin in ((studies[1], 0.8), (studies[2], 1.0)):  # transmural, subendocardial
        c = study.curves
        peak = int(np.argmax(c["myocardium"]))
        defect, myocardium = (c[k][peak] / c[k][:3].mean() - 1 for k in ("defect", "myocardium"))
        assert defect < margin * myocardium


def test_truth_is_the_rician_mean_of_the_frames(studies):
    for study in studies:
        sigma = study.params["noise"]["sigma"]
        assert study.truth.min() >= 0
        assert abs(float(np.mean(study.frames - study.truth))) < 0.05 * sigma
        assert 0.5 * sigma < float(np.std(study.frames - study.truth)) < 3 * sigma


def test_rice_mean_matches_monte_carlo():
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((2, 200_000))
    for nu in (0.0, 0.7, 2.0, 9.0):
        sampled = np.abs(nu + 1.5 * (noise[0] + 1j * noise[1])).mean()
        assert rice_mean(nu, 1.5) == pytest.approx(sampled, rel=5e-3)
    assert rice_mean(0.0, 2.0) == pytest.approx(2.0 * np.sqrt(np.pi / 2))
    assert rice_mean(np.array([1e4]), 1.0)[0] == pytest.approx(1e4, rel=1e-6)


def test_field_of_view_is_not_mostly_black():
    study = max((make_phantom(seed, 16) for seed in range(6)), key=lambda s: s.params["noise"]["snr"])
    frame = study.truth[int(np.argmax(study.curves["myocardium"]))]
    sigma = study.params["noise"]["sigma"]
    top = np.percentile(frame, 99.5)
    body = frame > 3 * sigma
    assert body.mean() > 0.3
    r, c = study.heart_center
    crop = frame[r - HEART_CROP // 2 : r + HEART_CROP // 2, c - HEART_CROP // 2 : c + HEART_CROP // 2]
    assert (crop > 0.1 * top).mean() > 0.5
    # textured, not flat: tissue outside the heart is not a handful of constants
    outside = frame[body & ~np.isin(labels_from_masks(study.masks), [1, 2, 3, 4])]
    assert len(np.unique(np.round(outside / sigma))) > 20


def test_labels_round_trip(studies):
    masks = studies[1].masks
    back = masks_from_labels(labels_from_masks(masks))
    assert all(np.array_equal(back[k], masks[k]) for k in masks)
    assert labels_from_masks(masks).dtype == np.uint8


def test_write_read_round_trip(studies, tmp_path):
    study = studies[2]
    folder = write_phantom_study(study, tmp_path / "case")
    assert sorted(p.name for p in folder.iterdir()) == [
        "image.nii.gz",
        "masks.nii.gz",
        "metadata.json",
        "truth.nii.gz",
    ]
    back = read_phantom_study(folder)
    assert np.array_equal(back.frames, study.frames) and np.array_equal(back.truth, study.truth)
    assert all(np.array_equal(back.masks[k], study.masks[k]) for k in study.masks)
    assert all(np.allclose(back.curves[k], study.curves[k]) for k in study.curves)
    assert np.allclose(back.frame_times, study.frame_times)
    assert back.heart_center == study.heart_center and np.allclose(back.spacing, study.spacing)
    assert back.params == study.params
    assert all(np.array_equal(read_masks(folder / "masks.nii.gz")[k], study.masks[k]) for k in study.masks)
    converted = back.to_study()
    assert converted.shape == (FRAMES, 1, *study.frames.shape[1:]) and converted.spacing[2] == 8.0
    assert tuple(converted.meta["heart_center"]) == study.heart_center
    with pytest.raises(PerfGenError):
        read_phantom_study(tmp_path)


def test_write_dataset_in_parallel(tmp_path):
    start = time.perf_counter()
    folders = write_phantom_dataset(tmp_path / "set", cases=2, frames=20, seed=100, workers=2, progress=False)
    assert time.perf_counter() - start < 30
    assert [f.name for f in folders] == ["case_0000", "case_0001"]
    assert read_phantom_study(folders[1]).params["seed"] == 101
    assert not [p for p in (tmp_path / "set").iterdir() if p.name.startswith(".")]  # no temporary leftovers


def test_bad_arguments():
    with pytest.raises(PerfGenError):
        make_phantom(0, 0)
    with pytest.raises(PerfGenError):
        make_phantom(0, 10, defect="everywhere")
