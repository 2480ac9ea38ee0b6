"""Keypoint specifications, coordinate transforms, pose rendering and keypoint file formats.

Keypoints are ``float32 [..., K, 2]`` arrays of ``(x, y)`` pixels (extra trailing
columns such as a score are carried along untouched). A missing point is
``(-1, -1)`` (:data:`MISSING`); a point counts as missing when either coordinate
equals ``MISSING``. Every transform here keeps missing points missing, so a
missing joint can never be drawn or moved into the frame by accident.

Two skeletons are defined: OpenPose-18 (DeepFashion) and COCO-WholeBody-133
(Phoenix14T). This is also the one module of the DeepFashion keypoint files, read
by both layouts and written by every writer (the synthetic data, `pgpis pose
extract`): the CFLD annotation CSV (header ``name:keypoints_y:keypoints_x``, JSON
lists in a 256x176 (h x w) frame; :func:`cfld_annotation_rows`,
:func:`format_cfld_row`) and the PCDMs per-image txt files (18 rows ``x y`` in a
256x256 frame: the 176-wide frame padded by 40 px on each side).

Every keypoint pgpis reads goes through :func:`validate_keypoints` (NaN/inf, points outside the frame
beyond :data:`KEYPOINT_TOLERANCE_PX`, negatives other than the missing marker), so a bad value is a
named error at ``pgpis data check`` / DataModule set-up rather than a silently dropped joint.
"""
from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from pgpis.errors import DataFormatError, Problem

MISSING = -1.0
CFLD_FRAME = (256, 176)  # (h, w) of the CFLD/DPTN annotation CSVs
PCDMS_FRAME = (256, 256)  # (h, w) of the PCDMs pose txt files
PCDMS_X_OFFSET = 40.0  # PCDMs pads the 176-wide frame by 40 px on each side
CFLD_HEADER = "name:keypoints_y:keypoints_x"  # the header of a CFLD annotation CSV

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class KeypointSpec:
    """A skeleton: point names, limbs, colours and the left/right mirror map.

    ``colors[i]`` is the colour of limb ``i``; joints use ``joint_colors[j]``,
    which defaults to ``colors[j]`` (OpenPose's convention of one palette for
    both). ``flip_permutation[i]`` is the index of the mirror image of point
    ``i``. ``detail`` lists points (hands, face) drawn with thin strokes, and
    ``face`` the points drawn only on request.
    """

    name: str
    names: tuple[str, ...]
    limbs: tuple[tuple[int, int], ...]
    colors: tuple[RGB, ...]
    flip_permutation: tuple[int, ...]
    joint_colors: tuple[RGB, ...] | None = None
    detail: frozenset[int] = frozenset()
    face: frozenset[int] = frozenset()

    def __post_init__(self) -> None:
        k = len(self.names)
        if len(self.colors) < len(self.limbs):
            raise ValueError(f"{self.name}: {len(self.colors)} colours for {len(self.limbs)} limbs")
        if self.joint_colors is None and len(self.colors) < k:
            raise ValueError(f"{self.name}: need joint_colors, only {len(self.colors)} colours for {k} points")
        if self.joint_colors is not None and len(self.joint_colors) != k:
            raise ValueError(f"{self.name}: {len(self.joint_colors)} joint colours for {k} points")
        perm = self.flip_permutation
        if sorted(perm) != list(range(k)) or any(perm[perm[i]] != i for i in range(k)):
            raise ValueError(f"{self.name}: flip_permutation must be an involutive permutation of 0..{k - 1}")
        if any(not (0 <= a < k and 0 <= b < k) for a, b in self.limbs):
            raise ValueError(f"{self.name}: limb index out of range 0..{k - 1}")

    @property
    def num_points(self) -> int:
        return len(self.names)

    def joint_color(self, j: int) -> RGB:
        return (self.joint_colors or self.colors)[j]


def _mirror_by_name(names: tuple[str, ...]) -> list[int]:
    """Flip permutation from ``left``/``right`` in the names (points without a side map to themselves)."""
    index = {n: i for i, n in enumerate(names)}
    perm = []
    for n in names:
        if "left" in n:
            perm.append(index[n.replace("left", "right")])
        elif "right" in n:
            perm.append(index[n.replace("right", "left")])
        else:
            perm.append(index[n])
    return perm


# --- OpenPose-18 (DeepFashion) --------------------------------------------------------------

OPENPOSE_18 = KeypointSpec(
    name="openpose18",
    names=(
        "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
        "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
        "right_eye", "left_eye", "right_ear", "left_ear",
    ),
    limbs=(
        (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10),
        (1, 11), (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
    ),
    colors=(
        (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
        (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
        (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
    ),
    flip_permutation=(0, 1, 5, 6, 7, 2, 3, 4, 11, 12, 13, 8, 9, 10, 15, 14, 17, 16),
)


# --- COCO-WholeBody-133 (Phoenix14T) ------------------------------------------------------

_BODY17 = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
    "right_knee", "left_ankle", "right_ankle",
)
_FEET = ("left_big_toe", "left_small_toe", "left_heel", "right_big_toe", "right_small_toe", "right_heel")
_FINGERS = ("thumb", "forefinger", "middle_finger", "ring_finger", "pinky_finger")


def _hand_names(side: str) -> tuple[str, ...]:
    return (f"{side}_hand_root",) + tuple(f"{side}_{f}{i}" for f in _FINGERS for i in range(1, 5))


FACE_START, LEFT_HAND_START, RIGHT_HAND_START = 23, 91, 112
LEFT_HAND_KNUCKLE, RIGHT_HAND_KNUCKLE = 100, 121  # middle-finger MCP joints (Hand SSIM crop centres)
HAND_EDGES = tuple((0, 4 * f + 1) if i == 0 else (4 * f + i, 4 * f + i + 1) for f in range(5) for i in range(4))

# iBUG-68 face: mirror map and drawing contours (0-based inside the face block).
_FACE_MIRROR = (
    list(range(16, -1, -1))  # jaw 0-16
    + list(range(26, 16, -1))  # brows 17-26
    + [27, 28, 29, 30, 35, 34, 33, 32, 31]  # nose
    + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]  # eyes
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]  # outer lips
    + [64, 63, 62, 61, 60, 67, 66, 65]  # inner lips
)
_FACE_CHAINS = ((0, 17, False), (17, 22, False), (22, 27, False), (27, 31, False), (31, 36, False),
                (36, 42, True), (42, 48, True), (48, 60, True), (60, 68, True))


def _chain(start: int, stop: int, closed: bool) -> list[tuple[int, int]]:
    edges = [(i, i + 1) for i in range(start, stop - 1)]
    return edges + [(stop - 1, start)] if closed else edges


def _hsv(h: float, v: float = 1.0) -> RGB:
    import colorsys

    r, g, b = colorsys.hsv_to_rgb(h % 1.0, 1.0, v)
    return (round(255 * r), round(255 * g), round(255 * b))


def _build_wholebody() -> KeypointSpec:
    names = (_BODY17 + _FEET + tuple(f"face_{i}" for i in range(68))
             + _hand_names("left") + _hand_names("right"))
    perm = _mirror_by_name(names)
    perm[FACE_START:LEFT_HAND_START] = [FACE_START + m for m in _FACE_MIRROR]

    body_limbs = [(15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7),
                  (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6)]
    feet_limbs = [(15, 17), (15, 18), (15, 19), (16, 20), (16, 21), (16, 22)]
    wrist_limbs = [(9, LEFT_HAND_START), (10, RIGHT_HAND_START)]
    limbs, colors = [], []
    for i, limb in enumerate(body_limbs + feet_limbs + wrist_limbs):
        limbs.append(limb)
        colors.append(OPENPOSE_18.colors[i % 18])
    # Hands: one hue per finger, brighter along the finger; the left hand darker so hands stay distinguishable.
    for start, value in ((LEFT_HAND_START, 0.7), (RIGHT_HAND_START, 1.0)):
        for e, (a, b) in enumerate(HAND_EDGES):
            limbs.append((start + a, start + b))
            colors.append(_hsv(e / 20.0, value))
    for s, t, closed in _FACE_CHAINS:
        for a, b in _chain(s, t, closed):
            limbs.append((FACE_START + a, FACE_START + b))
            colors.append((255, 255, 255))

    joint_colors: list[RGB] = [OPENPOSE_18.colors[i % 18] for i in range(17)]
    joint_colors += [OPENPOSE_18.colors[(10 + i) % 18] for i in range(6)]
    joint_colors += [(255, 255, 255)] * 68
    for value in (0.7, 1.0):
        joint_colors.append(_hsv(0.0, value))  # hand root
        joint_colors += [_hsv((4 * f + i) / 20.0, value) for f in range(5) for i in range(4)]
    hands = frozenset(range(LEFT_HAND_START, 133))
    face = frozenset(range(FACE_START, LEFT_HAND_START))
    return KeypointSpec("coco_wholebody133", names, tuple(limbs), tuple(colors), tuple(perm),
                        joint_colors=tuple(joint_colors), detail=hands | face, face=face)


COCO_WHOLEBODY_133 = _build_wholebody()


# --- transforms -------------------------------------------------------------------------------

def missing_mask(kp: np.ndarray) -> np.ndarray:
    """Bool ``[..., K]``: True where the point is missing (either coordinate equals MISSING)."""
    kp = np.asarray(kp)
    return (kp[..., 0] == MISSING) | (kp[..., 1] == MISSING)


def _with_missing(out: np.ndarray, missing: np.ndarray) -> np.ndarray:
    out[..., 0:2][missing] = MISSING
    return out


def rescale_keypoints(kp: np.ndarray, from_size: tuple[int, int], to_size: tuple[int, int]) -> np.ndarray:
    """Map pixel coordinates from a ``(h, w)`` frame to another by plain scaling (as the reference code does)."""
    kp = np.asarray(kp, dtype=np.float32)
    miss = missing_mask(kp)
    out = kp.copy()
    out[..., 0] *= to_size[1] / from_size[1]
    out[..., 1] *= to_size[0] / from_size[0]
    return _with_missing(out, miss)


def flip_keypoints(kp: np.ndarray, width: int, spec: KeypointSpec) -> np.ndarray:
    """Mirror horizontally (x -> width - 1 - x) and swap left/right points; works on ``[..., K, D>=2]``."""
    kp = np.asarray(kp, dtype=np.float32)
    if kp.shape[-2] != spec.num_points:
        raise ValueError(f"flip_keypoints: {kp.shape[-2]} points, but {spec.name} has {spec.num_points}")
    miss = missing_mask(kp)
    out = kp.copy()
    out[..., 0] = (width - 1) - out[..., 0]
    out = _with_missing(out, miss)
    return out[..., list(spec.flip_permutation), :]


def jitter_keypoints(kp: np.ndarray, sigma_px: float, rng: np.random.Generator) -> np.ndarray:
    """Add Gaussian noise of ``sigma_px`` pixels to present points (an augmentation; missing stay missing)."""
    kp = np.asarray(kp, dtype=np.float32)
    miss = missing_mask(kp)
    out = kp.copy()
    out[..., 0:2] += rng.normal(0.0, sigma_px, size=out[..., 0:2].shape).astype(np.float32)
    return _with_missing(out, miss)


def pcdms_to_cfld_frame(kp: np.ndarray) -> np.ndarray:
    """256x256 PCDMs frame -> 256x176 CFLD frame (x - 40 for present points)."""
    return _shift_x(kp, -PCDMS_X_OFFSET)


def cfld_to_pcdms_frame(kp: np.ndarray) -> np.ndarray:
    """256x176 CFLD frame -> 256x256 PCDMs frame (x + 40 for present points)."""
    return _shift_x(kp, PCDMS_X_OFFSET)


def _shift_x(kp: np.ndarray, dx: float) -> np.ndarray:
    kp = np.asarray(kp, dtype=np.float32)
    miss = missing_mask(kp)
    out = kp.copy()
    out[..., 0] += dx
    return _with_missing(out, miss)


# --- rendering --------------------------------------------------------------------------------

def drawable_mask(kp: np.ndarray, size: tuple[int, int], scores: np.ndarray | None = None,
                  score_threshold: float = 0.3) -> np.ndarray:
    """Bool ``[K]``: not missing, inside the ``(h, w)`` frame and (if scores given) score >= threshold."""
    kp = np.asarray(kp, dtype=np.float32)
    h, w = size
    ok = ~missing_mask(kp) & (kp[:, 0] >= 0) & (kp[:, 0] <= w - 1) & (kp[:, 1] >= 0) & (kp[:, 1] <= h - 1)
    if scores is not None:
        ok &= np.asarray(scores, dtype=np.float32) >= score_threshold
    return ok


def _limb_polygon(p: np.ndarray, q: np.ndarray, half_width: float) -> list[tuple[float, float]]:
    """OpenPose-style limb: an ellipse spanning p-q with minor half-axis ``half_width``."""
    cx, cy = (p + q) / 2.0
    dx, dy = q - p
    a = max(math.hypot(dx, dy) / 2.0, half_width)
    ang = math.atan2(dy, dx)
    t = np.linspace(0.0, 2.0 * math.pi, 36, endpoint=False)
    ex, ey = a * np.cos(t), half_width * np.sin(t)
    xs = cx + ex * math.cos(ang) - ey * math.sin(ang)
    ys = cy + ex * math.sin(ang) + ey * math.cos(ang)
    return list(zip(xs.tolist(), ys.tolist()))


def render_pose(
    kp: np.ndarray,
    size: tuple[int, int],
    spec: KeypointSpec = OPENPOSE_18,
    scores: np.ndarray | None = None,
    score_threshold: float = 0.3,
    reference_height: int = 512,
    stick_width: float = 4,
    joint_radius: float = 4,
    draw_face: bool = False,
    detail_scale: float = 0.5,
) -> np.ndarray:
    """Draw a pose image ``uint8 [H, W, 3]`` on black, in ``size = (h, w)`` pixel coordinates.

    Limbs are OpenPose ellipses (``stick_width`` = minor half-axis), joints filled circles
    drawn after the limbs, so each joint's pixel has the joint's colour. Widths scale with
    ``h / reference_height`` (minimum 1 px) so renders at different resolutions look alike
    after resizing; ``detail`` points (hands, face) use ``detail_scale`` of that so fingers
    stay distinct. Points that are missing, outside the frame or below ``score_threshold``
    are never drawn, nor are limbs touching them. Face points are drawn only with ``draw_face``.
    """
    kp = np.asarray(kp, dtype=np.float32)
    if kp.ndim != 2 or kp.shape[0] != spec.num_points or kp.shape[1] < 2:
        raise ValueError(f"render_pose: expected [{spec.num_points}, 2] keypoints for {spec.name}, got {list(kp.shape)}")
    h, w = size
    scale = h / float(reference_height)
    ok = drawable_mask(kp[:, :2], size, scores, score_threshold)
    if not draw_face and spec.face:
        ok[list(spec.face)] = False
    xy = np.rint(kp[:, :2])

    def width(base: float, detail: bool) -> float:
        return max(1.0, base * scale * (detail_scale if detail else 1.0))

    canvas = Image.new("RGB", (w, h), (0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    for i, (a, b) in enumerate(spec.limbs):
        if ok[a] and ok[b]:
            hw = width(stick_width, a in spec.detail or b in spec.detail)
            if hw <= 1.0:
                draw.line([tuple(xy[a]), tuple(xy[b])], fill=spec.colors[i], width=2)
            else:
                draw.polygon(_limb_polygon(xy[a], xy[b], hw), fill=spec.colors[i])
    for j in np.flatnonzero(ok):
        r = round(width(joint_radius, j in spec.detail))
        x, y = xy[j]
        draw.ellipse([x - r, y - r, x + r, y + r], fill=spec.joint_color(j))
    return np.asarray(canvas, dtype=np.uint8).copy()


# --- validation -------------------------------------------------------------------------------

KEYPOINT_TOLERANCE_PX = 3.0
"""How far (pixels of the keypoint's own frame) a present point may lie past the far edge of its frame.

Annotations are made on, or detected in, the 750x1101 originals (or Phoenix's frames) and rounded or
rescaled into the annotation frame; annotators also click on the border. Both put genuine points a pixel
or two past the last pixel centre (``x = 176`` in the 176-wide frame is common), so up to 3 px past
``w - 1`` / ``h - 1`` is accepted; ``y = 937`` in a 256-high frame, or a file in another frame, is refused.
Formats with a ``-1`` missing marker get no tolerance below 0: a negative other than the marker (``-2``,
``-0.5``, ``-999``) is far more likely a mistyped marker than a point, and the value -1 itself cannot be a
point. Formats without a marker (Phoenix's detector output) get the tolerance on both sides.
"""

CONFIDENT_SCORE = 0.3
"""Detector score from which a point counts as detected (the Phoenix keypoints are drawn only above it).

Only detected points must lie in the frame: HRNet still outputs a location, with a low score, for joints
outside the image (legs below Phoenix's frame), and pgpis treats those as missing.
"""


_F32_MAX = float(np.finfo(np.float32).max)


def _finite32(v: np.ndarray) -> np.ndarray:
    """True where a value is finite and representable as float32 (float64 1e300 would become inf)."""
    if v.dtype.kind != "f":
        return np.ones(v.shape, dtype=bool)  # integers: int64's range fits in float32's
    ok = np.isfinite(v)
    return ok if v.dtype.itemsize <= 4 else ok & (np.abs(v) <= _F32_MAX)


def _point_label(index: tuple[int, ...], spec: KeypointSpec | None, point_lines: Sequence[int] | None) -> str:
    *frames, k = index
    where = [f"frame {frames[-1] + 1}"] if frames else []
    if point_lines is not None and not frames and k < len(point_lines):
        where.append(f"line {point_lines[k]}")
    name = f" ({spec.names[k]})" if spec is not None and k < spec.num_points else ""
    where.append(f"point {k}{name}")
    return ", ".join(where)


def validate_keypoints(
    kp: np.ndarray,
    frame: tuple[int, int],
    *,
    file: str,
    line: int | None = None,
    item: str | None = None,
    spec: KeypointSpec | None = None,
    scores: np.ndarray | None = None,
    score_threshold: float = CONFIDENT_SCORE,
    missing: float | None = MISSING,
    tolerance: float = KEYPOINT_TOLERANCE_PX,
    x_offset: float = 0.0,
    frame_label: str | None = None,
    point_lines: Sequence[int] | None = None,
    fix: str | None = None,
    show: int = 5,
) -> list[Problem]:
    """Check keypoints against their frame; return the problems (empty when valid), never raise.

    This is the one check every keypoint source goes through (the CFLD and PCDMs parsers, Phoenix's
    containers); a new dataset calls it on each array it reads and raises ``DataFormatError(problems)``
    (or collects them) so ``pgpis data check`` and DataModule set-up name the file, line and fix.

    Args:
        kp: ``[..., K, D>=2]`` ``(x, y, ...)`` pixels; extra leading axes are frames (numbered from 1).
        frame: ``(h, w)`` of the image the points belong to.
        file, line, item: where the array came from (reported as is).
        spec: names the points in messages.
        scores: ``[..., K]`` detector scores; then only points with ``score >= score_threshold`` must lie
            in the frame (every value must still be finite).
        missing: the missing-point marker (``-1``): a coordinate equal to it is not checked, and any
            other negative value is an error. ``None`` for formats without a marker (tolerance below 0 too).
        tolerance: pixels past the far edge still accepted (:data:`KEYPOINT_TOLERANCE_PX`, why there).
        x_offset: where the image starts in the file's x axis (PCDMs pads the 176-wide image by 40 px).
        frame_label: how messages name the frame (default ``"256x176 (h x w) frame"``).
        point_lines: file line of each point (PCDMs: one point per line); the problem names the first bad one.
        show: offending values listed per problem.
    """
    h, w = frame
    label = frame_label or f"{h}x{w} (h x w) frame"
    fix = fix or (f"correct the value: pixel coordinates in the {label}"
                  + (f", {missing:g} for a missing point" if missing is not None else "")
                  + "; if the file is in another frame (another resolution, the 256x256 PCDMs frame), convert it")
    arr = np.asarray(kp)
    if arr.dtype.kind not in "iuf":
        return [Problem(file, f"keypoints have dtype {arr.dtype}, expected real numbers", fix, line, item)]
    if arr.ndim < 2 or arr.shape[-1] < 2:
        return [Problem(file, f"keypoints have shape {list(arr.shape)}, expected [..., K, 2+] (x, y, ...)", fix, line, item)]
    lo = np.array([x_offset, 0.0]) - (0.0 if missing is not None else tolerance)
    hi = np.array([x_offset + w - 1, h - 1]) + tolerance
    sc = None
    if scores is not None:
        sc = np.asarray(scores)
        if sc.shape != arr.shape[:-1] or sc.dtype.kind not in "iuf":
            return [Problem(file, f"scores have shape {list(sc.shape)} / dtype {sc.dtype}, expected real {list(arr.shape[:-1])}",
                            fix, line, item)]
    with np.errstate(all="ignore"):  # comparisons in the array's own dtype: no float64 copy of a whole video
        finite = np.stack([_finite32(arr[..., 0]), _finite32(arr[..., 1])], axis=-1)
        checked = (sc >= score_threshold)[..., None] if sc is not None else True
        outside = np.stack([(arr[..., a] < lo[a]) | (arr[..., a] > hi[a]) for a in (0, 1)], axis=-1)
        if missing is not None:
            outside &= arr[..., :2] != missing
        bad_coord = ~finite | (outside & checked)
        score_bad = ~_finite32(sc) if sc is not None else np.zeros(arr.shape[:-1], dtype=bool)
        bad_point = bad_coord.any(axis=-1) | score_bad
    if not bad_point.any():
        return []
    xy = arr[..., :2].astype(np.float64)
    found = np.argwhere(bad_point)
    details = []
    for idx in found[:show]:
        idx_t = tuple(int(i) for i in idx)
        reasons = []
        for axis, name in ((0, "x"), (1, "y")):
            if not bad_coord[idx_t + (axis,)]:
                continue
            v = xy[idx_t + (axis,)]
            if np.isnan(v):
                reasons.append(f"{name} is NaN")
            elif not finite[idx_t + (axis,)]:
                reasons.append(f"{name} = {v:g} is not a finite float32 (inf or too large)")
            elif missing is not None and v < 0 and lo[axis] == 0:
                reasons.append(f"{name} = {v:g} is negative but not the missing marker {missing:g}")
            else:
                reasons.append(f"{name} = {v:g} is outside the {label}: valid {name} is {lo[axis]:g} to {hi[axis]:g} "
                               f"({tolerance:g} px tolerance {'past the far edge' if missing is not None else 'each side'})")
        if score_bad[idx_t]:
            reasons.append(f"score = {sc[idx_t]:g} is not a finite float32")
        details.append(f"{_point_label(idx_t, spec, point_lines)}: " + " and ".join(reasons))
    more = len(found) - len(details)
    what = "; ".join(details) + (f"; and {more} more bad point(s)" if more else "")
    first = tuple(int(i) for i in found[0])
    where_line = line
    if where_line is None and point_lines is not None and arr.ndim == 2 and first[-1] < len(point_lines):
        where_line = point_lines[first[-1]]
    return [Problem(file, what, fix, where_line, item)]


# --- file formats -----------------------------------------------------------------------------

def read_text(path: str | os.PathLike, fix: str) -> str:
    """A text file's contents as UTF-8; unreadable or binary files are a :class:`DataFormatError` naming the line."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataFormatError(Problem(str(path), f"cannot read the file ({e.strerror or e})", fix)) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise DataFormatError(Problem(str(path), f"not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start}); "
                                                 "binary or corrupted file", fix, line)) from None


def text_lines(text: str) -> list[str]:
    """Lines as editors number them (split on newlines only, ``\\r\\n`` tolerated)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


def _number_list(text: str, what: str, file: str, line: int | None, item: str | None, n: int) -> list[float]:
    fix = f"write {what} as a JSON list of {n} numbers, -1 for a missing point"
    try:
        values = json.loads(text)
    except (ValueError, TypeError, RecursionError) as e:  # JSONDecodeError, int-digit limits, deep nesting
        msg = (e.msg if isinstance(e, json.JSONDecodeError) else "nested too deeply" if isinstance(e, RecursionError)
               else str(e)[:80])
        raise DataFormatError(Problem(file, f"{what} is not a JSON list ({msg})", fix, line, item)) from None
    shown = text if len(text) <= 80 else text[:77] + "..."
    if not isinstance(values, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise DataFormatError(Problem(file, f"{what} must be a list of numbers, got {shown!r}", fix, line, item))
    if len(values) != n:
        raise DataFormatError(Problem(file, f"{what}: expected {n} keypoints, found {len(values)}", fix, line, item))
    out = []
    for i, v in enumerate(values):
        try:
            out.append(float(v))
        except OverflowError:
            raise DataFormatError(Problem(file, f"{what}[{i}] is an integer too large to be a pixel coordinate", fix,
                                          line, item)) from None
    return out


def parse_cfld_keypoints(y_json: str, x_json: str, *, file: str = "<cfld annotation>", line: int | None = None,
                         item: str | None = None, num_points: int = 18,
                         frame: tuple[int, int] = CFLD_FRAME) -> np.ndarray:
    """Parse the CFLD ``keypoints_y`` / ``keypoints_x`` columns into ``[18, 2]`` (x, y) in the 256x176 frame.

    Values are checked with :func:`validate_keypoints` (finite, in the frame, -1 the only negative).
    """
    ys = _number_list(y_json, "keypoints_y", file, line, item, num_points)
    xs = _number_list(x_json, "keypoints_x", file, line, item, num_points)
    kp64 = np.stack([np.asarray(xs, np.float64), np.asarray(ys, np.float64)], axis=1)
    problems = validate_keypoints(kp64, frame, file=file, line=line, item=item, spec=_spec_for(num_points),
                                  fix="correct keypoints_y / keypoints_x: pixels of the 256x176 (h x w) frame, "
                                      "-1 for a missing point (convert files from another frame first)")
    if problems:
        raise DataFormatError(problems)
    kp = kp64.astype(np.float32)
    return _with_missing(kp, missing_mask(kp))


def cfld_annotation_rows(path: str | os.PathLike, lines: Sequence[str]
                         ) -> tuple[list[tuple[int, str, np.ndarray]], list[Problem], set[str]]:
    """Parse the lines of a CFLD annotation CSV (``name:keypoints_y:keypoints_x``): the one parser of the format.

    Returns ``(rows, problems, rejected)``: ``(line, name, [18, 2])`` of every valid row, a :class:`Problem` for
    the header and every bad row, and the names of rows whose keypoints were refused. Readers that must be
    whole (the DeepFashion layout, a pose file) raise the problems; a resumable writer drops the bad rows.
    """
    problems: list[Problem] = []
    rejected: set[str] = set()
    path = str(path)
    header = lines[0].strip() if lines else ""
    if header != CFLD_HEADER:
        shown = header if len(header) <= 60 else header[:57] + "..."
        problems.append(Problem(path, f"header is {shown!r}, expected 'name:keypoints_y:keypoints_x'",
                                "use the original CFLD annotation file (':' separated)", line=1))
    rows: list[tuple[int, str, np.ndarray]] = []
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        parts = line.split(":")
        if len(parts) != 3:
            problems.append(Problem(path, f"expected 3 ':'-separated fields, found {len(parts)}", "write rows as name:[y0,...,y17]:[x0,...,x17]", line=lineno))
            continue
        name, ys, xs = (s.strip() for s in parts)
        if not name:
            problems.append(Problem(path, "the image name (first field) is empty", "write rows as name:[y0,...,y17]:[x0,...,x17]", line=lineno))
            continue
        try:
            rows.append((lineno, name, parse_cfld_keypoints(ys, xs, file=path, line=lineno, item=name)))
        except DataFormatError as err:
            problems.extend(err.problems)
            rejected.add(name)
    if header == CFLD_HEADER and not any(ln.strip() for ln in lines[1:]):
        problems.append(Problem(path, "the annotation holds a header but no keypoint rows",
                                "restore the original CFLD annotation file (one row per image)", line=2))
    return rows, problems, rejected


def _spec_for(num_points: int) -> KeypointSpec | None:
    return OPENPOSE_18 if num_points == OPENPOSE_18.num_points else None


def _num(v: float) -> int | float:
    v = float(np.float32(v))
    return int(v) if v.is_integer() else float(np.format_float_positional(np.float32(v), unique=True, trim="-"))


def format_cfld_keypoints(kp: np.ndarray) -> tuple[str, str]:
    """Inverse of :func:`parse_cfld_keypoints`: ``(y_json, x_json)``; integral values are written as ints."""
    kp = np.asarray(kp, dtype=np.float32)
    kp = _with_missing(kp.copy(), missing_mask(kp))
    return json.dumps([_num(v) for v in kp[:, 1]]), json.dumps([_num(v) for v in kp[:, 0]])


def format_cfld_row(name: str, kp: np.ndarray) -> str:
    """One row of a CFLD annotation CSV, ``name:[y0,...]:[x0,...]`` (no newline), as every pgpis writer writes it."""
    ys, xs = format_cfld_keypoints(kp)
    return f"{name}:{ys}:{xs}"


# A decimal number in ASCII (float() also takes '1_000' and non-ASCII digits such as '\u0663'; a pose file
# holding those is damaged, not numeric). nan/inf parse here so that the range check names them.
_FLOAT_RE = re.compile(r"^[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|nan|inf|infinity)$", re.ASCII | re.IGNORECASE)


def read_pcdms_keypoints(path: str | os.PathLike, num_points: int = 18) -> np.ndarray:
    """Read a PCDMs pose txt (``num_points`` rows ``x y`` in the 256x256 frame) into ``[K, 2]``.

    Present points must lie on the 176-wide image inside that frame (x 40..215, y 0..255, plus
    :data:`KEYPOINT_TOLERANCE_PX` past the far edges): a point in the padding would land at a negative x
    of the 256x176 frame (x = 39 even on the missing marker), so it is an error, not a silent miss.
    """
    path = Path(path)
    fix = f"the file must hold {num_points} lines 'x y' (256x256 frame, -1 -1 for a missing point)"
    lines = text_lines(read_text(path, fix))
    while lines and not lines[-1].strip():
        lines.pop()
    problems: list[Problem] = []
    rows: list[tuple[float, float]] = []
    for n, raw in enumerate(lines, start=1):
        parts = raw.replace(",", " ").split()
        if len(parts) != 2:
            problems.append(Problem(str(path), f"expected 2 numbers 'x y', found {len(parts)}", fix, n))
            continue
        if all(_FLOAT_RE.match(v) for v in parts):
            rows.append((float(parts[0]), float(parts[1])))
        else:
            shown = raw.strip() if len(raw.strip()) <= 60 else raw.strip()[:57] + "..."
            problems.append(Problem(str(path), f"not a number in {shown!r}", fix, n))
    if not problems and len(rows) != num_points:
        at = num_points + 1 if len(rows) > num_points else len(lines) + 1
        problems.append(Problem(str(path), f"expected {num_points} keypoints, found {len(rows)}", fix, at))
    if not problems:
        h, w = CFLD_FRAME
        problems = validate_keypoints(
            np.asarray(rows, dtype=np.float64), (PCDMS_FRAME[0], w), file=str(path), spec=_spec_for(num_points),
            x_offset=PCDMS_X_OFFSET, point_lines=range(1, num_points + 1),
            frame_label=f"image area of the {PCDMS_FRAME[0]}x{PCDMS_FRAME[1]} PCDMs frame ({PCDMS_X_OFFSET:g} px padding "
                        "left and right)",
            fix="correct the row: 'x y' pixels of the 256x256 PCDMs frame with x inside the image (40..215), "
                "'-1 -1' for a missing point")
    if problems:
        raise DataFormatError(problems)
    kp = np.asarray(rows, dtype=np.float32)
    return _with_missing(kp, missing_mask(kp))


def format_pcdms_keypoints(kp: np.ndarray) -> str:
    """``[K, 2]`` keypoints (256x256 frame) as the text of a PCDMs txt file: rows ``x y``."""
    kp = np.asarray(kp, dtype=np.float32)
    kp = _with_missing(kp.copy(), missing_mask(kp))
    return "".join(f"{_num(x)} {_num(y)}\n" for x, y in kp[:, :2])


def write_pcdms_keypoints(path: str | os.PathLike, kp: np.ndarray) -> None:
    """Write ``[K, 2]`` keypoints (256x256 frame) as PCDMs txt rows ``x y``."""
    Path(path).write_text(format_pcdms_keypoints(kp))
