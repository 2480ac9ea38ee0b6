"""Cross-frame attention: each frame's self-attention also attends to an anchor frame's keys and values.

The training-free trick of Text2Video-Zero / Tune-A-Video's sparse-causal attention for an image
model sampled frame by frame: in every self-attention (``attn1``) layer, frame i's queries attend
to the keys/values of its own tokens **and** of the anchor frames' tokens at the same layer and
denoising step (the first frame of the clip, the previous frame, or both), so appearance is
pulled towards one shared version instead of being re-invented per frame. The frames of a clip
must be in the same denoiser batch; guidance branches are stacked along the batch
(``[branch 0 rows, branch 1 rows, ...]``), so an anchor row is looked up within its own branch.

A frame that is its own anchor (the first frame) sees its keys/values twice, which leaves the
softmax unchanged: the first frame is exactly what plain sampling gives it.

It goes through diffusers' processor hook (``Attention.set_processor``), wrapping the plain
self-attention processors of whatever UNet(s) a denoiser holds; processors that already fuse
something (TruePose's HPFA / reference attention, SourceNet capture) are left alone, so on TruePose
the extension applies to its plain self-attention layers only.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Iterator, Optional, Sequence

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention, AttnProcessor, AttnProcessor2_0
from torch import Tensor, nn

from pgpis.errors import PgpisError
from pgpis.models.attention import PlainAttnProcessor

#: processors cross-frame attention may wrap (plain attention; subclasses add behaviour it would lose)
PLAIN_PROCESSORS = (AttnProcessor, AttnProcessor2_0, PlainAttnProcessor)


class CrossFrameUnavailable(PgpisError, ValueError):
    """The model has no plain self-attention layer to extend (e.g. TruePose with source fusion on every layer);
    the pgpis command line prints this message alone."""


@dataclass
class FrameAnchors:
    """Per row of one guidance branch, the rows whose tokens it also attends to (one index tensor per anchor kind)."""

    batch: int
    rows: list[Tensor] = field(default_factory=list)


def _heads(x: Tensor, heads: int) -> Tensor:
    b, n, c = x.shape
    return x.view(b, n, heads, c // heads).transpose(1, 2)


class CrossFrameAttnProcessor:
    """Self-attention whose keys/values are ``[own tokens ; anchor tokens ...]``; anything else goes to `inner`."""

    def __init__(self, inner: object, anchors: FrameAnchors):
        self.inner, self.anchors = inner, anchors

    def __call__(self, attn: Attention, hidden_states: Tensor, encoder_hidden_states: Optional[Tensor] = None,
                 attention_mask: Optional[Tensor] = None, temb: Optional[Tensor] = None, fusion: object = None) -> Tensor:
        rows, b = self.anchors.rows, self.anchors.batch
        if (encoder_hidden_states is not None or attention_mask is not None or hidden_states.dim() != 3
                or attn.spatial_norm is not None or not rows):
            return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        n = hidden_states.shape[0]
        if n % b:
            raise ValueError(f"cross-frame attention: a batch of {n} rows is not a multiple of the {b} frames it was "
                             "set up for (the denoiser must be called with the frames of one clip, per guidance branch)")
        residual, h = hidden_states, hidden_states
        if attn.group_norm is not None:
            h = attn.group_norm(h.transpose(1, 2)).transpose(1, 2)
        offsets = torch.arange(n // b, device=h.device)[:, None] * b  # the same anchor within each guidance branch
        extra = [h[(r.to(h.device)[None] + offsets).reshape(-1)] for r in rows]
        kv = torch.cat([h, *extra], dim=1)
        q, k, v = _heads(attn.to_q(h), attn.heads), _heads(attn.to_k(kv), attn.heads), _heads(attn.to_v(kv), attn.heads)
        if attn.norm_q is not None:
            q = attn.norm_q(q)
        if attn.norm_k is not None:
            k = attn.norm_k(k)
        out = F.scaled_dot_product_attention(q, k, v)
        out = out.transpose(1, 2).reshape(n, -1, attn.heads * out.shape[-1]).to(q.dtype)
        out = attn.to_out[1](attn.to_out[0](out))
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


def plain_self_attention(model: nn.Module) -> list[Attention]:
    """The self-attention layers of `model` (any number of diffusers UNets) that run a plain processor."""
    return [m for m in model.modules() if isinstance(m, Attention) and not m.is_cross_attention
            and type(m.processor) in PLAIN_PROCESSORS]


@contextlib.contextmanager
def cross_frame_attention(model: nn.Module, anchors: Sequence[Sequence[int]], batch: int) -> Iterator[int]:
    """Within the block, `model`'s plain self-attention layers also attend to the `anchors` rows
    (each a list of length `batch`: row i's anchor); yields how many layers were extended.
    The original processors are restored on exit."""
    layers = plain_self_attention(model)
    if not layers:
        raise CrossFrameUnavailable(f"cross-frame attention: {type(model).__name__} has no self-attention layer with a "
                                    "plain attention processor to extend (every one already fuses something, as "
                                    "TruePose's fused layers do); sample without it (--cross-frame none)")
    device = next(model.parameters()).device
    state = FrameAnchors(batch, [torch.as_tensor(list(a), dtype=torch.long, device=device) for a in anchors])
    for a in state.rows:
        if a.shape != (batch,) or (a < 0).any() or (a >= batch).any():
            raise ValueError(f"cross-frame attention: anchors must be {batch} row indices in [0, {batch}), got {a.tolist()}")
    saved = [layer.processor for layer in layers]
    try:
        for layer in layers:
            layer.set_processor(CrossFrameAttnProcessor(layer.processor, state))
        yield len(layers)
    finally:
        for layer, proc in zip(layers, saved):
            layer.set_processor(proc)


__all__ = ["CrossFrameAttnProcessor", "CrossFrameUnavailable", "FrameAnchors", "PLAIN_PROCESSORS", "cross_frame_attention",
           "plain_self_attention"]
