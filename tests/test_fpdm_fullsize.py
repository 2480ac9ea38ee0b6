"""Full-size check: the paper-preset FPDM denoiser (SD-2.1 UNet, DINOv2-L, IPF on CLIP ViT-L/14), random weights.

Expected parameter counts are computed independently of :class:`FPDMDenoiser`:
the bare diffusers / transformers models built from the configurations of
docs/methods.md on the meta device (no memory), plus the paper's layer arithmetic for
the small FPDM-specific modules. One forward then runs at a small latent on CPU.
Peak memory ~7 GB (fp32): the models are built once, one after another.
"""
from __future__ import annotations

import gc

import pytest
import torch

pytestmark = pytest.mark.slow

SD21_UNET = dict(  # docs/methods.md (model configurations), written out here rather than taken from pgpis' presets
    in_channels=4, out_channels=4, block_out_channels=(320, 640, 1280, 1280), layers_per_block=2,
    down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    attention_head_dim=(5, 10, 20, 20), cross_attention_dim=1024, use_linear_projection=True, norm_num_groups=32,
)
DINOV2_L = dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, patch_size=14, layerscale_value=1.0,
                image_size=518)  # facebook/dinov2-large: a 37x37 position-embedding grid
CLIP_L14 = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                patch_size=14, image_size=224, projection_dim=768)


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _conv(cin: int, cout: int, k: int = 3) -> int:
    return cin * cout * k * k + cout


def _linear(cin: int, cout: int) -> int:
    return cin * cout + cout


def expected_counts() -> dict[str, int]:
    from diffusers import UNet2DConditionModel
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection, Dinov2Config, Dinov2Model

    from pgpis.models.combiner import Combiner

    with torch.device("meta"):
        unet = _count(UNet2DConditionModel(**SD21_UNET))
        dino = _count(Dinov2Model(Dinov2Config(**DINOV2_L)))
        clip = _count(CLIPVisionModelWithProjection(CLIPVisionConfig(**CLIP_L14)))
        combiner = _count(Combiner(768))
    widths = (16, 32, 96, 256)  # conv 3->16, pairs with stride 2 16->32->96->256, zero conv 256->320
    pose = _conv(3, 16) + sum(_conv(a, a) + _conv(a, b) for a, b in zip(widths, widths[1:])) + _conv(256, 320)
    projection = _linear(1024, 1024) + 2 * 1024 + _linear(1024, 1024)  # Linear-GELU-LayerNorm-Linear
    fusion_mlp = _linear(768, 768) + _linear(768, 1280)  # 768 -> 768 -> 1280
    return {"unet": unet, "source_encoder": dino, "fusion_encoder": clip + combiner, "pose_encoder": pose,
            "source_projection": projection, "null_source": 1024, "fusion_adapter": fusion_mlp}


def test_paper_preset_fpdm_denoiser_builds_counts_and_runs():
    from pgpis.models.combiner import Combiner
    from pgpis.models.encoders import CLIP_PRESETS, CLIPImageEncoder
    from pgpis.models.fpdm import FPDMDenoiser
    from pgpis.models.fusion import FusionModel

    expected = expected_counts()
    # the parameter counts of docs/methods.md (~865M, DINOv2-L ~300M), as a check on the independent arithmetic
    assert 860e6 < expected["unet"] < 870e6 and 300e6 < expected["source_encoder"] < 310e6

    torch.manual_seed(0)
    clip = CLIPImageEncoder.from_config(CLIP_PRESETS["vit-l-14"])
    fusion_model = FusionModel(clip, Combiner(clip.embed_dim))
    denoiser = FPDMDenoiser(
        unet={"preset": "sd21"},
        source_encoder={"preset": "large", "size": (56, 56)},  # the paper feeds 512x512; small here for the CPU
        fusion="ipf", fusion_model=fusion_model, downsample_factor=8,
    ).eval()
    del fusion_model, clip
    gc.collect()

    actual = {name: _count(module) for name, module in denoiser.named_children()}
    actual["null_source"] = denoiser.null_source.numel()
    assert actual == expected
    assert _count(denoiser) == sum(expected.values())
    assert denoiser.condition_groups == ("pose", "source", "fusion")

    # one forward at a small latent: 64x48 px images -> 8x6 latents of the x8 VAE
    g = torch.Generator().manual_seed(0)
    batch = {"target_pose": torch.rand(1, 3, 64, 48, generator=g) * 2 - 1,
             "dino_source": torch.rand(1, 3, 56, 56, generator=g) * 2 - 1,
             "clip_source": torch.rand(1, 3, 224, 224, generator=g) * 2 - 1,
             "clip_target_pose": torch.rand(1, 3, 224, 224, generator=g) * 2 - 1}
    with torch.no_grad():
        conditions = denoiser.encode_conditions(batch)
        assert conditions["source"].shape == (1, 1 + 4 * 4, 1024)
        assert conditions["pose"].shape == (1, 320, 8, 6) and conditions["fusion"].shape == (1, 1280)
        out = denoiser(torch.randn(1, 4, 8, 6, generator=g), torch.tensor([500]), conditions,
                       denoiser.all_kept(1, "cpu"))
    assert out.shape == (1, 4, 8, 6) and torch.isfinite(out).all()
    del denoiser, conditions, out
    gc.collect()
