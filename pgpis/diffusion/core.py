"""`LatentDiffusion`: the one latent-diffusion LightningModule both LDM stages share.

Everything method-specific is injected (LightningCLI ``class_path`` /
``init_args``): the :class:`~pgpis.diffusion.denoiser.ConditionalDenoiser`
(network + condition encoders), the first stage, the dropout policy and the
guidance policy. The core owns what is common: the DDPM training schedule and
loss target, per-sample condition dropout, the optimiser and paper LR schedule,
and sampling. EMA, gradient clipping and mixed precision are Trainer concerns
(``EMAWeightAveraging`` callback, ``gradient_clip_val``, ``precision``).

Training randomness (timesteps, noise, dropout) is drawn from a generator seeded
by ``(seed, global_step, rank)``, so resuming from a checkpoint continues
exactly the run it came from.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from typing_extensions import override

from pgpis.diffusion.denoiser import ConditionalDenoiser, Conditions, stored_tensor
from pgpis.diffusion.dropout import ConditionDropout
from pgpis.diffusion.first_stage import FirstStage
from pgpis.diffusion.guidance import GuidancePolicy, NoGuidance
from pgpis.diffusion.sampler import Sampler, StepHook
from pgpis.diffusion.schedules import WarmupStepDecay, build_noise_scheduler, loss_target
from pgpis.optim import adamw
from pgpis.training.lightning_compat import lightning_cli_is_instantiating


class LatentDiffusion(pl.LightningModule):
    """Conditional latent diffusion over an injected denoiser and first stage.

    Args:
        denoiser: network + condition encoders (``condition_groups`` name what dropout/guidance switch).
        first_stage: frozen image <-> latent map (SD VAE or pixel-unshuffle).
        noise_scheduler: ``DDPMScheduler`` kwargs over SD defaults (prediction_type, beta_schedule, ...).
        condition_dropout: per-sample keep-mask policy (FPDM independent 0.2; TruePose joint 0.3).
        guidance: default guidance policy for :meth:`generate`.
        sampler: default sampling scheduler / steps / eta.
        lr, weight_decay, betas: AdamW.
        lr_schedule: linear warm-up then step decay (``unit`` step or epoch).
        gradient_checkpointing: asks the denoiser to trade compute for memory.
        target_key: batch key of the image to generate.
        image_size: (h, w) of generated images; taken from the batch when None.
        seed: base seed of the training randomness and of per-sample sampling seeds.
    """

    def __init__(
        self,
        denoiser: ConditionalDenoiser,
        first_stage: FirstStage,
        noise_scheduler: Optional[dict[str, Any]] = None,
        condition_dropout: Optional[ConditionDropout] = None,
        guidance: Optional[GuidancePolicy] = None,
        sampler: Optional[Sampler] = None,
        lr: float = 1e-4,
        weight_decay: float = 1e-2,
        betas: tuple[float, float] = (0.9, 0.999),
        lr_schedule: Optional[WarmupStepDecay] = None,
        gradient_checkpointing: bool = False,
        target_key: str = "target",
        seed: int = 0,
    ):
        super().__init__()
        if lightning_cli_is_instantiating():  # LightningCLI supplies the config as hparams
            self.save_hyperparameters()
        else:  # plain Python: modules are in the state dict; pass them again to load_from_checkpoint
            self.save_hyperparameters(ignore=["denoiser", "first_stage"])
        if not isinstance(denoiser, ConditionalDenoiser):
            raise TypeError(
                f"LatentDiffusion: denoiser must be a pgpis.diffusion.denoiser.ConditionalDenoiser, got {type(denoiser).__name__}"
            )
        self.denoiser = denoiser
        self.first_stage = first_stage.requires_grad_(False)
        self.noise_scheduler = build_noise_scheduler(noise_scheduler)
        self.condition_dropout = condition_dropout or ConditionDropout("independent", 0.2)
        self.guidance = guidance or NoGuidance()
        self.sampler = sampler or Sampler()
        self.lr, self.weight_decay, self.betas = lr, weight_decay, tuple(betas)
        self.lr_schedule = lr_schedule or WarmupStepDecay()
        self.target_key = target_key
        self.seed = int(seed)
        if gradient_checkpointing:
            denoiser.enable_gradient_checkpointing()
        denoiser.attach_first_stage(self.first_stage)

    # ------------------------------------------------------------------ training
    def _step_generator(self, salt: int = 0) -> torch.Generator:
        """Generator for this optimisation step: resumable and distinct per rank."""
        rank = self.global_rank  # 0 without a Trainer
        key = (self.seed * 1_000_003 + self.global_step * 97 + rank * 7919 + salt) % (2**63)
        return torch.Generator(self.device).manual_seed(key)

    def diffusion_loss(self, batch: Mapping[str, Any], generator: torch.Generator | None = None,
                       keep: Mapping[str, Tensor] | None = None) -> Tensor:
        """MSE between the denoiser output and the scheduler's target for a random timestep per sample."""
        latents = stored_tensor(batch, f"latents/{self.target_key}")  # a feature store's (pgpis.store), else encode
        with torch.no_grad():
            latents = (self.first_stage.encode(batch[self.target_key]) if latents is None else latents).float()
        b, device = latents.shape[0], latents.device
        num_t = self.noise_scheduler.config.num_train_timesteps
        timesteps = torch.randint(0, num_t, (b,), device=device, generator=generator)
        noise = torch.randn(latents.shape, device=device, generator=generator)
        if keep is None:
            keep = self.condition_dropout(self.denoiser.condition_groups, b, device, generator=generator)
        conditions = self.denoiser.encode_conditions(batch, keep=keep)  # may skip dropped rows' encoders
        noisy = self.noise_scheduler.add_noise(latents, noise, timesteps)
        out = self.denoiser(noisy, timesteps, conditions, keep)
        return F.mse_loss(out.float(), loss_target(self.noise_scheduler, latents, noise, timesteps).float())

    @override
    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> Tensor:
        loss = self.diffusion_loss(batch, generator=self._step_generator())
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch[self.target_key]))
        return loss

    @override
    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> Tensor:
        """Loss of the fully conditioned model at fixed noise (comparable across epochs)."""
        gen = torch.Generator(self.device).manual_seed(self.seed + 10_007 * batch_idx)
        b = len(batch[self.target_key])
        loss = self.diffusion_loss(batch, generator=gen, keep=self.denoiser.all_kept(b, self.device))
        self.log("val/loss", loss, prog_bar=True, sync_dist=True, batch_size=b)
        return loss

    @override
    def test_step(self, batch: Mapping[str, Any], batch_idx: int) -> Tensor:
        """Test-split loss (sample generation and image metrics: the ``DDIMInference`` callback)."""
        gen = torch.Generator(self.device).manual_seed(self.seed + 10_007 * batch_idx)
        b = len(batch[self.target_key])
        loss = self.diffusion_loss(batch, generator=gen, keep=self.denoiser.all_kept(b, self.device))
        self.log("test/loss", loss, sync_dist=True, batch_size=b)
        return loss

    @override
    def configure_optimizers(self):
        params = [p for p in self.denoiser.parameters() if p.requires_grad]
        opt = adamw(params, lr=self.lr, weight_decay=self.weight_decay, betas=self.betas)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, self.lr_schedule)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": self.lr_schedule.unit, "frequency": 1}}

    # ------------------------------------------------------------------ sampling
    def sample_seeds(self, batch: Mapping[str, Any]) -> list[int]:
        """Per-sample seeds from the pair index: a sample is the same in any batch, on any rank."""
        if "pair_index" in batch:
            idx = batch["pair_index"]
            idx = idx.tolist() if isinstance(idx, Tensor) else list(idx)
        else:
            idx = list(range(len(batch[self.target_key])))
        return [self.seed * 1_000_003 + int(i) for i in idx]

    def latent_shape(self, batch: Mapping[str, Any]) -> tuple[int, int, int]:
        h, w = batch[self.target_key].shape[-2:]
        lh, lw = self.first_stage.latent_size((int(h), int(w)))
        return self.first_stage.latent_channels, lh, lw

    @torch.no_grad()
    def generate(
        self,
        batch: Mapping[str, Any],
        guidance: GuidancePolicy | None = None,
        sampler: Sampler | None = None,
        seeds: Sequence[int] | None = None,
        noise: Tensor | None = None,
        conditions: Conditions | None = None,
        step_hook: StepHook | None = None,
    ) -> Tensor:
        """Images [B, 3, H, W] in [-1, 1] for the batch's conditions (target images give only the size)."""
        conditions = self.denoiser.encode_conditions(batch) if conditions is None else conditions
        latents = (sampler or self.sampler).sample(
            self.denoiser,
            conditions,
            self.latent_shape(batch),
            seeds if seeds is not None else self.sample_seeds(batch),
            self.noise_scheduler.config,
            guidance=guidance or self.guidance,
            noise=noise,
            step_hook=step_hook,
        )
        return self.first_stage.decode(latents).clamp(-1, 1)

    @torch.no_grad()
    def log_images(self, batch: Mapping[str, Any], guidances: Sequence[GuidancePolicy] = (),
                   noise: Tensor | None = None) -> dict[str, Tensor]:
        """Named image tensors in [-1, 1] for grids: inputs, target and one sample row per guidance."""
        out: dict[str, Tensor] = {}
        for key in ("source", "target_pose", self.target_key):
            if key in batch and isinstance(batch[key], Tensor):
                out[key] = batch[key]
        conditions = self.denoiser.encode_conditions(batch)
        for policy in guidances or (self.guidance,):
            out[f"sample_{policy.describe()}"] = self.generate(batch, guidance=policy, noise=noise, conditions=conditions)
        return out

    @override
    def on_train_start(self) -> None:
        self.first_stage.eval()

    @override
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """A run from a feature store writes the frozen weights it never built, so the file stands alone."""
        from pgpis.store.checkpoint import embed_frozen

        if self.global_rank == 0:  # DDP: only rank 0 writes the file (0 without a Trainer)
            embed_frozen(self, checkpoint)

    @override
    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Resuming from a store: the frozen weights are read from it, not loaded into (absent) submodules."""
        from pgpis.store.checkpoint import strip_frozen

        strip_frozen(self, checkpoint)


def move_batch(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    """Tensors of a batch dict to `device` (callbacks build batches outside the Trainer's loop)."""
    return {k: (v.to(device) if isinstance(v, Tensor) else v) for k, v in batch.items()}


__all__ = ["LatentDiffusion", "move_batch"]
