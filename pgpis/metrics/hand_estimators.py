"""Hand-keypoint estimators for Hand PE (:mod:`pgpis.metrics.hands`) built on a pose estimator.

:class:`PoseHandEstimator` turns any :class:`pgpis.pose.PoseEstimator` that gives
hands into the :class:`~pgpis.metrics.hands.HandKeypointEstimator` Hand PE calls:
float frames ``[B, 3, H, W]`` in [0, 1] in, ``[B, 42, 3]`` (x, y, score) in
pixels of those frames out, the person's left hand (COCO-WholeBody 91-111) then
the right (112-132). A hand the estimator does not find is ``(-1, -1, 0)``.

The default is MediaPipe 0.10.21's bundled hand landmarker (offline, CPU). It is
not the estimator of the papers: FPDM's Hand PE used mmpose's HRNetv2-w18
COCO-WholeBody-hand model (top-down, on hand boxes). For figures comparable
with the papers, pass ``rtmlib`` (RTMPose / DWPose whole-body hands) or a class
path to your own HRNetv2 wrapper (``package.module.ClassName`` implementing
:class:`pgpis.pose.PoseEstimator` with ``hands``); Hand PE is then only comparable
between runs that used the same estimator, whose name goes into metrics.json.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from pgpis.errors import PgpisError
from pgpis.metrics.hands import NO_ESTIMATOR
from pgpis.metrics.pose_accuracy import estimator_name, images_to_uint8

if TYPE_CHECKING:
    from pgpis.metrics.hands import HandKeypointEstimator
    from pgpis.pose import PoseEstimator

AUTO = "auto"
DEFAULT_HAND_ESTIMATOR = "mediapipe"
DISABLED = "hand-keypoint estimator disabled by the caller (--pose-estimator none)"
HAND_POINTS = 21


class NoHandsError(PgpisError, ValueError):
    """The pose estimator given for Hand PE has no hand model."""


def missing_hands() -> np.ndarray:
    """``[2, 21, 3]`` of missing hand points ``(-1, -1, 0)``."""
    out = np.full((2, HAND_POINTS, 3), -1.0, dtype=np.float32)
    out[..., 2] = 0.0
    return out


class PoseHandEstimator:
    """Hand PE's estimator from a :class:`pgpis.pose.PoseEstimator`'s ``hands`` (default: mediapipe).

    ``estimator``: an estimator object, or a name / class path for :func:`pgpis.pose.load_estimator`
    (``options`` go to it). A backend without hands (``hands is None``) is a :class:`NoHandsError`.
    """

    def __init__(self, estimator: "PoseEstimator | str" = DEFAULT_HAND_ESTIMATOR, **options):
        if isinstance(estimator, str):
            from pgpis.pose import load_estimator

            estimator = load_estimator(estimator, **options)
        self.estimator = estimator
        self.name = estimator_name(estimator)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        estimates = self.estimator.estimate_batch(images_to_uint8(images))
        if len(estimates) != len(images):
            raise ValueError(f"pose estimator '{self.name}' returned {len(estimates)} estimates for {len(images)} frames")
        rows = []
        for e in estimates:
            if e.hands is None:
                raise NoHandsError(f"pose estimator '{self.name}' gives no hand keypoints, so Hand PE cannot use it. "
                                   "Fix: pass one with hands (--pose-estimator mediapipe or rtmlib, or your own "
                                   "HRNetv2 wrapper by class path)")
            hands = np.asarray(e.hands, dtype=np.float32)
            if hands.shape != (2, HAND_POINTS, 3):
                raise ValueError(f"pose estimator '{self.name}' returned hands of shape {list(hands.shape)}, "
                                 f"expected [2, {HAND_POINTS}, 3] (left, right; x, y, score)")
            hands = hands.copy()
            gone = (hands[..., :2] == -1).any(-1) | ~(hands[..., 2] > 0)  # missing -> (-1, -1, 0)
            hands[gone] = (-1.0, -1.0, 0.0)
            rows.append(hands.reshape(2 * HAND_POINTS, 3))
        return torch.from_numpy(np.stack(rows)).to(images.device)


@dataclass(frozen=True)
class NoHandEstimator:
    """Hand PE without an estimator, and why: reported as unavailable with this reason."""

    reason: str


def resolve_hand_estimator(spec: "HandKeypointEstimator | NoHandEstimator | str | None" = AUTO
                           ) -> "HandKeypointEstimator | NoHandEstimator":
    """The estimator Hand PE uses: ``"auto"`` (mediapipe's hands when they run here, else a
    :class:`NoHandEstimator` with the reason), ``"none"`` (off), a backend name or class path for
    :func:`pgpis.pose.load_estimator` (an unusable one raises its named error), or an estimator object.
    None: no estimator configured (:data:`pgpis.metrics.hands.NO_ESTIMATOR`)."""
    if spec is None:
        return NoHandEstimator(NO_ESTIMATOR)
    if isinstance(spec, str) and spec.lower() == "none":
        return NoHandEstimator(DISABLED)
    if not isinstance(spec, str):
        return spec
    from pgpis.pose import EstimatorUnavailable, available_estimators

    name = DEFAULT_HAND_ESTIMATOR if spec == AUTO else spec
    if spec == AUTO:
        why = available_estimators().get(name, f"'{name}' is not a known backend")
        if why is not None:
            return NoHandEstimator(f"{name}: {why}")
    try:
        return PoseHandEstimator(name)
    except EstimatorUnavailable as err:
        if spec == AUTO:
            return NoHandEstimator(str(err))
        raise
