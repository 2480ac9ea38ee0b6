"""The DeepFashion In-shop evaluation presets (``deepfashion-*``), registered by name.

Torch-free, so that :mod:`pgpis.metrics.protocols` (which imports every dataset's
``protocols`` module through :mod:`pgpis.data.registry`) stays cheap to import.
"""
from __future__ import annotations

from pgpis.metrics.protocols import Protocol, register_protocol

_DF = "DeepFashion In-shop pose transfer"
DEFAULT_PROTOCOL = "deepfashion-256x176"

PROTOCOLS: tuple[Protocol, ...] = (
    register_protocol(Protocol(
        "deepfashion-256x176", (256, 176),
        f"{_DF} at 256x176 (h x w); FID with clean-fid's TF-Inception (the standard).",
    )),
    register_protocol(Protocol(
        "deepfashion-512x352", (512, 352),
        f"{_DF} at 512x352 (h x w); FID with clean-fid's TF-Inception (the standard).",
    )),
    register_protocol(Protocol(
        "deepfashion-256x176-legacy", (256, 176),
        f"{_DF} at 256x176; FID with torchvision's Inception-v3 as in the PIDM/CFLD/FPDM evaluation code "
        "(bilinear to 299, torchvision transform_input applied to [0,1] inputs, 2048-d pool features).",
        fid_extractor="torchvision",
    )),
    register_protocol(Protocol(
        "deepfashion-512x352-legacy", (512, 352),
        f"{_DF} at 512x352; FID with torchvision's Inception-v3 as in the PIDM/CFLD/FPDM evaluation code.",
        fid_extractor="torchvision",
    )),
)
