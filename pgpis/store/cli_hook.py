"""`--store DIR` (or `store: DIR` in the YAML) for `pgpis fit`: train from a feature store.

A LightningCLI mixin: before instantiation it hands the store to the denoiser (which then does not build
the frozen networks the store holds); after, it wraps the DataModule in
:class:`~pgpis.store.datamodule.StoreDataModule` and checks the store against the model and data before any
step runs.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

from pgpis.store.errors import StoreError


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
        if init is None or "store" not in init:
            raise StoreError(f"--store {store}: the model's denoiser "
                             f"({getattr(denoiser, 'class_path', 'none')}) does not take a store; use FPDM stage 2 "
                             "(pgpis.models.fpdm.FPDMDenoiser) or TruePose (pgpis.models.truepose.SiameseDenoiser)")
        init.store = str(Path(store).resolve())  # absolute: the checkpoint's config names it for sampling later

    def instantiate_classes(self) -> None:
        super().instantiate_classes()  # type: ignore[misc]
        store = self._store_config().get("store")
        if store:
            from pgpis.store.datamodule import StoreDataModule

            self.datamodule = StoreDataModule(self.datamodule, store)  # type: ignore[attr-defined]
            self.datamodule.data.setup("fit")
            self.datamodule.verify(self.model)  # type: ignore[attr-defined]


def build_run(args: Sequence[str]) -> Any:
    """The LightningCLI of `pgpis fit` with these arguments, instantiated but not run (model, datamodule, trainer
    exactly as training builds them: same config parsing, same seed)."""
    from pgpis.cli import run_lightning_cli

    return run_lightning_cli(list(args), run=False)
