"""FPDM's stage-1 contrastive losses (InfoNCE over cosine similarities / temperature).

* ``baseline`` (paper eq. 3): rows = fusion embeddings f_i, columns = target
  embeddings t_j of the batch, positive on the diagonal (B x B).
* ``source_enhanced`` (paper eqs. 4-6): queries [f; s], keys [t; s] (2B x 2B).
  A fusion embedding's own source image is now a hard negative, so the model
  cannot score well by "looking like the source"; the extra source rows also
  push target embeddings away from their source's embedding, which separates
  the space by pose.

Callers pass embeddings of the *global* batch: under DDP the stage gathers them
with ``LightningModule.all_gather(x, sync_grads=True)`` first, else the set of
negatives shrinks with the number of GPUs. The loss itself is rank-agnostic.
"""
from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LossName = Literal["baseline", "source_enhanced"]
LOSS_NAMES: tuple[str, ...] = ("baseline", "source_enhanced")


def info_nce(queries: Tensor, keys: Tensor, temperature: Tensor | float) -> Tensor:
    """Mean cross-entropy of ``cos(q_i, k_j) / temperature`` with the positive at j = i."""
    if queries.shape != keys.shape or queries.dim() != 2:
        raise ValueError(f"info_nce expects queries and keys [N, D] of equal shape, got {tuple(queries.shape)} "
                         f"and {tuple(keys.shape)}")
    logits = F.normalize(queries, dim=-1) @ F.normalize(keys, dim=-1).T / temperature
    return F.cross_entropy(logits, torch.arange(len(queries), device=queries.device))


def baseline_loss(fusion: Tensor, target: Tensor, temperature: Tensor | float) -> Tensor:
    """B x B InfoNCE: fusion f_i against the batch's targets."""
    return info_nce(fusion, target, temperature)


def source_enhanced_loss(fusion: Tensor, target: Tensor, source: Tensor, temperature: Tensor | float) -> Tensor:
    """2B x 2B InfoNCE with queries [f; s] and keys [t; s]: sources become hard negatives."""
    return info_nce(torch.cat([fusion, source]), torch.cat([target, source]), temperature)


class ContrastiveLoss(nn.Module):
    """Selectable FPDM loss with a fixed (paper code: 0.07) or learnable temperature.

    A learnable temperature is stored as log(1/tau) like CLIP's logit scale and
    clamped to tau >= 0.01 so the logits cannot blow up.
    """

    def __init__(self, name: LossName = "source_enhanced", temperature: float = 0.07, learnable: bool = False):
        super().__init__()
        if name not in LOSS_NAMES:
            raise ValueError(f"unknown contrastive loss '{name}' (config key model.loss); use one of {LOSS_NAMES}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0 (config key model.temperature), got {temperature}")
        self.name, self.learnable = name, learnable
        log_scale = torch.tensor(math.log(1.0 / temperature))
        if learnable:
            self.log_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_scale", log_scale)

    @property
    def temperature(self) -> Tensor:
        return 1.0 / self.log_scale.clamp(max=math.log(100.0)).exp()

    def forward(self, fusion: Tensor, target: Tensor, source: Tensor) -> Tensor:
        if self.name == "baseline":
            return baseline_loss(fusion, target, self.temperature)
        return source_enhanced_loss(fusion, target, source, self.temperature)
