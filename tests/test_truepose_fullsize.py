"""Full-size TruePose: two SD-1.5 UNets with the fusion processors (random weights), one CPU forward.

Slow and memory-hungry (~7 GB fp32: two 860M-parameter UNets); the CLIP tower
is the tiny preset to keep it lean (its size does not change the UNets).
"""
import pytest
import torch

from pgpis.diffusion import AutoencoderKLFirstStage
from pgpis.models.attention import HPFAAttnProcessor
from pgpis.models.truepose import SiameseDenoiser

SD15_UNET_PARAMS = 859_520_964  # diffusers UNet2DConditionModel with the SD-1.5 config


def _count(module: torch.nn.Module, skip_processors: bool = False) -> int:
    return sum(p.numel() for n, p in module.named_parameters() if not (skip_processors and ".processor." in n))


@pytest.mark.slow
def test_sd15_siamese_builds_counts_and_runs_one_forward():
    torch.manual_seed(0)
    den = SiameseDenoiser(unet={"preset": "sd15"}, clip_encoder={"preset": "tiny"}, downsample_factor=8)
    vae = AutoencoderKLFirstStage(config=dict(block_out_channels=(8, 8, 8, 8), layers_per_block=1, norm_num_groups=4,
                                              latent_channels=4,
                                              down_block_types=("DownEncoderBlock2D",) * 4,
                                              up_block_types=("UpDecoderBlock2D",) * 4))
    den.attach_first_stage(vae)
    den.eval()

    assert _count(den.target_net, skip_processors=True) == SD15_UNET_PARAMS
    assert _count(den.source_net) == SD15_UNET_PARAMS
    assert len(den.layers) == 16  # every SD-1.5 self-attention: 6 down, 1 mid, 9 up
    clip_dim = den.clip.embed_dim
    expected_fusion = 0
    for name in den.layers:
        c = den.target_net.get_submodule(name).to_q.out_features
        expected_fusion += 2 * c * c + (c * c + 2 * clip_dim * c)  # HPFA K_h, V_h + CAA q, k, v
        assert isinstance(den.target_net.get_submodule(name).processor, HPFAAttnProcessor)
    assert _count(den.target_net) - SD15_UNET_PARAMS == expected_fusion

    g = torch.Generator().manual_seed(0)
    h, w = 64, 48  # latent 8 x 6: the ceil-halving grids 4x3, 2x2, 1x1 are exercised too
    parsing = torch.zeros(1, h, w, dtype=torch.long)
    parsing[:, 8:40, 10:38] = 5
    parsing[:, 40:, 12:36] = 9
    batch = {"source": torch.rand(1, 3, h, w, generator=g) * 2 - 1,
             "target_pose": torch.rand(1, 3, h, w, generator=g) * 2 - 1,
             "source_parsing": parsing, "target_keypoints": torch.rand(1, 18, 2, generator=g) * 40}
    with torch.no_grad():
        cond = den.encode_conditions(batch)
        out = den(torch.randn(2, 4, 8, 6, generator=g), torch.tensor([999, 999]), den.repeat_conditions(cond, 2),
                  {"source": torch.tensor([False, True])})
    assert out.shape == (2, 4, 8, 6) and torch.isfinite(out).all()
    assert not torch.allclose(out[0], out[1])
