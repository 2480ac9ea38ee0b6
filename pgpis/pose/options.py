"""``--estimator`` / ``--estimator-option``: the same two options in every command that runs a pose estimator.

Kept free of numpy and torch so that a command's parser can add them without importing the estimators.
"""
from __future__ import annotations

import argparse
import json
from typing import Any, Sequence

from pgpis.errors import PgpisError


class EstimatorOptionError(PgpisError, ValueError):
    """An ``--estimator-option`` that is not ``KEY=VALUE``."""


def add_estimator_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup, *, used_by: str = "",
                            also: str = "") -> None:
    """Add ``--estimator`` (default mediapipe) and the repeatable ``--estimator-option KEY=VALUE``.

    `used_by` prefixes both helps (e.g. ``"--pose-image"``: the option that makes the command estimate poses);
    `also` extends the list of accepted estimator names (e.g. ``", or none to switch the choice off"``).
    """
    lead = f"{used_by}: " if used_by else ""
    parser.add_argument("--estimator", default="mediapipe",
                        help=f"{lead}pose estimator: mediapipe (default, offline), rtmlib, or a class path "
                             f"package.module.Class{also} (docs/pose-estimators.md)")
    parser.add_argument("--estimator-option", action="append", default=[], metavar="KEY=VALUE",
                        help=f"{lead}keyword argument for the estimator (repeatable; VALUE read as JSON when it "
                             "parses, else as a string)")


def add_scoring_estimator_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup, *, what: str) -> None:
    """``--pose-estimator NAME|none`` (default auto) and the repeatable ``--pose-estimator-option KEY=VALUE`` of
    `pgpis evaluate`, where a pose estimator scores `what` (e.g. "pose accuracy of samples ...")."""
    parser.add_argument("--pose-estimator", default="auto", metavar="NAME|none",
                        help=f"{what}: 'auto' (default: mediapipe when installed), mediapipe, rtmlib, a class path "
                             "package.module.Class, or none (docs/metrics.md)")
    parser.add_argument("--pose-estimator-option", action="append", default=[], metavar="KEY=VALUE",
                        help="option for the pose estimator's constructor, repeatable "
                             "(e.g. det=PATH.onnx pose=PATH.onnx for rtmlib)")


def load_named_estimator(name: str, options: Sequence[str] = ()) -> Any:
    """The estimator `name` (``mediapipe``, ``rtmlib`` or a class path) built with ``KEY=VALUE`` `options`."""
    from pgpis.pose import load_estimator

    return load_estimator(name, **parse_options(options))


def parse_options(pairs: Sequence[str], flag: str = "--estimator-option") -> dict[str, Any]:
    """``KEY=VALUE`` pairs; a VALUE that parses as JSON (numbers, true, lists) is taken as such, else a string.

    `flag` names the option in the error (``--parser-option`` for human parsers)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise EstimatorOptionError(f"{flag} {pair!r}: write KEY=VALUE, e.g. "
                                       f"{'model=parsing_lip.onnx' if 'parser' in flag else 'mode=lightweight'}")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out
