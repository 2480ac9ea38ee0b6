"""Rebuild a stage from a `pgpis fit` checkpoint without the CLI and without the training data.

LightningCLI stores the model's full config (class paths and init args of every
injected sub-module) in the checkpoint's ``hyper_parameters`` and the
DataModule's settings in ``datamodule_hyper_parameters``, as plain data, so the
file is read weights-only (:mod:`pgpis.safe_load`). That is all an
inference pipeline needs: the architecture comes from the config, the weights
from ``state_dict`` (the averaged ones when the ``EMAWeightAveraging`` callback
was on: Lightning swaps them in and keeps the live ones in ``current_model_state``).
"""
from __future__ import annotations

import copy
import importlib
from pathlib import Path
from typing import Any, Optional, Union

import torch

from pgpis.errors import DataFormatError, MissingWeightsError, Problem
from pgpis.safe_load import load_checkpoint



def import_class(class_path: str) -> type:
    module, _, name = class_path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def instantiate(config: dict[str, Any]) -> torch.nn.Module:
    """Build a LightningModule from its hyper-parameters (``_class_path`` + init args, nested ``class_path`` dicts)."""
    from lightning.pytorch.cli import instantiate_module

    cls = import_class(config["_class_path"])
    return instantiate_module(cls, copy.deepcopy(config))


def _require_stage(class_path: str, path: Path) -> None:
    """Refuse, naming it, a model that is no latent-diffusion stage (the API generates with those only)."""
    from pgpis.diffusion.core import LatentDiffusion

    try:
        cls = import_class(class_path)
    except (ImportError, AttributeError, ValueError) as err:
        raise DataFormatError(Problem(str(path), f"model class {class_path} cannot be imported ({err})",
                                      "install the package that defines it, or put it on PYTHONPATH",
                                      item="hyper_parameters._class_path")) from None
    if not (isinstance(cls, type) and issubclass(cls, LatentDiffusion)):
        raise DataFormatError(Problem(str(path), f"model is {class_path}, not an LDM stage the API generates with",
                                      "give a checkpoint of a pgpis.diffusion.core.LatentDiffusion stage such as FPDM "
                                      "stage 2 or TruePose (IPF checkpoints condition FPDM through their export, they "
                                      "do not generate images)", item="hyper_parameters._class_path"))


def _fusion_path(config: dict[str, Any]) -> Optional[str]:
    den = config.get("denoiser")
    if isinstance(den, dict):
        return (den.get("init_args") or {}).get("fusion_model")
    return None


def _unstore(config: dict[str, Any], ckpt: dict[str, Any], path: Path) -> None:
    """Sample online from a checkpoint trained from a feature store (``--store``).

    The store only replaced frozen encoders in training. When the checkpoint carries their weights
    (:mod:`pgpis.store.checkpoint`), the online model is built and loads them, whether the store exists
    here or not. An older checkpoint without them needs its store's ``weights/``, and says so.
    """
    from pgpis.store.checkpoint import FROZEN_FROM_STORE

    args = config["denoiser"].get("init_args") or {}
    store = args.get("store")
    if not store:
        return
    if FROZEN_FROM_STORE in ckpt:
        args["store"] = None
    elif not (Path(store) / "manifest.json").is_file():
        raise MissingWeightsError(
            "feature store the checkpoint was trained from (it holds the frozen encoders' weights)", store,
            "copy that store's manifest.json and weights/ folder to this path (checkpoints of this pgpis "
            "version carry those weights themselves)")


def module_from_checkpoint(path: Union[str, Path], fusion_model: Union[str, Path, None] = None, *,
                           trust_checkpoint: bool = False
                           ) -> tuple[torch.nn.Module, dict[str, Any], dict[str, Any], bool]:
    """(module in eval mode, its config, the DataModule's hyper-parameters, EMA on) from a checkpoint file.

    The file is read weights-only (:func:`pgpis.safe_load.load_checkpoint`): a checkpoint naming anything beyond
    plain data is refused unread unless `trust_checkpoint` (one's own files only)."""
    path = Path(path)
    ckpt = load_checkpoint(path, trust=trust_checkpoint)
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise DataFormatError(Problem(str(path), "no 'state_dict' in the file: not a Lightning checkpoint",
                                      "point at the .ckpt written by `pgpis fit`, or at a `pgpis export` folder"))
    config = dict(ckpt.get("hyper_parameters") or {})
    config.pop("_instantiator", None)
    class_path = config.get("_class_path")
    if class_path is None or not isinstance(config.get("denoiser"), dict):
        raise DataFormatError(Problem(
            str(path), "the checkpoint holds no model config (class paths of the denoiser and first stage); it was "
            "written outside `pgpis fit`", "train a latent-diffusion stage (a pgpis.diffusion.core.LatentDiffusion "
            "subclass) through `pgpis fit --config ...` (LightningCLI stores the config)",
            item="hyper_parameters._class_path"))
    _require_stage(class_path, path)
    _unstore(config, ckpt, path)
    if fusion_model is not None:
        config["denoiser"].setdefault("init_args", {})["fusion_model"] = str(fusion_model)
    stored = _fusion_path(config)
    if isinstance(stored, str) and not Path(stored).is_absolute() and not (Path(stored) / "config.json").is_file():
        # a path relative to where `pgpis fit` ran (e.g. outputs/ipf/fusion_model): look beside the checkpoint's parents
        for parent in path.resolve().parents:
            if (parent / stored / "config.json").is_file():
                stored = str(parent / stored)
                config["denoiser"]["init_args"]["fusion_model"] = stored
                break
    if isinstance(stored, str) and not (Path(stored) / "config.json").is_file():
        raise MissingWeightsError(
            "IPF fusion model (FPDM stage 1) named by the checkpoint", stored,
            "FPDM rebuilds its frozen fusion model from that export folder: restore it, or pass "
            "load_pipeline(..., fusion_model='outputs/ipf/fusion_model') / `--fusion-model` to the CLI")
    module = instantiate(config)
    missing, unexpected = module.load_state_dict(ckpt["state_dict"], strict=False)
    if missing or unexpected:
        raise DataFormatError(Problem(
            str(path), f"weights do not match the model config (missing {missing[:4]}{'...' if len(missing) > 4 else ''}, "
            f"unexpected {unexpected[:4]}{'...' if len(unexpected) > 4 else ''})",
            "the checkpoint and its config disagree: re-run `pgpis fit`, or load with the code version that wrote it",
            item="state_dict"))
    data = dict(ckpt.get("datamodule_hyper_parameters") or {})
    ema = "current_model_state" in ckpt
    return module.eval(), config, data, ema


__all__ = ["module_from_checkpoint", "instantiate", "import_class"]
