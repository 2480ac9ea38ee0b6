"""SiameseDenoiser and ParsingSiameseLDM: Siamese weights, parsing selection, caching, dropout, ablations, style transfer."""
import pytest
import torch

from pgpis.data.parsing import LIP
from pgpis.diffusion import ClassifierFreeGuidance, ConditionDropout, PixelUnshuffleFirstStage, Sampler
from pgpis.models.attention import PlainAttnProcessor
from pgpis.models.truepose import SiameseDenoiser, layer_downscale
from pgpis.stages.parsing_siamese_ldm import ParsingSiameseLDM

TINY_UNET = {"preset": "tiny", "in_channels": 12, "out_channels": 12}
SCHEDULE = {"prediction_type": "sample", "beta_schedule": "squaredcos_cap_v2"}


def make_batch(b: int = 2, size=(32, 24), seed: int = 0) -> dict:
    """A person-like batch: torso, legs and face regions in the parsing map; some keypoints missing."""
    g = torch.Generator().manual_seed(seed)
    h, w = size
    parsing = torch.zeros(b, h, w, dtype=torch.long)
    parsing[:, 2:7, 8:16] = LIP.index("Face")
    parsing[:, 7:18, 5:19] = LIP.index("Upper-clothes")
    parsing[:, 18:30, 6:18] = LIP.index("Pants")
    kp = torch.rand(b, 18, 2, generator=g) * torch.tensor([w - 1.0, h - 1.0])
    kp[0, 8:14] = -1  # the first target shows no hips/legs
    return {
        "source": torch.rand(b, 3, h, w, generator=g) * 2 - 1,
        "target": torch.rand(b, 3, h, w, generator=g) * 2 - 1,
        "target_pose": torch.rand(b, 3, h, w, generator=g) * 2 - 1,
        "source_parsing": parsing,
        "target_keypoints": kp,
        "pair_index": torch.arange(b),
    }


def make_model(**denoiser_kwargs) -> ParsingSiameseLDM:
    torch.manual_seed(0)
    den = SiameseDenoiser(unet=TINY_UNET, downsample_factor=2, **denoiser_kwargs)
    return ParsingSiameseLDM(den, PixelUnshuffleFirstStage(2), noise_scheduler=SCHEDULE,
                             sampler=Sampler("DDIMScheduler", num_inference_steps=3)).eval()


@pytest.fixture(scope="module")
def model() -> ParsingSiameseLDM:
    return make_model()


def _without_processors(sd):
    return {k: v for k, v in sd.items() if ".processor." not in k}


def test_sourcenet_is_an_identical_copy_of_targetnet(model):
    den = model.denoiser
    src, tgt = _without_processors(den.source_net.state_dict()), _without_processors(den.target_net.state_dict())
    assert src.keys() == tgt.keys()
    assert all(torch.equal(src[k], tgt[k]) for k in src)
    assert src["conv_in.weight"].data_ptr() != tgt["conv_in.weight"].data_ptr()  # a copy, not shared weights
    # default: every TargetNet self-attention layer is fused, listed in forward order (mid block before up blocks)
    attn1 = [n[: -len(".processor")] for n in den.target_net.attn_processors if n.endswith("attn1.processor")]
    assert sorted(den.layers) == sorted(attn1)
    parts = [n.split(".")[0] for n in den.layers]
    assert parts == sorted(parts, key=["down_blocks", "mid_block", "up_blocks"].index)
    plain = [k for k, p in den.target_net.attn_processors.items() if isinstance(p, PlainAttnProcessor)]
    assert all(not k.endswith("attn1.processor") for k in plain)


def test_paper_defaults(model):
    assert isinstance(model.guidance, ClassifierFreeGuidance) and model.guidance.scale == 3.5
    assert model.condition_dropout.mode == "joint" and model.condition_dropout.p == 0.3
    assert model.denoiser.condition_groups == ("source",)
    assert (model.denoiser.delta, model.denoiser.sigma, model.denoiser.caa_regions) == (0.6, 0.3, 2)


def test_target_oriented_parsing_selection(model):
    batch = make_batch()
    mask = model.denoiser.target_mask(batch["source_parsing"], batch["target_keypoints"])
    pants = batch["source_parsing"] == LIP.index("Pants")
    # sample 0 has no hip/knee/ankle keypoints: the source's pants are not selected; sample 1 has them
    assert not mask[0][pants[0]].any() and mask[1][pants[1]].all()
    face = batch["source_parsing"] == LIP.index("Face")
    assert mask[0][face[0]].all()
    assert not mask[:, 0, 0].any()  # background never selected


def test_layer_downscale_matches_the_captured_token_grids(model):
    den = model.denoiser
    latent = torch.randn(1, 12, 16, 12)
    with torch.no_grad():
        tokens = den._source_tokens(latent, torch.zeros(1, 1, 32), (16, 12))
    for name, f in tokens.items():
        k = layer_downscale(den.target_net, name)
        assert f.shape[1] == (16 // 2**k) * (12 // 2**k), name


@pytest.mark.parametrize("kwargs", [
    {},  # the paper's model
    {"fusion": "reference"},  # without HPFA (CAA on reference attention)
    {"source_features": "clip"},  # B1: CLIP features instead of SourceNet
    pytest.param({"caa": False}, marks=pytest.mark.slow),  # B3: without CAA
    pytest.param({"fusion": "reference", "caa": False}, marks=pytest.mark.slow),  # B2: plain reference attention
])
def test_cached_and_uncached_sampling_agree(kwargs):
    m = make_model(**kwargs)
    batch = make_batch()
    cached = m.generate(batch)
    m.denoiser.cache_source = False
    uncached = m.generate(batch)
    torch.testing.assert_close(cached, uncached, atol=1e-5, rtol=1e-4)
    assert cached.shape == (2, 3, 32, 24)


def test_source_side_runs_once_per_sample(model):
    calls = []
    # a pre-hook: SourceNet's forward ends early (CaptureComplete) once every fused layer is captured
    hook = model.denoiser.source_net.register_forward_pre_hook(lambda *a: calls.append(1))
    try:
        model.generate(make_batch())  # CFG: 2 branches x 3 steps
    finally:
        hook.remove()
    assert len(calls) == 1


def test_dropped_rows_are_the_plain_pose_conditioned_unet(model):
    den = model.denoiser
    batch = make_batch()
    x, t = torch.randn(2, 12, 16, 12), torch.tensor([5, 800])
    with torch.no_grad():
        cond = den.encode_conditions(batch)
        out = den(x, t, cond, {"source": torch.tensor([False, True])})
        with den._pose_injection(cond["pose"]):
            plain = den.target_net(x, t, encoder_hidden_states=torch.zeros_like(cond["clip_tokens"])).sample
    torch.testing.assert_close(out[0], plain[0], atol=1e-5, rtol=1e-4)
    assert not torch.allclose(out[1], plain[1], atol=1e-3)


@pytest.mark.parametrize("kept", [[True, False, True, False], [False, False, False, False]])
def test_training_skips_the_source_side_of_dropped_rows_with_the_same_loss_and_gradients(kept):
    """encode_conditions(batch, keep) runs SourceNet/CLIP on the kept rows only; nothing the loss sees changes."""
    m = make_model(source_pose=True, source_parsing=True, clip_encoder={"preset": "tiny", "trainable": True}).train()
    batch = make_batch(4)
    batch["source_pose"] = torch.rand(4, 3, 32, 24, generator=torch.Generator().manual_seed(1)) * 2 - 1
    keep = {"source": torch.tensor(kept)}
    sizes = []
    hook = m.denoiser.source_net.register_forward_pre_hook(lambda mod, args: sizes.append(args[0].shape[0]))
    results = []
    try:
        for mask in (None, keep):  # every row encoded (the reference), then the kept rows only
            m.zero_grad()
            loss = m.diffusion_loss(batch, generator=torch.Generator().manual_seed(0), keep=keep) if mask \
                else _loss_with_every_row_encoded(m, batch, keep)
            loss.backward()
            results.append((loss.detach(), {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}))
    finally:
        hook.remove()
    assert sizes == [4, max(sum(kept), 1)]
    (ref_loss, ref_grads), (loss, grads) = results
    torch.testing.assert_close(loss, ref_loss, atol=1e-6, rtol=1e-5)
    assert grads.keys() == ref_grads.keys()
    for name in grads:
        torch.testing.assert_close(grads[name], ref_grads[name], atol=1e-6, rtol=1e-4, msg=name)
    if not any(kept):  # no row reads SourceNet: its gradient is zero
        assert all(not g.any() for n, g in grads.items() if n.startswith("denoiser.source_net."))


def _loss_with_every_row_encoded(m: ParsingSiameseLDM, batch: dict, keep: dict) -> torch.Tensor:
    """diffusion_loss as it was before rows were skipped: encode every row, then draw t, noise with the same seed."""
    original = m.denoiser.encode_conditions
    m.denoiser.encode_conditions = lambda b, keep=None: original(b)
    try:
        return m.diffusion_loss(batch, generator=torch.Generator().manual_seed(0), keep=keep)
    finally:
        del m.denoiser.encode_conditions


def test_training_reaches_sourcenet_fusion_and_pose_encoder():
    m = make_model().train()
    keep = {"source": torch.tensor([True, True])}
    loss = m.diffusion_loss(make_batch(), generator=torch.Generator().manual_seed(0), keep=keep)
    loss.backward()
    den = m.denoiser
    layer = den.layers[0]
    proc = den.target_net.get_submodule(layer).processor
    assert den.source_net.conv_in.weight.grad is not None and den.source_net.conv_in.weight.grad.abs().sum() > 0
    assert proc.to_k_h.weight.grad.abs().sum() > 0 and proc.caa.to_v.weight.grad.abs().sum() > 0
    assert den.pose_encoder.conv_out.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in den.clip.parameters())  # CLIP is frozen
    assert "target_net.%s.processor.to_k_h.weight" % layer in den.state_dict()


def test_missing_parsing_says_how_to_fix(model):
    batch = make_batch()
    del batch["source_parsing"]
    with pytest.raises(KeyError, match="parsing: true"):
        model.denoiser.encode_conditions(batch)


def test_bad_config_errors():
    with pytest.raises(ValueError, match="not self-attention layers"):
        SiameseDenoiser(unet=TINY_UNET, downsample_factor=2, layers=["down_blocks.1.attentions.0.transformer_blocks.0.attn2"])
    den = SiameseDenoiser(unet=TINY_UNET, downsample_factor=4)
    with pytest.raises(ValueError, match="downsample_factor"):
        den.attach_first_stage(PixelUnshuffleFirstStage(2))


def test_style_transfer_blends_every_step(model):
    from pgpis.diffusion.sampler import per_sample_generators, per_sample_noise

    batch = make_batch()
    reference = torch.rand(2, 3, 32, 24) * 2 - 1
    generated = model.generate(batch)
    same = model.style_transfer(batch, reference, torch.ones(2, 32, 24))
    torch.testing.assert_close(same, generated, atol=1e-5, rtol=1e-4)  # mask 1 everywhere: plain generation
    # mask 0: every denoiser input is the reference latent noised to that step's level, the result the reference
    seen = []
    hook = model.denoiser.target_net.register_forward_pre_hook(lambda mod, args: seen.append(args[0].clone()))
    try:
        kept = model.style_transfer(batch, reference, torch.zeros(2, 1, 32, 24))
    finally:
        hook.remove()
    torch.testing.assert_close(kept, reference, atol=1e-6, rtol=0)  # PixelUnshuffle is lossless
    ref = model.first_stage.encode(reference)
    noise = per_sample_noise(per_sample_generators([s + 7_777_777 for s in model.sample_seeds(batch)]),
                             ref.shape[1:], "cpu", torch.float32)
    sched = model.sampler.make_scheduler(model.noise_scheduler.config)
    assert len(seen) == len(sched.timesteps)
    for x, t in zip(seen, sched.timesteps):
        expected = sched.add_noise(ref, noise, t.reshape(1))
        torch.testing.assert_close(x, torch.cat([expected, expected]), atol=1e-5, rtol=1e-5)  # both CFG branches


def test_joint_dropout_drops_all_conditions_per_sample():
    keep = ConditionDropout("joint", 0.3)(("source",), 4000, "cpu", generator=torch.Generator().manual_seed(0))
    assert abs((~keep["source"]).float().mean().item() - 0.3) < 0.03


def test_trainable_clip_learns_and_is_never_memoised():
    """clip_encoder.trainable: the CLIP tower gets gradients (the frozen default has none) and nothing is memoised."""
    m = make_model(clip_encoder={"preset": "tiny", "trainable": True}, frozen_cache_size=64).train()
    den = m.denoiser
    assert den.clip.training and any(p.requires_grad for p in den.clip.parameters())
    keep = {"source": torch.tensor([True, True])}
    for _ in range(2):
        m.zero_grad()
        m.diffusion_loss(make_batch(), generator=torch.Generator().manual_seed(0), keep=keep).backward()
    grads = [p.grad for p in den.clip.parameters() if p.grad is not None]
    assert grads and sum(g.abs().sum() for g in grads) > 0
    assert len(den.clip_cache) == 0 and len(den.region_cache) == 0
    frozen = make_model().train().denoiser.clip
    assert not frozen.training and not any(p.requires_grad for p in frozen.parameters())


def test_source_pose_conditions_sourcenet_only_when_asked():
    batch = make_batch()
    batch["source_pose"] = torch.rand(2, 3, 32, 24, generator=torch.Generator().manual_seed(3)) * 2 - 1
    m = make_model(source_pose=True)
    den = m.denoiser
    with torch.no_grad():  # the zero-initialised pose encoder would hide the residual: give it weights
        den.pose_encoder.conv_out.weight.normal_(0, 0.1)
    layer = den.layers[0]
    with torch.no_grad():
        a = den.encode_conditions(batch)[f"{layer}/hpfa"]
        b = den.encode_conditions(dict(batch, source_pose=batch["source_pose"].flip(0)))[f"{layer}/hpfa"]
        off = make_model()
        off.denoiser.load_state_dict(den.state_dict())
        c = off.denoiser.encode_conditions(batch)[f"{layer}/hpfa"]
    assert not torch.allclose(a, b) and not torch.allclose(a, c)  # SourceNet sees the source pose
    # the cached source side and the every-step one agree, and training reaches the pose encoder from SourceNet
    cached = m.generate(batch)
    den.cache_source = False
    torch.testing.assert_close(cached, m.generate(batch), atol=1e-5, rtol=1e-4)
    missing = {k: v for k, v in batch.items() if k != "source_pose"}
    with pytest.raises(KeyError, match="source_pose"):
        den.encode_conditions(missing)
    with pytest.raises(ValueError, match="source_pose"):
        SiameseDenoiser(unet=TINY_UNET, downsample_factor=2, source_features="clip", source_pose=True)


def test_source_parsing_embeds_the_parsing_map_into_sourcenet():
    batch = make_batch()
    m = make_model(source_parsing=True)
    den = m.denoiser
    layer = den.layers[0]
    relabelled = batch["source_parsing"].clone()
    relabelled[relabelled == LIP.index("Upper-clothes")] = LIP.index("Dress")  # same mask for HPFA, other class
    with torch.no_grad():
        zero = den.encode_conditions(batch)[f"{layer}/hpfa"]
        off = make_model()
        off.denoiser.load_state_dict({k: v for k, v in den.state_dict().items() if "parsing_encoder" not in k})
        torch.testing.assert_close(zero, off.denoiser.encode_conditions(batch)[f"{layer}/hpfa"])  # zero-initialised
        torch.testing.assert_close(zero, den.encode_conditions(dict(batch, source_parsing=relabelled))[f"{layer}/hpfa"])
        den.parsing_encoder.conv_out.weight.normal_(0, 0.1)
        a = den.encode_conditions(batch)[f"{layer}/hpfa"]
        b = den.encode_conditions(dict(batch, source_parsing=relabelled))[f"{layer}/hpfa"]
    assert not torch.allclose(a, b)  # SourceNet's tokens say which class they show
    cached = m.generate(batch)
    den.cache_source = False
    torch.testing.assert_close(cached, m.generate(batch), atol=1e-5, rtol=1e-4)
    m.train()
    m.training_step(batch, 0).backward()
    assert den.parsing_encoder.conv_out.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="source_parsing"):
        SiameseDenoiser(unet=TINY_UNET, downsample_factor=2, source_features="clip", source_parsing=True)
