"""The parts a store can hold: which frozen network, what it reads, what it is keyed by.

Each denoiser declares its own parts (``ConditionalDenoiser.frozen_parts`` returns a :class:`PartSpec` per
part, ``store_identity`` their identity); the store adds the core's ``latents``. Today's parts:

* ``dino`` (FPDM): the frozen DINOv2 tokens of the source view, per (image, flip);
* ``fusion`` (FPDM): the frozen fusion embedding (IPF export or CLIP) of (source, target pose), per
  (source, target, flip) pair;
* ``clip`` (TruePose): the frozen CLIP's global embedding of the source view and (with CAA) the embedding of
  every parsing class's crop, ``[1 + R, D]`` per (image, flip) (the crops follow the view's parsing map);
* ``latents`` (FPDM, TruePose): ``first_stage.encode`` of every image view, per (image, flip), served as the
  diffusion target's latent (and TruePose's SourceNet input). The first stage itself stays built: it decodes
  samples; in training its encoder no longer runs.

A part's *identity* is the config it depends on and the digest of its weights; the store records both and
training compares them (:mod:`pgpis.store.verify`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Collection, Literal, Mapping

import torch
from torch import Tensor, nn

from pgpis.store.errors import NotEnumerableError, StoreError
from pgpis.store.manifest import state_digest

Unit = Literal["image", "pair"]

#: the first stage's part (the core's, every latent-diffusion stage has it): served for both images of a pair
LATENTS = "latents"


def served_keys(part: str, unit: Unit) -> dict[str, str]:
    """Pair role -> batch key (after ``stored/``) a part is served under: the latents for the source and the
    target image, any other image part for the source, a pair part for the pair (read by the denoisers through
    :func:`pgpis.diffusion.denoiser.stored_tensor`)."""
    if part == LATENTS:
        return {"source": f"{LATENTS}/source", "target": f"{LATENTS}/target"}
    return {"source": part} if unit == "image" else {"pair": part}


@dataclass
class PartSpec:
    """How the cache job computes one part from a collated batch of the training dataset."""

    name: str
    unit: Unit
    encode: Callable[[Mapping[str, Any]], Tensor]   # batch -> [B, ...]
    module: nn.Module | None                       # the frozen network (digest; saved for lazy rebuilds)
    config: dict[str, Any]
    files_digest: str | None
    save_weights: bool = True                      # write module's state dict into the store

    @property
    def weights_digest(self) -> str:
        return state_digest(self.module) if self.module is not None else "none"


def first_stage_identity(first_stage: nn.Module) -> dict[str, Any]:
    """The first stage's config as far as its latents depend on it (class, factor, channels, scaling)."""
    cls = type(first_stage)
    return {"class_path": f"{cls.__module__}.{cls.__qualname__}",
            "downsample_factor": int(getattr(first_stage, "downsample_factor", 0)),
            "latent_channels": int(getattr(first_stage, "latent_channels", 0)),
            "scaling_factor": getattr(first_stage, "scaling_factor", None),
            "sample_posterior": bool(getattr(first_stage, "sample_posterior", False))}


def _latents(model: nn.Module) -> PartSpec:
    fs = model.first_stage
    if getattr(fs, "sample_posterior", False):
        raise NotEnumerableError("latents", "model.init_args.first_stage.init_args.sample_posterior",
                                 "is true: the VAE draws a new latent for every step, the store would hold one")
    key = getattr(model, "target_key", "target")

    @torch.no_grad()
    def encode(batch: Mapping[str, Any]) -> Tensor:
        return fs.encode(batch[key]).float()

    return PartSpec("latents", "image", encode, fs, first_stage_identity(fs), None, save_weights=False)


def available_parts(model: nn.Module) -> dict[str, PartSpec]:
    """Every part this LightningModule's frozen networks can store: the core's latents, then the parts its
    denoiser declares (``ConditionalDenoiser.frozen_parts``)."""
    if not hasattr(model, "first_stage") or not hasattr(model, "denoiser"):
        raise StoreError(f"{type(model).__name__} is not a latent-diffusion stage (no first_stage/denoiser): the "
                         "store holds frozen encoders of FPDM stage 2 and TruePose; stage 1 (IPF) trains its encoder")
    den = model.denoiser
    if getattr(den, "store", None) is not None:
        raise StoreError("the model was built from a store (--store); build it online to write a store")
    parts = {"latents": _latents(model)} if not getattr(model.first_stage, "sample_posterior", False) else {}
    parts.update(den.frozen_parts())
    return parts


def select_parts(model: nn.Module, names: list[str] | None) -> dict[str, PartSpec]:
    """The requested parts (all available when `names` is None), with named errors for the others."""
    if names is None:
        return available_parts(model)
    if "latents" in names:
        _latents(model)  # raises the named error for a sampled posterior
    parts = available_parts(model)
    unknown = [n for n in names if n not in parts]
    if unknown:
        raise StoreError(f"--parts {','.join(unknown)}: not a frozen part of {type(model.denoiser).__name__}; "
                         f"this model can store {','.join(parts) or 'nothing'}"
                         + (f". {model.denoiser.store_hint}" if model.denoiser.store_hint else ""))
    return {n: parts[n] for n in names}


def part_inputs(part: str, config: Mapping[str, Any]) -> set[str]:
    """The batch keys a part's frozen network reads (from its identity config, so no network is built)."""
    if part == "fusion":
        return set(config.get("fusion_keys") or ())
    return {config["source_key"]} if "source_key" in config else set()


def replaced_encoder_views(denoiser: nn.Module, stored: Collection[str], encoders: Collection[str]) -> set[str]:
    """The ``encoder_inputs`` views (e.g. ``dino``, ``clip``) no longer read once the `stored` parts are served:
    every key ``<enc>_*`` the denoiser's frozen networks read belongs to a stored part. Training from the store
    then skips decoding and resizing them (~3x faster per sample for FPDM's 512x512 + 224x224 views)."""
    identity = denoiser.store_identity()
    reads = {part: part_inputs(part, rec["config"]) for part, rec in identity.items()}
    still_read = set().union(*(keys for part, keys in reads.items() if part not in stored))
    return {enc for enc in encoders if not any(k.startswith(f"{enc}_") for k in still_read)
            and any(k.startswith(f"{enc}_") for part in stored for k in reads.get(part, ()))}


# ---------------------------------------------------------------------------------------------------- views
KNOWN_AUGMENTATIONS = ("flip_prob", "keypoint_jitter", "identity_pair_prob")


def flip_views(dataset: Any) -> list[bool]:
    """The flips a training sample can have: both when 0 < flip_prob < 1."""
    aug = _augmentation(dataset)
    p = float(aug.flip_prob)
    return [False] if p <= 0 else ([True] if p >= 1 else [False, True])


def _augmentation(dataset: Any) -> Any:
    aug = getattr(dataset, "augmentation", None)
    if aug is None or not dataclasses.is_dataclass(aug):
        raise StoreError(f"{type(dataset).__name__} has no `augmentation` settings to enumerate its views; the store "
                         "supports the DeepFashion pair datasets (pgpis.data.deepfashion)")
    return aug


def check_enumerable(dataset: Any, parts: Mapping[str, PartSpec]) -> None:
    """Refuse, naming the config key, an augmentation whose effect on a part cannot be listed ahead of time.

    Flips are enumerated (both views stored); a keypoint jitter moves the conditioning pose only, so per-image
    parts stay valid but a pair part that reads the target pose (FPDM's fusion) cannot be stored; identity
    pairs are enumerated (every (source, source) pair is stored too).
    """
    aug = _augmentation(dataset)
    for f in dataclasses.fields(aug):
        if f.name not in KNOWN_AUGMENTATIONS and getattr(aug, f.name) != f.default:
            raise NotEnumerableError(next(iter(parts), "any"), f"data.init_args.{f.name}",
                                     "is an augmentation pgpis.store does not know how to enumerate")
    if aug.keypoint_jitter > 0:
        for name, spec in parts.items():
            if spec.unit == "pair":
                raise NotEnumerableError(name, "data.init_args.keypoint_jitter",
                                         f"= {aug.keypoint_jitter} moves the target pose the {name} encoder reads, "
                                         "differently on every draw")


def view_dataset(dataset: Any, pairs: list[tuple[str, str]], flipped: bool) -> Any:
    """A copy of the training dataset over `pairs` whose every sample has the flip `flipped` (and no jitter)."""
    import copy

    aug = _augmentation(dataset)
    view = copy.copy(dataset)
    view.pairs = list(pairs)
    view.augmentation = dataclasses.replace(aug, flip_prob=1.0 if flipped else 0.0, keypoint_jitter=0.0,
                                            identity_pair_prob=0.0)
    return view


def image_key(name: str, flipped: bool) -> str:
    return f"{name}|{int(flipped)}"


def pair_key(source: str, target: str, flipped: bool) -> str:
    return f"{source}|{target}|{int(flipped)}"


def enumerate_keys(dataset: Any, unit: Unit) -> list[tuple[str, tuple[str, str], bool]]:
    """(key, (source, target) pair to load it through, flip) for every view of `unit` the training loader can produce."""
    flips = flip_views(dataset)
    aug = _augmentation(dataset)
    out = []
    if unit == "image":
        names = sorted({n for pair in dataset.pairs for n in pair})
        for f in flips:
            out += [(image_key(n, f), (n, n), f) for n in names]
        return out
    pairs = list(dict.fromkeys(tuple(p) for p in dataset.pairs))
    if aug.identity_pair_prob > 0:
        seen = set(pairs)
        pairs += [(s, s) for s in sorted({s for s, _ in pairs}) if (s, s) not in seen]
    for f in flips:
        out += [(pair_key(s, t, f), (s, t), f) for s, t in pairs]
    return out
