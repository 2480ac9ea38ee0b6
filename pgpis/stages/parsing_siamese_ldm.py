"""TruePose, the parsing-guided Siamese LDM: the shared core with a SiameseDenoiser and TruePose's defaults.

Training and sampling are :class:`pgpis.diffusion.core.LatentDiffusion`'s (which
hands the denoiser its first stage: SourceNet encodes the clean source image with
it, once per sample); this class pins the denoiser type and fills in the paper's
defaults: condition dropout 30% (all conditions together, per sample) and plain
classifier-free guidance with scale 3.5. It adds the paper's section 5.4
application, :meth:`ParsingSiameseLDM.style_transfer`.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from pgpis.diffusion.core import LatentDiffusion
from pgpis.diffusion.dropout import ConditionDropout
from pgpis.diffusion.first_stage import FirstStage
from pgpis.diffusion.guidance import ClassifierFreeGuidance, GuidancePolicy
from pgpis.diffusion.sampler import MaskBlend, Sampler, per_sample_generators, per_sample_noise
from pgpis.models.truepose import SiameseDenoiser


class ParsingSiameseLDM(LatentDiffusion):
    """`LatentDiffusion` over a :class:`~pgpis.models.truepose.SiameseDenoiser` (see the module docstring)."""

    def __init__(
        self,
        denoiser: SiameseDenoiser,
        first_stage: FirstStage,
        guidance: Optional[GuidancePolicy] = None,
        condition_dropout: Optional[ConditionDropout] = None,
        **kwargs: Any,
    ):
        if not isinstance(denoiser, SiameseDenoiser):
            raise TypeError(f"ParsingSiameseLDM: denoiser must be a pgpis.models.truepose.SiameseDenoiser, got "
                            f"{type(denoiser).__name__}; use pgpis.diffusion.core.LatentDiffusion for other denoisers")
        super().__init__(
            denoiser,
            first_stage,
            guidance=guidance or ClassifierFreeGuidance(scale=3.5),
            condition_dropout=condition_dropout or ConditionDropout("joint", 0.3),
            **kwargs,
        )  # the core hands the denoiser its first stage (attach_first_stage)

    @torch.no_grad()
    def style_transfer(
        self,
        batch: Mapping[str, Any],
        reference: Tensor,
        mask: Tensor,
        guidance: Optional[GuidancePolicy] = None,
        sampler: Optional[Sampler] = None,
        seeds: Optional[Sequence[int]] = None,
    ) -> Tensor:
        """Generate with the regions where `mask` is 0 taken from `reference` (paper sec. 5.4).

        Before every step y_t = m * y_t + (1 - m) * y_t^ref, y_t^ref being the
        reference latent noised to the step's level with seeded noise, and once
        more on the clean result. `reference`:
        images [B, 3, H, W] in [-1, 1] at the generated size (e.g. a target-pose
        image whose garment is to be kept); `mask`: [B, 1, H, W] or [B, H, W] in
        [0, 1] at image resolution, 1 = generate, 0 = keep the reference (e.g.
        ``1 - category_mask(parsing, {"Upper-clothes"})``). Returns images in [-1, 1].
        """
        h, w = batch[self.target_key].shape[-2:]
        if reference.shape[-2:] != (h, w) or mask.shape[-2:] != (h, w):
            raise ValueError(f"style_transfer: reference {tuple(reference.shape[-2:])} and mask {tuple(mask.shape[-2:])} "
                             f"must be at the generated size {(int(h), int(w))} (h x w)")
        mask = mask[:, None] if mask.dim() == 3 else mask
        ref_latents = self.first_stage.encode(reference.to(self.device)).float()
        latent_mask = F.adaptive_avg_pool2d(mask.to(self.device).float(), ref_latents.shape[-2:])
        seeds = list(seeds) if seeds is not None else self.sample_seeds(batch)
        # noise for the reference comes from seeds distinct from the sampling noise, one generator per sample
        ref_noise = per_sample_noise(per_sample_generators([s + 7_777_777 for s in seeds]), ref_latents.shape[1:],
                                     ref_latents.device, torch.float32)
        blend = MaskBlend(latent_mask, ref_latents, ref_noise)
        latents = (sampler or self.sampler).sample(
            self.denoiser, self.denoiser.encode_conditions(batch), self.latent_shape(batch), seeds,
            self.noise_scheduler.config, guidance=guidance or self.guidance, step_hook=blend)
        latents = latent_mask * latents + (1 - latent_mask) * ref_latents  # the final, clean blend (t = 0)
        return self.first_stage.decode(latents).clamp(-1, 1)


__all__ = ["ParsingSiameseLDM"]
