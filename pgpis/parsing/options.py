"""``--parser`` / ``--parser-option``: the same two options in every command that runs a human parser.

Kept free of numpy and onnxruntime so that a command's parser can add them without importing a backend.
"""
from __future__ import annotations

import argparse
from typing import Any, Sequence

from pgpis.pose.options import parse_options


def add_parser_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup, *, used_by: str = "",
                         also: str = "") -> None:
    """Add ``--parser`` (default schp-lip) and the repeatable ``--parser-option KEY=VALUE``; `also` extends the list
    of accepted names (e.g. ``", or none to ..."``)."""
    lead = f"{used_by}: " if used_by else ""
    parser.add_argument("--parser", default="schp-lip",
                        help=f"{lead}human parser: schp-lip (default; SCHP on LIP, what TruePose used), schp-atr, or a "
                             f"class path package.module.Class{also} (docs/parsing.md)")
    parser.add_argument("--parser-option", action="append", default=[], metavar="KEY=VALUE",
                        help=f"{lead}keyword argument for the parser, e.g. model=PATH.onnx (repeatable; VALUE read as "
                             "JSON when it parses, else as a string)")


def parser_options(pairs: Sequence[str]) -> dict[str, Any]:
    """``--parser-option`` pairs as keyword arguments."""
    return parse_options(pairs, flag="--parser-option")


def load_named_parser(name: str, options: Sequence[str] = ()) -> Any:
    """The parser `name` (built-in or class path) built with ``KEY=VALUE`` `options`."""
    from pgpis.parsing import load_parser

    return load_parser(name, **parser_options(options))


__all__ = ["add_parser_arguments", "parser_options", "load_named_parser"]
