"""FPDM's denoiser: an SD UNet conditioned on pose, DINOv2 source tokens and the IPF fusion embedding.

Three condition groups (docs/methods.md, FPDM stage 2), each switched per sample by the
core's keep-mask (training dropout and guidance branches use the same path):

* ``pose``: the target pose image through a ControlNet-style
  :class:`~pgpis.models.pose_encoder.PoseEncoder`, **added to the output of the
  UNet's conv_in**. The addition is a forward hook on ``unet.conv_in`` that is
  armed only while :meth:`FPDMDenoiser.forward` runs (a context manager); the
  UNet's own forward and its state-dict keys stay untouched, so the UNet
  still saves/loads with diffusers' ``save_pretrained`` / ``from_pretrained``.
  Dropped rows: the residual is zero (the plain UNet input path).
* ``source``: the frozen DINOv2 encoder's tokens of the source image (CLS +
  patches; 512x512 input in the paper) -> Linear-GELU-LayerNorm-Linear -> the
  cross-attention ``encoder_hidden_states`` (there is no text encoder).
  Dropped rows: every token is replaced by one learned null token
  (initialised at zero), the "empty prompt" of this model.
* ``fusion``: a 768-d global embedding from a frozen model -> MLP
  (768 -> 768 -> 1280, SiLU) -> **added to the timestep embedding**, through
  diffusers' ``class_embed_type="identity"`` + ``class_labels`` (the MLP is
  ours, so its widths are the paper's and a pretrained UNet gains no weights).
  Dropped rows: the added embedding is zero. Sources of the embedding — the
  paper's ablation rows:

  - ``fusion="ipf"`` + ``fusion_model=<export folder>``: the stage-1 IPF model
    (``pgpis.models.fusion.load_fusion_model``) on (source, target pose), B5 with
    the baseline-loss export, B6 (the paper's model) with the source-enhanced one;
  - ``fusion="clip"`` (B4): the plain CLIP image embedding of the source;
  - ``fusion="none"`` (B3): no fusion embedding; the denoiser then has only the
    groups ("pose", "source"), so use plain CFG for it.

Frozen encoders (DINOv2, IPF, CLIP) run under ``no_grad`` and stay in eval mode
whatever ``train()`` is called with (no dropout in the conditioning, a pitfall of
the reference code). Being deterministic, their outputs can be memoised across
training epochs (``frozen_cache_size``, :mod:`pgpis.models.frozen_cache`). The
last layers of the pose encoder and of the fusion MLP are zero-initialised, so at initialisation the denoiser equals the plain UNet
fed the projected source tokens: a pretrained UNet starts undisturbed.
"""
from __future__ import annotations

import os
from typing import Any, Literal, Mapping, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from pgpis.diffusion.denoiser import ConditionalDenoiser, Conditions, ExportFolder, KeepMask, stored_tensor
from pgpis.models.frozen_cache import FrozenOutputCache
from pgpis.models.pose_encoder import PoseEncoder, PoseResidualInjection
from pgpis.models.unets import build_unet, first_block_width, time_embedding_width
from pgpis.pretrained import save_pretrained_folder
from pgpis.store.lazy import LazyFrozen, stored_parts
from pgpis.store.parts import PartSpec

FusionKind = Literal["ipf", "clip", "none"]

#: batch keys each fusion kind reads by default (the DataModule's ``encoder_inputs={"clip": ...}`` views)
DEFAULT_FUSION_KEYS: dict[str, tuple[str, ...]] = {
    "ipf": ("clip_source", "clip_target_pose"),
    "clip": ("clip_source",),
    "none": (),
}


class FrozenDinoV2Tokens(nn.Module):
    """Source image [-1, 1] -> DINOv2 last-layer tokens [B, 1 + patches, hidden] (frozen, eval, no grad).

    `preset` / `name_or_path` as in :func:`pgpis.models.encoders.build_dinov2`;
    `size` is the encoder input (h, w) (paper: 512x512 -> 1297 tokens). A side that is not a multiple of
    the patch size is fine, as in transformers (the paper preset uses 512x512): the stride-14 patch convolution covers
    ``side // 14`` patches and ignores the last ``side % 14`` pixels (512 -> 36 patches over 504 pixels).
    """

    def __init__(self, preset: str | None = "tiny", name_or_path: str | None = None,
                 size: Sequence[int] = (64, 64)):
        super().__init__()
        from pgpis.models.encoders import build_dinov2, dinov2_preprocess

        self.model = build_dinov2(preset=preset, name_or_path=name_or_path).requires_grad_(False).eval()
        self.size = (int(size[0]), int(size[1]))
        self.preprocess = dinov2_preprocess(self.size)
        self.hidden_size = int(self.model.config.hidden_size)
        self.eval()

    def train(self, mode: bool = True) -> "FrozenDinoV2Tokens":
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        return self.model(pixel_values=self.preprocess(images)).last_hidden_state


class SourceProjection(nn.Module):
    """Encoder tokens -> cross-attention tokens: Linear-GELU-LayerNorm-Linear (paper's projection)."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, out_dim), nn.GELU(), nn.LayerNorm(out_dim), nn.Linear(out_dim, out_dim))

    def forward(self, tokens: Tensor) -> Tensor:
        return self.net(tokens)


class FusionAdapter(nn.Module):
    """Global embedding [B, in] -> timestep-embedding offset [B, out]: Linear-SiLU-Linear, last layer zero."""

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int | None = None):
        super().__init__()
        hidden = hidden_dim or in_dim
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.SiLU(), nn.Linear(hidden, out_dim))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, embedding: Tensor) -> Tensor:
        return self.net(embedding)


def _frozen(module: nn.Module) -> nn.Module:
    """No gradients, eval mode; a module's own ``freeze()`` (pgpis encoders, IPF exports) also pins eval mode."""
    freeze = getattr(module, "freeze", None)
    module = freeze() if callable(freeze) else module
    return module.requires_grad_(False).eval()


def _embed_dim(module: nn.Module, explicit: int | None, what: str) -> int:
    """An encoder's output width: explicit, else its ``embed_dim`` (pgpis encoders and IPF exports have one)."""
    if explicit is not None:
        return int(explicit)
    for owner in (module, getattr(module, "encoder", None), getattr(module, "combiner", None)):
        dim = getattr(owner, "embed_dim", None)
        if isinstance(dim, int):
            return dim
    raise ValueError(f"FPDMDenoiser: cannot tell the output width of the {what} ({type(module).__name__} has no "
                     "`embed_dim`); set model.denoiser.init_args.fusion_dim")


def _checked(spec: Optional[Mapping[str, Any]], target: type, key: str) -> dict[str, Any]:
    """`spec` as kwargs of `target`, with unknown keys named (rather than a bare TypeError)."""
    import inspect

    spec = dict(spec or {})
    known = set(inspect.signature(target.__init__).parameters) - {"self"}
    unknown = sorted(set(spec) - known)
    if unknown:
        raise ValueError(f"FPDMDenoiser: unknown key(s) {unknown} in model.denoiser.init_args.{key}; use {sorted(known)}")
    return spec


def _store_identity(source_encoder: Optional[Mapping[str, Any]], source_key: str, fusion: str,
                    fusion_model: Union[str, os.PathLike, nn.Module, None], clip_encoder: Optional[Mapping[str, Any]],
                    fusion_keys: Optional[Sequence[str]]) -> dict[str, dict[str, Any]]:
    """What the stored DINOv2 tokens and fusion embeddings depend on (pgpis.store compares it with the manifest)."""
    import json

    from pgpis.store.manifest import files_digest

    plain = lambda x: json.loads(json.dumps(x))  # noqa: E731 (tuples -> lists, as the manifest holds them)
    keys = list(fusion_keys) if fusion_keys is not None else list(DEFAULT_FUSION_KEYS.get(fusion, ()))
    folder = fusion_model if isinstance(fusion_model, (str, os.PathLike)) else None
    dino_path = (source_encoder or {}).get("name_or_path")
    return {"dino": {"config": plain({"source_encoder": dict(source_encoder or {}), "source_key": source_key}),
                     "files_digest": files_digest(dino_path) if dino_path else None},
            "fusion": {"config": plain({"fusion": fusion, "clip_encoder": dict(clip_encoder or {}), "fusion_keys": keys}),
                       "files_digest": files_digest(folder) if folder is not None else None}}


def build_fusion_encoder(kind: FusionKind, fusion_model: Union[str, os.PathLike, nn.Module, None],
                         clip_encoder: Optional[Mapping[str, Any]]) -> Optional[nn.Module]:
    """The frozen module that gives the fusion-group embedding for ablation row `kind`."""
    if kind == "none":
        if fusion_model is not None:
            raise ValueError("FPDMDenoiser: fusion='none' (B3) but fusion_model is set; drop one of them")
        return None
    if kind == "ipf":
        if fusion_model is None:
            raise ValueError("FPDMDenoiser: fusion='ipf' needs fusion_model, the stage-1 export folder "
                             "(`make train-ipf` writes it), or fusion='none' for the B3 ablation")
        if isinstance(fusion_model, nn.Module):
            return _frozen(fusion_model)
        from pgpis.models.fusion import load_fusion_model

        return _frozen(load_fusion_model(fusion_model))
    if kind == "clip":
        if isinstance(fusion_model, nn.Module):
            return _frozen(fusion_model)
        from pgpis.models.encoders import build_image_encoder

        spec = {**dict(clip_encoder or {"preset": "tiny"}), "trainable": False}
        return _frozen(build_image_encoder(spec, key="model.denoiser.init_args.clip_encoder"))
    raise ValueError(f"FPDMDenoiser: fusion must be 'ipf', 'clip' or 'none', got {kind!r}")


class FPDMDenoiser(PoseResidualInjection, ConditionalDenoiser):
    """FPDM stage 2's conditional UNet (see the module docstring for the conditioning).

    Args:
        unet: :func:`pgpis.models.unets.build_unet` kwargs (``preset`` or ``pretrained`` + overrides).
        source_encoder: :class:`FrozenDinoV2Tokens` kwargs (``preset``/``name_or_path``, ``size``).
        fusion: "ipf" (B5/B6), "clip" (B4) or "none" (B3).
        fusion_model: the IPF export folder (or a module: any frozen ``forward(*inputs) -> [B, D]``).
        clip_encoder: :class:`pgpis.models.encoders.EncoderSpec` dict for ``fusion="clip"``.
        fusion_dim: width of the fusion embedding when the module has no ``embed_dim``.
        fusion_hidden: hidden width of the fusion MLP (default: ``fusion_dim``, i.e. 768 -> 768 -> 1280).
        downsample_factor: the first stage's factor (8 for SD's VAE); sets the pose encoder's stride-2 steps.
        pose_block_out_channels: pose encoder widths (default: the paper's, cut to the factor).
        pose_key, source_key, fusion_keys: batch keys read by :meth:`encode_conditions`.
        gradient_checkpointing: checkpoint the UNet's blocks (memory for compute).
        frozen_cache_size: in training, memoise up to this many per-sample outputs of each frozen
            encoder, keyed by the input's content (0: off; see :mod:`pgpis.models.frozen_cache`).
        store: a feature store written by ``pgpis data cache`` (training sets it from ``--store``): the frozen
            encoders whose outputs it holds ("dino", "fusion") are not built, and batches carrying the stored
            tensors skip them; sampling builds them on first use (:mod:`pgpis.store.lazy`).
    """

    kind = "fpdm"
    label = "FPDM"
    unet_attr = "unet"
    store_hint = "FPDM stores 'dino' always and 'fusion' with fusion: ipf or clip (not with fusion: none)"

    def __init__(
        self,
        unet: Optional[dict[str, Any]] = None,
        source_encoder: Optional[dict[str, Any]] = None,
        fusion: FusionKind = "ipf",
        fusion_model: Union[str, nn.Module, None] = None,
        clip_encoder: Optional[dict[str, Any]] = None,
        fusion_dim: Optional[int] = None,
        fusion_hidden: Optional[int] = None,
        downsample_factor: int = 8,
        pose_block_out_channels: Optional[Sequence[int]] = None,
        pose_key: str = "target_pose",
        source_key: str = "dino_source",
        fusion_keys: Optional[Sequence[str]] = None,
        gradient_checkpointing: bool = False,
        frozen_cache_size: int = 0,
        store: Optional[str] = None,
    ):
        super().__init__()
        self.store = store  # a feature store (pgpis data cache): the frozen parts it holds are read, not built
        stored = stored_parts(store)
        self._identity_args = (source_encoder, source_key, fusion, fusion_model, clip_encoder, fusion_keys)
        self.source_cache = FrozenOutputCache(frozen_cache_size)
        self.fusion_cache = FrozenOutputCache(frozen_cache_size)
        unet_kwargs = dict(unet or {"preset": "tiny"})
        self.fusion_kind = fusion
        fusion_encoder = (LazyFrozen(lambda: build_fusion_encoder(fusion, fusion_model, clip_encoder), store, "fusion")
                          if "fusion" in stored and fusion != "none" else build_fusion_encoder(fusion, fusion_model, clip_encoder))
        if fusion_encoder is not None:
            unet_kwargs.setdefault("class_embed_type", "identity")
        self.unet = build_unet(**unet_kwargs)
        if fusion_encoder is not None and self.unet.config.class_embed_type != "identity":
            raise ValueError(
                f"FPDMDenoiser: the fusion embedding enters through class_embed_type='identity', but the UNet config "
                f"has class_embed_type={self.unet.config.class_embed_type!r}; remove it from model.denoiser.init_args.unet"
            )
        dino_kwargs = _checked(source_encoder, FrozenDinoV2Tokens, "source_encoder")
        if "dino" in stored:  # never built in training; sampling builds it on first use (pgpis.store.lazy)
            self.source_encoder = LazyFrozen(lambda: FrozenDinoV2Tokens(**dino_kwargs), store, "dino")
            hidden = int(stored["dino"][-1])
        else:
            self.source_encoder = FrozenDinoV2Tokens(**dino_kwargs)
            hidden = self.source_encoder.hidden_size
        cross_dim = int(self.unet.config.cross_attention_dim)
        self.source_projection = SourceProjection(hidden, cross_dim)
        self.null_source = nn.Parameter(torch.zeros(1, 1, cross_dim))
        self.pose_encoder = PoseEncoder(first_block_width(self.unet), downsample_factor, pose_block_out_channels)
        self.fusion_encoder = fusion_encoder
        if fusion_encoder is not None:
            dim = (int(stored["fusion"][-1]) if isinstance(fusion_encoder, LazyFrozen)
                   else _embed_dim(fusion_encoder, fusion_dim, f"fusion model ({fusion})"))
            self.fusion_adapter: Optional[FusionAdapter] = FusionAdapter(dim, time_embedding_width(self.unet), fusion_hidden)
            self.condition_groups = ("pose", "source", "fusion")
        else:
            self.fusion_adapter = None
            self.condition_groups = ("pose", "source")
        self.pose_key, self.source_key = pose_key, source_key
        self.fusion_keys = tuple(fusion_keys) if fusion_keys is not None else DEFAULT_FUSION_KEYS[fusion]
        self._attach_pose_residual(self.unet.conv_in)
        if gradient_checkpointing:
            self.enable_gradient_checkpointing()
        self.train()  # Lightning 2.6 keeps modules in the mode they were built in: trainable parts train, frozen stay eval

    # ------------------------------------------------------------------ module plumbing
    def frozen_modules(self) -> list[nn.Module]:
        """Encoders that never train (eval mode, no gradients)."""
        mods = [m.module if isinstance(m, LazyFrozen) else m for m in (self.source_encoder, self.fusion_encoder)]
        return [m for m in mods if m is not None]

    def store_identity(self) -> dict[str, dict[str, Any]]:
        """Per storable part, the config its stored tensors depend on and the digest of its weights folder."""
        return _store_identity(*self._identity_args)

    def frozen_parts(self) -> dict[str, PartSpec]:
        """DINOv2's source tokens per (image, flip) and, with a fusion model, its embedding per (pair, flip)."""
        ident = self.store_identity()

        @torch.no_grad()
        def dino(batch: Mapping[str, Any]) -> Tensor:
            return self.source_encoder(batch[self.source_key]).float()

        parts = {"dino": PartSpec("dino", "image", dino, self.source_encoder, ident["dino"]["config"],
                                  ident["dino"]["files_digest"])}
        if self.fusion_encoder is not None:
            @torch.no_grad()
            def fusion(batch: Mapping[str, Any]) -> Tensor:
                return self.fusion_encoder(*[batch[k] for k in self.fusion_keys]).float()

            parts["fusion"] = PartSpec("fusion", "pair", fusion, self.fusion_encoder, ident["fusion"]["config"],
                                       ident["fusion"]["files_digest"])
        return parts

    def export_folders(self, init_args: Mapping[str, Any]) -> list[ExportFolder]:
        """The IPF model as its stage-1 export folder; DINOv2 and the CLIP fusion tower when named by hub id/folder."""
        out = []
        if self.fusion_kind == "ipf":
            out.append(ExportFolder("fusion_model", "fusion_model", "fusion_encoder", self.fusion_encoder.save))
        if (init_args.get("source_encoder") or {}).get("name_or_path"):
            out.append(ExportFolder("source_encoder.name_or_path", "source_encoder", "source_encoder",
                                    lambda folder: save_pretrained_folder(self.source_encoder.model, folder,
                                                                          "DINOv2 source encoder")))
        if self.fusion_kind == "clip" and (init_args.get("clip_encoder") or {}).get("name_or_path"):
            encoder = self.fusion_encoder
            out.append(ExportFolder("clip_encoder.name_or_path", "clip_encoder", "fusion_encoder",
                                    lambda folder: save_pretrained_folder(getattr(encoder, "model", encoder), folder,
                                                                          "CLIP encoder")))
        return out

    def train(self, mode: bool = True) -> "FPDMDenoiser":
        super().train(mode)
        for m in self.frozen_modules():
            m.eval()
        return self

    def enable_gradient_checkpointing(self) -> None:
        """Checkpoint the UNet's blocks (the core calls this for ``gradient_checkpointing: true``)."""
        self.unet.enable_gradient_checkpointing()

    # ------------------------------------------------------------------ the contract
    def _batch_tensor(self, batch: Mapping[str, object], key: str, what: str, fix: str) -> Tensor:
        value = batch.get(key)
        if not isinstance(value, Tensor):
            raise KeyError(f"FPDMDenoiser: the batch has no tensor '{key}' ({what}); batch keys: "
                           f"{sorted(batch)}. Fix: {fix}")
        return value

    def encode_conditions(self, batch: Mapping[str, object], keep: Optional[KeepMask] = None) -> Conditions:
        """Pose features, projected source tokens and the fusion offset: timestep-independent, once per sample.

        Frozen encoders run without gradients; the trainable pose encoder,
        projection and fusion MLP keep theirs (so training through this works).
        Every row is encoded whatever `keep` says: the frozen encoders are
        memoised in training, so a dropped row costs little.
        """
        keys_fix = "add the view to data.init_args.encoder_inputs (e.g. dino: [512, 512], clip: [224, 224]) or set the key"
        pose = self._batch_tensor(batch, self.pose_key, "target pose image", f"set model.denoiser.init_args.pose_key")
        source = (batch.get(self.source_key) if stored_tensor(batch, "dino") is not None
                  else self._batch_tensor(batch, self.source_key, "source image for DINOv2", keys_fix))
        memo = self.training  # sampling encodes once per sample already; training revisits samples every epoch
        tokens = stored_tensor(batch, "dino")  # from a feature store (pgpis.store), else the frozen DINOv2
        tokens = self.source_cache(self.source_encoder, source, use=memo) if tokens is None else tokens
        conditions: Conditions = {"pose": self.pose_encoder(pose), "source": self.source_projection(tokens)}
        if self.fusion_encoder is not None and self.fusion_adapter is not None:
            embedding = stored_tensor(batch, "fusion")
            if embedding is None:
                inputs = [self._batch_tensor(batch, k, f"input of the {self.fusion_kind} fusion model", keys_fix)
                          for k in self.fusion_keys]
                with torch.no_grad():
                    embedding = self.fusion_cache(self.fusion_encoder, *inputs, use=memo)
            conditions["fusion"] = self.fusion_adapter(embedding.float())
        return conditions

    def _keep(self, keep: KeepMask, group: str, like: Tensor) -> Tensor:
        """The keep column of `group`, shaped to broadcast over `like` (extra groups in `keep` are ignored)."""
        if group not in keep:
            raise KeyError(f"FPDMDenoiser: keep-mask has no entry for condition group '{group}' "
                           f"(groups: {self.condition_groups})")
        mask = keep[group].to(device=like.device, dtype=torch.bool)
        if mask.shape != (like.shape[0],):
            raise ValueError(f"FPDMDenoiser: keep['{group}'] has shape {tuple(mask.shape)}, expected ({like.shape[0]},)")
        return mask.view(-1, *([1] * (like.dim() - 1)))

    def forward(self, noisy_latents: Tensor, timesteps: Tensor, conditions: Conditions, keep: KeepMask) -> Tensor:
        """One denoising step; rows with keep=False get the group's null (zero pose/fusion, null source token)."""
        pose = conditions["pose"]
        pose = torch.where(self._keep(keep, "pose", pose), pose, torch.zeros((), dtype=pose.dtype, device=pose.device))
        source = conditions["source"]
        null = self.null_source.to(source.dtype).expand_as(source)
        source = torch.where(self._keep(keep, "source", source), source, null)
        class_labels = None
        if self.fusion_adapter is not None:
            fusion = conditions["fusion"]
            class_labels = torch.where(self._keep(keep, "fusion", fusion), fusion,
                                       torch.zeros((), dtype=fusion.dtype, device=fusion.device))
        with self._pose_injection(pose):
            return self.unet(noisy_latents, timesteps, encoder_hidden_states=source, class_labels=class_labels).sample


__all__ = ["FPDMDenoiser", "FrozenDinoV2Tokens", "SourceProjection", "FusionAdapter", "build_fusion_encoder"]
