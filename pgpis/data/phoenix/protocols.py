"""The ``phoenix-260x210`` evaluation protocol (FPDM's Phoenix14T numbers): defined in :mod:`pgpis.metrics.presets`.

Torch-free. The scoring itself lives in :mod:`pgpis.data.phoenix.evaluate`.
"""
from __future__ import annotations

from pgpis.metrics.presets import PHOENIX_METRICS, PHOENIX_PROTOCOL, PHOENIX_PROTOCOL_NAME
from pgpis.metrics.presets import PHOENIX_PROTOCOLS as PROTOCOLS

DEFAULT_PROTOCOL = PHOENIX_PROTOCOL_NAME

__all__ = ["DEFAULT_PROTOCOL", "PHOENIX_METRICS", "PHOENIX_PROTOCOL", "PHOENIX_PROTOCOL_NAME", "PROTOCOLS"]
