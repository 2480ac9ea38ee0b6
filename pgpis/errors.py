"""Errors that tell the user where the problem is and how to fix it.

Every data or configuration problem pgpis detects is raised (or collected) as a
:class:`DataFormatError` naming the file, the line/key/image, what is wrong and
the fix, so bad input surfaces at set-up time instead of hours into an epoch.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable


class PgpisError(Exception):
    """Base of the errors pgpis raises about user input; the CLI prints their message alone (no traceback)."""


@dataclass(frozen=True)
class Problem:
    """One problem found in user input."""

    file: str
    what: str
    fix: str
    line: int | None = None  # 1-based line number in `file`, when it has one
    item: str | None = None  # image name / key the problem concerns

    def __str__(self) -> str:
        where = self.file + (f":{self.line}" if self.line is not None else "")
        item = f" [{self.item}]" if self.item else ""
        return f"{where}{item}: {self.what}. Fix: {self.fix}"


class DataFormatError(PgpisError, ValueError):
    """Raised with one or more :class:`Problem` s; the message lists all of them."""

    def __init__(self, problems: Problem | Iterable[Problem]):
        self.problems = [problems] if isinstance(problems, Problem) else list(problems)
        shown = self.problems[:50]
        more = len(self.problems) - len(shown)
        msg = f"{len(self.problems)} problem(s) found:\n" + "\n".join(f"  - {p}" for p in shown)
        if more:
            msg += f"\n  ... and {more} more (run `pgpis data check` for the full list)"
        super().__init__(msg)


class MissingFileError(DataFormatError, FileNotFoundError):
    """An input path (image, pose file) that names no file: short like every DataFormatError, and still a
    FileNotFoundError for callers that catch that."""


class MissingWeightsError(PgpisError, FileNotFoundError):
    """Pretrained weights are not available offline; says which, where tried, and how to provide them."""

    def __init__(self, what: str, tried: str | Path, how: str):
        self.what, self.tried, self.how = what, str(tried), how
        super().__init__(f"{what}: not found (looked in: {tried}). {how}")


class ConfigKeyError(PgpisError, KeyError):
    """A config key (YAML file or command-line argument) that the class it configures does not accept."""

    def __init__(self, key: str, where: str, hint: str):
        self.key, self.where, self.hint = key, where, hint
        super().__init__(f"unknown config key '{key}' ({where}). {hint}")

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class UnsafeCheckpointError(DataFormatError):
    """A checkpoint holds more than plain data (a Python callable or class that unpickling would call): refused
    before anything in it runs (see :mod:`pgpis.safe_load`)."""


class DamagedFileError(DataFormatError):
    """A checkpoint, safetensors or export file is truncated or corrupted: says which file and how to replace it."""
