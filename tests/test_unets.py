"""UNet builders: presets match docs/methods.md (model configurations), overrides, offline loading, errors."""
from __future__ import annotations

import pytest
import torch
from diffusers import UNet2DConditionModel

from pgpis.errors import MissingWeightsError
from pgpis.models.unets import UNET_PRESETS, build_unet, first_block_width, time_embedding_width, unet_config


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    "preset, head_dim, cross_dim, linear_proj, approx_params",
    [("sd15", 8, 768, False, 860e6), ("sd21", (5, 10, 20, 20), 1024, True, 865e6)],
)
def test_sd_presets_match_design(preset, head_dim, cross_dim, linear_proj, approx_params):
    cfg = unet_config(preset)
    assert tuple(cfg["block_out_channels"]) == (320, 640, 1280, 1280)
    assert cfg["layers_per_block"] == 2 and cfg["in_channels"] == 4 and cfg["norm_num_groups"] == 32
    assert cfg["attention_head_dim"] == head_dim and cfg["cross_attention_dim"] == cross_dim
    assert bool(cfg.get("use_linear_projection", False)) == linear_proj
    with torch.device("meta"):  # the architecture without allocating 3.5 GB
        unet = UNet2DConditionModel(**cfg)
    assert abs(_count(unet) - approx_params) / approx_params < 0.005
    assert first_block_width(unet) == 320 and time_embedding_width(unet) == 1280


def test_sd21_768_is_the_upcast_variant():
    assert unet_config("sd21")["upcast_attention"] and unet_config("sd21")["sample_size"] == 96
    assert not unet_config("sd21-base").get("upcast_attention", False)


def test_tiny_preset_forward_and_overrides():
    unet = build_unet("tiny", in_channels=12, out_channels=12, class_embed_type="projection",
                      projection_class_embeddings_input_dim=7)
    assert _count(unet) < 1.5e6
    out = unet(torch.randn(2, 12, 16, 16), torch.tensor([3, 900]), encoder_hidden_states=torch.randn(2, 5, 32),
               class_labels=torch.randn(2, 7)).sample
    assert out.shape == (2, 12, 16, 16)


def test_cpu_small_preset_fits_pixel_unshuffle():
    cfg = unet_config("cpu-small", in_channels=12, out_channels=12)
    assert cfg["block_out_channels"][0] >= 12
    assert 3e6 < _count(UNet2DConditionModel(**cfg)) < 6e6


def test_bad_configs_are_named():
    with pytest.raises(ValueError, match="unknown UNet preset 'sd3'"):
        build_unet("sd3")
    with pytest.raises(ValueError, match="norm_num_groups"):
        build_unet("tiny", norm_num_groups=7)
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['cross_attn_dim'\]"):
        build_unet("tiny", cross_attn_dim=16)


def test_gradient_checkpointing_switch():
    assert build_unet("tiny", gradient_checkpointing=True).is_gradient_checkpointing
    assert not build_unet("tiny").is_gradient_checkpointing


def test_pretrained_roundtrip_from_local_pipeline_folder(tmp_path):
    torch.manual_seed(0)
    ref = build_unet("tiny")
    ref.save_pretrained(tmp_path / "unet")  # the layout of a full SD pipeline folder
    loaded = build_unet(pretrained=tmp_path)
    x, t, ehs = torch.randn(1, 4, 16, 16), torch.tensor([10]), torch.randn(1, 3, 32)
    torch.testing.assert_close(loaded(x, t, ehs).sample, ref(x, t, ehs).sample)

    # an override that adds a module keeps every stored weight and initialises the new one
    with_class = build_unet(pretrained=tmp_path, class_embed_type="projection", projection_class_embeddings_input_dim=6)
    stored = ref.state_dict()
    for name, value in with_class.state_dict().items():
        if name.startswith("class_embedding."):
            assert name not in stored
        else:
            torch.testing.assert_close(value, stored[name])


def test_missing_pretrained_weights_say_what_to_do(tmp_path):
    with pytest.raises(MissingWeightsError) as info:
        build_unet(pretrained=tmp_path / "nowhere")
    assert "UNet" in str(info.value) and "nowhere" in str(info.value) and "config.json" in str(info.value)
    with pytest.raises(MissingWeightsError, match="hub id 'stabilityai/stable-diffusion-2-1'"):
        build_unet(pretrained="stabilityai/stable-diffusion-2-1")


def test_every_preset_is_consistent():
    for name in UNET_PRESETS:
        unet_config(name)  # raises on an inconsistent preset
