"""Stand-in pose estimators built from a class path with no arguments (`--estimator pose_stand_ins.Standing`).

The commands under test load estimators by name or class path, as a user's own estimator would be loaded.
``Standing`` finds the same upright person in every image, placed in fractions of the image's width and
height, so its keypoints are known on images of any size (a fixed pixel pose would fall outside small ones).
``Spot`` puts the nose on the image's white spot (orientation tests). ``Nobody`` finds no one. All build on
:mod:`pgpis.pose.testing`. pytest puts tests/ on sys.path.
"""
from __future__ import annotations

import numpy as np

from pgpis.pose.estimate import BaseEstimator, PoseEstimate
from pgpis.pose.testing import make_estimate

#: OpenPose-18 (x / width, y / height) of an upright person seen from the front (their right on the image's left)
STANDING = np.array([
    (0.50, 0.12), (0.50, 0.22), (0.38, 0.23), (0.33, 0.38), (0.31, 0.52), (0.62, 0.23), (0.67, 0.38), (0.69, 0.52),
    (0.43, 0.55), (0.42, 0.72), (0.42, 0.90), (0.57, 0.55), (0.58, 0.72), (0.58, 0.90), (0.47, 0.10), (0.53, 0.10),
    (0.44, 0.11), (0.56, 0.11)], dtype=np.float32)


def standing_body(size: tuple[int, int]) -> np.ndarray:
    """``[18, 2]`` pixels of :data:`STANDING` in an image of ``size = (h, w)``."""
    h, w = size
    return STANDING * np.array([w, h], np.float32)


class Standing(BaseEstimator):
    """The :data:`STANDING` person in every image; the right hand's wrist on the body's right wrist."""

    def __init__(self, name: str = "standing-stand-in"):
        self.name = name
        self.calls = 0

    def estimate(self, image) -> PoseEstimate:
        arr = np.asarray(image)
        size = arr.shape[:2]
        self.calls += 1
        body = standing_body(size)
        hands = np.full((2, 21, 2), -1.0, np.float32)
        hands[1, 0] = body[4]  # person's right hand: its root at the right wrist
        return make_estimate(size, body, hands)


class Spot(BaseEstimator):
    """The :data:`STANDING` person with the nose moved onto the picture's white spot (the centre of its pure-white
    pixels, as :func:`oriented_photos.asymmetric_photo` draws it): a photo read mirrored or turned moves the nose,
    so a reader that ignores EXIF orientation shows in the keypoints."""

    name = "spot-stand-in"

    def estimate(self, image) -> PoseEstimate:
        arr = np.asarray(image)
        size = arr.shape[:2]
        body = standing_body(size)
        ys, xs = np.nonzero((arr[:, :, :3] >= 250).all(axis=-1))
        if len(xs):
            body[0] = (xs.mean(), ys.mean())
        return make_estimate(size, body)


class Nobody(BaseEstimator):
    """No person in any image."""

    name = "nobody-stand-in"

    def estimate(self, image) -> PoseEstimate:
        return PoseEstimate.nobody(np.asarray(image).shape[:2])
