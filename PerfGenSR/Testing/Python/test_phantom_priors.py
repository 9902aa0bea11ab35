"""The phantom's priors table: the default is today's distribution, another table widens or moves it."""

import dataclasses
import json

import numpy as np
import pytest

from PerfGenSRLib.errors import PerfGenError
from PerfGenSRLib.phantom import HEART_CROP, PhantomPriors, make_phantom

DEFAULT = PhantomPriors()


def test_the_default_table_is_the_default():
    plain, explicit = make_phantom(5, 6), make_phantom(5, 6, priors=PhantomPriors())
    assert np.array_equal(plain.frames, explicit.frames) and plain.params == explicit.params
    assert "priors" not in plain.params


def test_a_step_s_priors_change_that_step_only_and_are_recorded():
    fixed = dataclasses.replace(
        DEFAULT,
        tracer=dataclasses.replace(DEFAULT.tracer, flow_rest=(2.0, 2.0)),
        acquisition=dataclasses.replace(DEFAULT.acquisition, snr=(100.0, 100.0)),
    )
    base, other = make_phantom(6, 8, stress=False), make_phantom(6, 8, stress=False, priors=fixed)
    assert other.params["perfusion"]["flow_ml_min_g"] == 2.0
    assert other.params["noise"]["snr"] == pytest.approx(100.0)
    assert other.params["priors"]["tracer"]["flow_rest"] == [2.0, 2.0]
    json.dumps(other.params)
    # each step draws from its own stream: perfusion and noise level leave the anatomy as it was
    assert all(np.array_equal(base.masks[k], other.masks[k]) for k in base.masks)
    assert other.params["heart"] == base.params["heart"] and other.params["matrix"] == base.params["matrix"]
    assert not np.array_equal(base.frames, other.frames)


def test_wider_acquisition_priors_give_valid_studies_in_their_ranges():
    acq = DEFAULT.acquisition
    wide = dataclasses.replace(
        DEFAULT,
        acquisition=dataclasses.replace(
            acq, snr=(5.0, 120.0), pixel_mm=(1.2, 3.2), cols=tuple(range(96, 289, 8)), rows=(96, 256)
        ),
    )
    studies = [make_phantom(seed, 3, priors=wide) for seed in range(8)]
    snrs = [s.params["noise"]["snr"] for s in studies]
    assert min(snrs) < acq.snr[0] or max(snrs) > acq.snr[1]  # outside today's range
    half = HEART_CROP // 2
    for study in studies:
        h, w = study.frames.shape[1:]
        assert 96 <= h <= 256 and 96 <= w <= 288 and 1.2 <= study.spacing[0] <= 3.2
        assert 5.0 <= study.params["noise"]["snr"] <= 120.0
        r, c = study.heart_center
        rows, cols = np.nonzero(study.masks["lv_blood"] | study.masks["rv_blood"] | study.masks["myocardium"])
        assert (
            rows.min() >= r - half
            and rows.max() < r + half
            and cols.min() >= c - half
            and cols.max() < c + half
        )


def test_priors_from_json_replace_only_what_they_name_and_round_trip_through_a_study():
    wide = PhantomPriors.from_dict({"acquisition": {"snr": [8, 80]}, "heart": {"mid": {"wall_mm": [5, 14]}}})
    assert wide.acquisition.snr == (8, 80) and wide.heart.mid.wall_mm == (5, 14)
    assert wide.acquisition.scale == DEFAULT.acquisition.scale and wide.heart.basal == DEFAULT.heart.basal
    study = make_phantom(3, 4, priors=wide)
    recorded = json.loads(json.dumps(study.params["priors"]))
    assert PhantomPriors.from_dict(recorded) == wide
    assert PhantomPriors.from_dict({}) == DEFAULT
    with pytest.raises(PerfGenError, match="acquisition.*unknown.*sn"):
        PhantomPriors.from_dict({"acquisition": {"sn": [1, 2]}})
