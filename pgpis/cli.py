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

from pgpis.commands.lightning import run_lightning_cli


LIGHTNING_SUBCOMMANDS = ("fit", "validate", "test", "predict")

# name -> "module:function"; function(argv: list[str]) -> int (exit code)
TOOLS: dict[str, str] = {
    "data": "pgpis.commands.data:main",
    "evaluate": "pgpis.commands.evaluate:main",
    "export": "pgpis.commands.export:export_main",
    "generate": "pgpis.commands.generate:generate_main",
    "animate": "pgpis.commands.animate:main",
    "report": "pgpis.report:main",
    "app": "pgpis.app:main",
    "pose": "pgpis.commands.pose:main",
    "push": "pgpis.commands.push:main",
    "parse": "pgpis.commands.parse:main",
    "show": "pgpis.commands.show:main",
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
