"""TruePose's denoiser: a Siamese pair of UNets fused by parsing-guided attention (HPFA) and CAA.

* **TargetNet** denoises z_t; a 4-stage conv pose encoder (Animate Anyone's
  PoseGuider widths 16/32/64/128, zero-initialised output) adds the target-pose
  features to its ``conv_in`` output through a forward hook armed only during
  :meth:`SiameseDenoiser.forward` (the UNet's forward and state-dict keys stay
  diffusers' own). Its cross-attention (attn2) sees the CLIP image embedding of
  the source (one token, Animate Anyone's choice; there is no text encoder).
* **SourceNet** is a copy of TargetNet (identical architecture and initial
  weights). It sees the clean source latent at t = 0 and its self-attention
  inputs F' are captured at the fused layers (default: every attn1 of TargetNet).
* With ``source_pose=True`` (off in the paper preset) SourceNet's ``conv_in`` also
  gets the same pose encoder's features of the *source* pose, so a body part
  carries the same code in both nets and HPFA's target queries can find it in
  the source keys. SD-1.5's features already know body parts; a UNet trained
  from scratch does not (on the tiny preset the target queries' attention onto
  H' stayed at chance without it).
* With ``source_parsing=True`` (also off in the paper preset) SourceNet's
  ``conv_in`` gets a learned embedding of the one-hot source parsing map (a
  conv encoder of the pose encoder's shape, zero-initialised), so every source
  token says which body part it shows; HPFA's mask and CAA already read the
  same map.
* Everything on the source side — the SourceNet pass, eq. 6-7's H', CAA's
  region choice and the CLIP embeddings of the region crops — is independent of
  the noise level, so :meth:`encode_conditions` computes it **once per sample**
  (``cache_source=True``); ``cache_source=False`` re-runs it inside every
  :meth:`forward` (the benchmark's baseline, identical outputs).

Condition group: ``("source",)``. The paper's condition set is C = {F', F_clip}
(eq. 5): dropping it (30%, per sample) removes the HPFA/CAA/reference fusion
and zeroes the CLIP token; the pose always stays. CFG (scale 3.5) contrasts
exactly these two models.

Target-oriented parsing selection (HPFA): the categories the target pose
contains (:func:`pgpis.data.parsing.categories_for_keypoints`, an overridable
keypoint -> category table) select classes of the **source** parsing map; their
union M is resized to each layer's token grid (area vote) and weights the
source attention logits per key token (see :mod:`pgpis.models.attention`).

Ablations (paper Table 2) by config: ``fusion="reference"`` + ``caa=False`` is
the plain dual-UNet concatenation (B2); ``caa=False`` removes CAA (B3);
``fusion="reference"`` + ``caa=True`` removes HPFA (B4); ``source_features=
"clip"`` replaces SourceNet by CLIP patch tokens mapped to each layer by an MLP (B1).
"""
from __future__ import annotations

import contextlib
import copy
import json
from typing import Any, Literal, Mapping, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pgpis.data.parsing import LABEL_SETS, categories_for_keypoints, category_mask
from pgpis.diffusion.denoiser import ConditionalDenoiser, Conditions, ExportFolder, KeepMask, stored_tensor
from pgpis.models.attention import (DELTA, FUSION_KWARG, SIGMA, CaptureComplete, CaptureProcessor, CaptureStore,
                                    FusionContext, HPFAAttnProcessor, ReferenceAttnProcessor, RegionCrossAttention,
                                    lowest_regions, mask_to_tokens, parsing_to_tokens, self_attention_layers,
                                    set_processors, source_attention, token_grid)
from pgpis.models.encoders import CLIPImageEncoder, build_image_encoder
from pgpis.models.frozen_cache import FrozenOutputCache
from pgpis.models.pose_encoder import PoseEncoder, PoseResidualInjection, widths_for_factor
from pgpis.models.regions import crop_regions, region_boxes
from pgpis.models.unets import build_unet, first_block_width
from pgpis.pretrained import save_pretrained_folder
from pgpis.store.lazy import LazyFrozen, stored_parts
from pgpis.store.manifest import files_digest
from pgpis.store.parts import PartSpec

#: Animate Anyone's PoseGuider widths: four conv stages for SD's x8 VAE
POSE_GUIDER_WIDTHS: tuple[int, ...] = (16, 32, 64, 128)


def layer_downscale(unet: nn.Module, layer: str) -> int:
    """How many times the latent grid is halved at attention layer `layer` (from its block's position)."""
    n = len(unet.config.block_out_channels)
    part, _, rest = layer.partition(".")
    if part == "mid_block":
        return n - 1
    index = int(rest.split(".")[0])
    return index if part == "down_blocks" else n - 1 - index


def _select_rows(batch: Mapping[str, object], rows: Tensor, batch_size: int) -> dict[str, object]:
    """The sub-batch of `rows`: per-sample tensors and lists indexed, anything else passed through."""
    picked = rows.tolist()
    out: dict[str, object] = {}
    for key, value in batch.items():
        if isinstance(value, Tensor) and value.dim() and value.shape[0] == batch_size:
            out[key] = value.index_select(0, rows.to(value.device))
        elif isinstance(value, (list, tuple)) and len(value) == batch_size:
            out[key] = [value[i] for i in picked]
        else:
            out[key] = value
    return out


def _scatter_rows(value: Tensor, rows: Tensor, batch_size: int) -> Tensor:
    """`value` [len(rows), ...] placed at `rows` of a zero tensor [batch_size, ...] (differentiable)."""
    out = value.new_zeros((batch_size, *value.shape[1:]))
    return out.index_copy(0, rows.to(value.device), value)


class ClipLayerAdapter(nn.Module):
    """Ablation B1: CLIP patch tokens [B, P, hidden] -> pseudo-F' [B, h*w, c] for one layer (MLP, grid resize)."""

    def __init__(self, clip_hidden: int, channels: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(clip_hidden, channels), nn.GELU(), nn.Linear(channels, channels))

    def forward(self, patches: Tensor, grid: tuple[int, int]) -> Tensor:
        b, p, c = patches.shape
        side = int(round(p ** 0.5))
        x = patches.transpose(1, 2).reshape(b, c, side, side)
        x = F.interpolate(x, size=grid, mode="bilinear", align_corners=False).flatten(2).transpose(1, 2)
        return self.net(x)


class SiameseDenoiser(PoseResidualInjection, ConditionalDenoiser):
    """TruePose's TargetNet + SourceNet with HPFA/CAA fusion (see the module docstring).

    Args:
        unet: :func:`pgpis.models.unets.build_unet` kwargs for TargetNet (SourceNet is a copy).
        fusion: "hpfa" (paper) or "reference" (Animate Anyone concatenation).
        caa: refine the fused tokens with CLIP embeddings of the K lowest-attended regions.
        source_features: "sourcenet" (paper) or "clip" (ablation B1: no SourceNet).
        layers: attn1 module names to fuse (default: all TargetNet self-attention layers).
        clip_encoder: :class:`pgpis.models.encoders.EncoderSpec` dict of the CLIP image tower (frozen, as in the
            paper, unless it sets ``trainable: true``: a randomly initialised preset has nothing to keep).
        caa_regions: K, the number of lowest-attended regions (paper: 2).
        delta, sigma: eq. 6 weights (paper: 0.6, 0.3).
        label_set: parsing label set of the maps ("lip", "atr", "cihp").
        keypoint_categories: OpenPose-18 index -> category names (default: the table in docs/data-formats.md).
        caa_exclude: classes CAA never picks (Background is not a body region).
        downsample_factor: the first stage's factor (pose encoder strides, latent grid).
        pose_block_out_channels: pose encoder widths (default: PoseGuider's, cut to the factor).
        cache_source: compute the source side once per sample in encode_conditions (False: every step).
        train_source_net: SourceNet learns with TargetNet (Animate Anyone's ReferenceNet does).
        source_pose: also add the pose encoder's features of the *source* pose to SourceNet's ``conv_in`` output
            (off in the paper, whose SourceNet sees z_s only and relies on SD-1.5's semantic features to line up
            body parts; a from-scratch SourceNet has no such features, see experiments/tiny/truepose.yaml).
        source_parsing: also add a learned embedding of the one-hot source parsing map to SourceNet's ``conv_in``
            output (off in the paper, for the same reason as ``source_pose``).
        frozen_cache_size: in training, memoise up to this many per-sample CLIP outputs (global token, region
            embeddings), keyed by the source image and parsing content (0: off; :mod:`pgpis.models.frozen_cache`).
        *_key: batch keys read by :meth:`encode_conditions`.
        store: a feature store written by ``pgpis data cache`` (``--store``); its ``latents`` replace the VAE
            encode of the source (and the core's of the target) in training, its ``clip`` the frozen CLIP's
            global and CAA region embeddings: CLIP is then not built in training, and sampling builds it on
            first use (:mod:`pgpis.store.lazy`). The first stage belongs to the core (it decodes samples).
    """

    condition_groups = ("source",)
    kind = "truepose"
    label = "TruePose"
    unet_attr = "target_net"  # SourceNet is built as its copy
    store_hint = ("TruePose's CLIP is storable when frozen (model.init_args.denoiser.init_args.clip_encoder.trainable: "
                  "false) and source_features: sourcenet; when the CLIP is trainable its outputs change with training, "
                  "and with source_features: clip TargetNet reads its patch tokens, which the store does not hold")

    def __init__(
        self,
        unet: Optional[dict[str, Any]] = None,
        fusion: Literal["hpfa", "reference"] = "hpfa",
        caa: bool = True,
        source_features: Literal["sourcenet", "clip"] = "sourcenet",
        layers: Optional[Sequence[str]] = None,
        clip_encoder: Optional[dict[str, Any]] = None,
        caa_regions: int = 2,
        delta: float = DELTA,
        sigma: float = SIGMA,
        label_set: str = "lip",
        keypoint_categories: Optional[Mapping[int, Sequence[str]]] = None,
        caa_exclude: Sequence[str] = ("Background",),
        downsample_factor: int = 8,
        pose_block_out_channels: Optional[Sequence[int]] = None,
        cache_source: bool = True,
        train_source_net: bool = True,
        source_pose: bool = False,
        source_parsing: bool = False,
        gradient_checkpointing: bool = False,
        frozen_cache_size: int = 0,
        source_key: str = "source",
        pose_key: str = "target_pose",
        source_pose_key: str = "source_pose",
        parsing_key: str = "source_parsing",
        keypoints_key: str = "target_keypoints",
        store: Optional[str] = None,
    ):
        super().__init__()
        self.store = store  # a feature store (pgpis data cache): stored latents / CLIP outputs are read, not computed
        if fusion not in ("hpfa", "reference"):
            raise ValueError(f"SiameseDenoiser: fusion must be 'hpfa' or 'reference', got {fusion!r}")
        if source_features not in ("sourcenet", "clip"):
            raise ValueError(f"SiameseDenoiser: source_features must be 'sourcenet' or 'clip', got {source_features!r}")
        if label_set not in LABEL_SETS:
            raise ValueError(f"SiameseDenoiser: unknown label_set {label_set!r}; use one of {sorted(LABEL_SETS)}")
        self.fusion, self.use_caa, self.source_features = fusion, bool(caa), source_features
        self.caa_regions, self.delta, self.sigma = int(caa_regions), float(delta), float(sigma)
        self.label_set = LABEL_SETS[label_set]
        self.keypoint_categories = ({int(k): tuple(v) for k, v in keypoint_categories.items()}
                                    if keypoint_categories is not None else None)
        self.downsample_factor = int(downsample_factor)
        self.cache_source = bool(cache_source)
        self.source_key, self.pose_key, self.source_pose_key = source_key, pose_key, source_pose_key
        self.parsing_key, self.keypoints_key = parsing_key, keypoints_key
        self._first_stage_ref: list[nn.Module] = []  # not a submodule: the LDM core owns the first stage
        self.clip_cache = FrozenOutputCache(frozen_cache_size)
        self.region_cache = FrozenOutputCache(frozen_cache_size)

        self.target_net = build_unet(**dict(unet or {"preset": "tiny"}))
        all_layers = self_attention_layers(self.target_net)
        self.layers = list(layers) if layers is not None else all_layers
        bad = sorted(set(self.layers) - set(all_layers))
        if bad or not self.layers:
            raise ValueError(f"SiameseDenoiser: layers {bad or '[]'} are not self-attention layers of TargetNet; "
                             f"choose from {all_layers}")
        self._last_fused_layer = max(self.layers, key=all_layers.index)  # SourceNet's forward stops after it
        self.source_net = copy.deepcopy(self.target_net) if source_features == "sourcenet" else None
        if self.source_net is not None:
            set_processors(self.source_net, {name: CaptureProcessor(name) for name in self.layers})
            self.source_net.requires_grad_(bool(train_source_net))

        clip_spec = {"trainable": False, **dict(clip_encoder or {"preset": "tiny"})}
        self.clip_trainable = bool(clip_spec["trainable"])
        self._clip_identity = {"clip_encoder": json.loads(json.dumps(clip_spec)), "source_key": source_key,
                               "parsing_key": parsing_key, "caa": bool(caa), "label_set": label_set,
                               "caa_exclude": list(caa_exclude)}
        stored = stored_parts(store)
        build_clip = lambda: build_image_encoder(clip_spec, key="model.init_args.denoiser.init_args.clip_encoder")  # noqa: E731
        if "clip" in stored and source_features == "sourcenet" and not self.clip_trainable:
            # never built in training (the store holds its outputs); sampling builds it on first use
            self.clip: Any = LazyFrozen(build_clip, store, "clip")
            clip_dim = int(stored["clip"][-1])
        else:
            self.clip = build_clip()
            clip_dim = int(self.clip.embed_dim)
        cross_dim = int(self.target_net.config.cross_attention_dim)
        self.image_proj = nn.Linear(clip_dim, cross_dim) if clip_dim != cross_dim else nn.Identity()

        widths = pose_block_out_channels or widths_for_factor(self.downsample_factor, POSE_GUIDER_WIDTHS)
        self.pose_encoder = PoseEncoder(first_block_width(self.target_net), self.downsample_factor, widths)

        self.clip_adapters = nn.ModuleDict()
        if source_features == "clip":
            if not isinstance(self.clip, CLIPImageEncoder):
                raise ValueError("SiameseDenoiser: source_features='clip' (ablation B1) needs the transformers CLIP "
                                 "backend (patch tokens); set clip_encoder.backend: clip")
            hidden = int(self.clip.model.config.hidden_size)
            for name in self.layers:
                channels = self.target_net.get_submodule(name).to_q.in_features
                self.clip_adapters[self._key(name)] = ClipLayerAdapter(hidden, channels)

        processors: dict[str, nn.Module] = {}
        for name in self.layers:
            attn = self.target_net.get_submodule(name)
            caa_module = RegionCrossAttention(attn.to_q.out_features, clip_dim, attn.heads) if caa else None
            processors[name] = (HPFAAttnProcessor(name, attn, caa_module) if fusion == "hpfa"
                                else ReferenceAttnProcessor(name, caa_module))
        set_processors(self.target_net, processors)

        allowed = torch.ones(self.label_set.num_classes, dtype=torch.bool)
        for name in caa_exclude:
            idx = self.label_set.index(name)
            if idx is not None:
                allowed[idx] = False
        self.register_buffer("caa_allowed", allowed, persistent=False)

        self._attach_pose_residual(self.target_net.conv_in)
        for flag, value in (("source_pose", source_pose), ("source_parsing", source_parsing)):
            if value and self.source_net is None:
                raise ValueError(f"SiameseDenoiser: {flag}=true conditions SourceNet, but source_features='clip' "
                                 f"(ablation B1) has none; set {flag}: false")
        self.source_pose, self.source_parsing = bool(source_pose), bool(source_parsing)
        self.parsing_encoder = (PoseEncoder(first_block_width(self.target_net), self.downsample_factor, widths,
                                            in_channels=self.label_set.num_classes) if self.source_parsing else None)
        if self.source_pose or self.source_parsing:
            self._attach_pose_residual(self.source_net.conv_in)  # armed only around SourceNet's call
        if gradient_checkpointing:
            self.enable_gradient_checkpointing()

    # ------------------------------------------------------------------ plumbing
    @staticmethod
    def _key(layer: str) -> str:
        return layer.replace(".", "__")

    def attach_first_stage(self, first_stage: nn.Module) -> None:
        """Give the denoiser the core's first stage (SourceNet encodes the source image with it; not registered)."""
        factor = int(getattr(first_stage, "downsample_factor", self.downsample_factor))
        if factor != self.downsample_factor:
            raise ValueError(f"SiameseDenoiser: downsample_factor={self.downsample_factor} but the first stage "
                             f"downsamples by {factor}; set model.init_args.denoiser.init_args.downsample_factor: {factor}")
        channels = getattr(first_stage, "latent_channels", None)
        if channels is not None and int(channels) != int(self.target_net.config.in_channels):
            raise ValueError(f"SiameseDenoiser: the first stage gives {channels} latent channels but the UNet takes "
                             f"{self.target_net.config.in_channels}; set unet.in_channels/out_channels: {channels}")
        self._first_stage_ref[:] = [first_stage]

    def enable_gradient_checkpointing(self) -> None:
        for net in (self.target_net, self.source_net):
            if net is not None:
                net.enable_gradient_checkpointing()

    def _tensor(self, batch: Mapping[str, object], key: str, what: str) -> Tensor:
        value = batch.get(key)
        if not isinstance(value, Tensor):
            fix = ("build the DataModule with parsing: true (data.init_args.parsing: true)" if "parsing" in key
                   else "set the matching *_key of the SiameseDenoiser")
            raise KeyError(f"SiameseDenoiser: the batch has no tensor '{key}' ({what}); batch keys: {sorted(batch)}. "
                           f"Fix: {fix}")
        return value

    # ------------------------------------------------------------------ source side (once per sample)
    def target_mask(self, parsing: Tensor, keypoints: Tensor) -> Tensor:
        """M: bool [B, H, W], union of the source-parsing classes the target pose contains."""
        masks = []
        for p, kp in zip(parsing, keypoints):
            cats = categories_for_keypoints(kp.detach().cpu().numpy(), self.keypoint_categories)
            masks.append(category_mask(p, cats, self.label_set))
        return torch.stack(masks)

    def region_embeddings(self, source: Tensor, parsing: Tensor) -> tuple[Tensor, Tensor]:
        """CLIP embeddings of the bounding-box crop of every allowed class present: [B, R, D] and present [B, R]."""
        b, r = source.shape[0], self.label_set.num_classes
        boxes, present = region_boxes(parsing, r, self.caa_allowed)
        clip = self.clip.materialize(source.device) if isinstance(self.clip, LazyFrozen) else self.clip
        emb = source.new_zeros(b, r, clip.embed_dim, dtype=torch.float32)
        crops = crop_regions(source.float(), boxes, present, clip.input_size)
        if crops.shape[0]:
            emb = emb.index_put((*torch.nonzero(present, as_tuple=True),), clip(crops).float())
        return emb, present

    def stored_clip(self, source: Tensor, parsing: Tensor) -> Tensor:
        """What the store's ``clip`` part holds per source view: [B, 1 + R, D], the global embedding, then
        (with CAA) every class's region embedding (zeros where the class is absent)."""
        rows = [self.clip(source).float()[:, None]]
        if self.use_caa:
            rows.append(self.region_embeddings(source, parsing.long())[0])
        return torch.cat(rows, 1)

    def store_identity(self) -> dict[str, dict[str, Any]]:
        """The config the stored CLIP outputs depend on (pgpis.store compares it with the manifest)."""
        path = self._clip_identity["clip_encoder"].get("name_or_path")
        return {"clip": {"config": self._clip_identity, "files_digest": files_digest(path) if path else None}}

    def frozen_parts(self) -> dict[str, PartSpec]:
        """The frozen CLIP's global and region embeddings per (image, flip); nothing for ablation B1 (it reads CLIP's
        patch tokens) or a trainable CLIP (its outputs change every step)."""
        if self.source_features != "sourcenet" or self.clip_trainable:
            return {}
        ident = self.store_identity()["clip"]

        @torch.no_grad()
        def clip(batch: Mapping[str, Any]) -> Tensor:
            return self.stored_clip(batch[self.source_key], batch[self.parsing_key])

        return {"clip": PartSpec("clip", "image", clip, self.clip, ident["config"], ident["files_digest"])}

    def export_folders(self, init_args: Mapping[str, Any]) -> list[ExportFolder]:
        """The CLIP tower as a folder when the config names it by hub id or folder."""
        if not (init_args.get("clip_encoder") or {}).get("name_or_path") or self.clip is None:
            return []
        encoder = self.clip
        return [ExportFolder("clip_encoder.name_or_path", "clip_encoder", "clip",
                             lambda folder: save_pretrained_folder(getattr(encoder, "model", encoder), folder,
                                                                   "CLIP encoder"))]

    def _source_tokens(self, source_input: Tensor, clip_tokens: Tensor, latent_size: tuple[int, int],
                       source_residual: Optional[Tensor] = None) -> dict[str, Tensor]:
        """F' per fused layer: SourceNet's captured attn1 inputs, or (B1) CLIP patches through per-layer MLPs.

        `source_residual` (source pose and/or parsing features) is added to SourceNet's ``conv_in`` output.
        """
        if self.source_net is not None:
            store = CaptureStore(stop_after=self._last_fused_layer)
            t0 = torch.zeros(source_input.shape[0], dtype=torch.long, device=source_input.device)
            armed = self._pose_injection(source_residual) if source_residual is not None else contextlib.nullcontext()
            try:
                with armed:
                    self.source_net(source_input.to(self.source_net.dtype), t0, encoder_hidden_states=clip_tokens,
                                    cross_attention_kwargs={FUSION_KWARG: store})
            except CaptureComplete:
                pass  # every fused layer captured: the rest of SourceNet's forward would be unused
            missing = [n for n in self.layers if n not in store]
            if missing:
                raise RuntimeError(f"SiameseDenoiser: SourceNet did not run layers {missing}")
            return {n: store[n] for n in self.layers}
        out = {}
        for name in self.layers:
            k = layer_downscale(self.target_net, name)
            h, w = latent_size
            for _ in range(k):
                h, w = -(-h // 2), -(-w // 2)
            out[name] = self.clip_adapters[self._key(name)](source_input, (h, w))
        return out

    def source_conditions(self, raw: Mapping[str, Tensor], clip_tokens: Tensor) -> dict[str, Tensor]:
        """Per-layer fusion inputs from the raw source conditions (see :class:`FusionContext` for the keys)."""
        mask, parsing = raw["target_mask"], raw["parsing"]
        latent_size = (mask.shape[-2] // self.downsample_factor, mask.shape[-1] // self.downsample_factor)
        tokens = self._source_tokens(raw["source_input"], clip_tokens, latent_size, raw.get("source_residual"))
        out: dict[str, Tensor] = {}
        for name, f_src in tokens.items():
            if self.fusion == "reference":
                out[f"{name}/tokens"] = f_src
            if self.fusion == "hpfa" or self.use_caa:
                grid = token_grid(latent_size, f_src.shape[1])
                attn = (self.source_net or self.target_net).get_submodule(name)
                sa = source_attention(
                    attn, f_src,
                    key_mask=mask_to_tokens(mask, grid) if self.fusion == "hpfa" else None,
                    parsing=parsing_to_tokens(parsing, grid) if self.use_caa else None,
                    num_classes=self.label_set.num_classes, delta=self.delta, sigma=self.sigma,
                )
                if self.fusion == "hpfa":
                    out[f"{name}/hpfa"] = sa.hidden
                if self.use_caa:
                    idx, valid = lowest_regions(sa.region_scores, self.caa_regions, raw["region_ok"])
                    region_clip = raw["region_clip"]
                    out[f"{name}/clip"] = torch.gather(region_clip, 1, idx[..., None].expand(-1, -1, region_clip.shape[-1]))
                    out[f"{name}/clip_valid"] = valid
        return out

    # ------------------------------------------------------------------ the contract
    def encode_conditions(self, batch: Mapping[str, object], keep: Optional[KeepMask] = None) -> Conditions:
        """Pose features, the CLIP token and the source side (cached per layer, or raw when ``cache_source=False``).

        With a training `keep` mask, the source side (SourceNet, CLIP, H', CAA's regions) runs on the rows that
        keep the source only; the dropped rows get zeros, which :meth:`forward` never reads (their fusion is
        switched off and their CLIP token zeroed). Losses and gradients are those of encoding every row; at the
        paper's 30% dropout this skips 30% of SourceNet's forward and backward.
        """
        pose = self._tensor(batch, self.pose_key, "target pose image")
        rows = self._kept_rows(keep, pose.shape[0]) if self.cache_source else None
        if rows is None:
            source_side = self._encode_source_side(batch)
        else:
            source_side = {k: _scatter_rows(v, rows, pose.shape[0])
                           for k, v in self._encode_source_side(_select_rows(batch, rows, pose.shape[0])).items()}
        return {"pose": self.pose_encoder(pose), **source_side}

    @staticmethod
    def _kept_rows(keep: Optional[KeepMask], batch_size: int) -> Optional[Tensor]:
        """Indices of the rows that keep the source, or None when every row does (or no mask is given)."""
        if keep is None or "source" not in keep:
            return None
        kept = keep["source"].to(torch.bool)
        if kept.shape != (batch_size,):
            raise ValueError(f"SiameseDenoiser: keep['source'] has shape {tuple(kept.shape)}, expected ({batch_size},)")
        if bool(kept.all()):
            return None
        rows = torch.nonzero(kept).flatten()
        return rows if rows.numel() else rows.new_zeros(1)  # all dropped: one row, unread, gives the shapes

    def _encode_source_side(self, batch: Mapping[str, object]) -> Conditions:
        """The CLIP token and the source side of :meth:`encode_conditions` for every row of `batch`."""
        source = self._tensor(batch, self.source_key, "source image")
        parsing = self._tensor(batch, self.parsing_key, "source parsing map").long()
        keypoints = self._tensor(batch, self.keypoints_key, "target OpenPose-18 keypoints")
        if parsing.shape[-2:] != source.shape[-2:]:
            raise ValueError(f"SiameseDenoiser: '{self.parsing_key}' is {tuple(parsing.shape[-2:])} but "
                             f"'{self.source_key}' is {tuple(source.shape[-2:])} (h x w); parsing maps must be at the "
                             "image size (the DataModule resizes them with nearest)")
        # sampling encodes once per sample already; training revisits samples every epoch (frozen CLIP only)
        memo = self.training and not self.clip_trainable
        stored_clip = stored_tensor(batch, "clip")  # a feature store's (pgpis.store), else the frozen CLIP
        if stored_clip is not None:
            clip_global = stored_clip[:, 0].float()
            region = ((stored_clip[:, 1:].float(), region_boxes(parsing, self.label_set.num_classes,
                                                                self.caa_allowed)[1]) if self.use_caa else None)
        else:
            with torch.set_grad_enabled(torch.is_grad_enabled() and self.clip_trainable):
                clip_global = self.clip_cache(self.clip, source, use=memo).float()
                region = self.region_cache(self.region_embeddings, source, parsing, use=memo) if self.use_caa else None
        clip_tokens = self.image_proj(clip_global)[:, None]
        raw: dict[str, Tensor] = {"target_mask": self.target_mask(parsing, keypoints), "parsing": parsing}
        if region is not None:
            raw["region_clip"], raw["region_ok"] = region
        if self.source_net is not None:
            if not self._first_stage_ref:
                raise RuntimeError("SiameseDenoiser: no first stage attached; use it inside "
                                   "pgpis.stages.parsing_siamese_ldm.ParsingSiameseLDM (it calls attach_first_stage)")
            stored = stored_tensor(batch, f"latents/{self.source_key}")  # a feature store's (pgpis.store), else encode
            with torch.no_grad():
                raw["source_input"] = (self._first_stage_ref[0].encode(source) if stored is None else stored).float()
            residuals = []
            if self.source_pose:
                residuals.append(self.pose_encoder(self._tensor(batch, self.source_pose_key, "source pose image")))
            if self.parsing_encoder is not None:
                one_hot = F.one_hot(parsing, self.label_set.num_classes)  # maps are range-checked on load
                residuals.append(self.parsing_encoder(one_hot.permute(0, 3, 1, 2).to(source.dtype)))
            if residuals:
                raw["source_residual"] = torch.stack(residuals).sum(0)
        else:
            with torch.set_grad_enabled(torch.is_grad_enabled() and self.clip_trainable):
                raw["source_input"] = self.clip.model(pixel_values=self.clip.preprocess(source)).last_hidden_state[:, 1:]
        conditions: Conditions = {"clip_tokens": clip_tokens}
        conditions.update(self.source_conditions(raw, clip_tokens) if self.cache_source else raw)
        return conditions

    def forward(self, noisy_latents: Tensor, timesteps: Tensor, conditions: Conditions, keep: KeepMask) -> Tensor:
        """One TargetNet step; rows with keep['source'] False see no source (zero CLIP token, no fusion)."""
        if "source" not in keep:
            raise KeyError(f"SiameseDenoiser: keep-mask has no 'source' entry (groups: {self.condition_groups})")
        kept = keep["source"].to(device=noisy_latents.device, dtype=torch.bool)
        clip_tokens = conditions["clip_tokens"]
        layer_conditions = conditions if self.cache_source else self.source_conditions(conditions, clip_tokens)
        context = FusionContext(layer_conditions, kept)
        ehs = clip_tokens * kept[:, None, None].to(clip_tokens.dtype)
        with self._pose_injection(conditions["pose"]):
            out = self.target_net(noisy_latents, timesteps, encoder_hidden_states=ehs.to(self.target_net.dtype),
                                  cross_attention_kwargs={FUSION_KWARG: context}).sample
        if context.used != set(self.layers):
            raise RuntimeError(f"SiameseDenoiser: fused layers {sorted(set(self.layers) - context.used)} did not run")
        return out


__all__ = ["SiameseDenoiser", "ClipLayerAdapter", "layer_downscale", "POSE_GUIDER_WIDTHS"]
