"""Keypoint layouts of the estimators and their mappings to OpenPose-18 (the DeepFashion layout pgpis reads).

Index ``i`` of an OpenPose-18 map holds the source index of OpenPose point ``i`` (``NECK``: the neck, which
COCO and BlazePose do not have, is the midpoint of the two shoulders and scores the smaller shoulder score;
it is missing when either shoulder is). Left and right are the person's in every layout, so a map never
swaps sides; an estimator that gets the sides wrong (BlazePose on a back view) is passed through unchanged.

Hands: 21 points, wrist then thumb, index, middle, ring, pinky (4 each, base to tip) in COCO-WholeBody,
MediaPipe Hands and OpenPose alike (:data:`HAND21_NAMES`); RHD, which runs tip to palm, is not a layout here.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from pgpis.pose.estimate import NUM_HAND, NUM_WHOLEBODY, OPENPOSE18_TO_COCO17, missing_points
from pgpis.pose.keypoints import LEFT_HAND_START, MISSING, OPENPOSE_18, RIGHT_HAND_START

NECK = -2  # marker in an OpenPose-18 map: the midpoint of the shoulders
OPENPOSE18_NAMES = OPENPOSE_18.names

COCO17_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
    "right_knee", "left_ankle", "right_ankle",
)
BLAZEPOSE33_NAMES = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye", "right_eye_outer",
    "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_pinky", "right_pinky", "left_index", "right_index",
    "left_thumb", "right_thumb", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
    "right_ankle", "left_heel", "right_heel", "left_foot_index", "right_foot_index",
)
HAND21_NAMES = ("wrist",) + tuple(f"{f}{i}" for f in ("thumb", "index", "middle", "ring", "pinky")
                                  for i in range(1, 5))

# OpenPose-18 point i <- source index (docs/pose-estimators.md)
COCO17_TO_OPENPOSE18: tuple[int, ...] = (0, NECK, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3)
BLAZEPOSE33_TO_OPENPOSE18: tuple[int, ...] = (0, NECK, 12, 14, 16, 11, 13, 15, 24, 26, 28, 23, 25, 27, 5, 2, 8, 7)
SHOULDERS = {"coco17": (5, 6), "blazepose33": (11, 12)}  # (left, right) shoulder of each source layout
BLAZEPOSE_WRISTS = (15, 16)  # (left, right) wrist in BlazePose-33

# COCO-WholeBody-134 = rtmlib's ``to_openpose=True`` output: the 133 points with the neck inserted at 17, so
# every index from 17 on moves up by one; and its body 0-17 is already reordered to OpenPose-18.
WHOLEBODY134_NECK = 17


def _points(kp: np.ndarray, scores: np.ndarray | None, k: int, what: str) -> np.ndarray:
    """``[k, 2]`` + ``[k]`` scores (or ``[k, 3]``) -> ``float32 [k, 3]``; missing points ``(-1, -1, 0)``."""
    kp = np.asarray(kp, dtype=np.float32)
    if scores is not None:
        scores = np.asarray(scores, dtype=np.float32)
        if kp.shape != (k, 2) or scores.shape != (k,):
            raise ValueError(f"{what}: expected keypoints [{k}, 2] and scores [{k}], got {list(kp.shape)} and "
                             f"{list(scores.shape)}")
        kp = np.concatenate([kp, scores[:, None]], axis=1)
    elif kp.shape == (k, 2):
        kp = np.concatenate([kp, np.ones((k, 1), np.float32)], axis=1)
    if kp.shape != (k, 3):
        raise ValueError(f"{what}: expected [{k}, 3] (x, y, score), got {list(kp.shape)}")
    out = kp.copy()
    gone = (out[:, 0] == MISSING) | (out[:, 1] == MISSING) | ~np.isfinite(out).all(axis=1)
    out[gone] = (MISSING, MISSING, 0.0)
    return out


def clean_points(points: np.ndarray, image_size: tuple[int, int] | None = None,
                 min_score: float = 0.0) -> np.ndarray:
    """Mark as missing ``(-1, -1, 0)`` every point scoring below ``min_score``, not finite, or (given
    ``image_size`` ``(h, w)``) outside the image; so a guessed off-frame joint is never drawn or scored."""
    out = np.array(points, dtype=np.float32, copy=True)
    bad = ~np.isfinite(out).all(axis=-1) | (out[..., 2] < min_score)
    bad |= (out[..., 0] == MISSING) | (out[..., 1] == MISSING)
    if image_size is not None:
        h, w = image_size
        bad |= (out[..., 0] < 0) | (out[..., 1] < 0) | (out[..., 0] > w - 1) | (out[..., 1] > h - 1)
    out[bad] = (MISSING, MISSING, 0.0)
    return out


def neck_from_shoulders(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """The neck ``(x, y, score)``: the shoulders' midpoint, scored the smaller shoulder score; missing if
    either shoulder is."""
    if left[0] == MISSING or right[0] == MISSING or left[1] == MISSING or right[1] == MISSING:
        return np.array((MISSING, MISSING, 0.0), np.float32)
    return np.array(((left[0] + right[0]) / 2, (left[1] + right[1]) / 2, min(left[2], right[2])), np.float32)


def map_to_openpose18(points: np.ndarray, index: Sequence[int], shoulders: tuple[int, int]) -> np.ndarray:
    """``[K, 3]`` in some layout -> ``float32 [18, 3]`` OpenPose-18 by ``index`` (``NECK`` from ``shoulders``,
    the source's (left, right) shoulder indices)."""
    out = missing_points(18)
    for i, src in enumerate(index):
        out[i] = neck_from_shoulders(points[shoulders[0]], points[shoulders[1]]) if src == NECK else points[src]
    return out


def coco17_to_openpose18(kp: np.ndarray, scores: np.ndarray | None = None) -> np.ndarray:
    """COCO-17 (rtmlib Body, the first 17 points of COCO-WholeBody) -> OpenPose-18 ``[18, 3]``."""
    return map_to_openpose18(_points(kp, scores, 17, "COCO-17"), COCO17_TO_OPENPOSE18, SHOULDERS["coco17"])


def blazepose33_to_openpose18(kp: np.ndarray, scores: np.ndarray | None = None) -> np.ndarray:
    """BlazePose-33 (MediaPipe Pose) -> OpenPose-18 ``[18, 3]``."""
    return map_to_openpose18(_points(kp, scores, 33, "BlazePose-33"), BLAZEPOSE33_TO_OPENPOSE18,
                             SHOULDERS["blazepose33"])


def openpose18_to_coco17(body: np.ndarray) -> np.ndarray:
    """OpenPose-18 ``[18, 3]`` -> COCO-17 ``[17, 3]`` (the neck is dropped)."""
    body = _points(body, None, 18, "OpenPose-18")
    out = missing_points(17)
    for op, coco in OPENPOSE18_TO_COCO17.items():
        out[coco] = body[op]
    return out


def wholebody133_to_openpose18(kp: np.ndarray, scores: np.ndarray | None = None) -> np.ndarray:
    """COCO-WholeBody-133 -> OpenPose-18 ``[18, 3]`` (from its COCO-17 body)."""
    return coco17_to_openpose18(_points(kp, scores, NUM_WHOLEBODY, "COCO-WholeBody-133")[:17])


def wholebody133_hands(kp: np.ndarray, scores: np.ndarray | None = None) -> np.ndarray:
    """COCO-WholeBody-133 -> ``[2, 21, 3]`` hands (person's left 91-111, person's right 112-132)."""
    p = _points(kp, scores, NUM_WHOLEBODY, "COCO-WholeBody-133")
    return np.stack([p[LEFT_HAND_START:LEFT_HAND_START + NUM_HAND], p[RIGHT_HAND_START:RIGHT_HAND_START + NUM_HAND]])


def wholebody134_to_wholebody133(kp: np.ndarray, scores: np.ndarray | None = None) -> np.ndarray:
    """rtmlib's ``to_openpose=True`` 134 points -> COCO-WholeBody-133 ``[133, 3]`` (neck dropped, body back in
    COCO order, feet/face/hands shifted down by one)."""
    p = _points(kp, scores, NUM_WHOLEBODY + 1, "COCO-WholeBody-134")
    out = missing_points(NUM_WHOLEBODY)
    for op, coco in OPENPOSE18_TO_COCO17.items():
        out[coco] = p[op]
    out[17:] = p[WHOLEBODY134_NECK + 1:]
    return out


def wholebody134_to_openpose18(kp: np.ndarray, scores: np.ndarray | None = None) -> np.ndarray:
    """rtmlib's ``to_openpose=True`` 134 points -> OpenPose-18 ``[18, 3]``: its first 18 points, with the neck
    made again from the shoulders by the rule above (rtmlib averages them even when one is missing)."""
    out = _points(kp, scores, NUM_WHOLEBODY + 1, "COCO-WholeBody-134")[:18].copy()
    out[1] = neck_from_shoulders(out[5], out[2])
    return out


def openpose18_to_wholebody133(body: np.ndarray, hands: np.ndarray | None = None,
                               extra: np.ndarray | None = None) -> np.ndarray:
    """OpenPose-18 body (+ ``[2, 21, 3]`` hands, + a backend's ``[133, 3]`` for feet/face) -> ``[133, 3]``."""
    out = missing_points(NUM_WHOLEBODY) if extra is None else _points(extra, None, NUM_WHOLEBODY, "extra")
    out[:17] = openpose18_to_coco17(body)
    if hands is not None:
        hands = np.asarray(hands, np.float32)
        out[LEFT_HAND_START:LEFT_HAND_START + NUM_HAND] = hands[0]
        out[RIGHT_HAND_START:RIGHT_HAND_START + NUM_HAND] = hands[1]
    return out
