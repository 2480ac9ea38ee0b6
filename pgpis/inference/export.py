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
from typing import Any, Optional, Union

import torch
from safetensors.torch import save_file

from pgpis.errors import DamagedFileError, DataFormatError, MissingWeightsError, Problem
from pgpis.inference.machine_paths import portable_config, strip_json_files
from pgpis.inference.model_card import write_model_card
from pgpis.safe_load import load_safetensors

PIPELINE_CONFIG = "pipeline.json"
FORMAT, VERSION = "pgpis-pipeline", 1
WEIGHTS_DIR = "weights"
REEXPORT = "the export folder is incomplete or damaged: re-run `pgpis export CKPT OUT_DIR` (or copy the folder again)"
#: keys of pipeline.json that loading reads -> their JSON types
REQUIRED_META = {"module": dict, "unet_config": str, "scheduler_config": str, "data": dict, "weights": list}

#: denoiser class name -> attribute of the UNet whose config is exported (init arg ``unet`` builds it)
UNET_ATTR = {"FPDMDenoiser": "unet", "SiameseDenoiser": "target_net"}


def _get(cfg: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(cfg, dict) or part not in cfg:
            return None
        cfg = cfg[part]
    return cfg


def _set(cfg: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    for part in parts[:-1]:
        cfg = cfg.setdefault(part, {})
    cfg[parts[-1]] = value


def _save_hf(model: torch.nn.Module, folder: Path, what: str) -> None:
    save = getattr(model, "save_pretrained", None)
    if save is None:
        raise ValueError(f"export: the {what} was loaded by name but cannot be saved with save_pretrained "
                         f"({type(model).__name__}); use the transformers CLIP backend or a preset for it")
    save(str(folder), safe_serialization=True)


def _portable(pipe, out: Path) -> tuple[dict[str, Any], dict[str, str], set[str]]:
    """(config with every pretrained source moved into `out`, relative paths, components saved in folders)."""
    cfg = copy.deepcopy(pipe.config)
    den, paths, folders = pipe.module.denoiser, {}, set()
    den_name = type(den).__name__
    init = cfg["denoiser"].setdefault("init_args", {})
    # FPDM's frozen IPF model: the stage-1 export format
    if den_name == "FPDMDenoiser" and getattr(den, "fusion_kind", None) == "ipf":
        den.fusion_encoder.save(out / "fusion_model")
        paths["denoiser.init_args.fusion_model"] = "fusion_model"
        folders.add("denoiser.fusion_encoder")
    # towers named by hub id / folder: saved so the export needs no hub
    if den_name == "FPDMDenoiser" and _get(init, "source_encoder.name_or_path"):
        _save_hf(den.source_encoder.model, out / "source_encoder", "DINOv2 source encoder")
        paths["denoiser.init_args.source_encoder.name_or_path"] = "source_encoder"
        folders.add("denoiser.source_encoder")
    clip_module = {"FPDMDenoiser": "fusion_encoder" if getattr(den, "fusion_kind", None) == "clip" else None,
                   "SiameseDenoiser": "clip"}.get(den_name)
    if _get(init, "clip_encoder.name_or_path") and clip_module and getattr(den, clip_module, None) is not None:
        encoder = getattr(den, clip_module)
        _save_hf(getattr(encoder, "model", encoder), out / "clip_encoder", "CLIP encoder")
        paths["denoiser.init_args.clip_encoder.name_or_path"] = "clip_encoder"
        folders.add(f"denoiser.{clip_module}")
    fs = pipe.module.first_stage
    if _get(cfg, "first_stage.init_args.pretrained"):
        _save_hf(fs.vae, out / "vae", "VAE")
        _set(cfg, "first_stage.init_args.subfolder", None)
        _set(cfg, "first_stage.init_args.scaling_factor", float(fs.scaling_factor))
        paths["first_stage.init_args.pretrained"] = "vae"
        folders.add("first_stage")
    return cfg, paths, folders


def _component(key: str) -> str:
    """State-dict key -> component name: ``denoiser.<child>`` or the top-level module."""
    parts = key.split(".")
    return ".".join(parts[:2]) if parts[0] == "denoiser" and len(parts) > 2 else parts[0]


def export_pipeline(pipe, out_dir: Union[str, os.PathLike], *, checkpoint: Union[str, os.PathLike, None] = None,
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
    unet = getattr(den, UNET_ATTR.get(type(den).__name__, "unet"))
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
    from pgpis.inference.pipeline import load_pipeline

    if Path(ckpt).is_dir():
        raise ValueError(f"export: {ckpt} is a folder; give the Lightning checkpoint (.ckpt) to export")
    return export_pipeline(load_pipeline(ckpt, device="cpu", fusion_model=fusion_model,
                                         trust_checkpoint=trust_checkpoint), out_dir, checkpoint=ckpt, **card)


def _json(path: Path, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise MissingWeightsError(what, path, "the export folder is incomplete: re-run `pgpis export CKPT OUT_DIR`")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        where = dict(line=err.lineno) if isinstance(err, json.JSONDecodeError) else {}
        raise DamagedFileError(Problem(str(path), f"{what}: not valid JSON ({getattr(err, 'msg', None) or err.reason}; "
                                       "truncated or corrupted)", REEXPORT, **where)) from None
    if not isinstance(data, dict):
        raise DamagedFileError(Problem(str(path), f"{what}: expected a JSON object, found {type(data).__name__}",
                                       REEXPORT))
    return data


def _require(meta: dict[str, Any], path: Path) -> None:
    """The keys of ``pipeline.json`` that loading reads, with their types: named errors instead of KeyErrors."""
    for key, kind in REQUIRED_META.items():
        if not isinstance(meta.get(key), kind):
            found = "missing" if key not in meta else f"a {type(meta[key]).__name__}"
            raise DataFormatError(Problem(str(path), f"'{key}' is {found}, expected a {kind.__name__}", REEXPORT,
                                          item=key))
    for dotted, kind in (("data.image_size", list), ("module.denoiser", dict)):
        if not isinstance(_get(meta, dotted), kind):
            raise DataFormatError(Problem(str(path), f"'{dotted}' is missing or not a {kind.__name__}", REEXPORT,
                                          item=dotted))


def load_exported(folder: Union[str, os.PathLike], *, device=None, dtype: Optional[torch.dtype] = None):
    """A :class:`~pgpis.inference.pipeline.Pipeline` from an export folder (architecture from configs, weights
    from safetensors)."""
    from pgpis.inference.checkpoint import instantiate
    from pgpis.inference.pipeline import Pipeline

    folder = Path(folder)
    meta_path = folder / PIPELINE_CONFIG
    meta = _json(meta_path, "pgpis pipeline config")
    if meta.get("format") != FORMAT:
        raise DataFormatError(Problem(str(meta_path), f"format is {meta.get('format')!r}, not {FORMAT!r}",
                                      "point at a folder written by `pgpis export`", item="format"))
    if int(meta.get("version", 0)) > VERSION:
        raise DataFormatError(Problem(str(meta_path), f"version {meta['version']} is newer than this pgpis reads "
                                      f"({VERSION})", "upgrade pgpis", item="version"))
    _require(meta, meta_path)
    cfg = copy.deepcopy(meta["module"])
    for dotted, rel in meta.get("relative_paths", {}).items():
        _set(cfg, dotted, str(folder / rel))
    unet_cfg = {k: v for k, v in _json(folder / meta["unet_config"], "UNet config").items() if not k.startswith("_")}
    cfg["denoiser"].setdefault("init_args", {})["unet"] = {"preset": "tiny", **unet_cfg}  # every preset key overridden
    sched = _json(folder / meta["scheduler_config"], "noise scheduler config")
    cfg["noise_scheduler"] = {k: v for k, v in sched.items() if not k.startswith("_")}
    module = instantiate(cfg)
    state: dict[str, torch.Tensor] = {}
    for rel in meta["weights"]:
        state.update(load_safetensors(folder / rel, what=f"component weights {rel} of the export folder", fix=REEXPORT))
    missing, unexpected = module.load_state_dict(state, strict=False)
    in_folders = tuple(f"{c}." for c in meta.get("folders", []))
    missing = [k for k in missing if not k.startswith(in_folders)]
    if missing or unexpected:
        raise DataFormatError(Problem(str(folder / WEIGHTS_DIR), f"weights do not match pipeline.json (missing "
                                      f"{missing[:4]}, unexpected {unexpected[:4]})", "re-run `pgpis export` with this "
                                      "pgpis version"))
    data = meta.get("data", {})
    return Pipeline(module, data["image_size"], data.get("encoder_inputs"), ema=bool(meta.get("ema")), config=meta["module"],
                    device=device, dtype=dtype)


__all__ = ["export", "export_pipeline", "load_exported", "PIPELINE_CONFIG"]
