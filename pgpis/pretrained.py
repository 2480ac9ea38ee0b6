"""Loading pretrained weights with errors that say what to do offline.

Offline, diffusers/transformers report "does not appear to have a file named
config.json", which misleads. `load_pretrained` catches those failures and
raises :class:`pgpis.errors.MissingWeightsError` naming the component, the hub id
or local folder tried, and how to provide the weights: the exact ``hf download``
command (huggingface_hub's CLI; ``huggingface-cli`` is gone from the installed 2.x) limited to
the files the loader reads, or a local folder. docs/pretrained-weights.md lists
every component, its id and its size.
"""
from __future__ import annotations

import importlib.util
import os
import warnings
from pathlib import Path
from typing import Any, Callable, TypeVar

from safetensors import SafetensorError

from pgpis.errors import MissingWeightsError
from pgpis.safe_load import raise_if_damaged_safetensors

T = TypeVar("T")

#: The table of every pretrained component, its id, size and download command.
WEIGHTS_DOC = "docs/pretrained-weights.md"


def is_local(name_or_path: str | os.PathLike) -> bool:
    """True when `name_or_path` is read as a local folder (it exists, or is written as a path), not a hub id."""
    return Path(name_or_path).exists() or str(name_or_path).startswith(("/", ".", "~"))


def describe_source(name_or_path: str | os.PathLike) -> str:
    """Say whether `name_or_path` is read as a local folder or a hub id."""
    return f"local folder {Path(name_or_path)}" if is_local(name_or_path) else f"hub id '{name_or_path}'"


def _owner(loader: Callable[..., Any]) -> str:
    """The module of the class whose bound ``from_pretrained`` `loader` is ("" for a plain function)."""
    return getattr(getattr(loader, "__self__", None), "__module__", "") or ""


def _is_diffusers(loader: Callable[..., Any]) -> bool:
    return _owner(loader).startswith("diffusers")


def _weight_files(loader: Callable[..., Any], subfolder: str | None) -> list[str]:
    """The files `loader` (a bound ``from_pretrained``) reads: config + fp32 safetensors, the libraries' defaults."""
    owner = _owner(loader)
    if owner.startswith("diffusers"):
        names = ["config.json", "diffusion_pytorch_model.safetensors"]
    elif owner.startswith("transformers"):
        names = ["config.json", "model.safetensors"]
    else:
        return [f"{subfolder}/*"] if subfolder else []
    return [f"{subfolder}/{n}" if subfolder else n for n in names]


def hf_download_command(repo_id: str, files: list[str] | None = None, local_dir: str | None = None) -> str:
    """``hf download REPO [FILES...] [--local-dir DIR]``: globs become ``--include``, plain names are positional."""
    parts = ["hf", "download", repo_id]
    for f in files or []:
        parts += ["--include", f"'{f}'"] if "*" in f else [f]
    if local_dir:
        parts += ["--local-dir", local_dir]
    return " ".join(parts)


def _hub_cache() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def missing_weights_advice(name_or_path: str | os.PathLike, loader: Callable[..., Any] | None = None,
                           subfolder: str | None = None) -> tuple[str, str]:
    """(where it looked, how to fix it) for weights that did not load from `name_or_path`."""
    files = _weight_files(loader, subfolder) if loader is not None else []
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}
    if is_local(name_or_path):
        folder = Path(name_or_path) / subfolder if subfolder else Path(name_or_path)
        tried = f"local folder {folder}"
        how = (f"that folder must hold {', '.join(Path(f).name for f in files) or 'config.json and the weights'}; "
               f"fill it with `{hf_download_command('<hub id>', files, str(name_or_path))}` "
               f"(the ids: {WEIGHTS_DOC}) or point the config key at another folder")
        return tried, how
    tried = f"the Hugging Face cache {_hub_cache()}, for {name_or_path}" + (f"/{subfolder}" if subfolder else "")
    if offline:
        tried += " (HF_HUB_OFFLINE=1: the hub was not contacted)"
    how = (f"download it once with internet: `{hf_download_command(str(name_or_path), files)}` "
           "(into that cache, used offline from then on), or add `--local-dir DIR` and point the config "
           f"key that names it (`pretrained` / `name_or_path`) at DIR. Ids and sizes: {WEIGHTS_DOC}")
    return tried, how


def stage1_export_advice(path: str | os.PathLike) -> str:
    """How to produce a missing FPDM stage-1 (IPF) export folder: the make target that writes `path`."""
    p = Path(path)
    if p.name != "fusion_model":  # the Makefile always exports to $(IPF_OUT)/fusion_model
        return (f"expected config.json and model.safetensors in that folder, written by stage 1 (IPF): "
                f"`pgpis fit --config experiments/deepfashion/ipf.yaml --model.init_args.export_dir {p}` "
                "(`make train-ipf` writes outputs/ipf/fusion_model), or point the config key at an exported folder")
    out = p.parent.as_posix()
    phoenix = "phoenix" in out
    make = "make train-ipf" + (" DATASET=phoenix" if phoenix else "")
    make += f" IPF_OUT={out}" if out != ("outputs/ipf_phoenix" if phoenix else "outputs/ipf") else ""
    paper = "experiments/deepfashion/ipf.yaml" + (" --config experiments/phoenix/ipf.yaml" if phoenix else "")
    return (f"expected config.json and model.safetensors in that folder, written by stage 1 (IPF): run "
            f"`{make} CONFIG=\"{paper}\" ARGS=\"--data.root DIR\"` for the paper run (`{make}` alone trains the "
            "tiny preset on synthetic data), or point the config key `fusion_model` at an exported folder")


def save_pretrained_folder(model: Any, folder: str | os.PathLike, what: str) -> None:
    """``model.save_pretrained(folder)`` (safetensors) for a tower loaded by hub id or folder, so an export folder
    loads it offline; a named error for a backend without ``save_pretrained`` (e.g. open_clip)."""
    save = getattr(model, "save_pretrained", None)
    if save is None:
        raise ValueError(f"export: the {what} was loaded by name but cannot be saved with save_pretrained "
                         f"({type(model).__name__}); use the transformers CLIP backend or a preset for it")
    save(str(folder), safe_serialization=True)


def load_pretrained(
    component: str,
    loader: Callable[..., T],
    name_or_path: str | os.PathLike,
    **kwargs: Any,
) -> T:
    """Call ``loader(name_or_path, **kwargs)`` (a ``from_pretrained``); translate offline failures.

    `component` is a human name such as "DINOv2 image encoder".
    """
    if _is_diffusers(loader) and "low_cpu_mem_usage" not in kwargs and importlib.util.find_spec("accelerate") is None:
        kwargs["low_cpu_mem_usage"] = False  # what diffusers falls back to without accelerate, minus its 6-line warning
    try:
        with warnings.catch_warnings():
            # diffusers 0.42 passes huggingface_hub 1.x+ the removed `local_dir_use_symlinks` argument on every hub
            # load; the resulting deprecation warning is about diffusers' code, nothing a pgpis user can act on
            warnings.filterwarnings("ignore", message=r"The `local_dir_use_symlinks` argument is deprecated",
                                    category=UserWarning)
            return loader(str(name_or_path), **kwargs)
    except (OSError, EnvironmentError, ValueError, SafetensorError) as err:  # HF raises OSError/EnvironmentError (and ValueError for bad folders)
        raise_if_damaged_safetensors(name_or_path, kwargs.get("subfolder"))  # a truncated file is not a missing one
        tried, how = missing_weights_advice(name_or_path, loader, kwargs.get("subfolder"))
        raise MissingWeightsError(f"{component} weights ({describe_source(name_or_path)})", tried, how) from err
