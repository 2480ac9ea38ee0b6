"""The pose-estimator contract: :class:`PoseEstimate` (one person's keypoints) and :class:`PoseEstimator`.

Every backend (mediapipe, rtmlib, a user's own class) returns OpenPose-18 body keypoints ``(x, y, score)`` in
pixels of the *input* image, with the person's left and right, and a missing point written as the datasets
write it, ``(-1, -1, 0)``; so what an estimator finds can be written to CFLD/PCDMs/Phoenix files unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, Sequence, Union, runtime_checkable

import numpy as np

from pgpis.pose.errors import InvalidEstimate, InvalidImage
from pgpis.pose.keypoints import LEFT_HAND_START, MISSING, RIGHT_HAND_START

if TYPE_CHECKING:  # PIL is a core dependency, but keep the import out of the hot path
    from PIL import Image

ImageLike = Union["Image.Image", np.ndarray]

NUM_BODY = 18  # OpenPose-18
NUM_HAND = 21  # wrist, then thumb, index, middle, ring, pinky (4 each, base to tip)
NUM_WHOLEBODY = 133  # COCO-WholeBody
LEFT, RIGHT = 0, 1  # index into PoseEstimate.hands: the person's left hand, the person's right hand

# OpenPose-18 index -> COCO-17 index (neck, OpenPose 1, has no COCO counterpart)
OPENPOSE18_TO_COCO17 = {0: 0, 2: 6, 3: 8, 4: 10, 5: 5, 6: 7, 7: 9, 8: 12, 9: 14, 10: 16,
                        11: 11, 12: 13, 13: 15, 14: 2, 15: 1, 16: 4, 17: 3}


def missing_points(n: int) -> np.ndarray:
    """``float32 [n, 3]`` of missing points ``(-1, -1, 0)``."""
    out = np.zeros((n, 3), np.float32)
    out[:, :2] = MISSING
    return out


def _as_points(value: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float32)
    if arr.shape != shape:
        raise InvalidEstimate(f"PoseEstimate.{what}: expected shape {list(shape)} (x, y, score), got "
                              f"{list(arr.shape)}. Fix: return OpenPose-18 body [18, 3] and hands [2, 21, 3].")
    if not np.isfinite(arr).all():
        raise InvalidEstimate(f"PoseEstimate.{what}: contains NaN/inf. Fix: write a missing point as (-1, -1, 0).")
    arr = arr.copy()
    gone = (arr[..., 0] == MISSING) | (arr[..., 1] == MISSING)
    arr[gone] = (MISSING, MISSING, 0.0)  # one spelling of "missing", whatever half-marked point came in
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class PoseEstimate:
    """One person's keypoints found in one image.

    ``body``: ``float32 [18, 3]`` OpenPose-18 ``(x, y, score)`` in pixels of the input image, missing
    ``(-1, -1, 0)``. ``hands``: ``float32 [2, 21, 3]`` (person's left, person's right) or None when the
    backend has no hand model. ``found``: False when no person was detected (then body is all missing).
    ``image_size``: ``(h, w)`` of the input image. ``extra``: optional ``[133, 3]`` COCO-WholeBody from a
    backend that gives feet/face (rtmlib Wholebody); :meth:`wholebody` takes feet and face from it.
    Arrays are read-only copies, so an estimate can be shared and cached safely.
    """

    body: np.ndarray
    hands: np.ndarray | None
    found: bool
    image_size: tuple[int, int]
    extra: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "body", _as_points(self.body, (NUM_BODY, 3), "body"))
        if self.hands is not None:
            object.__setattr__(self, "hands", _as_points(self.hands, (2, NUM_HAND, 3), "hands"))
        if self.extra is not None:
            object.__setattr__(self, "extra", _as_points(self.extra, (NUM_WHOLEBODY, 3), "extra"))
        size = tuple(int(v) for v in self.image_size)
        if len(size) != 2 or min(size) <= 0:
            raise InvalidEstimate(f"PoseEstimate.image_size: expected (h, w) > 0, got {self.image_size!r}.")
        object.__setattr__(self, "image_size", size)
        object.__setattr__(self, "found", bool(self.found))
        if not self.found and (self.body[:, 2] > 0).any():
            raise InvalidEstimate("PoseEstimate: found=False but body has scored points. "
                                  "Fix: use PoseEstimate.nobody(image_size) for an image without a person.")

    def __eq__(self, other: object) -> bool:
        """Equal when every field is (arrays compared element-wise); estimates are unhashable."""
        if not isinstance(other, PoseEstimate):
            return NotImplemented

        def same(a: np.ndarray | None, b: np.ndarray | None) -> bool:
            return (a is None and b is None) or (a is not None and b is not None and np.array_equal(a, b))

        return (self.found == other.found and self.image_size == other.image_size and same(self.body, other.body)
                and same(self.hands, other.hands) and same(self.extra, other.extra))

    __hash__ = None  # type: ignore[assignment]

    @classmethod
    def nobody(cls, image_size: tuple[int, int], hands: bool = True) -> "PoseEstimate":
        """The estimate for an image with no person: every point missing, ``found=False``."""
        return cls(missing_points(NUM_BODY), np.stack([missing_points(NUM_HAND)] * 2) if hands else None,
                   False, image_size)

    @property
    def missing(self) -> np.ndarray:
        """Bool ``[18]``: True where the body point is missing."""
        return self.body[:, 0] == MISSING

    def wholebody(self) -> np.ndarray:
        """``float32 [133, 3]`` COCO-WholeBody (the Phoenix layout).

        Body 0-16 from the OpenPose-18 body (the neck has no place), feet 17-22 and face 23-90 from ``extra``
        when the backend gave them (else missing), left hand 91-111 and right hand 112-132 from ``hands``.
        """
        out = self.extra.copy() if self.extra is not None else missing_points(NUM_WHOLEBODY)
        for op, coco in OPENPOSE18_TO_COCO17.items():
            out[coco] = self.body[op]
        hands = self.hands if self.hands is not None else np.stack([missing_points(NUM_HAND)] * 2)
        out[LEFT_HAND_START:LEFT_HAND_START + NUM_HAND] = hands[LEFT]
        out[RIGHT_HAND_START:RIGHT_HAND_START + NUM_HAND] = hands[RIGHT]
        return out


def to_rgb_array(image: ImageLike) -> np.ndarray:
    """An estimator's input as ``uint8 [H, W, 3]`` RGB: a PIL image (any mode) or an RGB/grey/RGBA uint8 array."""
    from PIL import Image

    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise InvalidImage(f"image array has dtype {arr.dtype}, expected uint8 RGB [H, W, 3]. "
                           "Fix: pass a PIL image or np.asarray(PIL.Image.open(path).convert('RGB')).")
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    elif arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[:, :, :3]
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InvalidImage(f"image array has shape {list(arr.shape)}, expected RGB [H, W, 3].")
    return np.ascontiguousarray(arr)


@runtime_checkable
class PoseEstimator(Protocol):
    """What pgpis needs from a pose estimator: a ``name`` and ``estimate(image) -> PoseEstimate``.

    ``name`` is recorded in metrics.json and keypoint files so figures say which estimator made them.
    Subclass it to get the default ``estimate_batch`` (a loop); :class:`BaseEstimator` adds ``close`` and ``with``.
    """

    name: str

    def estimate(self, image: ImageLike) -> PoseEstimate:
        """Keypoints of the (selected) person in one RGB image."""
        ...

    def estimate_batch(self, images: Sequence[ImageLike]) -> list[PoseEstimate]:
        """Keypoints of each image; the default loops over :meth:`estimate`."""
        return [self.estimate(im) for im in images]


class BaseEstimator(PoseEstimator):
    """A PoseEstimator with resources: ``close()`` and ``with`` support (backends and stand-ins derive from it)."""

    name: str = "unnamed"

    def close(self) -> None:
        """Release the backend's resources (model sessions); the estimator is unusable afterwards."""

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
