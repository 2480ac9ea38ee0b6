"""The contract between the shared latent-diffusion core and a method's denoiser.

Both LDMs (FPDM's fusion LDM, TruePose's Siamese LDM) plug a
:class:`ConditionalDenoiser` into the same core. The split matters for speed and
correctness:

* :meth:`encode_conditions` runs everything that does not depend on the noise
  level (DINOv2 tokens, the frozen IPF fusion embedding, pose features, a
  SourceNet pass at t=0, CLIP region embeddings) **once per sample**. The
  sampler calls it once, then reuses the result at every denoising step.
* :meth:`forward` runs one denoising step for a batch whose rows may belong to
  different guidance branches. Which condition groups are active per row comes
  in ``keep`` (bool per sample and group). The same mechanism implements
  per-sample condition dropout in training (random ``keep``) and the branches of
  classifier-free guidance in sampling (fixed ``keep`` per branch), so the
  "unconditional" model the sampler queries is exactly the one training made.
"""
from __future__ import annotations

import abc
from typing import Mapping

import torch
from torch import Tensor, nn

Conditions = dict[str, Tensor]  # every tensor has the batch as its first dimension
KeepMask = Mapping[str, Tensor]  # group name -> bool [B]; True = condition present

#: batch-key prefix of tensors a feature store serves in place of a frozen network's output (pgpis.store)
STORED_PREFIX = "stored/"


def stored_tensor(batch: Mapping[str, object], part: str) -> Tensor | None:
    """The stored output `part` (e.g. "dino", "fusion", "latents/target") when the batch carries one."""
    value = batch.get(STORED_PREFIX + part)
    return value if isinstance(value, Tensor) else None


class ConditionalDenoiser(nn.Module, abc.ABC):
    """Base class: a denoising network plus the modules that encode its conditions."""

    #: names of the condition groups that guidance/dropout switch on and off, e.g. ("pose", "source", "fusion")
    condition_groups: tuple[str, ...] = ()

    @abc.abstractmethod
    def encode_conditions(self, batch: Mapping[str, object], keep: KeepMask | None = None) -> Conditions:
        """Timestep-independent conditioning for each sample of `batch` (the DataModule's dict).

        `keep` is given in training (the step's condition dropout, drawn first): a
        denoiser may leave the rows of a dropped group uncomputed (zeros), since
        :meth:`forward` must not read them. TruePose skips SourceNet and CLIP for
        them; without `keep` every row is encoded (sampling, validation).
        """

    @abc.abstractmethod
    def forward(self, noisy_latents: Tensor, timesteps: Tensor, conditions: Conditions, keep: KeepMask) -> Tensor:
        """Model output (in the scheduler's prediction space) for `noisy_latents` [B, C, h, w]."""

    @staticmethod
    def repeat_conditions(conditions: Conditions, times: int) -> Conditions:
        """Stack the conditions `times` along the batch (one copy per guidance branch)."""
        return {k: torch.cat([v] * times, dim=0) for k, v in conditions.items()}

    def all_kept(self, batch_size: int, device: torch.device | str) -> dict[str, Tensor]:
        """A keep-mask with every condition group present."""
        return {g: torch.ones(batch_size, dtype=torch.bool, device=device) for g in self.condition_groups}
