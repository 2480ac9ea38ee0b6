"""TruePose's attention processors for diffusers UNets: SourceNet capture, reference attention, HPFA, CAA.

Everything goes through diffusers' processor hook (``unet.set_attn_processor``);
no ``forward`` is patched. Per-call data reaches the processors through
``cross_attention_kwargs={"fusion": ...}`` (:data:`FUSION_KWARG`). diffusers
warns about a kwarg a processor does not name, so *every* processor of a
Siamese UNet is one of ours (:class:`PlainAttnProcessor` where nothing is fused).

Where each piece runs (docs/methods.md, TruePose; paper eqs. 6-9):

* **SourceNet** (once per sample, clean latent at t = 0): :class:`CaptureProcessor`
  records the self-attention (attn1) input tokens F' of each selected layer.
* **Source side of HPFA/CAA** (:func:`source_attention`, also once per sample):
  with the layer's own projections, A' = Q'K'^T / sqrt(d), the sign-and-mask
  weights M' (eq. 6, :func:`hpfa_weights`), H' = softmax(A' * M') V' (eq. 7) and
  the mean attention each parsing region receives (for CAA's region choice).
  None of this depends on the noisy latent, so it is cached with the conditions.
* **TargetNet** (every step): :class:`HPFAAttnProcessor` adds
  F~ = softmax(Q K_h^T / sqrt(d)) V_h (eq. 8, K_h, V_h from H') to the layer's
  own self-attention; :class:`ReferenceAttnProcessor` is the Animate-Anyone
  ablation (source tokens concatenated into attn1's keys/values). Either may
  refine its fused output with :class:`RegionCrossAttention` (CAA, eq. 9).

Token-mask broadcasting (eq. 6's M_ij): the target-oriented parsing mask M is a
mask over *source tokens*; in the N x N source attention matrix, M_ij is the
mask value of the **key** token j, for every query i (``key_mask[:, None, None, :]``).
So a source token inside the selected parsing region is amplified (1 + delta)
where it is attended positively and damped (delta) where negatively, whatever
token attends to it; tokens outside get sigma / 1 + sigma. A logit of exactly 0
is unchanged by any weight, so the case split at 0 does not matter.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Optional

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention, AttnProcessor2_0
from torch import Tensor, nn

#: the ``cross_attention_kwargs`` key that carries a :class:`FusionContext` (TargetNet) or a capture dict (SourceNet)
FUSION_KWARG = "fusion"

#: the paper's eq. 6 hyper-parameters
DELTA, SIGMA = 0.6, 0.3


# --------------------------------------------------------------------------- layers and token grids

_BLOCK_ORDER = {"down_blocks": 0, "mid_block": 1, "up_blocks": 2}


def _forward_order(name: str) -> tuple:
    """Sort key: down blocks, then the mid block, then up blocks, each by their indices (module order is not
    forward order: diffusers registers ``up_blocks`` before ``mid_block``)."""
    part = name.split(".", 1)[0]
    return (_BLOCK_ORDER.get(part, 3), [int(p) for p in name.split(".") if p.isdigit()])


def self_attention_layers(unet: nn.Module) -> list[str]:
    """Module names of every self-attention (``attn1``) of a diffusers UNet, in forward order."""
    names = [k[: -len(".processor")] for k in unet.attn_processors if k.endswith("attn1.processor")]
    return sorted(names, key=_forward_order)


def token_grid(latent_size: tuple[int, int], num_tokens: int) -> tuple[int, int]:
    """(h, w) of a layer's token grid: the latent grid halved (ceil, as stride-2 convs do) until it holds `num_tokens`."""
    h, w = int(latent_size[0]), int(latent_size[1])
    for _ in range(8):
        if h * w == num_tokens:
            return h, w
        h, w = math.ceil(h / 2), math.ceil(w / 2)
    raise ValueError(f"no token grid of {num_tokens} tokens under the latent grid {latent_size} (h x w); "
                     "the layer does not belong to a UNet at this latent size")


def mask_to_tokens(mask: Tensor, grid: tuple[int, int]) -> Tensor:
    """Binary mask [B, H, W] -> bool [B, h*w]: a token is inside when at least half of its pixels are (area vote)."""
    area = F.adaptive_avg_pool2d(mask[:, None].float(), grid)
    return (area[:, 0] >= 0.5).flatten(1)


def parsing_to_tokens(parsing: Tensor, grid: tuple[int, int]) -> Tensor:
    """Class map long [B, H, W] -> long [B, h*w] by nearest resize (class indices are never interpolated)."""
    return F.interpolate(parsing[:, None].float(), size=grid, mode="nearest")[:, 0].long().flatten(1)


def _heads(x: Tensor, heads: int) -> Tensor:
    b, n, c = x.shape
    return x.view(b, n, heads, c // heads).transpose(1, 2)


def _merge(x: Tensor) -> Tensor:
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)


# --------------------------------------------------------------------------- eqs. 6 and 7 (source side)

def hpfa_weights(logits: Tensor, key_mask: Tensor, delta: float = DELTA, sigma: float = SIGMA) -> Tensor:
    """Eq. 6: the sign-and-mask weights M' for attention logits [..., N_q, N_k] and a key-token mask [B, N_k].

    M'_ij = 1 + delta (A'_ij > 0, M_j = 1), delta (A'_ij <= 0, M_j = 1),
            sigma (A'_ij > 0, M_j = 0), 1 + sigma (A'_ij <= 0, M_j = 0).
    `key_mask` broadcasts over heads and queries (M_ij = mask of key token j).
    """
    m = key_mask.to(torch.bool)
    m = m.view(m.shape[0], *([1] * (logits.dim() - 2)), m.shape[-1])
    positive = logits > 0
    inside = torch.where(positive, 1.0 + delta, delta)
    outside = torch.where(positive, sigma, 1.0 + sigma)
    return torch.where(m, inside, outside).to(logits.dtype)


@dataclass
class SourceAttention:
    """What one layer's source tokens give HPFA and CAA (batch first)."""

    hidden: Tensor  #: H' [B, N, inner] (eq. 7; plain self-attention when no mask was given)
    region_scores: Optional[Tensor] = None  #: [B, R] mean attention each parsing class receives (+inf: absent)


def source_attention(
    attn: Attention,
    tokens: Tensor,
    key_mask: Optional[Tensor] = None,
    parsing: Optional[Tensor] = None,
    num_classes: int = 0,
    delta: float = DELTA,
    sigma: float = SIGMA,
) -> SourceAttention:
    """Eqs. 6-7 with `attn`'s projections on source tokens F' [B, N, C] (explicit path: logits are multiplied).

    `key_mask` [B, N] (the target-oriented parsing selection on this grid) turns
    on the reweighting; without it H' is the layer's plain self-attention.
    `parsing` [B, N] (class per token) asks for CAA's region scores: the
    attention probability softmax(A') each key token receives, averaged over
    heads and queries, then over the tokens of each class (``+inf`` for classes
    with no token on this grid, so they are never chosen).
    """
    q = _heads(attn.to_q(tokens), attn.heads)
    k = _heads(attn.to_k(tokens), attn.heads)
    v = _heads(attn.to_v(tokens), attn.heads)
    logits = (q @ k.transpose(-1, -2)) * attn.scale  # A' [B, heads, N, N]
    weighted = logits if key_mask is None else logits * hpfa_weights(logits, key_mask, delta, sigma)
    hidden = _merge(weighted.softmax(-1) @ v)
    scores = None
    if parsing is not None:
        received = logits.softmax(-1).mean(dim=(1, 2))  # [B, N]: attention each key token receives
        scores = region_means(received, parsing, num_classes)
    return SourceAttention(hidden, scores)


def region_means(values: Tensor, parsing: Tensor, num_classes: int) -> Tensor:
    """Mean of `values` [B, N] over the tokens of each class of `parsing` [B, N] -> [B, R] (+inf where absent)."""
    b = values.shape[0]
    sums = values.new_zeros(b, num_classes).scatter_add_(1, parsing, values)
    counts = values.new_zeros(b, num_classes).scatter_add_(1, parsing, torch.ones_like(values))
    return torch.where(counts > 0, sums / counts.clamp_min(1), torch.full_like(sums, float("inf")))


def lowest_regions(scores: Tensor, k: int, allowed: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
    """Indices [B, k] of the `k` lowest finite scores per row and whether each slot is a real region [B, k].

    `allowed` [R] or [B, R] (bool) removes classes from the choice (e.g. Background,
    or classes the source has no CLIP crop for).
    """
    s = scores if allowed is None else torch.where(allowed.expand_as(scores), scores, float("inf"))
    k = min(k, s.shape[-1])
    values, idx = torch.topk(s, k, dim=-1, largest=False)
    return idx, torch.isfinite(values)


# --------------------------------------------------------------------------- processors

class PlainAttnProcessor(AttnProcessor2_0):
    """diffusers' SDPA attention that also names the ``fusion`` kwarg (so diffusers passes it silently).

    Cross-attention onto a single token (TruePose's attn2 sees one CLIP image token) is
    computed in closed form: a softmax over one key is 1, so every query receives
    ``to_out(to_v(token))``. The query/key projections, the attention and all but one row
    of ``to_out`` are skipped (~5% of a tiny training step), with the same result.
    """

    def __call__(self, attn: Attention, hidden_states: Tensor, encoder_hidden_states: Optional[Tensor] = None,
                 attention_mask: Optional[Tensor] = None, temb: Optional[Tensor] = None, fusion: object = None) -> Tensor:
        if _single_token_cross_attention(attn, hidden_states, encoder_hidden_states, attention_mask):
            context = attn.norm_encoder_hidden_states(encoder_hidden_states) if attn.norm_cross else encoder_hidden_states
            out = attn.to_out[1](attn.to_out[0](attn.to_v(context))).expand_as(hidden_states)
            if attn.residual_connection:
                out = out + hidden_states
            return out / attn.rescale_output_factor
        return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, temb)


def _single_token_cross_attention(attn: Attention, hidden_states: Tensor, encoder_hidden_states: Optional[Tensor],
                                  attention_mask: Optional[Tensor]) -> bool:
    """True when the closed form applies: 3-D tokens attend to one unmasked key, and no active dropout on the output
    (one dropout mask broadcast over every query would not be the same distribution)."""
    if attn.to_out is None or len(attn.to_out) != 2:
        return False
    dropout = attn.to_out[1]
    return (encoder_hidden_states is not None and encoder_hidden_states.dim() == 3
            and encoder_hidden_states.shape[1] == 1 and hidden_states.dim() == 3 and attention_mask is None
            and attn.spatial_norm is None and attn.to_out[0].out_features == hidden_states.shape[-1]
            and not (dropout.training and getattr(dropout, "p", 0.0) > 0))


class CaptureComplete(Exception):
    """Raised by the last :class:`CaptureProcessor` of a :class:`CaptureStore` with ``stop_after``: F' is complete."""


class CaptureStore(dict):
    """Layer name -> captured F'. With ``stop_after`` set, SourceNet's forward ends right after that layer's capture.

    Why: SourceNet's output is never used, only its attn1 inputs, so the layers after the
    last captured one (on the tiny preset the whole 16x12 up block and conv_out) would be
    computed for nothing; they get no gradient either way.
    """

    def __init__(self, stop_after: Optional[str] = None):
        super().__init__()
        self.stop_after = stop_after


class CaptureProcessor(PlainAttnProcessor):
    """SourceNet attn1: stores its input tokens F' under its layer name in the ``fusion`` dict, then attends normally."""

    def __init__(self, name: str):
        super().__init__()
        self.name = name

    def __call__(self, attn: Attention, hidden_states: Tensor, encoder_hidden_states: Optional[Tensor] = None,
                 attention_mask: Optional[Tensor] = None, temb: Optional[Tensor] = None, fusion: object = None) -> Tensor:
        if isinstance(fusion, dict):
            fusion[self.name] = hidden_states
            if isinstance(fusion, CaptureStore) and fusion.stop_after == self.name:
                raise CaptureComplete(self.name)
        return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, temb)


@dataclass
class FusionContext:
    """Per-call input of TargetNet's fusion processors.

    ``conditions`` holds, per layer name ``l``: ``"{l}/tokens"`` (source tokens F',
    reference attention), ``"{l}/hpfa"`` (H'), ``"{l}/clip"`` [B, K, D] and
    ``"{l}/clip_valid"`` [B, K] (CAA). ``keep`` [B] says which rows see the source.
    """

    conditions: Mapping[str, Tensor]
    keep: Tensor
    used: set = field(default_factory=set)  #: layers that consumed their conditions (a wiring check)

    def get(self, layer: str, what: str) -> Tensor:
        key = f"{layer}/{what}"
        if key not in self.conditions:
            raise KeyError(f"TruePose fusion: no '{key}' in the cached source conditions (have "
                           f"{sorted(self.conditions)[:6]}...); the SourceNet layers and TargetNet layers disagree")
        self.used.add(layer)
        return self.conditions[key]


class RegionCrossAttention(nn.Module):
    """CAA (eq. 9): F^ = softmax(Q~ K_clip^T / sqrt(d)) V_clip, Q~ from the fused tokens, K/V from region CLIP embeddings.

    ``to_v`` starts at zero, so an untrained CAA leaves its input unchanged
    (the caller adds F^ as a residual refinement of F~).
    """

    def __init__(self, dim: int, clip_dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(clip_dim, dim, bias=False)
        self.to_v = nn.Linear(clip_dim, dim, bias=False)
        nn.init.zeros_(self.to_v.weight)

    def forward(self, fused: Tensor, clip: Tensor, valid: Tensor) -> Tensor:
        """`fused` [B, N, dim], `clip` [B, K, D], `valid` [B, K] bool -> [B, N, dim] (zero rows without a region)."""
        q = _heads(self.to_q(fused), self.heads)
        k = _heads(self.to_k(clip.to(fused.dtype)), self.heads)
        v = _heads(self.to_v(clip.to(fused.dtype)), self.heads)
        valid = valid.to(torch.bool)
        any_valid = valid.any(-1)
        mask = (valid | ~any_valid[:, None])[:, None, None, :]  # a row without regions attends to all, then is zeroed
        out = _merge(F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
        return out * any_valid[:, None, None].to(out.dtype)


class _FusionProcessor(nn.Module):
    """Shared plumbing of TargetNet's fused attn1 processors (3-D tokens, the layer's norms and output)."""

    def __init__(self, name: str, caa: Optional[RegionCrossAttention] = None):
        super().__init__()
        self.name = name
        self.caa = caa

    def _refine(self, ctx: FusionContext, fused: Tensor) -> Tensor:
        """F~ + CAA(F~) when CAA is on, else F~."""
        if self.caa is None:
            return fused
        return fused + self.caa(fused, ctx.get(self.name, "clip"), ctx.get(self.name, "clip_valid"))

    @staticmethod
    def _check(attn: Attention, hidden_states: Tensor, encoder_hidden_states: Optional[Tensor]) -> None:
        if hidden_states.dim() != 3 or encoder_hidden_states is not None or attn.group_norm is not None \
                or attn.spatial_norm is not None:
            raise ValueError("TruePose fusion processors go on transformer self-attention (attn1) layers only, "
                             "which take 3-D tokens and no encoder_hidden_states; fix the `layers` list")

    @staticmethod
    def _finish(attn: Attention, hidden: Tensor, residual: Tensor) -> Tensor:
        hidden = attn.to_out[1](attn.to_out[0](hidden))
        if attn.residual_connection:
            hidden = hidden + residual
        return hidden / attn.rescale_output_factor


class ReferenceAttnProcessor(_FusionProcessor):
    """Plain reference attention (Animate Anyone; ablation B2): attn1 keys/values = [F ; F'].

    Rows with keep=False mask the source keys out, i.e. run the layer's own
    self-attention. With F' = F the duplicated keys/values leave the softmax
    unchanged, so the output equals the UNet's own. With CAA (ablation "without
    HPFA") the attention output is refined by :class:`RegionCrossAttention` first.
    """

    def __call__(self, attn: Attention, hidden_states: Tensor, encoder_hidden_states: Optional[Tensor] = None,
                 attention_mask: Optional[Tensor] = None, temb: Optional[Tensor] = None,
                 fusion: Optional[FusionContext] = None) -> Tensor:
        if not isinstance(fusion, FusionContext):
            return PlainAttnProcessor()(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        self._check(attn, hidden_states, encoder_hidden_states)
        ref = fusion.get(self.name, "tokens").to(hidden_states.dtype)
        b, n, _ = hidden_states.shape
        both = torch.cat([hidden_states, ref], dim=1)
        q = _heads(attn.to_q(hidden_states), attn.heads)
        k, v = _heads(attn.to_k(both), attn.heads), _heads(attn.to_v(both), attn.heads)
        keep = fusion.keep.to(device=q.device, dtype=torch.bool)
        key_ok = torch.cat([torch.ones(b, n, dtype=torch.bool, device=q.device), keep[:, None].expand(b, ref.shape[1])], 1)
        out = _merge(F.scaled_dot_product_attention(q, k, v, attn_mask=key_ok[:, None, None, :]))
        if self.caa is not None:
            out = torch.where(keep[:, None, None], self._refine(fusion, out), out)
        return self._finish(attn, out, hidden_states)


class HPFAAttnProcessor(_FusionProcessor):
    """HPFA (eq. 8) on a TargetNet self-attention: own self-attention + F~, F~ = softmax(Q K_h^T/sqrt(d)) V_h.

    Q is the layer's own query of the target tokens F; K_h, V_h project the
    cached H' (eq. 7) with new weights initialised as copies of the layer's
    ``to_k`` / ``to_v`` (so at the start F~ attends onto the source like the
    layer attends onto itself). CAA refines F~ as F~ + CAA(F~). Rows with
    keep=False get the layer's plain self-attention.
    """

    def __init__(self, name: str, attn: Attention, caa: Optional[RegionCrossAttention] = None):
        super().__init__(name, caa)
        inner = attn.to_k.out_features
        self.to_k_h = nn.Linear(inner, inner, bias=attn.to_k.bias is not None)
        self.to_v_h = nn.Linear(inner, inner, bias=attn.to_v.bias is not None)
        for new, old in ((self.to_k_h, attn.to_k), (self.to_v_h, attn.to_v)):
            if old.weight.shape == new.weight.shape:
                with torch.no_grad():
                    new.load_state_dict(old.state_dict())

    def __call__(self, attn: Attention, hidden_states: Tensor, encoder_hidden_states: Optional[Tensor] = None,
                 attention_mask: Optional[Tensor] = None, temb: Optional[Tensor] = None,
                 fusion: Optional[FusionContext] = None) -> Tensor:
        if not isinstance(fusion, FusionContext):
            return PlainAttnProcessor()(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        self._check(attn, hidden_states, encoder_hidden_states)
        q = _heads(attn.to_q(hidden_states), attn.heads)
        own = F.scaled_dot_product_attention(q, _heads(attn.to_k(hidden_states), attn.heads),
                                             _heads(attn.to_v(hidden_states), attn.heads))
        h_src = fusion.get(self.name, "hpfa").to(hidden_states.dtype)
        f_tilde = _merge(F.scaled_dot_product_attention(q, _heads(self.to_k_h(h_src), attn.heads),
                                                        _heads(self.to_v_h(h_src), attn.heads)))
        fused = self._refine(fusion, f_tilde)
        keep = fusion.keep.to(device=q.device, dtype=fused.dtype)[:, None, None]
        return self._finish(attn, _merge(own) + keep * fused, hidden_states)


def set_processors(unet: nn.Module, special: Mapping[str, nn.Module | object]) -> None:
    """Install `special` processors (by attention module name) and :class:`PlainAttnProcessor` everywhere else."""
    names = [k[: -len(".processor")] for k in unet.attn_processors]
    unknown = sorted(set(special) - set(names))
    if unknown:
        raise ValueError(f"no attention layer(s) {unknown} in this UNet; its self-attention layers are "
                         f"{self_attention_layers(unet)}")
    unet.set_attn_processor({f"{n}.processor": special.get(n, PlainAttnProcessor()) for n in names})


__all__ = [
    "FUSION_KWARG", "DELTA", "SIGMA", "self_attention_layers", "token_grid", "mask_to_tokens", "parsing_to_tokens",
    "hpfa_weights", "SourceAttention", "source_attention", "region_means", "lowest_regions", "PlainAttnProcessor",
    "CaptureComplete", "CaptureStore", "CaptureProcessor", "FusionContext", "RegionCrossAttention",
    "ReferenceAttnProcessor", "HPFAAttnProcessor", "set_processors",
]
