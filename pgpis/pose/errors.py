"""Errors of the pose front end; all are :class:`pgpis.errors.PgpisError`, so the CLI prints the message alone."""
from __future__ import annotations

from pgpis.errors import PgpisError


class EstimatorUnavailable(PgpisError, RuntimeError):
    """A pose estimator cannot be used here: unknown name, optional dependency missing, model file missing offline.

    The message names what is missing, where it was looked for and the fix.
    """


class InvalidEstimator(PgpisError, TypeError):
    """A class path given as an estimator does not import, or what it builds is not a PoseEstimator."""


class InvalidEstimate(PgpisError, ValueError):
    """An estimator returned (or a caller built) a PoseEstimate with wrong shapes or values."""


class InvalidImage(PgpisError, ValueError):
    """An image handed to an estimator is not RGB uint8 HxWx3 (or a PIL image)."""
