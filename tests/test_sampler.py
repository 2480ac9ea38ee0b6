"""Sampler: per-sample seeds, one batched call per step, conditions encoded once, any diffusers scheduler."""
import pytest
import torch

from pgpis.diffusion import (ClassifierFreeGuidance, CumulativeGuidance, MaskBlend, PixelUnshuffleFirstStage, Sampler)
from pgpis.diffusion.core import LatentDiffusion
from test_diffusion_helpers import TinyTestDenoiser, random_batch

GUIDE = CumulativeGuidance(2.0, 1.5, source_groups=("pose",), fusion_groups=("source",))


@pytest.fixture(scope="module")
def model() -> LatentDiffusion:
    torch.manual_seed(0)
    m = LatentDiffusion(TinyTestDenoiser(), PixelUnshuffleFirstStage(2),
                        noise_scheduler={"prediction_type": "sample", "beta_schedule": "squaredcos_cap_v2"},
                        sampler=Sampler("DDIMScheduler", num_inference_steps=4))
    return m.eval()


def _subset(batch, idx):
    return {k: (v[idx] if isinstance(v, torch.Tensor) else [v[i] for i in idx]) for k, v in batch.items()}


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_sample_independent_of_batch(model, eta):
    batch = random_batch(3)
    sampler = Sampler("DDIMScheduler", num_inference_steps=4, eta=eta)
    full = model.generate(batch, guidance=GUIDE, sampler=sampler)
    alone = torch.cat([model.generate(_subset(batch, [i]), guidance=GUIDE, sampler=sampler) for i in range(3)])
    torch.testing.assert_close(full, alone, atol=1e-5, rtol=1e-4)
    assert full.shape == (3, 3, 16, 16) and full.min() >= -1 and full.max() <= 1


def test_one_batched_call_per_step_and_conditions_once(model):
    den = model.denoiser
    den.encode_calls = den.forward_calls = 0
    model.generate(random_batch(2), guidance=GUIDE)
    assert den.encode_calls == 1
    assert den.forward_calls == 4  # 4 steps, 3 branches each, one call per step


def naive_sample(model, batch, guidance, steps):
    """Reference loop: conditions re-encoded and one denoiser call per branch, every step."""
    sched = Sampler("DDIMScheduler", steps).make_scheduler(model.noise_scheduler.config)
    from pgpis.diffusion.sampler import per_sample_generators, per_sample_noise

    b = len(batch["target"])
    lat = per_sample_noise(per_sample_generators(model.sample_seeds(batch)), model.latent_shape(batch), "cpu", torch.float32)
    groups = model.denoiser.condition_groups
    for t in sched.timesteps:
        outs = []
        for branch in guidance.branches:
            kept = guidance.kept_groups(branch, groups)
            keep = {g: torch.full((b,), g in kept) for g in groups}
            outs.append(model.denoiser(lat, t.expand(b), model.denoiser.encode_conditions(batch), keep))
        lat = sched.step(sum(c * o for c, o in zip(guidance.coefficients, outs)), t, lat).prev_sample
    return model.first_stage.decode(lat).clamp(-1, 1)


def test_batched_guidance_equals_naive_loop(model):
    batch = random_batch(2)
    with torch.no_grad():
        expected = naive_sample(model, batch, GUIDE, 4)
    torch.testing.assert_close(model.generate(batch, guidance=GUIDE), expected, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", ["DPMSolverMultistepScheduler", "diffusers.EulerDiscreteScheduler", "DDPMScheduler"])
def test_other_schedulers(model, name):
    out = model.generate(random_batch(2), guidance=ClassifierFreeGuidance(2.0), sampler=Sampler(name, 3))
    assert out.shape == (2, 3, 16, 16) and torch.isfinite(out).all()


def test_unknown_scheduler_is_explained():
    with pytest.raises(ValueError, match="DDIMScheduler"):
        Sampler("NoSuchScheduler")


def test_mask_blend_hook(model):
    batch = random_batch(2)
    shape = (2, *model.latent_shape(batch))
    ref = model.first_stage.encode(batch["source"])
    keep_all = MaskBlend(torch.ones(2, 1, *shape[-2:]), ref, torch.zeros(shape))
    torch.testing.assert_close(model.generate(batch, step_hook=keep_all), model.generate(batch))
    # mask 0 everywhere: each step starts from the reference noised to that level, so the result differs
    take_ref = MaskBlend(torch.zeros(2, 1, *shape[-2:]), ref, torch.zeros(shape))
    assert not torch.allclose(model.generate(batch, step_hook=take_ref), model.generate(batch))
