"""Stand-in estimators of known output, so tests of code that uses an estimator need no real model.

``FixedEstimator`` returns the same keypoints for every image; ``TableEstimator`` looks the image up by the
hash of its decoded RGB pixels (:func:`image_key`), so a test can give each fixture image its own pose. Both
are real :class:`~pgpis.pose.estimate.PoseEstimator` s (load them by class path too:
``load_estimator("pgpis.pose.testing.FixedEstimator", body=...)``).
"""
from __future__ import annotations

import hashlib
from typing import Any, Iterable, Mapping

import numpy as np

from pgpis.pose.estimate import NUM_HAND, BaseEstimator, ImageLike, PoseEstimate, missing_points, to_rgb_array
from pgpis.pose.keypoints import MISSING


def image_key(image: ImageLike) -> str:
    """sha256 of an image's decoded RGB pixels and shape: equal for a PIL image, its array and a PNG round trip
    (a JPEG re-encode changes it)."""
    arr = to_rgb_array(image)
    h = hashlib.sha256(f"{arr.shape[0]}x{arr.shape[1]}:".encode())
    h.update(arr.tobytes())
    return h.hexdigest()


def _with_scores(points: Any) -> np.ndarray:
    """``[n, 2]`` (score 1 where present, 0 where missing) or ``[n, 3]`` -> ``float32 [n, 3]``."""
    arr = np.asarray(points, dtype=np.float32)
    if arr.ndim >= 1 and arr.shape[-1] == 2:
        score = np.where((arr[..., 0] == MISSING) | (arr[..., 1] == MISSING), 0.0, 1.0).astype(np.float32)
        arr = np.concatenate([arr, score[..., None]], axis=-1)
    return arr


def make_estimate(image_size: tuple[int, int], body: Any | None = None, hands: Any | None = None,
                  found: bool | None = None, with_hands: bool = True) -> PoseEstimate:
    """A PoseEstimate from ``[18, 2|3]`` body / ``[2, 21, 2|3]`` hands (either may be None: all missing).

    ``found`` defaults to "some body point is present".
    """
    b = missing_points(18) if body is None else _with_scores(body)
    if hands is not None:
        hd = _with_scores(hands)
    else:
        hd = np.stack([missing_points(NUM_HAND)] * 2) if with_hands else None
    if found is None:
        found = bool((np.asarray(b)[:, 0] != MISSING).any())
    return PoseEstimate(b, hd, found, image_size)


class FixedEstimator(BaseEstimator):
    """Returns the given keypoints for every image (``image_size`` taken from each image).

    ``body``: ``[18, 2]`` or ``[18, 3]`` OpenPose-18 pixels (None: nobody found); ``hands``: ``[2, 21, 2|3]``
    (person's left, right) or None (all missing; ``with_hands=False`` gives ``hands=None`` as a body-only
    backend would). ``calls`` counts the images seen, so a test can check the estimator was really used.
    """

    def __init__(self, body: Any | None = None, hands: Any | None = None, found: bool | None = None,
                 with_hands: bool = True, name: str = "fixed"):
        self.name = name
        self._body, self._hands, self._found, self._with_hands = body, hands, found, with_hands
        self.calls = 0
        make_estimate((1, 1), body, hands, found, with_hands)  # bad shapes fail here, not at first use

    def estimate(self, image: ImageLike) -> PoseEstimate:
        arr = to_rgb_array(image)
        self.calls += 1
        return make_estimate(arr.shape[:2], self._body, self._hands, self._found, self._with_hands)


class TableEstimator(BaseEstimator):
    """Looks each image up by :func:`image_key`; an image not in the table gets ``default``.

    ``table`` maps a key to a :class:`PoseEstimate` or a ``[18, 2|3]`` body array. ``default``: ``"nobody"``
    (all missing, found=False), ``"raise"`` (KeyError naming the key: a test that must not meet unknown
    images), or a PoseEstimate/body array. Returned estimates take each image's own ``image_size``.
    """

    def __init__(self, table: Mapping[str, Any] | None = None, default: Any = "nobody",
                 with_hands: bool = True, name: str = "table"):
        self.name = name
        self.table: dict[str, Any] = dict(table or {})
        self.default = default
        self.with_hands = with_hands
        self.calls = 0
        self.misses: list[str] = []

    @classmethod
    def from_images(cls, pairs: Iterable[tuple[ImageLike, Any]], **kwargs: Any) -> "TableEstimator":
        """A table from ``(image, body or PoseEstimate)`` pairs."""
        return cls({image_key(im): value for im, value in pairs}, **kwargs)

    def add(self, image: ImageLike, value: Any) -> str:
        """Register ``value`` for ``image``; returns its key."""
        key = image_key(image)
        self.table[key] = value
        return key

    def _resolve(self, value: Any, size: tuple[int, int]) -> PoseEstimate:
        if isinstance(value, PoseEstimate):
            return PoseEstimate(value.body, value.hands, value.found, size, value.extra)
        return make_estimate(size, value, None, None, self.with_hands)

    def estimate(self, image: ImageLike) -> PoseEstimate:
        arr = to_rgb_array(image)
        size = arr.shape[:2]
        self.calls += 1
        key = image_key(arr)
        if key in self.table:
            return self._resolve(self.table[key], size)
        self.misses.append(key)
        if isinstance(self.default, str) and self.default == "raise":
            raise KeyError(f"TableEstimator: no entry for image {key[:12]}... ({size[1]}x{size[0]}); "
                           "register it with TableEstimator.add(image, body)")
        if isinstance(self.default, str) and self.default == "nobody":
            return PoseEstimate.nobody(size, hands=self.with_hands)
        return self._resolve(self.default, size)
