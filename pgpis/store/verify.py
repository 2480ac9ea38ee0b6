"""Does a store match the run that wants to train from it? Every difference is named, none is skipped.

Checked without building any frozen network: each part's config (the experiment keys its tensors depend
on), the digest of its weights folder when it loads from one (an IPF export, a local DINOv2), the first
stage's weights (it is built anyway), the data's image size and encoder views, and that every training view
the loader can produce (image x flip, pair x flip) is in the store with an image file of the recorded size.
"""
from __future__ import annotations

import os
from typing import Any

from torch import nn

from pgpis.store.lazy import LazyFrozen
from pgpis.store.manifest import Manifest, short, state_digest
from pgpis.store.parts import LATENTS, enumerate_keys, first_stage_identity, flip_views


def config_diff(stored: Any, current: Any, prefix: str) -> list[str]:
    """Dotted keys where two plain-JSON configs differ, with both values."""
    if isinstance(stored, dict) and isinstance(current, dict):
        out = []
        for k in sorted(set(stored) | set(current)):
            out += config_diff(stored.get(k), current.get(k), f"{prefix}.{k}")
        return out
    return [] if stored == current else [f"{prefix}: store {stored!r} vs model {current!r}"]


def _module_identity(model: nn.Module, part: str) -> tuple[dict[str, Any], str | None, Any]:
    """(config, files digest, module or None when not built) of `part` in `model`."""
    if part == LATENTS:
        return first_stage_identity(model.first_stage), None, model.first_stage
    den = model.denoiser
    ident = den.store_identity()[part]
    module = den.frozen_parts()[part].module
    if isinstance(module, LazyFrozen):
        module = module.module
    return ident["config"], ident["files_digest"], module


def verify_model(manifest: Manifest, model: nn.Module) -> list[str]:
    """Differences between the encoders the store was written with and this model's."""
    den = getattr(model, "denoiser", None)
    kind = type(den).__name__
    readable = {LATENTS, *den.store_identity()} if den is not None else set()  # parts the method reads at all
    usable = {LATENTS, *den.frozen_parts()} if den is not None else set()  # ... and as configured
    out = []
    for part, rec in manifest.parts.items():
        if part not in readable:
            out.append(f"the store holds '{part}', which {kind} does not read (a store of another method?)")
            continue
        if part not in usable:
            out.append(f"the store holds '{part}' but this {kind} as configured does not read it: "
                       f"{den.store_hint or 'its config makes that part unstorable'}")
            continue
        config, files, module = _module_identity(model, part)
        out += [f"config of {part} differs at {d}" for d in config_diff(rec.config, config, part)]
        if (files or rec.files_digest) and files != rec.files_digest:
            out.append(f"weights digest of {part} differs: store {short(rec.files_digest)} vs model {short(files)} "
                       "(its weights folder changed since the store was written)")
        elif module is not None and not isinstance(module, LazyFrozen):
            digest = state_digest(module)
            if digest != rec.weights_digest:
                out.append(f"weights digest of {part} differs: store {short(rec.weights_digest)} vs model {short(digest)}")
    return out


def verify_data(manifest: Manifest, datamodule: Any, dataset: Any, keys: dict[str, set[str]]) -> list[str]:
    """Differences between the data the store was written from and this run's training split."""
    data, hp, out = manifest.data, datamodule.hparams, []
    if list(hp.get("image_size")) != data["image_size"]:
        out.append(f"data image_size differs: store {data['image_size']} vs run {list(hp.get('image_size'))}")
    enc = {k: list(v) for k, v in (hp.get("encoder_inputs") or {}).items()}
    out += [f"data {d}" for d in config_diff(data["encoder_inputs"], enc, "encoder_inputs")]
    if out:
        return out
    stored_flips = [False] if data["flip_prob"] <= 0 else ([True] if data["flip_prob"] >= 1 else [False, True])
    missing_flips = sorted(set(flip_views(dataset)) - set(stored_flips))
    if missing_flips:
        out.append(f"data flip_prob differs: store {data['flip_prob']} (views {stored_flips}) vs run "
                   f"{dataset.augmentation.flip_prob}: the store has no {'flipped' if True in missing_flips else 'unflipped'} views")
    for part, rec in manifest.parts.items():
        have = keys[part]
        need = [k for k, _, _ in enumerate_keys(dataset, rec.unit)]
        lost = [k for k in need if k not in have]
        if lost:
            out.append(f"data: {len(lost)} of the {len(need)} training views of {part} are not in the store "
                       f"(e.g. {lost[0]}; other pairs, split or identity pairs)")
    sizes = data["images"]
    names = sorted({n for pair in dataset.pairs for n in pair})
    changed = [n for n in names if n in sizes and os.path.getsize(dataset.index.image_path(n)) != sizes[n]]
    if changed:
        out.append(f"data: {len(changed)} image file(s) changed size since the store was written (e.g. {changed[0]}: "
                   f"{sizes[changed[0]]} -> {os.path.getsize(dataset.index.image_path(changed[0]))} bytes)")
    return out
