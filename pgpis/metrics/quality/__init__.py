"""No-reference image quality (IQA) and aesthetics (IAA) with Q-Align, run in its own Python environment.

- :class:`QAlignSettings` (``settings``): which Python, model, device; ``requested`` / ``ambient`` scope them
- :func:`score_quality`, :func:`quality_table`, :data:`QUALITY_METRICS` (``scoring``)
- :class:`QAlignWorker`, :class:`QualityWorkerError`, :class:`QualityWorkerTimeout` (``worker``): the subprocess
- ``qalign_worker.py``: the script that runs in the Q-Align environment (stdlib only at import)

Why a subprocess, and how to set the environment up: docs/iqa.md.
"""
from pgpis.metrics.quality.scoring import QUALITY_METRICS, QualityResult, quality_table, score_quality
from pgpis.metrics.quality.settings import HUB_ID, QAlignSettings, ambient, configuration_problem, requested
from pgpis.metrics.quality.worker import QAlignWorker, QualityUnavailable, QualityWorkerError, QualityWorkerTimeout

__all__ = ["HUB_ID", "QUALITY_METRICS", "QAlignSettings", "QAlignWorker", "QualityResult", "QualityUnavailable",
           "QualityWorkerError", "QualityWorkerTimeout", "ambient", "configuration_problem", "quality_table",
           "requested", "score_quality"]
