"""Image encoders (CLIP through transformers or open_clip, DINOv2) and their one preprocessing policy.

Why one module: FPDM encodes the source image, the target pose image and the
target image with the *same* encoder, and stage 2 feeds DINOv2 the source
image. If each caller normalised or cropped differently, the embeddings of the
three images would not be comparable. :class:`EncoderPreprocess` is the single
policy every encoder here applies:

* input: ``float [B, 3, H, W]`` in [-1, 1] (the batch convention);
* resize the **whole** image to the encoder's square input with bicubic
  interpolation (antialiased), **no centre crop**. A person image (512x352,
  h x w) is squashed horizontally instead of losing head and feet to a crop,
  exactly like the paper feeds DINOv2 a 512x512 resize. Source, pose and
  target images all go through the same squash, so the aspect change is
  consistent;
* then the encoder's own mean/std normalisation (CLIP's or ImageNet's).

If the batch already holds the image at the encoder's input size (the
DataModule's ``<enc>_source`` keys, resized with PIL bicubic from the original
file), the resize is skipped.

Encoders are built from an :class:`EncoderSpec`: a tiny config preset (random
weights, no download — tests and the embedded default), a hub id / local folder
for transformers' CLIP, or an open_clip architecture name plus a local weight
file. Every built encoder can describe its architecture (:meth:`ImageEncoder.
export_config`) so an exported model rebuilds offline before its weights load.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pgpis.errors import DataFormatError, MissingWeightsError, Problem
from pgpis.pretrained import load_pretrained

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

PAPER_CLIP_ID = "openai/clip-vit-large-patch14"
PAPER_DINOV2_ID = "facebook/dinov2-large"


class EncoderPreprocess(nn.Module):
    """[-1, 1] images -> the encoder's input: bicubic resize of the whole image (no crop), then mean/std."""

    def __init__(self, size: tuple[int, int], mean: tuple[float, ...], std: tuple[float, ...]):
        super().__init__()
        self.size = (int(size[0]), int(size[1]))
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: Tensor) -> Tensor:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images [B, 3, H, W] in [-1, 1], got shape {tuple(images.shape)}")
        x = images.to(self.mean.dtype)
        if tuple(x.shape[-2:]) != self.size:
            # bicubic overshoots at edges; clamp back into the valid range before normalising
            x = F.interpolate(x, size=self.size, mode="bicubic", antialias=True, align_corners=False).clamp(-1, 1)
        return ((x + 1) / 2 - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"size={self.size} (h x w, whole image, no crop)"


@dataclass
class EncoderSpec:
    """Which image encoder to build (a YAML block ``model.encoder``).

    Exactly one of `preset` (random weights from a named config, no download) or
    `name_or_path` (clip: hub id or local folder with config.json + weights;
    open_clip: architecture name such as ``ViT-H-14``) is set. `pretrained` is the
    open_clip weight file (or tag); `trainable=False` freezes the encoder (eval mode,
    no gradients).
    """

    backend: Literal["clip", "open_clip"] = "clip"
    preset: str | None = "tiny"
    name_or_path: str | None = None
    pretrained: str | None = None
    trainable: bool = True

    @classmethod
    def coerce(cls, value: "EncoderSpec | Mapping[str, Any]", key: str = "model.encoder") -> "EncoderSpec":
        """Accept a spec or its dict form (checkpoints store plain dicts); say which key is wrong."""
        if isinstance(value, EncoderSpec):
            return value
        if not isinstance(value, Mapping):
            raise DataFormatError(Problem("model config", f"expected a mapping, got {type(value).__name__}",
                                          "give backend/preset/name_or_path keys", item=key))
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(value) - known)
        if unknown:
            raise DataFormatError(Problem("model config", f"unknown keys {unknown}", f"use only {sorted(known)}", item=key))
        return cls(**dict(value))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class ImageEncoder(nn.Module):
    """An image tower with projection: [-1, 1] images -> un-normalised ``[B, embed_dim]`` embeddings."""

    embed_dim: int
    preprocess: EncoderPreprocess

    def forward(self, images: Tensor) -> Tensor:
        return self.embed(self.preprocess(images))

    def embed(self, pixel_values: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise TypeError(f"{type(self).__name__} must implement embed()")

    @property
    def input_size(self) -> tuple[int, int]:
        return self.preprocess.size

    def export_config(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise TypeError(f"{type(self).__name__} must implement export_config()")

    def freeze(self) -> "ImageEncoder":
        """No gradients and eval mode for good (a frozen encoder must not re-enable dropout in `train()`)."""
        self.requires_grad_(False)
        self._frozen = True
        return self.eval()

    def train(self, mode: bool = True) -> "ImageEncoder":
        return super().train(mode and not getattr(self, "_frozen", False))


# --------------------------------------------------------------------------- transformers CLIP

CLIP_PRESETS: dict[str, dict[str, Any]] = {
    # transformers test-suite size: milliseconds per step; unit tests
    "tiny": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                 patch_size=8, image_size=64, projection_dim=32),
    # the tiny tower at 32 px (16 patches): the tiny TruePose's 32x24 sources and their region crops hold no more
    # detail, and it trains jointly there, so a quarter of the tokens is a quarter of the cost
    "tiny-32": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                    patch_size=8, image_size=32, projection_dim=32),
    # the embedded default: 4 layers, 64 wide at 64 px learns FPDM's retrieval ordering in minutes on a CPU
    "small": dict(hidden_size=64, intermediate_size=256, num_hidden_layers=4, num_attention_heads=4,
                  patch_size=8, image_size=64, projection_dim=64),
    # openai/clip-vit-large-patch14 vision tower (random weights): full-size checks without a download
    "vit-l-14": dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                     patch_size=14, image_size=224, projection_dim=768, hidden_act="quick_gelu"),
}


class CLIPImageEncoder(ImageEncoder):
    """transformers ``CLIPVisionModelWithProjection``; the embedding is ``image_embeds``."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        cfg = model.config
        self.embed_dim = int(cfg.projection_dim)
        self.preprocess = EncoderPreprocess((cfg.image_size, cfg.image_size), CLIP_MEAN, CLIP_STD)

    def embed(self, pixel_values: Tensor) -> Tensor:
        return self.model(pixel_values=pixel_values).image_embeds

    def export_config(self) -> dict[str, Any]:
        cfg = self.model.config.to_dict()
        cfg.pop("transformers_version", None)
        return {"backend": "clip", "config": cfg}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "CLIPImageEncoder":
        from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

        return cls(CLIPVisionModelWithProjection(CLIPVisionConfig(**dict(config))))

    @classmethod
    def from_pretrained(cls, name_or_path: str) -> "CLIPImageEncoder":
        from transformers import CLIPVisionModelWithProjection

        return cls(load_pretrained("CLIP vision tower with projection", CLIPVisionModelWithProjection.from_pretrained,
                                   name_or_path))


# --------------------------------------------------------------------------- open_clip

OPEN_CLIP_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"embed_dim": 32, "vision_cfg": {"image_size": 64, "layers": 2, "width": 32, "head_width": 8,
                                            "patch_size": 8}},
}


class OpenCLIPImageEncoder(ImageEncoder):
    """The visual tower of an open_clip model (its ``proj`` gives the joint-space embedding)."""

    def __init__(self, visual: nn.Module, arch: Mapping[str, Any], mean=CLIP_MEAN, std=CLIP_STD):
        super().__init__()
        self.visual = visual
        self.arch = dict(arch)  # embed_dim, vision_cfg, quick_gelu: enough to rebuild the tower offline
        self.embed_dim = int(arch["embed_dim"])
        size = visual.image_size if hasattr(visual, "image_size") else arch["vision_cfg"].get("image_size", 224)
        size = tuple(size) if isinstance(size, (tuple, list)) else (int(size), int(size))
        self.preprocess = EncoderPreprocess(size, tuple(mean), tuple(std))

    def embed(self, pixel_values: Tensor) -> Tensor:
        return self.visual(pixel_values)

    def export_config(self) -> dict[str, Any]:
        return {"backend": "open_clip", "arch": self.arch,
                "mean": self.preprocess.mean.flatten().tolist(), "std": self.preprocess.std.flatten().tolist()}

    @classmethod
    def from_arch(cls, arch: Mapping[str, Any], mean=CLIP_MEAN, std=CLIP_STD) -> "OpenCLIPImageEncoder":
        from open_clip.model import CLIPVisionCfg, _build_vision_tower

        visual = _build_vision_tower(int(arch["embed_dim"]), CLIPVisionCfg(**arch["vision_cfg"]),
                                     quick_gelu=bool(arch.get("quick_gelu", False)))
        return cls(visual, arch, mean, std)

    @classmethod
    def from_pretrained(cls, model_name: str, pretrained: str | None) -> "OpenCLIPImageEncoder":
        """open_clip architecture `model_name` with weights from `pretrained` (a local file, or a tag if online)."""
        import open_clip

        cfg = open_clip.get_model_config(model_name)
        if cfg is None:
            raise DataFormatError(Problem("model config", f"unknown open_clip architecture '{model_name}'",
                                          f"use one of open_clip.list_models(), e.g. ViT-H-14",
                                          item="model.encoder.name_or_path"))
        if not pretrained:
            raise DataFormatError(Problem("model config", f"open_clip encoder '{model_name}' has no weights",
                                          "set model.encoder.pretrained to the local checkpoint file "
                                          "(e.g. open_clip_pytorch_model.bin) or use model.encoder.preset",
                                          item="model.encoder.pretrained"))
        try:
            model = open_clip.create_model(model_name, pretrained=pretrained)
        except (OSError, RuntimeError, ValueError) as err:
            raise MissingWeightsError(f"open_clip {model_name} weights", pretrained,
                                      "download the checkpoint once (e.g. from the model's Hugging Face page) and set "
                                      "model.encoder.pretrained to the local file") from err
        arch = {"embed_dim": cfg["embed_dim"], "vision_cfg": cfg["vision_cfg"],
                "quick_gelu": bool(cfg.get("quick_gelu", False))}
        pp = getattr(model.visual, "preprocess_cfg", {}) or {}
        return cls(model.visual, arch, pp.get("mean", CLIP_MEAN), pp.get("std", CLIP_STD))


# --------------------------------------------------------------------------- builders

def build_image_encoder(spec: EncoderSpec | Mapping[str, Any], key: str = "model.encoder") -> ImageEncoder:
    """Build the encoder a spec describes; frozen when ``spec.trainable`` is False."""
    spec = EncoderSpec.coerce(spec, key)
    if (spec.preset is None) == (spec.name_or_path is None):
        raise DataFormatError(Problem("model config", "set exactly one of preset and name_or_path "
                                      f"(got preset={spec.preset!r}, name_or_path={spec.name_or_path!r})",
                                      f"e.g. `--{key}.preset null --{key}.name_or_path {PAPER_CLIP_ID}`", item=key))
    if spec.backend not in ("clip", "open_clip"):
        raise DataFormatError(Problem("model config", f"unknown backend '{spec.backend}'", "use clip or open_clip",
                                      item=f"{key}.backend"))
    presets = CLIP_PRESETS if spec.backend == "clip" else OPEN_CLIP_PRESETS
    if spec.preset is not None:
        if spec.preset not in presets:
            raise DataFormatError(Problem("model config", f"unknown {spec.backend} preset '{spec.preset}'",
                                          f"use one of {sorted(presets)}", item=f"{key}.preset"))
        encoder: ImageEncoder = (CLIPImageEncoder.from_config(presets[spec.preset]) if spec.backend == "clip"
                                 else OpenCLIPImageEncoder.from_arch(presets[spec.preset]))
    elif spec.backend == "clip":
        encoder = CLIPImageEncoder.from_pretrained(spec.name_or_path)
    else:
        encoder = OpenCLIPImageEncoder.from_pretrained(spec.name_or_path, spec.pretrained)
    return encoder if spec.trainable else encoder.freeze()


def encoder_from_export(config: Mapping[str, Any]) -> ImageEncoder:
    """Rebuild an encoder's architecture (random weights) from :meth:`ImageEncoder.export_config`."""
    backend = config.get("backend")
    if backend == "clip":
        return CLIPImageEncoder.from_config(config["config"])
    if backend == "open_clip":
        return OpenCLIPImageEncoder.from_arch(config["arch"], config.get("mean", CLIP_MEAN), config.get("std", CLIP_STD))
    raise DataFormatError(Problem("config.json", f"unknown encoder backend {backend!r}", "re-export the model",
                                  item="encoder.backend"))


# --------------------------------------------------------------------------- DINOv2 (stage 2's source encoder)

DINOV2_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, mlp_ratio=4, patch_size=8, image_size=64),
    # facebook/dinov2-large architecture (random weights); 518 = its position-embedding grid (37 x 14)
    "large": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, mlp_ratio=4, patch_size=14,
                  image_size=518, layerscale_value=1.0),
}


def build_dinov2(preset: str | None = "tiny", name_or_path: str | None = None) -> nn.Module:
    """transformers ``Dinov2Model`` from a preset (random weights) or a hub id / local folder (paper: dinov2-large).

    DINOv2 interpolates its position embeddings, so any input size divisible by the
    patch works (the paper uses 512x512 -> 1 + 36x36 tokens for the large model).
    """
    from transformers import Dinov2Config, Dinov2Model

    if (preset is None) == (name_or_path is None):
        raise DataFormatError(Problem("model config", "set exactly one of the DINOv2 preset and name_or_path",
                                      f"e.g. preset: null, name_or_path: {PAPER_DINOV2_ID}", item="dinov2"))
    if preset is not None:
        if preset not in DINOV2_PRESETS:
            raise DataFormatError(Problem("model config", f"unknown DINOv2 preset '{preset}'",
                                          f"use one of {sorted(DINOV2_PRESETS)}", item="dinov2.preset"))
        return Dinov2Model(Dinov2Config(**DINOV2_PRESETS[preset]))
    return load_pretrained("DINOv2 image encoder", Dinov2Model.from_pretrained, name_or_path)


def dinov2_preprocess(size: tuple[int, int] = (512, 512)) -> EncoderPreprocess:
    """The shared policy with ImageNet statistics, at DINOv2's input size (paper: 512x512)."""
    return EncoderPreprocess(size, IMAGENET_MEAN, IMAGENET_STD)
