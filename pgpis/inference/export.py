"""`export(ckpt, out_dir)`: an inference folder that loads with no Lightning state and no hub access.

Layout (every path relative to the folder, so it can be moved or uploaded)::

    pipeline.json                  format/version, stage class, model config (class paths + init args),
                                   data sizes, EMA flag, where each component lives
    scheduler/scheduler_config.json  the training noise scheduler (diffusers config)
    unet/config.json               the denoising UNet's diffusers config (FPDM's UNet, TruePose's TargetNet;
                                   SourceNet is built as its copy)
    fusion_model/                  FPDM: the frozen IPF model (encoder + Combiner), as stage 1 exports it
    source_encoder/, clip_encoder/, vae/   pretrained towers the config named by hub id (saved so the
                                   folder loads offline)
    weights/<component>.safetensors  one file per remaining component (unet, pose_encoder,
                                   source_projection, fusion_adapter, clip, attention processors' CAA, ...)

The weights are the checkpoint's ``state_dict``: the EMA averages when the
``EMAWeightAveraging`` callback was on (``pipeline.json`` records ``"ema": true``).
"""
from __future__ import annotations

import copy
import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any, Union

import torch
from safetensors.torch import save_file

from pgpis.inference.exported import FORMAT, PIPELINE_CONFIG, VERSION, WEIGHTS_DIR, get_dotted, set_dotted
from pgpis.inference.pipeline import Pipeline, load_exported, load_pipeline
from pgpis.pretrained import save_pretrained_folder
from pgpis.inference.machine_paths import portable_config, strip_json_files
from pgpis.inference.model_card import write_model_card


def _portable(pipe: Pipeline, out: Path) -> tuple[dict[str, Any], dict[str, str], set[str]]:
    """(config with every pretrained source moved into `out`, relative paths, components saved in folders)."""
    cfg = copy.deepcopy(pipe.config)
    den, paths, folders = pipe.module.denoiser, {}, set()
    init = cfg["denoiser"].setdefault("init_args", {})
    # what the method saves as folders (a stage-1 export, towers named by hub id): the export then needs no hub
    for saved in den.export_folders(init):
        saved.save(out / saved.folder)
        paths[f"denoiser.init_args.{saved.init_arg}"] = saved.folder
        folders.add(f"denoiser.{saved.module}")
    fs = pipe.module.first_stage
    if get_dotted(cfg, "first_stage.init_args.pretrained"):
        save_pretrained_folder(fs.vae, out / "vae", "VAE")
        set_dotted(cfg, "first_stage.init_args.subfolder", None)
        set_dotted(cfg, "first_stage.init_args.scaling_factor", float(fs.scaling_factor))
        paths["first_stage.init_args.pretrained"] = "vae"
        folders.add("first_stage")
    return cfg, paths, folders


def _component(key: str) -> str:
    """State-dict key -> component name: ``denoiser.<child>`` or the top-level module."""
    parts = key.split(".")
    return ".".join(parts[:2]) if parts[0] == "denoiser" and len(parts) > 2 else parts[0]


def export_pipeline(pipe: Pipeline, out_dir: Union[str, os.PathLike], *, checkpoint: Union[str, os.PathLike, None] = None,
                    **card: Any) -> Path:
    """Write a loaded :class:`~pgpis.inference.pipeline.Pipeline` as an inference folder (see the module docstring)
    with its model card (`checkpoint` and `card` go to :func:`pgpis.inference.model_card.write_model_card`)."""
    out = Path(out_dir)
    if (out / PIPELINE_CONFIG).exists() or (out.exists() and any(out.iterdir())):
        if not (out / PIPELINE_CONFIG).exists():
            raise FileExistsError(f"export: {out} exists and is not empty; choose a new folder or empty it")
    out.mkdir(parents=True, exist_ok=True)
    module = pipe.module
    cfg, paths, folders = _portable(pipe, out)
    den = module.denoiser
    unet = getattr(den, den.unet_attr)  # the method declares which UNet loading rebuilds from unet/config.json
    unet.save_config(str(out / "unet"))
    module.noise_scheduler.save_config(str(out / "scheduler"))
    groups: dict[str, dict[str, torch.Tensor]] = defaultdict(dict)
    for key, value in module.state_dict().items():
        comp = _component(key)
        if comp not in folders:
            groups[comp][key] = value.detach().to("cpu", torch.float32 if value.is_floating_point() else value.dtype).clone()
    (out / WEIGHTS_DIR).mkdir(exist_ok=True)
    for comp, state in groups.items():
        save_file(state, str(out / WEIGHTS_DIR / f"{comp}.safetensors"), metadata={"format": FORMAT})
    module_cfg, pretrained_from = portable_config(cfg, paths)  # no path of this machine in a file meant for sharing
    meta = {
        "format": FORMAT, "version": VERSION, "kind": pipe.kind, "ema": pipe.ema,
        "module": module_cfg, "pretrained_from": pretrained_from, "relative_paths": paths, "unet_config": "unet/config.json",
        "scheduler_config": "scheduler/scheduler_config.json",
        "data": {"image_size": list(pipe.image_size), "encoder_inputs": {k: list(v) for k, v in pipe.encoder_inputs.items()}},
        "weights": sorted(f"{WEIGHTS_DIR}/{c}.safetensors" for c in groups), "folders": sorted(folders),
    }
    (out / PIPELINE_CONFIG).write_text(json.dumps(meta, indent=2) + "\n")
    strip_json_files(out)
    write_model_card(out, meta, checkpoint=checkpoint, **card)
    return out


def export(ckpt: Union[str, os.PathLike], out_dir: Union[str, os.PathLike], *,
           fusion_model: Union[str, os.PathLike, None] = None, trust_checkpoint: bool = False, **card: Any) -> Path:
    """Export a `pgpis fit` checkpoint (FPDM or TruePose) to an inference folder; returns the folder.

    The checkpoint is read weights-only unless `trust_checkpoint` (see :func:`pgpis.safe_load.load_checkpoint`);
    `card` (metrics, training_config, licence) goes to :func:`pgpis.inference.model_card.write_model_card`."""
    if Path(ckpt).is_dir():
        raise ValueError(f"export: {ckpt} is a folder; give the Lightning checkpoint (.ckpt) to export")
    return export_pipeline(load_pipeline(ckpt, device="cpu", fusion_model=fusion_model,
                                         trust_checkpoint=trust_checkpoint), out_dir, checkpoint=ckpt, **card)


__all__ = ["export", "export_pipeline", "load_exported", "PIPELINE_CONFIG"]
