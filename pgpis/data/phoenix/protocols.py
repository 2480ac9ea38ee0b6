"""The ``phoenix-260x210`` evaluation protocol (FPDM's Phoenix14T numbers), registered by name.

Kept free of torch so that importing :mod:`pgpis.metrics.protocols` (which
imports this module through :mod:`pgpis.data.registry` to register the preset)
stays cheap. The scoring itself lives in :mod:`pgpis.data.phoenix.evaluate`.
"""
from __future__ import annotations

from pgpis.metrics.protocols import Protocol, register_protocol

PHOENIX_PROTOCOL_NAME = "phoenix-260x210"
#: metrics the Phoenix protocol reports, in table order (LPIPS is not part of FPDM's Phoenix table)
PHOENIX_METRICS = ("ssim", "ssim_gaussian", "hand_ssim", "hand_pe", "fid", "fid_test", "psnr")

PHOENIX_PROTOCOL = register_protocol(Protocol(
    PHOENIX_PROTOCOL_NAME, (260, 210),
    "RWTH-PHOENIX-Weather 2014T sign-language generation at the frame size 260x210 (h x w): each test video's "
    "first frame as source, every frame (frame 1 included) as target. SSIM on full frames; Hand SSIM on 60x60 "
    "crops centred on the ground-truth middle-finger knuckles (COCO-WholeBody 100 / 121), clamped inside the "
    "frame, mean over hands whose ground-truth knuckle scores >= 0.3 (Gaussian SSIM, data range 255); Hand PE = "
    "mean L1 (px) between hand keypoints estimated on generated and real frames (needs an estimator); FID with "
    "clean-fid's TF-Inception.",
    extra={"dataset": "phoenix", "metrics": list(PHOENIX_METRICS), "hand_crop": 60, "hand_score_threshold": 0.3,
           "hand_ssim": "gaussian sigma 1.5, data range 255, on 0-255 crops",
           "hand_pe": "mean |dx|+|dy| (px) over counted hands and points the estimator finds with score >= 0.3 on "
                      "the real frame"},
))

DEFAULT_PROTOCOL = PHOENIX_PROTOCOL_NAME
PROTOCOLS: tuple[Protocol, ...] = (PHOENIX_PROTOCOL,)
