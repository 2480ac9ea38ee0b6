"""Lazy re-exports for packages whose public names live in submodules.

A package's ``__init__`` maps each public name to the submodule that defines it; the submodule is
imported on first access, so ``import pgpis.data.deepfashion`` stays free of torch while YAML class paths
such as ``pgpis.data.deepfashion.DeepFashionDataModule`` keep resolving.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable, Mapping


def lazy_getattr(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` for `package` resolving ``exports[name]`` (a submodule name) on demand."""

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
