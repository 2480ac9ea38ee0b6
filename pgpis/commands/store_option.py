"""`--store DIR` (or `store: DIR` in the YAML) for `pgpis fit`: train from a feature store.

A LightningCLI mixin: before instantiation it hands the store to a denoiser that takes a ``store`` init
argument (it then does not build the frozen networks the store holds); after, it wraps the DataModule in
:class:`~pgpis.store.datamodule.StoreDataModule` and checks the store against the model and data before any
step runs.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional


class StoreCLIMixin:
    """Mixed into pgpis's LightningCLI (pgpis/cli.py)."""

    def add_arguments_to_parser(self, parser: Any) -> None:
        super().add_arguments_to_parser(parser)  # type: ignore[misc]
        parser.add_argument("--store", type=Optional[str], default=None,
                            help="train from a feature store written by `pgpis data cache` (docs/feature-store.md)")

    def _store_config(self) -> Any:
        sub = self.config.get("subcommand")  # type: ignore[attr-defined]
        return self.config[sub] if sub else self.config  # type: ignore[attr-defined]

    def before_instantiate_classes(self) -> None:
        super().before_instantiate_classes()  # type: ignore[misc]
        cfg = self._store_config()
        store = cfg.get("store")
        if not store:
            return
        from pgpis.store.manifest import read_manifest

        read_manifest(store)  # a named error before anything is built
        denoiser = cfg.get("model", {}).get("init_args", {}).get("denoiser")
        init = getattr(denoiser, "init_args", None)
        if init is not None and "store" in init:  # optional: such a denoiser does not build what the store holds
            init.store = str(Path(store).resolve())  # absolute: the checkpoint's config names it for sampling later
        # any other denoiser trains from the store's latents (the core reads them); verify() refuses parts it
        # does not read

    def instantiate_classes(self) -> None:
        super().instantiate_classes()  # type: ignore[misc]
        store = self._store_config().get("store")
        if store:
            from pgpis.store.datamodule import StoreDataModule

            self.datamodule = StoreDataModule(self.datamodule, store)  # type: ignore[attr-defined]
            self.datamodule.data.setup("fit")
            self.datamodule.verify(self.model)  # type: ignore[attr-defined]
