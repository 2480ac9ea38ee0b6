"""Pose front end: estimate OpenPose-18 body and 2x21 hand keypoints from photos (docs/pose-estimators.md).

Light to import: backends (mediapipe, rtmlib) are imported only when :func:`load_estimator` builds one.
"""
from pgpis.pose.errors import EstimatorUnavailable, InvalidEstimate, InvalidEstimator, InvalidImage
from pgpis.pose.estimate import BaseEstimator, PoseEstimate, PoseEstimator, to_rgb_array

__all__ = [
    "BaseEstimator", "EstimatorUnavailable", "InvalidEstimate", "InvalidEstimator", "InvalidImage",
    "PoseEstimate", "PoseEstimator", "to_rgb_array", "load_estimator", "available_estimators",
]


def __getattr__(name: str):
    """``load_estimator`` / ``available_estimators`` / ``retarget_pose`` resolved lazily (their modules may
    land after this one; importing ``pgpis.pose`` must not import a backend)."""
    if name in ("load_estimator", "available_estimators"):
        from pgpis.pose import registry

        return getattr(registry, name)
    if name == "retarget_pose":
        from pgpis.pose.retarget import retarget_pose

        return retarget_pose
    raise AttributeError(f"module 'pgpis.pose' has no attribute {name!r}")
