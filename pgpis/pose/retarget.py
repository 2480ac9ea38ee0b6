"""Retarget a driving pose to the source person's proportions: bone lengths rescaled from the neck outwards.

A pose taken from another photo or video carries that person's build: a tall dancer's long legs drawn on a
short source person ask the model for a body it has never seen in the source image. :func:`retarget_pose`
keeps the driving pose's *directions* and replaces its *lengths* by the source's:

* the neck (OpenPose-18 point 1) stays where the driving pose has it;
* walking the OpenPose-18 bone tree from the neck outwards (neck -> shoulders -> elbows -> wrists, neck -> hips
  -> knees -> ankles, neck -> nose -> eyes -> ears), each child point is placed at its (already placed) parent
  plus the driving bone's direction times ``scale(bone) * driving length``, with
  ``scale(bone) = source length / reference driving length``;
* a point missing in the driving pose stays missing; a point whose parent is missing hangs from its nearest
  present ancestor with the overall scale (the median of the bone scales); a bone the source lacks (an
  endpoint missing in the source) also takes the overall scale.

For a sequence ``[T, 18, D]`` every bone gets **one** scale for the whole clip: source length over the
**median** of the bone's driving length across the frames where both endpoints are present. A per-frame
scale would stretch every foreshortened limb back to full length (an arm pointing at the camera would
jump to full length) and make the clip jitter; the median over frames is robust to a few bad detections,
which the first frame alone is not. A single pose ``[18, D]`` is the one-frame case.

Both poses must be in the same pixel frame (pgpis uses the CFLD 256x176 frame). Extra columns (scores)
are carried along unchanged; missing points stay ``(-1, -1[, score])``.
"""
from __future__ import annotations

import numpy as np

from pgpis.pose.keypoints import MISSING, OPENPOSE_18, missing_mask

NECK = 1

#: (parent, child) bones of OpenPose-18, parents placed before children (breadth-first from the neck)
BONES: tuple[tuple[int, int], ...] = (
    (1, 2), (1, 5), (1, 8), (1, 11), (1, 0),
    (2, 3), (5, 6), (8, 9), (11, 12), (0, 14), (0, 15),
    (3, 4), (6, 7), (9, 10), (12, 13), (14, 16), (15, 17),
)
PARENT: dict[int, int] = {c: p for p, c in BONES}

assert {tuple(sorted(b)) for b in BONES} == {tuple(sorted(b)) for b in OPENPOSE_18.limbs}


def _lengths(xy: np.ndarray, present: np.ndarray) -> np.ndarray:
    """``[..., 17]`` bone lengths, NaN where an endpoint is missing."""
    p, c = np.array([b[0] for b in BONES]), np.array([b[1] for b in BONES])
    length = np.linalg.norm(xy[..., c, :] - xy[..., p, :], axis=-1)
    return np.where(present[..., p] & present[..., c], length, np.nan)


def bone_scales(driving: np.ndarray, source: np.ndarray) -> tuple[np.ndarray, float]:
    """(``[17]`` per-bone scale in :data:`BONES` order, the overall scale) for a driving ``[T, 18, 2+]`` clip.

    A bone without a length on either side gets the overall scale, the median of the others (1.0 when none).
    """
    drv = np.asarray(driving, dtype=np.float64)[..., :2]
    src = np.asarray(source, dtype=np.float64)[..., :2]
    drv_len = _lengths(drv, ~missing_mask(drv))  # [T, 17]
    src_len = _lengths(src, ~missing_mask(src))  # [17]
    with np.errstate(all="ignore"):
        ref = np.array([np.median(col[np.isfinite(col)]) if np.isfinite(col).any() else np.nan for col in drv_len.T])
        scale = src_len / ref
    ok = np.isfinite(scale) & (ref > 0)
    overall = float(np.median(scale[ok])) if ok.any() else 1.0
    return np.where(ok, scale, overall), overall


def retarget_pose(driving_body: np.ndarray, source_body: np.ndarray) -> np.ndarray:
    """The driving pose(s) with the source body's bone lengths, the neck fixed (see the module docstring).

    Args:
        driving_body: ``[18, D]`` or ``[T, 18, D]`` (D >= 2: x, y[, score]) OpenPose-18, -1 for missing.
        source_body: ``[18, D]`` OpenPose-18 of the source person, in the same pixel frame.
    Returns:
        float32 array of the driving pose's shape.
    """
    drv = np.asarray(driving_body, dtype=np.float32)
    src = np.asarray(source_body, dtype=np.float32)
    n = OPENPOSE_18.num_points
    if drv.ndim not in (2, 3) or drv.shape[-2:-1] != (n,) or drv.shape[-1] < 2:
        raise ValueError(f"retarget_pose: driving pose must be [18, 2+] or [T, 18, 2+], got {list(drv.shape)}")
    if src.ndim != 2 or src.shape[0] != n or src.shape[1] < 2:
        raise ValueError(f"retarget_pose: source pose must be [18, 2+], got {list(src.shape)}")
    single = drv.ndim == 2
    seq = drv[None] if single else drv
    scales, overall = bone_scales(seq, src)
    scale_of = {c: float(s) for (_, c), s in zip(BONES, scales)}
    out = seq.copy()
    xy = seq[..., :2].astype(np.float64)
    new = xy.copy()
    present = ~missing_mask(seq)  # [T, 18]
    for t in range(len(seq)):
        for _, child in BONES:
            if not present[t, child]:
                continue
            parent, scale = PARENT[child], scale_of[child]
            while parent != NECK and not present[t, parent]:  # hang from the nearest present ancestor
                parent, scale = PARENT[parent], overall
            if not present[t, parent]:
                continue  # no present ancestor (neck missing too): the point keeps its driving position
            new[t, child] = new[t, parent] + (xy[t, child] - xy[t, parent]) * scale
    out[..., :2] = new.astype(np.float32)
    out[..., :2][~present] = MISSING
    return out[0] if single else out


__all__ = ["retarget_pose", "bone_scales", "BONES"]
