"""FPDM stage 2, the fusion-embedding LDM: the shared core with an FPDM denoiser and FPDM's defaults.

Nothing here trains or samples differently from
:class:`pgpis.diffusion.core.LatentDiffusion`; this class only pins the
denoiser type and fills in the paper's defaults that depend on it:

* guidance: FPDM's cumulative CFG with w_s = w_f = 2.0 (paper eq. 12) when the
  denoiser has a fusion group; plain CFG 2.0 for the B3 ablation (no fusion);
* condition dropout: 0.2 per condition, drawn per sample and independently.

Everything else (first stage, noise schedule, sampler, LR schedule, EMA,
precision) is configured exactly as for the core.
"""
from __future__ import annotations

from typing import Any, Optional

from pgpis.diffusion.core import LatentDiffusion
from pgpis.diffusion.dropout import ConditionDropout
from pgpis.diffusion.first_stage import FirstStage
from pgpis.diffusion.guidance import ClassifierFreeGuidance, CumulativeGuidance, GuidancePolicy
from pgpis.models.fpdm import FPDMDenoiser


def default_guidance(denoiser: FPDMDenoiser) -> GuidancePolicy:
    """The paper's sampling guidance for this denoiser's condition groups."""
    if "fusion" in denoiser.condition_groups:
        return CumulativeGuidance(source_weight=2.0, fusion_weight=2.0)
    return ClassifierFreeGuidance(scale=2.0)


class FusionLDM(LatentDiffusion):
    """`LatentDiffusion` over an :class:`~pgpis.models.fpdm.FPDMDenoiser` (see the module docstring)."""

    def __init__(
        self,
        denoiser: FPDMDenoiser,
        first_stage: FirstStage,
        guidance: Optional[GuidancePolicy] = None,
        condition_dropout: Optional[ConditionDropout] = None,
        **kwargs: Any,
    ):
        if not isinstance(denoiser, FPDMDenoiser):
            raise TypeError(f"FusionLDM: denoiser must be a pgpis.models.fpdm.FPDMDenoiser, got {type(denoiser).__name__}; "
                            "use pgpis.diffusion.core.LatentDiffusion for other denoisers")
        super().__init__(
            denoiser,
            first_stage,
            guidance=guidance or default_guidance(denoiser),
            condition_dropout=condition_dropout or ConditionDropout("independent", 0.2),
            **kwargs,
        )


__all__ = ["FusionLDM", "default_guidance"]
