"""What the notebooks look at inside a trained model: TruePose's parsing/HPFA/CAA maps, FPDM's retrieval neighbours.

These recompute, for one batch, the quantities the denoiser uses internally (the
same functions of :mod:`pgpis.models.attention` on the same source tokens), and
return them on the token grids so they can be overlaid on the source image. The
source side comes from the denoiser's own ``encode_conditions`` (SourceNet with
the source pose / parsing features its config turns on), not a re-implementation.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from pgpis.models.attention import (hpfa_weights, lowest_regions, mask_to_tokens, parsing_to_tokens, source_attention,
                                    token_grid)


def find_checkpoint(folder: Union[str, Path]) -> Path:
    """The newest ``last.ckpt`` (else newest ``*.ckpt``) under `folder`: what `make train-*` left there."""
    folder = Path(folder)
    found = sorted(folder.rglob("last.ckpt")) or sorted(folder.rglob("*.ckpt"))
    if not found:
        raise FileNotFoundError(f"no Lightning checkpoint under {folder}; train first (`make demo` / `make train-ldm` / "
                                "`make train-truepose`) or set the path cell to a .ckpt or a `pgpis export` folder")
    return max(found, key=lambda p: p.stat().st_mtime)


@dataclass
class LayerMaps:
    """One fused TargetNet layer: token grid, the eq. 6 weight each source token gets, the CAA regions picked."""

    grid: tuple[int, int]
    hpfa_weight: np.ndarray  # [h, w]: M' averaged over heads and queries (1 + delta inside M ... sigma outside)
    token_mask: np.ndarray  # [h, w] bool: M on this grid
    regions: list[str]  # the K lowest-attended parsing classes CAA crops (class names)


@contextlib.contextmanager
def _raw_source_side(den):
    """Make `den.encode_conditions` return the raw source side (SourceNet's input and residual, M, the parsing)."""
    cached = den.cache_source
    den.cache_source = False
    try:
        yield
    finally:
        den.cache_source = cached


@torch.no_grad()
def truepose_maps(pipe, source_image, target_pose, source_parsing, source_pose=None) -> dict[str, Any]:
    """The selected parsing mask M and, per fused layer, the HPFA weight map and CAA regions for one sample.

    `source_pose` (keypoints, a keypoint file or a pose image of the source) is needed when the model reads it
    (``pipe.needs_source_pose``: TruePose with ``source_pose: true``).
    """
    from pgpis.inference.poses import load_target_pose

    den = pipe.module.denoiser
    source_poses = None if source_pose is None else [load_target_pose(source_pose, what="source pose")]
    batch = pipe.make_batch([source_image], [load_target_pose(target_pose)], [source_parsing], source_poses)
    with _raw_source_side(den), pipe._autocast():
        raw = den.encode_conditions(batch)  # as the sampler's, with the source pose / parsing features on SourceNet
    parsing, mask, clip_tokens = raw["parsing"], raw["target_mask"], raw["clip_tokens"].to(pipe.dtype)
    latent = raw["source_input"].to(pipe.dtype)
    latent_size = (mask.shape[-2] // den.downsample_factor, mask.shape[-1] // den.downsample_factor)
    residual = raw.get("source_residual")
    tokens = den._source_tokens(latent, clip_tokens, latent_size, residual)  # SourceNet's captured F' per layer
    region_ok = raw["region_ok"] if "region_ok" in raw else den.region_embeddings(batch["source"], parsing)[1]
    layers: dict[str, LayerMaps] = {}
    for name, f_src in tokens.items():
        grid = token_grid(latent_size, f_src.shape[1])
        attn = (den.source_net or den.target_net).get_submodule(name)
        key_mask = mask_to_tokens(mask, grid)
        q = attn.to_q(f_src).view(1, f_src.shape[1], attn.heads, -1).transpose(1, 2)
        k = attn.to_k(f_src).view(1, f_src.shape[1], attn.heads, -1).transpose(1, 2)
        logits = (q @ k.transpose(-1, -2)) * attn.scale
        weight = hpfa_weights(logits, key_mask, den.delta, den.sigma).float().mean(dim=(1, 2))[0]
        sa = source_attention(attn, f_src, key_mask=key_mask, parsing=parsing_to_tokens(parsing, grid),
                              num_classes=den.label_set.num_classes, delta=den.delta, sigma=den.sigma)
        idx, valid = lowest_regions(sa.region_scores, den.caa_regions, region_ok & den.caa_allowed)
        layers[name] = LayerMaps(grid, weight.view(grid).cpu().numpy(), key_mask.view(grid).cpu().numpy(),
                                 [den.label_set.classes[i] for i, ok in zip(idx[0].tolist(), valid[0].tolist()) if ok])
    return {"mask": mask[0].cpu().numpy(), "layers": layers, "source": batch["source"][0]}


@torch.no_grad()
def retrieval_neighbours(pipe, source_image, target_pose, gallery: Sequence[Any], k: int = 5
                         ) -> tuple[list[int], np.ndarray]:
    """FPDM's IPF fusion embedding of (source, target pose) against a gallery of images: top-k indices and cosine scores."""
    from pgpis.images import resize_image, to_tensor
    from pgpis.inference.pipeline import _open_image
    from pgpis.inference.poses import load_target_pose

    den = pipe.module.denoiser
    fusion = getattr(den, "fusion_encoder", None)
    if fusion is None or not hasattr(fusion, "encode_image"):
        raise ValueError("retrieval needs an FPDM model with the IPF fusion model (fusion: ipf)")
    size = pipe.encoder_inputs.get("clip") or tuple(fusion.encoder.input_size)
    batch = pipe.make_batch([source_image], [load_target_pose(target_pose)])
    query = fusion(batch["clip_source"].to(pipe.dtype), batch["clip_target_pose"].to(pipe.dtype)).float()
    images = torch.stack([to_tensor(resize_image(_open_image(g, "gallery image"), size)) for g in gallery])
    keys = fusion.encode_image(images.to(pipe.device, pipe.dtype)).float()
    scores = F.normalize(query, dim=-1) @ F.normalize(keys, dim=-1).T
    top = scores[0].topk(min(k, len(gallery)))
    return top.indices.tolist(), top.values.cpu().numpy()


__all__ = ["find_checkpoint", "truepose_maps", "LayerMaps", "retrieval_neighbours"]
