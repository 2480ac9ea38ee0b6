"""Named evaluation protocols, so every reported number says how it was computed.

Papers in the field differ in report size, SSIM variant and which Inception
network / real set FID uses; a protocol pins all of that under one name that
is written into ``metrics.json``. The built-in datasets' presets (e.g.
``deepfashion-256x176``, ``phoenix-260x210``) are in :mod:`pgpis.metrics.presets`, on the registry
of :mod:`pgpis.metrics.protocol_registry`; this module imports both, so ``PROTOCOLS`` holds them as soon as this
module is imported; a dataset outside pgpis registers its own with
:func:`register_protocol` (its ``DatasetPackage.protocols()``).
"""
from __future__ import annotations

from pgpis.metrics import presets as _presets  # noqa: F401  (registers the built-in presets)
from pgpis.metrics.protocol_registry import (FID_REAL_SETS, PROTOCOLS, FidExtractorName, Protocol, all_protocols,
                                             get_protocol, register_protocol)

__all__ = ["FidExtractorName", "FID_REAL_SETS", "Protocol", "PROTOCOLS", "register_protocol", "all_protocols", "get_protocol"]
