"""Errors of the human-parsing front end; all are :class:`pgpis.errors.PgpisError`, so the CLI prints the message alone."""
from __future__ import annotations

from pgpis.errors import PgpisError


class ParserUnavailable(PgpisError, RuntimeError):
    """A human parser cannot be used here: unknown name, optional dependency missing, weights missing offline.

    The message names what is missing, where it was looked for and the command that fetches it.
    """


class InvalidParser(PgpisError, TypeError):
    """A parser option is wrong, or a class path given as a parser does not import or builds no HumanParser."""


class InvalidParsing(PgpisError, ValueError):
    """A parser returned a map of the wrong shape, type or labels."""
