"""Loading pretrained weights with errors that say what to do offline.

Offline, diffusers/transformers report "does not appear to have a file named
config.json", which misleads. `load_pretrained` catches those failures and
raises :class:`pgpis.errors.MissingWeightsError` naming the component, the hub id
or local folder tried, and how to provide the weights.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, TypeVar

from pgpis.errors import MissingWeightsError

T = TypeVar("T")


def describe_source(name_or_path: str | os.PathLike) -> str:
    """Say whether `name_or_path` is read as a local folder or a hub id."""
    p = Path(name_or_path)
    return f"local folder {p}" if p.exists() or str(name_or_path).startswith(("/", ".")) else f"hub id '{name_or_path}'"


def load_pretrained(
    component: str,
    loader: Callable[..., T],
    name_or_path: str | os.PathLike,
    **kwargs: Any,
) -> T:
    """Call ``loader(name_or_path, **kwargs)`` (a ``from_pretrained``); translate offline failures.

    `component` is a human name such as "DINOv2 image encoder".
    """
    try:
        return loader(str(name_or_path), **kwargs)
    except (OSError, EnvironmentError, ValueError) as err:  # HF raises OSError/EnvironmentError (and ValueError for bad folders)
        offline = os.environ.get("HF_HUB_OFFLINE") == "1"
        how = (
            f"Download it once on a machine with internet (`huggingface-cli download {name_or_path}`) and either "
            "copy the Hugging Face cache (~/.cache/huggingface) here or point the config key at the local folder "
            "that holds config.json and the weight files"
            + (" (HF_HUB_OFFLINE=1 is set, so the hub was not contacted)" if offline else "")
        )
        raise MissingWeightsError(f"{component} weights ({describe_source(name_or_path)})", name_or_path, how) from err
