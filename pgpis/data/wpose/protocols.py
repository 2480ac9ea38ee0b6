"""The WPose evaluation protocols ``wpose-512x352`` and ``wpose-256x176`` (TruePose Table 1).

Defined in :mod:`pgpis.metrics.presets`; torch-free. The scoring is in :mod:`pgpis.data.wpose.scoring`.
"""
from __future__ import annotations

from pgpis.metrics.presets import WPOSE_DEFAULT as DEFAULT_PROTOCOL
from pgpis.metrics.presets import WPOSE_METRICS
from pgpis.metrics.presets import WPOSE_PROTOCOLS as PROTOCOLS

__all__ = ["DEFAULT_PROTOCOL", "PROTOCOLS", "WPOSE_METRICS"]
