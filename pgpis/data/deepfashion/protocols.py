"""The DeepFashion In-shop evaluation presets (``deepfashion-*``): defined in :mod:`pgpis.metrics.presets`.

Torch-free. Importing it registers them (importing :mod:`pgpis.metrics.protocols` does as well).
"""
from __future__ import annotations

from pgpis.metrics.presets import DEEPFASHION_DEFAULT as DEFAULT_PROTOCOL
from pgpis.metrics.presets import DEEPFASHION_PROTOCOLS as PROTOCOLS

__all__ = ["DEFAULT_PROTOCOL", "PROTOCOLS"]
