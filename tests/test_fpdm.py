"""FPDM denoiser: zero-initialised conditioning, per-sample keep masks, frozen encoders, ablation switches."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from pgpis.errors import MissingWeightsError
from pgpis.models.combiner import Combiner
from pgpis.models.encoders import CLIP_PRESETS, CLIPImageEncoder
from pgpis.models.fpdm import FPDMDenoiser
from pgpis.models.fusion import FusionModel
from pgpis.models.pose_encoder import PAPER_WIDTHS, PoseEncoder, widths_for_factor

B = 4
IMAGE = 16  # pixels; the tiny preset's PixelUnshuffle(2) first stage gives 12 x 8 x 8 latents
DINO = 32  # DINOv2 input (tiny preset: patch 8 -> 1 + 16 tokens)


def tiny_fusion_model(seed: int = 0) -> FusionModel:
    """A stage-1 fusion model of the tiny preset, with the Combiner's dropout (0.5) that must stay off."""
    torch.manual_seed(seed)
    encoder = CLIPImageEncoder.from_config(CLIP_PRESETS["tiny"])
    return FusionModel(encoder, Combiner(encoder.embed_dim, dropout=0.5))


def tiny_denoiser(fusion: str = "ipf", seed: int = 0, **kwargs) -> FPDMDenoiser:
    torch.manual_seed(seed)
    if fusion == "ipf":
        kwargs.setdefault("fusion_model", tiny_fusion_model(seed))
    return FPDMDenoiser(unet={"preset": "tiny", "in_channels": 12, "out_channels": 12},
                        source_encoder={"preset": "tiny", "size": (DINO, DINO)},
                        fusion=fusion, downsample_factor=2, **kwargs)


def tiny_batch(seed: int = 0, b: int = B) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    img = lambda h, w: torch.rand(b, 3, h, w, generator=g) * 2 - 1  # noqa: E731
    return {"target_pose": img(IMAGE, IMAGE), "dino_source": img(DINO, DINO),
            "clip_source": img(64, 64), "clip_target_pose": img(64, 64)}


def randomise_zero_layers(d: FPDMDenoiser) -> None:
    """Give the zero-initialised layers weights, so every condition changes the output."""
    g = torch.Generator().manual_seed(123)
    with torch.no_grad():
        for p in [*d.pose_encoder.conv_out.parameters(), *d.fusion_adapter.net[-1].parameters(), d.null_source]:
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)


def latents_and_t(b: int = B):
    g = torch.Generator().manual_seed(7)
    return torch.randn(b, 12, IMAGE // 2, IMAGE // 2, generator=g), torch.tensor([0, 250, 600, 999][:b])


def keep_all(value: bool, b: int = B, groups=("pose", "source", "fusion")) -> dict[str, torch.Tensor]:
    return {g: torch.full((b,), value) for g in groups}


# ---------------------------------------------------------------------------------------------- pose encoder

@pytest.mark.parametrize("factor, steps", [(1, 0), (2, 1), (8, 3)])
def test_pose_encoder_lands_on_the_latent_grid_and_starts_at_zero(factor, steps):
    enc = PoseEncoder(out_channels=20, downsample_factor=factor)
    assert widths_for_factor(factor) == PAPER_WIDTHS[: steps + 1]
    out = enc(torch.randn(2, 3, 32, 24))
    assert out.shape == (2, 20, 32 // factor, 24 // factor)
    assert torch.count_nonzero(out) == 0  # zero-initialised final conv
    assert torch.count_nonzero(enc.conv_out.weight) == 0 and torch.count_nonzero(enc.conv_in.weight) > 0


def test_pose_encoder_paper_widths():
    enc = PoseEncoder(out_channels=320, downsample_factor=8)
    convs = [m for m in enc.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.stride[0]) for c in convs] == [
        (3, 16, 1), (16, 16, 1), (16, 32, 2), (32, 32, 1), (32, 96, 2), (96, 96, 1), (96, 256, 2), (256, 320, 1)]


def test_pose_encoder_errors_name_the_fix():
    with pytest.raises(ValueError, match="power of two"):
        PoseEncoder(8, downsample_factor=3)
    with pytest.raises(ValueError, match="needs 1"):
        PoseEncoder(8, downsample_factor=2, block_out_channels=(16, 32, 64))
    with pytest.raises(ValueError, match="not divisible by the downsample factor 8"):
        PoseEncoder(8, downsample_factor=8)(torch.zeros(1, 3, 20, 16))


# ---------------------------------------------------------------------------------------------- denoiser

def test_at_init_the_denoiser_is_the_plain_unet():
    d = tiny_denoiser().eval()
    cond = d.encode_conditions(tiny_batch())
    x, t = latents_and_t()
    with torch.no_grad():
        out = d(x, t, cond, keep_all(True))
        plain = d.unet(x, t, encoder_hidden_states=cond["source"], class_labels=torch.zeros(B, 128)).sample
    torch.testing.assert_close(out, plain, rtol=0, atol=0)
    assert torch.count_nonzero(cond["pose"]) == 0 and torch.count_nonzero(cond["fusion"]) == 0


def test_pose_features_are_added_after_conv_in_only_during_the_call():
    d = tiny_denoiser().eval()
    randomise_zero_layers(d)
    cond = d.encode_conditions(tiny_batch())
    seen = {}
    d.unet.down_blocks[0].register_forward_pre_hook(lambda m, args, kw: seen.update(h=kw["hidden_states"].clone()), with_kwargs=True)
    x, t = latents_and_t()
    with torch.no_grad():
        d(x, t, cond, keep_all(True))
        torch.testing.assert_close(seen["h"], d.unet.conv_in(x) + cond["pose"])  # the hook is disarmed outside
    assert d._pose_residual is None
    with pytest.raises(ValueError, match="do not match the UNet's conv_in output"):
        d(x, t, {**cond, "pose": cond["pose"][..., :4, :4]}, keep_all(True))
    assert d._pose_residual is None  # disarmed after an error too
    assert "conv_in.weight" in d.unet.state_dict()  # the UNet's keys are diffusers' own


def test_copies_keep_their_own_pose_hook():
    """EMAWeightAveraging deep-copies the module: the copy's conv_in hook must read the copy's pose residual."""
    import copy

    d = tiny_denoiser().eval()
    randomise_zero_layers(d)
    c = copy.deepcopy(d)
    assert [h.__self__ for h in c.unet.conv_in._forward_hooks.values()] == [c]
    cond = c.encode_conditions(tiny_batch())
    x, t = latents_and_t()
    with torch.no_grad():
        with_pose = c(x, t, cond, keep_all(True))
        without = c(x, t, {**cond, "pose": torch.zeros_like(cond["pose"])}, keep_all(True))
    assert not torch.allclose(with_pose, without, atol=1e-4)


@pytest.mark.parametrize("group", ["pose", "source", "fusion"])
def test_keep_masks_drop_exactly_the_masked_rows(group):
    d = tiny_denoiser().eval()
    randomise_zero_layers(d)
    cond = d.encode_conditions(tiny_batch())
    x, t = latents_and_t()
    mixed = keep_all(True)
    mixed[group] = torch.tensor([True, False, False, True])
    dropped = keep_all(True)
    dropped[group] = torch.zeros(B, dtype=torch.bool)
    with torch.no_grad():
        out_mixed, out_kept, out_dropped = (d(x, t, cond, k) for k in (mixed, keep_all(True), dropped))
    for i, kept in enumerate(mixed[group].tolist()):
        torch.testing.assert_close(out_mixed[i], (out_kept if kept else out_dropped)[i], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(out_kept[1], out_dropped[1], atol=1e-4)  # the group matters


def test_dropped_conditions_are_the_documented_nulls():
    d = tiny_denoiser().eval()
    randomise_zero_layers(d)
    cond = d.encode_conditions(tiny_batch())
    x, t = latents_and_t()
    null = {"pose": torch.zeros_like(cond["pose"]), "source": d.null_source.expand_as(cond["source"]),
            "fusion": torch.zeros_like(cond["fusion"])}
    with torch.no_grad():
        torch.testing.assert_close(d(x, t, cond, keep_all(False)), d(x, t, null, keep_all(True)))


def test_frozen_encoders_are_in_eval_mode_from_construction():
    d = tiny_denoiser()  # Lightning 2.6 does not call train() at fit start: the built modes are the ones used
    assert not any(m.training for enc in d.frozen_modules() for m in enc.modules())
    assert d.unet.training and d.pose_encoder.training and d.source_projection.training


def test_encode_conditions_runs_frozen_encoders_without_grad_in_eval_mode():
    d = tiny_denoiser().train()
    calls = []
    for m in (d.source_encoder.model, d.fusion_encoder):
        m.register_forward_pre_hook(lambda mod, args: calls.append((torch.is_grad_enabled(), mod.training)))
    batch = tiny_batch()
    first, second = d.encode_conditions(batch), d.encode_conditions(batch)
    assert calls and all(grad is False and training is False for grad, training in calls)
    assert not any(m.training for enc in d.frozen_modules() for m in enc.modules())
    assert not any(p.requires_grad for enc in d.frozen_modules() for p in enc.parameters())
    assert d.pose_encoder.training and d.unet.training  # the trainable parts do train
    for k in first:  # dropout of the Combiner stays off: two calls, identical embeddings
        torch.testing.assert_close(first[k], second[k], rtol=0, atol=0)
    # trainable conditioning keeps its graph (the core trains through encode_conditions)
    assert first["pose"].requires_grad and first["source"].requires_grad and first["fusion"].requires_grad


def test_conditions_are_encoded_once_and_reused_at_every_timestep():
    d = tiny_denoiser().eval()
    randomise_zero_layers(d)
    batch = tiny_batch()
    cached = d.encode_conditions(batch)
    x, _ = latents_and_t()
    with torch.no_grad():
        for t in (0, 500, 999):
            ts = torch.full((B,), t)
            torch.testing.assert_close(d(x, ts, cached, keep_all(True)), d(x, ts, d.encode_conditions(batch), keep_all(True)))


def test_gradients_reach_every_trainable_part():
    d = tiny_denoiser().train()
    randomise_zero_layers(d)
    x, t = latents_and_t()
    keep = keep_all(True)
    keep["source"][0] = False
    d(x, t, d.encode_conditions(tiny_batch()), keep).square().mean().backward()
    trainable = {n: p for n, p in d.named_parameters() if p.requires_grad}
    assert {n.split(".")[0] for n in trainable} == {"unet", "source_projection", "null_source", "pose_encoder",
                                                   "fusion_adapter"}
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in trainable.values())
    assert d.null_source.grad.abs().sum() > 0


def test_gradient_checkpointing_switch_keeps_the_gradients():
    plain, ckpt = tiny_denoiser(seed=3).train(), tiny_denoiser(seed=3, gradient_checkpointing=True).train()
    assert ckpt.unet.is_gradient_checkpointing and not plain.unet.is_gradient_checkpointing
    x, t = latents_and_t()
    for d in (plain, ckpt):
        randomise_zero_layers(d)
        d(x, t, d.encode_conditions(tiny_batch()), keep_all(True)).square().mean().backward()
    for (n, a), (_, b) in zip(plain.named_parameters(), ckpt.named_parameters()):
        if a.grad is not None:
            torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-6, msg=n)


# ---------------------------------------------------------------------------------------------- ablation switches

def test_b3_no_fusion_has_two_groups_and_no_class_embedding():
    d = tiny_denoiser("none")
    assert d.condition_groups == ("pose", "source") and d.fusion_adapter is None and d.fusion_encoder is None
    assert d.unet.class_embedding is None
    x, t = latents_and_t()
    keep = keep_all(True, groups=("pose", "source", "fusion"))  # a stray group in the mask is ignored
    assert d(x, t, d.encode_conditions(tiny_batch()), keep).shape == x.shape


def test_b4_plain_clip_source_embedding():
    d = tiny_denoiser("clip", clip_encoder={"backend": "clip", "preset": "tiny"})
    assert isinstance(d.fusion_encoder, CLIPImageEncoder) and d.fusion_keys == ("clip_source",)
    batch = tiny_batch()
    cond = d.encode_conditions(batch)
    assert cond["fusion"].shape == (B, 128)
    # the embedding depends on the source only, not on the target pose
    other_pose = {**batch, "clip_target_pose": -batch["clip_target_pose"]}
    torch.testing.assert_close(cond["fusion"], d.encode_conditions(other_pose)["fusion"])


def test_b5_b6_load_different_ipf_exports(tmp_path):
    tiny_fusion_model(seed=1).save(tmp_path / "baseline")
    tiny_fusion_model(seed=2).save(tmp_path / "source_enhanced")
    b5 = tiny_denoiser("ipf", fusion_model=str(tmp_path / "baseline"))
    b6 = tiny_denoiser("ipf", fusion_model=str(tmp_path / "source_enhanced"))
    batch = tiny_batch()
    with torch.no_grad():
        e5 = b5.fusion_encoder(batch["clip_source"], batch["clip_target_pose"])
        e6 = b6.fusion_encoder(batch["clip_source"], batch["clip_target_pose"])
    assert e5.shape == e6.shape == (B, 32) and not torch.allclose(e5, e6)
    assert b5.fusion_adapter.net[0].in_features == 32 and b5.fusion_adapter.net[-1].out_features == 128


def test_configuration_errors_say_what_to_fix(tmp_path):
    with pytest.raises(ValueError, match="fusion='ipf' needs fusion_model"):
        tiny_denoiser("ipf", fusion_model=None)
    with pytest.raises(MissingWeightsError, match="make train-ipf"):
        tiny_denoiser("ipf", fusion_model=str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="fusion='none'"):
        tiny_denoiser("none", fusion_model=str(tmp_path))
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['resolution'\] in model.denoiser.init_args.source_encoder"):
        FPDMDenoiser(source_encoder={"preset": "tiny", "resolution": 64}, fusion="none")
    d = tiny_denoiser()
    batch = tiny_batch()
    del batch["dino_source"]
    with pytest.raises(KeyError, match="dino_source.*encoder_inputs"):
        d.encode_conditions(batch)
    with pytest.raises(KeyError, match="no entry for condition group 'fusion'"):
        x, t = latents_and_t()
        d(x, t, d.encode_conditions(tiny_batch()), keep_all(True, groups=("pose", "source")))


def test_every_part_loads_from_local_folders(tmp_path):
    """The real loading path (from_pretrained on folders, IPF export), offline, with tiny models saved first."""
    from transformers import Dinov2Config, Dinov2Model

    from pgpis.models.encoders import DINOV2_PRESETS
    from pgpis.models.unets import build_unet

    torch.manual_seed(5)
    build_unet("tiny").save_pretrained(tmp_path / "sd" / "unet")  # the layout of an SD pipeline folder
    Dinov2Model(Dinov2Config(**DINOV2_PRESETS["tiny"])).save_pretrained(tmp_path / "dinov2")
    tiny_fusion_model(seed=5).save(tmp_path / "ipf")
    d = FPDMDenoiser(unet={"pretrained": str(tmp_path / "sd")},
                     source_encoder={"preset": None, "name_or_path": str(tmp_path / "dinov2"), "size": (DINO, DINO)},
                     fusion="ipf", fusion_model=str(tmp_path / "ipf"), downsample_factor=2)
    stored_unet = build_unet(pretrained=tmp_path / "sd")
    assert d.unet.config.class_embed_type == "identity"  # the fusion path, added without new UNet weights
    for name, value in stored_unet.state_dict().items():
        torch.testing.assert_close(d.unet.state_dict()[name], value, rtol=0, atol=0)
    stored_dino = Dinov2Model.from_pretrained(tmp_path / "dinov2")
    for name, value in stored_dino.state_dict().items():
        torch.testing.assert_close(d.source_encoder.model.state_dict()[name], value, rtol=0, atol=0)
    batch = tiny_batch()
    with torch.no_grad():
        out = d(torch.randn(B, 4, IMAGE // 2, IMAGE // 2), torch.tensor([1, 2, 3, 4]), d.encode_conditions(batch),
                keep_all(True))
    assert out.shape == (B, 4, IMAGE // 2, IMAGE // 2)


def test_dinov2_input_not_a_multiple_of_the_patch_is_covered_by_whole_patches():
    """The paper preset feeds DINOv2 512x512 (patch 14 -> 36x36 patches over 504 px); a side that is not a
    multiple of the patch must build and give 1 + (h // p) * (w // p) tokens, as transformers does."""
    from pgpis.models.fpdm import FrozenDinoV2Tokens

    enc = FrozenDinoV2Tokens(size=(66, 60))
    patch = enc.model.config.patch_size
    tokens = enc(torch.zeros(2, 3, 64, 64))
    assert tokens.shape[:2] == (2, 1 + (66 // patch) * (60 // patch))
