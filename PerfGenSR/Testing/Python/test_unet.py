import json
from dataclasses import asdict

import pytest
import torch

from PerfGenSRLib.unet import PRESETS, UNet, UNetConfig, count_parameters


def _tiny(seed: int = 0) -> UNet:
    torch.manual_seed(seed)
    return UNet(PRESETS["tiny"])


def test_paper_preset_matches_the_paper():
    config = PRESETS["paper"]
    assert config.level_channels == [64, 128, 256, 512, 512]
    assert config.num_res_blocks == 2 and config.dropout == 0.2
    assert config.in_channels == 2 and config.out_channels == 1
    with torch.device("meta"):
        paper = UNet(config)
    assert 85e6 <= count_parameters(paper) <= 100e6  # the paper reports 92M
    assert paper.downsampling_factor == 16


def test_small_and_tiny_presets_have_the_intended_sizes():
    with torch.device("meta"):
        small, tiny = UNet(PRESETS["small"]), UNet(PRESETS["tiny"])
    assert 1e6 <= count_parameters(small) <= 8e6
    assert 50e3 <= count_parameters(tiny) <= 200e3
    assert small.config.num_res_blocks == 2 and hasattr(small, "mid_attention")


def test_config_survives_json():
    for config in PRESETS.values():
        assert UNetConfig(**json.loads(json.dumps(asdict(config)))) == config


def test_config_rejects_group_counts_that_do_not_divide_channels():
    with pytest.raises(ValueError):
        UNetConfig(base_channels=12, channel_mults=(1, 2), norm_groups=8)


@pytest.mark.parametrize("height,width", [(37, 50), (20, 24), (5, 3), (1, 7)])
def test_output_has_the_input_size_for_any_size(height, width):
    model = _tiny().eval()
    lr, y_t = torch.randn(2, 1, height, width), torch.randn(2, 1, height, width)
    with torch.inference_mode():
        out = model(lr, y_t, torch.tensor([0.3, 0.9]))
    assert out.shape == (2, 1, height, width) and torch.isfinite(out).all()


def test_output_depends_on_noise_level_and_on_the_lr_image():
    model = _tiny().eval()
    lr, y_t = torch.randn(1, 1, 16, 16), torch.randn(1, 1, 16, 16)
    with torch.inference_mode():
        low, high = model(lr, y_t, torch.tensor([0.1])), model(lr, y_t, torch.tensor([0.9]))
        other_lr = model(torch.randn(1, 1, 16, 16), y_t, torch.tensor([0.1]))
        repeated = model(lr, y_t, torch.tensor([0.1]))
    assert (low - high).abs().max() > 1e-4
    assert (low - other_lr).abs().max() > 1e-4
    assert torch.equal(low, repeated)  # eval mode is deterministic


def test_batch_items_are_independent_and_a_scalar_noise_level_is_broadcast():
    model = _tiny().eval()
    lr, y_t = torch.randn(3, 1, 12, 20), torch.randn(3, 1, 12, 20)
    with torch.inference_mode():
        batched = model(lr, y_t, torch.tensor(0.5))
        single = model(lr[1:2], y_t[1:2], torch.tensor([0.5]))
    assert torch.allclose(batched[1:2], single, atol=1e-5)


def test_gradients_reach_every_parameter():
    model = _tiny().train()
    lr, y_t = torch.randn(2, 1, 20, 24), torch.randn(2, 1, 20, 24)
    loss = (model(lr, y_t, torch.tensor([0.2, 0.7])) - torch.randn(2, 1, 20, 24)).abs().mean()
    loss.backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_mismatched_inputs_are_refused():
    with pytest.raises(ValueError):
        _tiny()(torch.randn(1, 1, 8, 8), torch.randn(1, 1, 8, 9), torch.tensor([0.5]))
