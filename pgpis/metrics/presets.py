"""The built-in datasets' evaluation presets (``deepfashion-*``, ``phoenix-260x210``, ``wpose-*``), by name.

They live beside :class:`~pgpis.metrics.protocols.Protocol` so that a preset name in a YAML or a script
(``get_protocol("deepfashion-256x176")``) resolves without importing :mod:`pgpis.data`: datasets build on
metrics, never the other way round. Each dataset package hands its presets out through its
:class:`~pgpis.data.contract.DatasetPackage` (``protocols()``); a dataset outside pgpis registers its own
with :func:`~pgpis.metrics.protocols.register_protocol`. Torch-free.
"""
from __future__ import annotations

from pgpis.metrics.protocol_registry import Protocol, register_protocol

# --------------------------------------------------------------------------- DeepFashion In-shop
_DF = "DeepFashion In-shop pose transfer"
DEEPFASHION_DEFAULT = "deepfashion-256x176"

DEEPFASHION_PROTOCOLS: tuple[Protocol, ...] = (
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

# --------------------------------------------------------------------------- Phoenix14T
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
PHOENIX_PROTOCOLS: tuple[Protocol, ...] = (PHOENIX_PROTOCOL,)

# --------------------------------------------------------------------------- WPose
#: what the WPose protocols report, in table order (no FID: TruePose reports none on WPose)
WPOSE_METRICS = ("lpips", "ssim", "ssim_gaussian", "psnr", "pck@0.05", "pck@0.1", "pose_error_px", "iqa", "iaa")
#: the colour WPose images are padded with when fitted into a report size (white)
WPOSE_PAD_RGB: tuple[int, int, int] = (255, 255, 255)
WPOSE_DEFAULT = "wpose-512x352"

_RESIZE = (f"resize to fit (PIL bicubic, largest scale at which the whole image fits) and pad centred with RGB "
           f"{WPOSE_PAD_RGB} (white), the same for generated and real images")


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
               "pad_rgb": list(WPOSE_PAD_RGB), "pose_thresholds": [0.05, 0.1],
               "pose_reference": "the target image's keypoints (keypoints/<stem>.json, `pgpis data prepare`) "
                                 "carried into the report size by the same fit",
               "rows": ["generated", "ground truth (the real targets: pose-accuracy and IQA/IAA ceilings)"]},
    )


WPOSE_PROTOCOLS: tuple[Protocol, ...] = tuple(register_protocol(_wpose(h, w)) for h, w in ((512, 352), (256, 176)))
