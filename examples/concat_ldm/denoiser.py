"""`ConcatDenoiser`: the source image's latent concatenated to the noisy latent's channels, the pose added after
``conv_in``.

The simplest conditioning the pose-transfer papers compare against: the UNet sees the clean source latent as
extra input channels at every step (no cross-attention to the source, no fusion model), and the target pose
through pgpis's pose encoder, whose features are added to the output of the UNet's first convolution. One
condition group, ``source``: a dropped row (training dropout, the unconditional branch of classifier-free
guidance) sees zeros in place of the source latent; the pose always stays.

Everything pgpis needs to know about the method is declared here (the method contract of
:class:`pgpis.diffusion.ConditionalDenoiser`): ``kind``/``label`` name it, the UNet an export describes is
``unet`` (the default ``unet_attr``), there is no folder to export beside ``weights/`` and no frozen network
of its own, and the core hands it the first stage (:meth:`attach_first_stage`) to encode the source. Trained
from a feature store, the source latent is the store's ``latents`` part (served as ``stored/latents/source``).
"""
from __future__ import annotations

from typing import Any, Mapping, Optional

import torch
from torch import Tensor, nn

from pgpis.diffusion import ConditionalDenoiser, Conditions, KeepMask, stored_tensor
from pgpis.models.pose_encoder import PoseEncoder, PoseResidualInjection
from pgpis.models.unets import build_unet, first_block_width


class ConcatDenoiser(PoseResidualInjection, ConditionalDenoiser):
    """A UNet over [noisy latent, source latent] channels with the pose added after ``conv_in``.

    Args:
        unet: ``pgpis.models.unets.build_unet`` kwargs; ``in_channels`` must be twice ``out_channels`` (the
            noisy latent and the source latent, both of the first stage's width).
        downsample_factor: the first stage's factor (the pose encoder's stride-2 steps).
        pose_block_out_channels: pose encoder widths (default: the paper widths cut to the factor).
        source_key, pose_key: batch keys read by :meth:`encode_conditions`.
    """

    condition_groups = ("source",)
    kind = "concat"
    label = "Source-concat LDM"

    def __init__(self, unet: Optional[dict[str, Any]] = None, downsample_factor: int = 8,
                 pose_block_out_channels: Optional[list[int]] = None, source_key: str = "source",
                 pose_key: str = "target_pose"):
        super().__init__()
        self.unet = build_unet(**dict(unet or {"preset": "tiny", "in_channels": 8, "out_channels": 4}))
        channels_in, channels_out = int(self.unet.config.in_channels), int(self.unet.config.out_channels)
        if channels_in != 2 * channels_out:
            raise ValueError(f"ConcatDenoiser: unet.in_channels is {channels_in} but must be twice out_channels "
                             f"({channels_out}): the noisy latent and the source latent; set "
                             f"model.init_args.denoiser.init_args.unet.in_channels: {2 * channels_out}")
        self.downsample_factor = int(downsample_factor)
        self.pose_encoder = PoseEncoder(first_block_width(self.unet), self.downsample_factor, pose_block_out_channels)
        self.context = nn.Parameter(torch.zeros(1, 1, int(self.unet.config.cross_attention_dim)))  # no text: one token
        self.source_key, self.pose_key = source_key, pose_key
        self._first_stage: list[nn.Module] = []  # the core's; a list so it is no submodule (not saved twice)
        self._attach_pose_residual(self.unet.conv_in)

    def attach_first_stage(self, first_stage: nn.Module) -> None:
        """Keep the core's first stage: it encodes the source image into the latent the UNet is given."""
        channels = int(getattr(first_stage, "latent_channels", self.unet.config.out_channels))
        if channels != int(self.unet.config.out_channels):
            raise ValueError(f"ConcatDenoiser: the first stage gives {channels} latent channels but the UNet predicts "
                             f"{self.unet.config.out_channels}; set unet.out_channels: {channels} and "
                             f"unet.in_channels: {2 * channels}")
        self._first_stage[:] = [first_stage]

    def enable_gradient_checkpointing(self) -> None:
        self.unet.enable_gradient_checkpointing()

    def _tensor(self, batch: Mapping[str, object], key: str, what: str) -> Tensor:
        value = batch.get(key)
        if not isinstance(value, Tensor):
            raise KeyError(f"ConcatDenoiser: the batch has no tensor '{key}' ({what}); batch keys: {sorted(batch)}")
        return value

    def encode_conditions(self, batch: Mapping[str, object], keep: Optional[KeepMask] = None) -> Conditions:
        """The source latent (a feature store's, else the first stage's encode) and the pose features."""
        pose = self.pose_encoder(self._tensor(batch, self.pose_key, "target pose image"))
        latent = stored_tensor(batch, f"latents/{self.source_key}")
        if latent is None:
            if not self._first_stage:
                raise RuntimeError("ConcatDenoiser: no first stage attached; use it inside a "
                                   "pgpis.diffusion.core.LatentDiffusion (it calls attach_first_stage)")
            with torch.no_grad():
                latent = self._first_stage[0].encode(self._tensor(batch, self.source_key, "source image"))
        return {"pose": pose, "source": latent.float()}

    def forward(self, noisy_latents: Tensor, timesteps: Tensor, conditions: Conditions, keep: KeepMask) -> Tensor:
        """One denoising step; rows with keep['source'] False see zeros instead of the source latent."""
        source = conditions["source"].to(noisy_latents.dtype)
        kept = keep["source"].to(device=source.device, dtype=torch.bool).view(-1, 1, 1, 1)
        source = torch.where(kept, source, torch.zeros((), dtype=source.dtype, device=source.device))
        context = self.context.to(noisy_latents.dtype).expand(noisy_latents.shape[0], -1, -1)
        with self._pose_injection(conditions["pose"]):
            return self.unet(torch.cat([noisy_latents, source], dim=1), timesteps,
                             encoder_hidden_states=context).sample
