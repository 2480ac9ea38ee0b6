"""Dataset name -> dataset package, so the CLIs and the protocol list find every dataset the same way.

Each dataset is one package ``pgpis/data/<name>/`` on top of the shared parts
(keypoints, parsing, the pair DataModule, images). The package exposes the same
hooks, which ``pgpis data`` (:mod:`pgpis.data.cli`) and ``pgpis evaluate``
(:mod:`pgpis.metrics.cli`) dispatch to:

- ``add_cli_arguments(command, parser)`` for ``command`` in synth / check /
  preview / prepare: the dataset's options on the shared subparser;
- ``run_synth(args)``, ``run_check(args)``, optional ``run_preview(args)`` and
  ``run_prepare(args)``: exit codes; optional ``add_tools(subparsers)`` returning
  ``{tool name: run(args)}`` for whole extra subcommands;
- ``PROTOCOLS`` (its :class:`~pgpis.metrics.protocols.Protocol` presets),
  ``DEFAULT_PROTOCOL``, ``add_evaluate_arguments(parser)`` and
  ``run_evaluate(args, log) -> (result, {row name: result})``;
- a ``protocols`` submodule that registers the presets when imported (torch-free).

Packages are imported lazily (never when this module is imported), and
importing a package must stay cheap (lazy re-exports), since ``pgpis data
check`` and :mod:`pgpis.metrics.protocols` import every one. A listed package
that does not exist at all yet (``importlib.util.find_spec`` finds nothing, as
for ``wpose`` before its package lands) is skipped by :func:`available`; a
package that exists but fails to import is not skipped: the error surfaces.
"""
from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from pgpis.errors import PgpisError

DATASETS: dict[str, str] = {
    "deepfashion": "pgpis.data.deepfashion",
    "phoenix": "pgpis.data.phoenix",
    "wpose": "pgpis.data.wpose",
}


class UnknownDatasetError(PgpisError):
    """A dataset name that no package provides."""


def _exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def available() -> tuple[str, ...]:
    """Names of the registered datasets whose package exists, in registration order."""
    return tuple(name for name, module in DATASETS.items() if _exists(module))


def dataset_module(name: str) -> ModuleType:
    """The package of dataset `name` (imported on first use)."""
    if name not in DATASETS or not _exists(DATASETS[name]):
        raise UnknownDatasetError(f"unknown dataset '{name}': use one of {', '.join(available())}")
    return importlib.import_module(DATASETS[name])


def load_protocols() -> None:
    """Import every available dataset's ``protocols`` module, which registers its presets.

    Only imports (no attribute access), so this also works while one of those
    modules is itself half-way through importing :mod:`pgpis.metrics.protocols`.
    """
    for name in available():
        importlib.import_module(f"{DATASETS[name]}.protocols")
