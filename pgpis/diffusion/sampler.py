"""The denoising loop over any diffusers scheduler, with cached conditioning and batched guidance.

Speed and faithfulness come from three choices:

* conditions are encoded once per sample (``denoiser.encode_conditions``) and
  repeated per guidance branch once, outside the step loop;
* all branches of a step are stacked along the batch and go through **one**
  denoiser call; the guidance policy combines them;
* the initial noise (and any per-step noise, e.g. DDIM eta > 0) comes from one
  generator per sample seeded by that sample's seed, so a sample is identical
  whatever batch it is generated in.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable, Mapping, Optional, Sequence

import torch
from torch import Tensor

from pgpis.diffusion.denoiser import ConditionalDenoiser, Conditions
from pgpis.diffusion.guidance import GuidancePolicy, NoGuidance

#: called before each denoiser query: (latents x_t, timestep, step index, scheduler) -> latents
StepHook = Callable[[Tensor, Tensor, int, Any], Tensor]


def _scheduler_class(name: str) -> type:
    """"DDIMScheduler" or a dotted path ("diffusers.DPMSolverMultistepScheduler") -> class."""
    module, _, attr = name.rpartition(".")
    try:
        return getattr(importlib.import_module(module or "diffusers"), attr)
    except (ImportError, AttributeError) as err:
        raise ValueError(
            f"sampler scheduler '{name}' not found; use a diffusers scheduler class name such as "
            "'DDIMScheduler', 'DPMSolverMultistepScheduler', 'EulerDiscreteScheduler', or a dotted path"
        ) from err


def per_sample_generators(seeds: Sequence[int]) -> list[torch.Generator]:
    """One CPU generator per sample (CPU so a seed gives the same noise on every device)."""
    return [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]


def per_sample_noise(generators: Sequence[torch.Generator], shape: Sequence[int], device, dtype) -> Tensor:
    """[B, *shape] standard normal noise, row i drawn from generators[i]."""
    rows = [torch.randn(tuple(shape), generator=g, dtype=torch.float32) for g in generators]
    return torch.stack(rows).to(device=device, dtype=dtype)


class Sampler:
    """Sampling settings: scheduler class (+ overrides of the training config), steps, eta.

    The scheduler is built from the *training* noise scheduler's config so beta
    schedule and prediction type always match the trained model; ``overrides``
    change sampling-only options (e.g. ``timestep_spacing: trailing``).
    """

    def __init__(
        self,
        scheduler: str = "DDIMScheduler",
        num_inference_steps: int = 50,
        eta: float = 0.0,
        overrides: Optional[Mapping[str, Any]] = None,
    ):
        self.scheduler_name = scheduler
        self.scheduler_cls = _scheduler_class(scheduler)
        self.num_inference_steps = int(num_inference_steps)
        self.eta = float(eta)
        self.overrides = dict(overrides or {})

    def make_scheduler(self, train_config: Mapping[str, Any]):
        """A fresh scheduler (schedulers keep per-run state) with timesteps set."""
        sched = self.scheduler_cls.from_config(dict(train_config), **self.overrides)
        sched.set_timesteps(self.num_inference_steps)
        return sched

    def _step_kwargs(self, sched, generators: Sequence[torch.Generator]) -> dict[str, Any]:
        import inspect

        params = inspect.signature(sched.step).parameters
        kwargs: dict[str, Any] = {}
        if "eta" in params:
            kwargs["eta"] = self.eta
        if "generator" in params:
            kwargs["generator"] = list(generators)
        return kwargs

    @torch.no_grad()
    def sample(
        self,
        denoiser: ConditionalDenoiser,
        conditions: Conditions,
        latent_shape: Sequence[int],
        seeds: Sequence[int],
        train_config: Mapping[str, Any],
        guidance: GuidancePolicy | None = None,
        noise: Tensor | None = None,
        step_hook: StepHook | None = None,
    ) -> Tensor:
        """Denoise from per-sample noise; returns latents [B, *latent_shape].

        `conditions` come from ``denoiser.encode_conditions`` (computed once by the
        caller); `noise` overrides the seeded initial noise (callbacks keep fixed noise).
        """
        guidance = guidance or NoGuidance()
        batch = len(seeds)
        device = next(iter(conditions.values())).device if conditions else next(denoiser.parameters()).device
        dtype = next(denoiser.parameters()).dtype
        generators = per_sample_generators(seeds)
        sched = self.make_scheduler(train_config)
        drawn = per_sample_noise(generators, latent_shape, device, torch.float32)
        latents = (noise.to(device=device, dtype=torch.float32) if noise is not None else drawn)
        latents = latents * getattr(sched, "init_noise_sigma", 1.0)

        k = guidance.num_branches
        stacked = denoiser.repeat_conditions(conditions, k) if k > 1 else conditions
        keep = guidance.keep_masks(denoiser.condition_groups, batch, device)
        step_kwargs = self._step_kwargs(sched, generators)

        for i, t in enumerate(sched.timesteps):
            if step_hook is not None:
                latents = step_hook(latents, t, i, sched)
            model_in = sched.scale_model_input(latents, t)
            model_in = torch.cat([model_in] * k, dim=0) if k > 1 else model_in
            t_batch = t.to(device).expand(model_in.shape[0])
            out = denoiser(model_in.to(dtype), t_batch, stacked, keep).float()
            latents = sched.step(guidance.combine(out), t, latents, **step_kwargs).prev_sample
        return latents


class MaskBlend:
    """TruePose sec. 5.4 style transfer: y_t = m y_t + (1 - m) y_t^ref at every step.

    ``mask`` [B, 1, h, w] (latent resolution, 1 = generate), ``reference`` the
    clean reference latents; the reference is noised to the step's level with
    fixed ``noise`` so the blend is deterministic.
    """

    def __init__(self, mask: Tensor, reference: Tensor, noise: Tensor):
        self.mask, self.reference, self.noise = mask, reference, noise

    def __call__(self, latents: Tensor, t: Tensor, step: int, scheduler) -> Tensor:
        ref_t = scheduler.add_noise(self.reference, self.noise, t.reshape(1).to(self.reference.device))
        return self.mask * latents + (1 - self.mask) * ref_t
