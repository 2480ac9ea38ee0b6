"""First stages: the map between images in [-1, 1] and the latents the denoiser sees.

One interface (:class:`FirstStage`) for the paper presets' frozen Stable
Diffusion VAE and the embedded default's lossless pixel-unshuffle. The tiny
preset uses pixel-unshuffle because a VAE small enough to train in minutes on a
CPU reconstructs at ~19 dB, which would cap every sample's quality; a
pixel-unshuffle is exact and still gives the UNet a smaller spatial grid.
"""
from __future__ import annotations

import abc
import os
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from pgpis.pretrained import load_pretrained


class FirstStage(nn.Module, abc.ABC):
    """Frozen image <-> latent map. Images are [B, 3, H, W] in [-1, 1]."""

    latent_channels: int
    downsample_factor: int

    @abc.abstractmethod
    def encode(self, images: Tensor) -> Tensor:
        """Images [B, 3, H, W] in [-1, 1] -> latents [B, latent_channels, H/f, W/f] (already scaled)."""

    @abc.abstractmethod
    def decode(self, latents: Tensor) -> Tensor:
        """Latents (scaled, as from :meth:`encode`) -> images in [-1, 1] (not clamped)."""

    def latent_size(self, image_size: tuple[int, int]) -> tuple[int, int]:
        """(h, w) of the latent grid for an image of `image_size` (h, w)."""
        h, w = image_size
        f = self.downsample_factor
        if h % f or w % f:
            raise ValueError(
                f"image size {h}x{w} (h x w) is not divisible by the first stage's downsample factor {f}; "
                f"choose data.image_size as multiples of {f}"
            )
        return h // f, w // f

    def train(self, mode: bool = True) -> "FirstStage":
        """A first stage is frozen: it stays in eval mode whatever the LightningModule does."""
        return super().train(False)


class PixelUnshuffleFirstStage(FirstStage):
    """Lossless space-to-depth: [3, H, W] -> [3 f^2, H/f, W/f]; no parameters, no scaling."""

    def __init__(self, factor: int = 2, channels: int = 3):
        super().__init__()
        if factor < 1:
            raise ValueError(f"PixelUnshuffleFirstStage: factor must be >= 1, got {factor}")
        self.downsample_factor = factor
        self.latent_channels = channels * factor * factor
        self.unshuffle = nn.PixelUnshuffle(factor)
        self.shuffle = nn.PixelShuffle(factor)

    def encode(self, images: Tensor) -> Tensor:
        return self.unshuffle(images)

    def decode(self, latents: Tensor) -> Tensor:
        return self.shuffle(latents)


class AutoencoderKLFirstStage(FirstStage):
    """A frozen diffusers ``AutoencoderKL`` (SD VAE), latents multiplied by its scaling factor.

    ``pretrained`` is a hub id or a local folder (``subfolder="vae"`` for a full
    SD pipeline folder); ``config`` builds one with random weights instead
    (tests, full-size checks). The scaling factor comes from the VAE's config
    (0.18215 for SD) unless given explicitly.
    """

    def __init__(
        self,
        pretrained: str | os.PathLike | None = None,
        subfolder: str | None = None,
        config: Mapping[str, Any] | None = None,
        scaling_factor: float | None = None,
        sample_posterior: bool = False,
    ):
        super().__init__()
        from diffusers import AutoencoderKL

        if (pretrained is None) == (config is None):
            raise ValueError("AutoencoderKLFirstStage: give exactly one of `pretrained` (hub id / folder) or `config`")
        if pretrained is not None:
            kwargs = {"subfolder": subfolder} if subfolder else {}
            self.vae = load_pretrained("Stable Diffusion VAE (AutoencoderKL)", AutoencoderKL.from_pretrained, pretrained, **kwargs)
        else:
            self.vae = AutoencoderKL(**dict(config))
        self.vae.requires_grad_(False)
        self.scaling_factor = float(scaling_factor if scaling_factor is not None else self.vae.config.scaling_factor)
        self.sample_posterior = sample_posterior
        self.latent_channels = int(self.vae.config.latent_channels)
        self.downsample_factor = 2 ** (len(self.vae.config.block_out_channels) - 1)

    @torch.no_grad()
    def encode(self, images: Tensor) -> Tensor:
        dist = self.vae.encode(images.to(self.vae.dtype)).latent_dist
        z = dist.sample() if self.sample_posterior else dist.mode()
        return z * self.scaling_factor

    @torch.no_grad()
    def decode(self, latents: Tensor) -> Tensor:
        return self.vae.decode(latents.to(self.vae.dtype) / self.scaling_factor).sample
