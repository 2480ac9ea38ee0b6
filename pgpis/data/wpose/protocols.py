"""The WPose evaluation protocols ``wpose-512x352`` and ``wpose-256x176`` (TruePose Table 1), registered by name.

Kept free of torch: :mod:`pgpis.data.registry` imports this to list the presets. The scoring is in
:mod:`pgpis.data.wpose.scoring`.
"""
from __future__ import annotations

from pgpis.data.wpose.fit import PAD_RGB
from pgpis.metrics.protocols import Protocol, register_protocol

#: what the WPose protocols report, in table order (no FID: TruePose reports none on WPose)
WPOSE_METRICS = ("lpips", "ssim", "ssim_gaussian", "psnr", "pck@0.05", "pck@0.1", "pose_error_px", "iqa", "iaa")

_RESIZE = (f"resize to fit (PIL bicubic, largest scale at which the whole image fits) and pad centred with RGB "
           f"{PAD_RGB} (white), the same for generated and real images")


def _wpose(h: int, w: int) -> Protocol:
    return Protocol(
        f"wpose-{h}x{w}", (h, w),
        f"WPose in-the-wild pose transfer (UniHuman's 2,304 test pairs, TruePose Table 1) at {h}x{w} (h x w). "
        "Crops of any aspect ratio are fitted into the report size and padded (never stretched); LPIPS, both SSIM "
        "variants, PSNR; pose accuracy (PCK@0.05/0.1 of the report height, mean error in px) of an estimator run on "
        "the generated and the real target against the target's prepared keypoints; IQA / IAA (no-reference quality "
        "and aesthetics) for generated and real images; no FID, as in the paper.",
        resize=_RESIZE, fid_real_sets=(),
        extra={"dataset": "wpose", "metrics": list(WPOSE_METRICS), "fit": "resize-to-fit and pad",
               "pad_rgb": list(PAD_RGB), "pose_thresholds": [0.05, 0.1],
               "pose_reference": "the target image's keypoints (keypoints/<stem>.json, `pgpis data prepare`) "
                                 "carried into the report size by the same fit",
               "rows": ["generated", "ground truth (the real targets: pose-accuracy and IQA/IAA ceilings)"]},
    )


PROTOCOLS: tuple[Protocol, ...] = tuple(register_protocol(_wpose(h, w)) for h, w in ((512, 352), (256, 176)))
DEFAULT_PROTOCOL = "wpose-512x352"
