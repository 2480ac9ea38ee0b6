"""Dataset name or class path -> its :class:`~pgpis.data.contract.DatasetPackage`, for every command alike.

``--dataset`` takes:

- a built-in name: ``deepfashion``, ``phoenix``, ``wpose`` (:data:`DATASETS`);
- the name of an entry point in the group ``pgpis.datasets`` that an installed package declares
  (e.g. ``[options.entry_points] pgpis.datasets = mine = my_pkg:MyDataset`` in its setup.cfg);
- a class path, ``my_pkg.MyDataset`` or ``my_pkg.module:MyDataset``, importable from ``sys.path``.

The class is imported on first use (never when this module is imported), so listing the datasets
costs nothing; a built-in whose package fails to import raises, it is not skipped.
"""
from __future__ import annotations

import importlib
from functools import lru_cache
from importlib.metadata import entry_points

from pgpis.data.contract import DatasetPackage
from pgpis.errors import PgpisError

ENTRY_POINT_GROUP = "pgpis.datasets"

DATASETS: dict[str, str] = {
    "deepfashion": "pgpis.data.deepfashion.package:DeepFashionPackage",
    "phoenix": "pgpis.data.phoenix.package:PhoenixPackage",
    "wpose": "pgpis.data.wpose.package:WPosePackage",
}


class UnknownDatasetError(PgpisError):
    """A ``--dataset`` that is no built-in name, entry point or importable DatasetPackage class."""


def _entry_points() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available() -> tuple[str, ...]:
    """The dataset names ``--dataset`` knows: the built-ins, then the installed entry points."""
    return tuple(DATASETS) + tuple(n for n in sorted(_entry_points()) if n not in DATASETS)


def _hint() -> str:
    return f"use one of {', '.join(available())}, or a class path my_pkg.module:MyDataset"


def _import_class(spec: str, shown: str) -> type:
    module_name, sep, attr = spec.partition(":")
    if not sep:
        module_name, _, attr = spec.rpartition(".")
    if not module_name or not attr:
        raise UnknownDatasetError(f"unknown dataset '{shown}': {_hint()}")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name and module_name.startswith(err.name):  # the named module itself, not one it imports
            raise UnknownDatasetError(f"unknown dataset '{shown}': no module '{module_name}' on the Python path; "
                                      f"{_hint()}") from None
        raise
    try:
        return getattr(module, attr)
    except AttributeError:
        raise UnknownDatasetError(f"dataset '{shown}': module '{module_name}' has no '{attr}'; {_hint()}") from None


@lru_cache(maxsize=None)
def get_dataset(spec: str) -> DatasetPackage:
    """The dataset `spec` names (built-in name, entry point name or class path), its class instantiated once."""
    points = _entry_points()
    path = DATASETS.get(spec) or points.get(spec)
    if path is None and "." not in spec and ":" not in spec:
        raise UnknownDatasetError(f"unknown dataset '{spec}': {_hint()}")
    cls = _import_class(path or spec, spec)
    if not (isinstance(cls, type) and issubclass(cls, DatasetPackage)):
        raise UnknownDatasetError(f"dataset '{spec}' is {cls!r}, not a subclass of pgpis.data.contract.DatasetPackage "
                                  "(docs/extending.md)")
    return cls()


def dataset_reading(datamodule: str) -> DatasetPackage | None:
    """The registered dataset (built-in or entry point) whose DataModule is the class path `datamodule`, if any:
    what a model card says about a checkpoint's training data."""
    for spec in available():
        dataset = get_dataset(spec)
        if dataset.datamodule == datamodule:
            return dataset
    return None


def load_protocols(specs: tuple[str, ...] | None = None) -> None:
    """Register the evaluation presets of the datasets `specs` (default: every built-in and entry point)."""
    for spec in available() if specs is None else specs:
        get_dataset(spec).protocols()
