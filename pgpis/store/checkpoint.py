"""Checkpoints of a run trained from a feature store stand on their own.

Training from a store never builds the frozen networks whose outputs it holds, so they are in no
``state_dict``. A checkpoint is shared, though, and the store (hundreds of GB for DINOv2 tokens) stays
behind. So :func:`embed_frozen` writes those networks' weights into the checkpoint under the keys the online
model has (``denoiser.source_encoder.*``...), read from ``<store>/weights/`` without building them, and marks
the checkpoint (:data:`FROZEN_FROM_STORE`). Sampling from it (:mod:`pgpis.inference.checkpoint`) then builds
the online model and loads every weight, store or no store. Resuming a store run, :func:`strip_frozen` drops
the embedded keys again, as the store model has no such submodules.
"""
from __future__ import annotations

from typing import Any

from torch import nn

from pgpis.store.lazy import lazy_frozen

#: checkpoint key: {state-dict prefix: store part} of the frozen weights embedded by :func:`embed_frozen`
FROZEN_FROM_STORE = "pgpis_frozen_from_store"
_STATE_DICTS = ("state_dict", "current_model_state")  # the second: the live weights when EMA swapped its own in


def embed_frozen(model: nn.Module, checkpoint: dict[str, Any]) -> None:
    """Add the weights of `model`'s store-replaced frozen networks to `checkpoint` (LightningModule hook)."""
    parts = lazy_frozen(model)
    if not parts:
        return
    weights = {prefix: lazy.state_dict() for prefix, lazy in parts.items()}
    for key in _STATE_DICTS:
        state = checkpoint.get(key)
        if isinstance(state, dict):
            for prefix, tensors in weights.items():
                state.update({prefix + k: v for k, v in tensors.items()})
    checkpoint[FROZEN_FROM_STORE] = {prefix: lazy.part for prefix, lazy in parts.items()}


def strip_frozen(model: nn.Module, checkpoint: dict[str, Any]) -> None:
    """Remove the frozen weights `model` reads from its store (an embedded or an online checkpoint's)."""
    prefixes = tuple(lazy_frozen(model))
    if not prefixes:
        return
    for key in _STATE_DICTS:
        state = checkpoint.get(key)
        if isinstance(state, dict):
            for k in [k for k in state if k.startswith(prefixes)]:
                del state[k]
