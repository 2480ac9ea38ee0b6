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

Everything else pgpis needs to know about a method is declared on the denoiser
too (the *method contract*, docs/extending.md "Adding a method"), so export,
loading, the pipeline, the app, the feature store and the CLI never name a
method: its :attr:`~ConditionalDenoiser.kind` and
:attr:`~ConditionalDenoiser.label`, the UNet an export describes
(:attr:`~ConditionalDenoiser.unet_attr`), the sub-networks an export saves as
folders (:meth:`~ConditionalDenoiser.export_folders`), the frozen parts a
feature store may hold (:meth:`~ConditionalDenoiser.frozen_parts`) and the
optional capabilities :meth:`~ConditionalDenoiser.store_identity`,
:meth:`~ConditionalDenoiser.attach_first_stage` and
:meth:`~ConditionalDenoiser.enable_gradient_checkpointing`. Every one has a
default, so a denoiser declares only what it has. The inputs a method reads are
asked of :meth:`~ConditionalDenoiser.encode_conditions` itself
(:mod:`pgpis.inference.inputs`).
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping

import torch
from torch import Tensor, nn

if TYPE_CHECKING:  # the store sits below the diffusion core (it imports nothing of it)
    from pgpis.store.parts import PartSpec

Conditions = dict[str, Tensor]  # every tensor has the batch as its first dimension
KeepMask = Mapping[str, Tensor]  # group name -> bool [B]; True = condition present

#: batch-key prefix of tensors a feature store serves in place of a frozen network's output (pgpis.store)
STORED_PREFIX = "stored/"


def stored_tensor(batch: Mapping[str, object], part: str) -> Tensor | None:
    """The stored output `part` (e.g. "dino", "fusion", "latents/target") when the batch carries one."""
    value = batch.get(STORED_PREFIX + part)
    return value if isinstance(value, Tensor) else None


@dataclass(frozen=True)
class ExportFolder:
    """A sub-network an export writes as a folder of its own (a tower loaded by hub id, a stage-1 export) instead
    of into ``weights/``, so the export loads offline with the loader the config names."""

    init_arg: str  # dotted key under the denoiser's init args that loading points at the folder ("fusion_model")
    folder: str  # the folder's name inside the export ("fusion_model")
    module: str  # the denoiser's attribute holding the network: its state-dict keys stay out of weights/
    save: Callable[[Path], Any]  # writes the folder


class ConditionalDenoiser(nn.Module, abc.ABC):
    """Base class: a denoising network plus the modules that encode its conditions, and the method's declaration.

    The class attributes and the methods with a default body are the method contract (module docstring): a
    subclass overrides only those that differ.
    """

    #: names of the condition groups that guidance/dropout switch on and off, e.g. ("pose", "source", "fusion")
    condition_groups: tuple[str, ...] = ()
    #: short machine name of the method (``Pipeline.kind``, ``pipeline.json``); empty: the class name
    kind: ClassVar[str] = ""
    #: the method's name in messages and the app ("FPDM"); empty: :attr:`kind`
    label: ClassVar[str] = ""
    #: attribute of the diffusers UNet an export describes in ``unet/config.json``; loading an export rebuilds it
    #: through the denoiser's ``unet`` init argument (``pgpis.models.unets.build_unet`` kwargs)
    unet_attr: ClassVar[str] = "unet"
    #: one sentence for errors about the feature store: which configs make which parts storable
    store_hint: ClassVar[str] = ""

    @classmethod
    def method_kind(cls) -> str:
        """:attr:`kind`, else the class name."""
        return cls.kind or cls.__name__

    @classmethod
    def method_label(cls) -> str:
        """:attr:`label`, else :meth:`method_kind`."""
        return cls.label or cls.method_kind()

    def export_folders(self, init_args: Mapping[str, Any]) -> list[ExportFolder]:
        """The sub-networks an export saves as folders, given the denoiser's config init args (default: none:
        every weight goes to ``weights/``, and the config rebuilds the architecture)."""
        return []

    def store_identity(self) -> dict[str, dict[str, Any]]:
        """Per part this denoiser class can read from a feature store (``"dino"``...): ``{"config": plain JSON the
        part's tensors depend on, "files_digest": digest of its weights folder or None}``, from the config alone
        (no network built). The store records it and refuses a run whose identity differs. Default: no part."""
        return {}

    def frozen_parts(self) -> dict[str, "PartSpec"]:
        """The frozen networks whose outputs a feature store (``pgpis data cache``) may hold for this denoiser as
        configured, by part name: how to compute each from a training batch, what it is keyed by and its identity
        (:class:`pgpis.store.parts.PartSpec`). The first stage's ``latents`` belong to the core and are not
        listed. Cheap (no encoder runs) and also answered by a denoiser built from a store. Default: none."""
        return {}

    def attach_first_stage(self, first_stage: nn.Module) -> None:
        """Receive the core's first stage (``LatentDiffusion`` calls this once, after building both); a denoiser
        that encodes images itself (TruePose's SourceNet input) keeps a reference, unregistered. Default: nothing."""

    def enable_gradient_checkpointing(self) -> None:
        """Trade compute for memory (``gradient_checkpointing: true``). Default: refused with the fix."""
        raise ValueError(f"gradient_checkpointing=true but {type(self).__name__} does not implement "
                         "enable_gradient_checkpointing(); set model.init_args.gradient_checkpointing: false or "
                         "implement it in the denoiser")

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
