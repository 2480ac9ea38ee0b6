"""The `pgpis` command line.

`pgpis fit|validate|test|predict` are LightningCLI sub-commands (YAML configs
composed with repeated `--config`, dotted overrides, `--print_config`). Other
sub-commands are tools registered in :data:`TOOLS` and imported lazily, so
`pgpis data check` does not pay for importing diffusers.

A pgpis error (missing weights, a missing stage-1 export, bad data, an unknown
config key) prints its message alone and exits non-zero (:mod:`pgpis.cli_errors`);
``--traceback`` or ``PGPIS_TRACEBACK=1`` shows the full trace instead.
"""
from __future__ import annotations

import importlib
import sys
from typing import Callable, Sequence

from typing_extensions import override

LIGHTNING_SUBCOMMANDS = ("fit", "validate", "test", "predict")

# name -> "module:function"; function(argv: list[str]) -> int (exit code)
TOOLS: dict[str, str] = {
    "data": "pgpis.commands.data:main",
    "evaluate": "pgpis.commands.evaluate:main",
    "export": "pgpis.inference.cli:export_main",
    "generate": "pgpis.inference.cli:generate_main",
    "animate": "pgpis.inference.animate:main",
    "report": "pgpis.report:main",
    "app": "pgpis.app:main",
    "pose": "pgpis.commands.pose:main",
    "push": "pgpis.commands.push:main",
    "parse": "pgpis.commands.parse:main",
}


def _resolve(spec: str) -> Callable[[list[str]], int]:
    module, func = spec.split(":")
    return getattr(importlib.import_module(module), func)


def _usage() -> str:
    tools = ", ".join(sorted(TOOLS))
    return (
        "usage: pgpis {fit,validate,test,predict} --config EXPERIMENT.yaml [--config MORE.yaml] [--key value ...]\n"
        f"       pgpis {{{tools}}} ...\n"
        "Run `pgpis <command> --help` for the options of one command."
    )


def run_lightning_cli(args: Sequence[str] | None = None, run: bool = True):
    """LightningCLI over any LightningModule / LightningDataModule given by `class_path`."""
    from lightning.pytorch import LightningDataModule, LightningModule
    from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

    from pgpis.cli_errors import ConfigParseError
    from pgpis.safe_cli import SafeCheckpointCLI  # --ckpt_path weights-only, `--trust-checkpoint` to opt out
    from pgpis.store.cli_hook import StoreCLIMixin  # --store DIR: train from a feature store (pgpis data cache)

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


def main(argv: Sequence[str] | None = None) -> int:
    from pgpis.cli_errors import handle, split_traceback_flag

    argv, show_trace = split_traceback_flag(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    command = argv[0]
    if command not in LIGHTNING_SUBCOMMANDS and command not in TOOLS:
        print(f"pgpis: unknown command '{command}'.\n{_usage()}", file=sys.stderr)
        return 2
    try:
        if command in LIGHTNING_SUBCOMMANDS:
            run_lightning_cli(argv)
            return 0
        return int(_resolve(TOOLS[command])(argv[1:]) or 0)
    except Exception as exc:  # a pgpis error prints short (cli_errors); anything else re-raises with its trace
        code = handle(exc, command, argv, show_trace)
        if code is None:
            raise
        return code


if __name__ == "__main__":
    sys.exit(main())
