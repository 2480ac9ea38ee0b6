"""`pgpis fit|validate|test|predict`: pgpis's LightningCLI (safe ``--ckpt_path``, ``--store``, short config errors)."""
from __future__ import annotations

from typing import Sequence

from typing_extensions import override


def run_lightning_cli(args: Sequence[str] | None = None, run: bool = True):
    """LightningCLI over any LightningModule / LightningDataModule given by `class_path`."""
    from lightning.pytorch import LightningDataModule, LightningModule
    from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

    from pgpis.cli_errors import ConfigParseError
    from pgpis.safe_cli import SafeCheckpointCLI  # --ckpt_path weights-only, `--trust-checkpoint` to opt out
    from pgpis.commands.store_option import StoreCLIMixin  # --store DIR: train from a feature store (pgpis data cache)

    class PgpisParser(LightningArgumentParser):
        """Raises :class:`ConfigParseError` where jsonargparse would print ~60 lines of usage and exit.

        Parsers that jsonargparse builds with ``exit_on_error=False`` (nested classes, union branches) keep
        raising ArgumentError, which jsonargparse itself catches; only the top-level report changes.
        """

        @override
        def error(self, message: str, ex: Exception | None = None):
            if not self.exit_on_error:
                return super().error(message, ex)
            raise ConfigParseError(message, self) from ex

    class ExplicitArgsCLI(LightningCLI):
        """Parses `args` as given. pgpis always passes its command line explicitly (from :func:`main`, after
        stripping its own flags such as ``--traceback``), so LightningCLI's warning about ``args`` and
        ``sys.argv`` both being set ("args parameter is intended to run from within Python") would fire on
        every command without pointing at a mistake. Below SafeCheckpointCLI in the MRO, whose
        ``parse_arguments`` runs first and calls this one."""

        @override
        def parse_arguments(self, parser: LightningArgumentParser, args) -> None:  # noqa: ANN001
            self.config = parser.parse_args(args)

    class PgpisCLI(StoreCLIMixin, SafeCheckpointCLI, ExplicitArgsCLI):
        """Stages configure their own optimisers (paper schedules), so optimiser flags come from the model.

        With ``--ckpt_path``, Lightning replaces the model config by the hyper-parameters stored in the
        checkpoint, silently dropping e.g. ``--model.init_args.guidance...`` of a guidance sweep. Here a
        model named by the command line / YAML wins; the checkpoint's config fills in only when none is given.
        """

        @override
        def apply_checkpoint_config(self) -> None:
            sub = self.config.get("subcommand")
            model = self.config[sub].get("model") if sub else None
            if model is not None and getattr(model, "class_path", None):
                return
            super().apply_checkpoint_config()

    return PgpisCLI(
        LightningModule,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        auto_configure_optimizers=False,
        save_config_kwargs={"overwrite": True},
        parser_class=PgpisParser,
        args=args,
        run=run,
    )


__all__ = ["run_lightning_cli"]
