"""Training noise schedule, loss targets and the paper's learning-rate schedule."""
from __future__ import annotations

from typing import Any, Literal, Mapping, Sequence

import torch
from torch import Tensor

PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")
#: the beta schedules diffusers' DDPMScheduler implements (anything else it rejects at construction)
BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2", "laplace", "sigmoid")

#: DDPM defaults of Stable Diffusion (FPDM trains SD-2.1 with these betas)
SD_NOISE_SCHEDULER: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "prediction_type": "epsilon",
    "clip_sample": False,
}


def build_noise_scheduler(config: Mapping[str, Any] | None):
    """A diffusers ``DDPMScheduler`` from SD defaults updated by `config` (validated)."""
    from diffusers import DDPMScheduler

    cfg = {**SD_NOISE_SCHEDULER, **dict(config or {})}
    if cfg["prediction_type"] not in PREDICTION_TYPES:
        raise ValueError(
            f"noise_scheduler.prediction_type '{cfg['prediction_type']}' is not supported; use one of {PREDICTION_TYPES}"
        )
    if cfg.get("trained_betas") is None and cfg["beta_schedule"] not in BETA_SCHEDULES:
        raise ValueError(
            f"noise_scheduler.beta_schedule '{cfg['beta_schedule']}' is not supported; use one of {BETA_SCHEDULES}"
        )
    try:
        return DDPMScheduler(**cfg)
    except TypeError as err:  # an unknown key
        raise ValueError(f"noise_scheduler config {cfg} is not a valid DDPMScheduler config: {err}") from err


def loss_target(scheduler, latents: Tensor, noise: Tensor, timesteps: Tensor) -> Tensor:
    """What the denoiser must output for the scheduler's prediction type."""
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        return noise
    if kind == "v_prediction":
        return scheduler.get_velocity(latents, noise, timesteps)
    if kind == "sample":
        return latents
    raise ValueError(f"unsupported prediction_type '{kind}'; use one of {PREDICTION_TYPES}")


class WarmupStepDecay:
    """LR factor: linear warm-up over `warmup` units, then x`gamma` at each milestone.

    FPDM: warm-up 5 epochs, x0.1 after 50 (``unit="epoch"``). A picklable
    callable so ``LambdaLR`` state round-trips through checkpoints.
    """

    def __init__(self, warmup: int = 0, milestones: Sequence[int] = (), gamma: float = 0.1,
                 unit: Literal["step", "epoch"] = "step"):
        if unit not in ("step", "epoch"):
            raise ValueError(f"lr schedule unit must be 'step' or 'epoch', got '{unit}'")
        self.warmup, self.milestones, self.gamma, self.unit = int(warmup), sorted(int(m) for m in milestones), float(gamma), unit

    def __call__(self, index: int) -> float:
        factor = min(1.0, (index + 1) / self.warmup) if self.warmup > 0 else 1.0
        return factor * self.gamma ** sum(index >= m for m in self.milestones)

    def __repr__(self) -> str:
        return f"WarmupStepDecay(warmup={self.warmup}, milestones={self.milestones}, gamma={self.gamma}, unit={self.unit!r})"
