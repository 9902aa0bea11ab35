import numpy as np
import pytest
import torch

from PerfGenSRLib import kspace
from PerfGenSRLib.defaults import DEFAULT_SAMPLES
from PerfGenSRLib.errors import Cancelled, PerfGenError
from PerfGenSRLib.models import save_model
from PerfGenSRLib.sample import available_methods, super_resolve_study
from PerfGenSRLib.schedule import DiffusionSchedule
from PerfGenSRLib.unet import PRESETS, UNet


@pytest.fixture
def tiny_model(tmp_path):
    torch.manual_seed(0)
    return save_model(
        tmp_path / "tiny.safetensors",
        UNet(PRESETS["tiny"]),
        "perfgen-unet",
        PRESETS["tiny"],
        extra={"schedule": DiffusionSchedule().config()},
    )


def test_zeropad_passes_the_lr_through_and_keeps_geometry(studies):
    study = studies[0]
    before = study.frames.copy()
    result = super_resolve_study(study, "zeropad", lr_fraction=0.35, device="cpu")
    np.testing.assert_allclose(result.study.frames, kspace.degrade(before, 0.35), rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(study.frames, before)  # input untouched
    assert result.study.spacing == study.spacing and np.array_equal(
        result.study.frame_times, study.frame_times
    )
    assert "zeropad" in available_methods()


def test_seeded_sampling_is_deterministic_and_seeds_differ(studies, tiny_model):
    run = dict(model=tiny_model, sampler="ddim", steps=3, device="cpu", batch=4)
    a = super_resolve_study(studies[0], "perfgen", seed=1, **run).study.frames
    b = super_resolve_study(studies[0], "perfgen", seed=1, **run).study.frames
    c = super_resolve_study(studies[0], "perfgen", seed=2, **run).study.frames
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_samples_average_and_uncertainty(studies, tiny_model):
    progress = []
    result = super_resolve_study(
        studies[0],
        "perfgen",
        model=tiny_model,
        sampler="ddim",
        steps=2,
        samples=3,
        device="cpu",
        batch=4,
        progress=lambda done, total: progress.append((done, total)),
    )
    assert result.uncertainty is not None and result.uncertainty.shape == studies[0].shape
    assert (result.uncertainty.frames > 0).mean() > 0.9
    assert progress[0] == (0, 6) and progress[-1] == (6, 6)


def test_default_sample_count_applies_to_perfgen_only(studies, tiny_model):
    study = studies[0].with_frames(studies[0].frames[:2])
    perfgen = super_resolve_study(study, "perfgen", model=tiny_model, sampler="ddim", steps=1, device="cpu")
    zeropad = super_resolve_study(study, "zeropad", lr_fraction=0.35, device="cpu")
    assert perfgen.study.meta["super_resolution"]["samples"] == DEFAULT_SAMPLES
    assert (perfgen.uncertainty is not None) == (DEFAULT_SAMPLES > 1)
    assert zeropad.study.meta["super_resolution"]["samples"] == 1 and zeropad.uncertainty is None


def test_ddpm_sampler_runs_every_step_of_the_models_schedule(studies, tmp_path, monkeypatch):
    short = DiffusionSchedule(num_timesteps=20)
    model = save_model(
        tmp_path / "t20.safetensors",
        UNet(PRESETS["tiny"]),
        "perfgen-unet",
        PRESETS["tiny"],
        extra={"schedule": short.config()},
    )
    calls = []
    original = DiffusionSchedule.ddpm_step
    monkeypatch.setattr(
        DiffusionSchedule, "ddpm_step", lambda self, *a, **k: calls.append(a[1]) or original(self, *a, **k)
    )
    study = studies[0].with_frames(studies[0].frames[:2])
    super_resolve_study(study, "perfgen", model=model, sampler="ddpm", samples=1, device="cpu")
    assert calls == list(range(20, 0, -1))


def test_cancel_stops_without_result(studies, tiny_model):
    with pytest.raises(Cancelled):
        super_resolve_study(
            studies[0],
            "perfgen",
            model=tiny_model,
            sampler="ddim",
            steps=5,
            device="cpu",
            cancel=lambda: True,
        )


@pytest.mark.parametrize(
    "options,message",
    [
        ({"method": "banana"}, "unknown method"),
        ({"sampler": "euler"}, "unknown sampler"),
        ({"steps": 0}, "steps"),
        ({"samples": 0}, "samples"),
        ({"device": "tpu"}, "device"),
        ({"lr_fraction": 1.5}, "fraction"),
    ],
)
def test_bad_options_are_refused(studies, tiny_model, options, message):
    run = {"method": "perfgen", "model": tiny_model, "device": "cpu", **options}
    with pytest.raises(PerfGenError, match=message):
        super_resolve_study(studies[0], **run)


def test_data_consistency_keeps_the_measured_lines(studies, tiny_model):
    study = studies[0]
    keep = kspace.kept_lines(study.shape[2], 0.35)
    run = dict(
        model=tiny_model, sampler="ddim", steps=2, samples=1, device="cpu", lr_fraction=0.35
    )  # one draw: DC of the result
    consistent = super_resolve_study(study, "perfgen", **run)
    free = super_resolve_study(study, "perfgen", data_consistency=False, **run)
    measured = kspace.to_kspace(consistent.low_res.frames)[..., kspace.central_block(study.shape[2], keep), :]

    def central(result):
        return kspace.to_kspace(result.study.frames)[..., kspace.central_block(study.shape[2], keep), :]

    error_with = np.abs(central(consistent) - measured).mean()
    error_without = np.abs(central(free) - measured).mean()
    assert error_with < 0.5 * error_without  # not zero: the magnitude of the projected image is taken
    np.testing.assert_allclose(
        consistent.study.frames,
        kspace.data_consistency(free.study.frames, consistent.low_res.frames, keep),
        rtol=1e-4,
        atol=1e-3 * float(np.abs(free.study.frames).max()),
    )
    assert consistent.study.meta["super_resolution"]["data_consistency_lines"] == keep


class _Constant(torch.nn.Module):
    """A 'network' that predicts one fixed image for every input, counting its calls and batch sizes."""

    def __init__(self, image: torch.Tensor):
        super().__init__()
        self.image, self.batches = image, []

    def forward(self, low_res, y_t, level):
        self.batches.append(low_res.shape[0])
        return self.image.expand_as(low_res)


def test_mean_sampler_returns_the_predicted_image_in_one_evaluation_and_mirrors_it_with_flips():
    from PerfGenSRLib.sample import DiffusionSampler

    ramp = torch.linspace(0, 1, 6).expand(1, 1, 4, 6)  # not mirror symmetric along columns
    low_res = torch.zeros(3, 1, 4, 6)
    network = _Constant(ramp)
    schedule = DiffusionSchedule(prediction="sample")
    one = DiffusionSampler(network, schedule, sampler="mean", flips=1, residual_scale=2.0)(low_res)
    assert network.batches == [3]
    torch.testing.assert_close(one, ramp.expand(3, 1, 4, 6) / 2)
    network.batches.clear()
    both = DiffusionSampler(network, schedule, sampler="mean", flips=2, residual_scale=2.0)(low_res)
    assert network.batches == [6]  # the frame and its mirror image in one batch
    torch.testing.assert_close(both, ((ramp + ramp.flip(-1)) / 4).expand(3, 1, 4, 6))
    with pytest.raises(PerfGenError, match="one step"):
        DiffusionSampler(network, schedule, sampler="mean", steps=5)


def test_mean_sampler_draws_once_and_refuses_an_uncertainty_map(studies, tiny_model):
    result = super_resolve_study(studies[0], "perfgen", model=tiny_model, sampler="mean", device="cpu")
    assert result.study.meta["super_resolution"]["samples"] == 1 and result.uncertainty is None
