"""FPDM's pose encoder: a ControlNet-style conditioning embedding, zero-initialised.

The paper (docs/methods.md, FPDM stage 2) uses ControlNet's conditioning embedding: conv
3->16, then pairs of convs with stride-2 downsampling 16->32->96->256, SiLU,
and a zero-initialised final conv to the UNet's first block width. Its output
is added to the output of the UNet's ``conv_in``, so it must land on the latent
grid: the number of stride-2 steps equals log2 of the first stage's downsample
factor (3 for SD's x8 VAE, 1 for the tiny preset's PixelUnshuffle(2), 0 for a
pixel-space model). The zero-initialised last conv makes the conditioned UNet
start out as the plain UNet, so a pretrained UNet is not disturbed at step 0.
"""
from __future__ import annotations

import contextlib
import math
from typing import Iterator, Optional, Sequence

from diffusers.models.controlnets.controlnet import ControlNetConditioningEmbedding
from torch import Tensor, nn

#: ControlNet's / FPDM's widths for a x8 first stage.
PAPER_WIDTHS: tuple[int, ...] = (16, 32, 96, 256)


def widths_for_factor(downsample_factor: int, widths: Sequence[int] = PAPER_WIDTHS) -> tuple[int, ...]:
    """The first ``log2(factor) + 1`` entries of `widths`: one stride-2 step per halving of the image."""
    steps = math.log2(downsample_factor) if downsample_factor >= 1 else -1
    if steps != int(steps):
        raise ValueError(
            f"pose encoder: the first stage's downsample factor must be a power of two (1, 2, 4, 8, ...), "
            f"got {downsample_factor}"
        )
    if int(steps) + 1 > len(widths):
        raise ValueError(
            f"pose encoder: downsample factor {downsample_factor} needs {int(steps) + 1} widths, "
            f"`block_out_channels` {tuple(widths)} has {len(widths)}; give a longer list"
        )
    return tuple(int(w) for w in widths[: int(steps) + 1])


class PoseEncoder(ControlNetConditioningEmbedding):
    """Pose image [B, 3, H, W] -> features [B, out_channels, H/f, W/f] (zero at initialisation).

    ``block_out_channels`` defaults to the paper's widths, cut to the number of
    downsamplings that `downsample_factor` needs; give it explicitly to use other
    widths (its length must then be log2(factor) + 1).
    """

    def __init__(
        self,
        out_channels: int,
        downsample_factor: int = 8,
        block_out_channels: Sequence[int] | None = None,
        in_channels: int = 3,
    ):
        if block_out_channels is None:
            widths = widths_for_factor(downsample_factor)
        else:
            widths = tuple(int(w) for w in block_out_channels)
            if widths != widths_for_factor(downsample_factor, widths):
                raise ValueError(
                    f"pose encoder: block_out_channels {widths} gives {len(widths) - 1} stride-2 steps but the "
                    f"downsample factor {downsample_factor} needs {int(math.log2(downsample_factor))}"
                )
        super().__init__(conditioning_embedding_channels=out_channels, conditioning_channels=in_channels, block_out_channels=widths)
        self.downsample_factor = int(downsample_factor)
        self.out_channels = int(out_channels)

    def forward(self, pose: Tensor) -> Tensor:
        h, w = pose.shape[-2:]
        f = self.downsample_factor
        if h % f or w % f:
            raise ValueError(
                f"pose encoder: pose image {h}x{w} (h x w) is not divisible by the downsample factor {f}; "
                "render the pose at the training image size"
            )
        return super().forward(pose)


class PoseResidualInjection:
    """Mixin for denoisers: add pose features to a UNet's ``conv_in`` output, armed for one UNet call at a time.

    A forward hook (not a patched ``forward``) keeps the UNet a stock diffusers model with diffusers' own
    state-dict keys. The hook is a bound method of the denoiser, so a deep copy (EMA's averaged model)
    hooks the copy's own residual. :meth:`_pose_injection` disarms it after the call, even on error.
    """

    _pose_residual: Optional[Tensor] = None

    def _attach_pose_residual(self, conv_in: nn.Module) -> None:
        self._pose_residual = None
        conv_in.register_forward_hook(self._add_pose_residual)

    def _add_pose_residual(self, module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> Tensor:
        residual = self._pose_residual
        if residual is None:
            return output
        if residual.shape != output.shape:
            raise ValueError(
                f"{type(self).__name__}: pose features {tuple(residual.shape)} do not match the UNet's conv_in output "
                f"{tuple(output.shape)}; set downsample_factor to the first stage's factor and render the pose at "
                "the training image size"
            )
        return output + residual.to(output.dtype)

    @contextlib.contextmanager
    def _pose_injection(self, residual: Tensor) -> Iterator[None]:
        self._pose_residual = residual
        try:
            yield
        finally:
            self._pose_residual = None
