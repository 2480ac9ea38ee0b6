"""The export folder's format (``pipeline.json`` and its keys) and reading one back into a module.

Kept apart from :mod:`pgpis.inference.export` (writing) so that loading (:func:`pgpis.inference.pipeline.load_pipeline`)
and exporting (which loads a checkpoint first) import each other in one direction only.
"""
from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any, Union

import torch

from pgpis.errors import DamagedFileError, DataFormatError, MissingWeightsError, Problem
from pgpis.inference.checkpoint import instantiate
from pgpis.safe_load import load_safetensors

PIPELINE_CONFIG = "pipeline.json"
FORMAT, VERSION = "pgpis-pipeline", 1
WEIGHTS_DIR = "weights"
REEXPORT = "the export folder is incomplete or damaged: re-run `pgpis export CKPT OUT_DIR` (or copy the folder again)"
#: keys of pipeline.json that loading reads -> their JSON types
REQUIRED_META = {"module": dict, "unet_config": str, "scheduler_config": str, "data": dict, "weights": list}

def get_dotted(cfg: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(cfg, dict) or part not in cfg:
            return None
        cfg = cfg[part]
    return cfg


def set_dotted(cfg: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    for part in parts[:-1]:
        cfg = cfg.setdefault(part, {})
    cfg[parts[-1]] = value


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
        if not isinstance(get_dotted(meta, dotted), kind):
            raise DataFormatError(Problem(str(path), f"'{dotted}' is missing or not a {kind.__name__}", REEXPORT,
                                          item=dotted))


def read_exported(folder: Union[str, os.PathLike]) -> tuple[torch.nn.Module, dict[str, Any]]:
    """(module in eval mode, the folder's ``pipeline.json``) from an export folder: architecture from the configs,
    weights from safetensors (:func:`pgpis.inference.pipeline.load_exported` wraps them as a Pipeline)."""
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
        set_dotted(cfg, dotted, str(folder / rel))
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
    return module.eval(), meta



__all__ = ["PIPELINE_CONFIG", "FORMAT", "VERSION", "WEIGHTS_DIR", "REEXPORT", "get_dotted", "set_dotted",
           "read_exported"]
