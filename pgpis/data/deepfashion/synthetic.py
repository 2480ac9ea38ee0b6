"""Procedural synthetic DeepFashion: the embedded default every stage trains and is judged on.

Why procedural people: without the real dataset (no internet), the later stages
still need data in which *identity* (who, what they wear) and *pose* (where the
joints are) are independent and both learnable. Here appearance is fixed per
identity (skin, hair colour/length, upper garment colour + pattern, sleeves,
trousers or skirt, shoes) and the pose varies per image (18 OpenPose points,
front and back views, sometimes a point hidden or out of frame).

Every image is drawn from the *full* skeleton with the same polygons into the
RGB image and into the LIP parsing map, so the image and parsing are a faithful
function of (identity, keypoints). Keypoints are integers in the CFLD
256x176 (h x w) frame so both on-disk layouts round-trip exactly.

Public API: :func:`write_synthetic_deepfashion` (the dataset),
:func:`sample_appearance`, :func:`sample_pose` and :func:`render_person` (single people).
"""
from __future__ import annotations

import colorsys
import multiprocessing
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator, Literal, Sequence

import numpy as np
from PIL import Image, ImageDraw

from pgpis.data.deepfashion.layout import PARSING_DIR, SYNTHETIC_MARKER, DeepFashionWriter, deepfashion_name
from pgpis.data.parsing import LIP
from pgpis.data.synthetic_out import prepare_synthetic_out
from pgpis.pose.keypoints import CFLD_FRAME, MISSING

View = Literal["front", "back"]
RGB = tuple[int, int, int]

BACKGROUND_RGB: RGB = (236, 234, 229)
"""The one plain, light background colour of every synthetic image (studio-like, as DeepFashion)."""

# OpenPose-18 indices (docs/data-formats.md)
NOSE, NECK, R_SHO, R_ELB, R_WRI, L_SHO, L_ELB, L_WRI = 0, 1, 2, 3, 4, 5, 6, 7
R_HIP, R_KNE, R_ANK, L_HIP, L_KNE, L_ANK, R_EYE, L_EYE, R_EAR, L_EAR = 8, 9, 10, 11, 12, 13, 14, 15, 16, 17
FACE_POINTS = (NOSE, R_EYE, L_EYE)  # not visible from behind

# LIP classes (docs/data-formats.md). LIP's Left-* is the person's left, i.e. OpenPose's L-* joints.
BG, HAIR, UPPER, PANTS, SKIRT, FACE = (LIP.index(c) for c in ("Background", "Hair", "Upper-clothes", "Pants", "Skirt", "Face"))
ARM = {"R": LIP.index("Right-arm"), "L": LIP.index("Left-arm")}
LEG = {"R": LIP.index("Right-leg"), "L": LIP.index("Left-leg")}
SHOE = {"R": LIP.index("Right-shoe"), "L": LIP.index("Left-shoe")}
JOINTS = {"R": (R_SHO, R_ELB, R_WRI, R_HIP, R_KNE, R_ANK), "L": (L_SHO, L_ELB, L_WRI, L_HIP, L_KNE, L_ANK)}

SKIN_TONES: tuple[RGB, ...] = ((255, 224, 196), (241, 194, 157), (224, 172, 129), (198, 134, 90), (141, 85, 54), (94, 58, 38))
HAIR_COLOURS: tuple[RGB, ...] = ((25, 20, 18), (70, 42, 25), (120, 75, 40), (200, 160, 90), (160, 60, 30), (150, 150, 150))
SHOE_COLOURS: tuple[RGB, ...] = ((25, 25, 28), (95, 55, 30), (245, 245, 245), (170, 30, 40), (40, 60, 110))
PATTERNS = ("plain", "stripes", "checks", "mark")
MARKS = ("circle", "diamond", "star", "triangle")
HAIR_STYLES = ("short", "medium", "long")
SLEEVES = ("none", "short", "long")
CATEGORIES = {
    "MEN": ("Shirts_Polos", "Tees_Tanks", "Sweaters", "Pants"),
    "WOMEN": ("Blouses_Shirts", "Tees_Tanks", "Sweaters", "Pants", "Skirts"),
}


@dataclass(frozen=True)
class Appearance:
    """Everything that stays the same across the images of one identity."""

    gender: str  # "MEN" | "WOMEN" (DeepFashion naming)
    category: str  # DeepFashion category (naming only)
    skin: RGB
    hair: RGB
    hair_style: str  # HAIR_STYLES
    upper: RGB  # upper-garment base colour
    pattern: str  # PATTERNS
    pattern_colour: RGB
    pattern_period: float  # stripe/check period as a fraction of the torso length
    mark: str  # MARKS, the printed chest mark when pattern == "mark"
    sleeves: str  # SLEEVES
    lower: str  # "pants" | "skirt"
    lower_colour: RGB
    skirt_length: float  # fraction of hip->knee covered below the knee line (skirts only)
    shoes: RGB


@dataclass(frozen=True)
class Pose:
    """One sampled pose: the full skeleton (hidden points included) and what an annotator would write."""

    points: np.ndarray  # int [18, 2] (x, y) in the 256x176 frame, every point set (may be out of frame)
    view: View
    behind: tuple[int, ...] = ()  # wrists drawn behind the torso (hands behind the back)

    @property
    def keypoints(self) -> np.ndarray:
        """float32 [18, 2] as written to disk: hidden and out-of-frame points are -1."""
        kp = self.points.astype(np.float32).copy()
        hidden = list(self.behind) + (list(FACE_POINTS) if self.view == "back" else [])
        kp[hidden] = MISSING
        h, w = CFLD_FRAME
        out = (self.points[:, 0] < 0) | (self.points[:, 0] > w - 1) | (self.points[:, 1] < 0) | (self.points[:, 1] > h - 1)
        kp[out] = MISSING
        return kp


# --------------------------------------------------------------------------- appearance
def _hsv(h: float, s: float, v: float) -> RGB:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
    return int(round(r * 255)), int(round(g * 255)), int(round(b * 255))


def _garment_colour(rng: np.random.Generator) -> RGB:
    """Saturated enough or dark enough to stand out from the light background."""
    return _hsv(rng.uniform(), rng.uniform(0.45, 0.95), rng.uniform(0.35, 0.9))


def _contrast_colour(base: RGB, rng: np.random.Generator) -> RGB:
    """Pattern colour: near-white, near-black or a far hue, so stripes/checks/marks are visible."""
    h, s, v = colorsys.rgb_to_hsv(*(c / 255 for c in base))
    choice = rng.integers(3)
    if choice == 0:
        return _hsv(h, 0.08, 0.97) if v < 0.75 else _hsv(h, 0.6, 0.2)
    if choice == 1:
        return _hsv(h, 0.7, 0.15) if v > 0.45 else _hsv(h, 0.15, 0.95)
    return _hsv(h + rng.uniform(0.33, 0.67), rng.uniform(0.6, 0.95), 0.95 - 0.5 * (v > 0.7))


def _jitter(c: RGB, rng: np.random.Generator, amount: int = 10) -> RGB:
    return tuple(int(np.clip(v + rng.integers(-amount, amount + 1), 0, 255)) for v in c)  # type: ignore[return-value]


def sample_appearance(rng: np.random.Generator) -> Appearance:
    """A random identity: gender, garments, colours and pattern."""
    gender = "WOMEN" if rng.uniform() < 0.55 else "MEN"
    lower = "skirt" if gender == "WOMEN" and rng.uniform() < 0.45 else "pants"
    cats = [c for c in CATEGORIES[gender] if lower == "skirt" or c != "Skirts"]
    if lower == "skirt":
        cats = cats + ["Skirts"] * 2
    category = str(cats[rng.integers(len(cats))])
    hair_p = (0.2, 0.3, 0.5) if gender == "WOMEN" else (0.75, 0.2, 0.05)
    sleeve_p = {"Sweaters": (0.0, 0.1, 0.9), "Tees_Tanks": (0.4, 0.6, 0.0)}.get(category, (0.15, 0.45, 0.4))
    upper = _garment_colour(rng)
    if lower == "pants":
        denim = _hsv(rng.uniform(0.57, 0.64), rng.uniform(0.35, 0.7), rng.uniform(0.25, 0.6))
        muted = _hsv(rng.uniform(), rng.uniform(0.1, 0.5), rng.uniform(0.15, 0.75))
        lower_colour = denim if rng.uniform() < 0.4 else muted
    else:
        lower_colour = _garment_colour(rng)
    return Appearance(
        gender=gender,
        category=category,
        skin=_jitter(SKIN_TONES[rng.integers(len(SKIN_TONES))], rng, 8),
        hair=_jitter(HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))], rng, 8),
        hair_style=str(rng.choice(HAIR_STYLES, p=hair_p)),
        upper=upper,
        pattern=str(PATTERNS[rng.integers(len(PATTERNS))]),
        pattern_colour=_contrast_colour(upper, rng),
        pattern_period=float(rng.uniform(0.12, 0.22)),
        mark=str(MARKS[rng.integers(len(MARKS))]),
        sleeves=str(rng.choice(SLEEVES, p=sleeve_p)),
        lower=lower,
        lower_colour=lower_colour,
        skirt_length=float(rng.uniform(0.55, 1.1)),
        shoes=_jitter(SHOE_COLOURS[rng.integers(len(SHOE_COLOURS))], rng, 6),
    )


# --------------------------------------------------------------------------- pose
def _rot(v: np.ndarray, deg: float) -> np.ndarray:
    a = np.deg2rad(deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]])


def _limb_dir(side_sign: float, deg_out: float) -> np.ndarray:
    """Unit vector `deg_out` degrees from straight down, positive = away from the body on that side."""
    a = np.deg2rad(deg_out)
    return np.array([side_sign * np.sin(a), np.cos(a)])


def _side_of(view: View) -> dict[str, float]:
    """Image-x sign of the person's right/left: in a front view the person's right is on the image left."""
    return {"R": -1.0, "L": 1.0} if view == "front" else {"R": 1.0, "L": -1.0}


# arm modes: (probability, upper-arm angle range, elbow bend range), angles in degrees, bend < 0 folds inwards
_ARM_MODES = (
    (0.50, (4, 24), (-25, 8)),  # hanging
    (0.15, (32, 52), (-115, -85)),  # hand on the hip
    (0.15, (50, 110), (-20, 70)),  # raised / out
    (0.12, (2, 16), (-150, -110)),  # forearm across the belly (wrist hidden in a back view)
    (0.08, (6, 16), (-62, -48)),  # hand behind the back (wrist hidden in a front view)
)
_ACROSS, _BEHIND = len(_ARM_MODES) - 2, len(_ARM_MODES) - 1


def sample_pose(rng: np.random.Generator, view: View = "front") -> Pose:
    """A random but plausible standing pose in the 256x176 frame (integer coordinates).

    Torso position/scale jitter, slight lean and head tilt, per-arm modes
    (hanging, hand on hip, raised, across the belly, behind the back), elbow
    bends, leg spread and a step. About one image in eight is framed lower
    so the feet leave the frame (their points are then written as -1).
    """
    if view not in ("front", "back"):
        raise ValueError(f"view must be 'front' or 'back', got '{view}'")
    h, w = CFLD_FRAME
    cropped = rng.uniform() < 0.12
    T = rng.uniform(64, 74) if cropped else rng.uniform(54, 65)  # torso length (neck -> mid-hip), px
    height = 3.62 * T  # head top to shoe soles
    top = rng.uniform(h - 3.0 * T, h - 2.75 * T) if cropped else rng.uniform(3, max(4.0, h - height - 3))
    cx = w / 2 + rng.uniform(-7, 7)
    turn = rng.uniform(0.82, 1.0)  # slight body rotation narrows shoulders and hips
    lean = rng.uniform(-5, 5)
    mid_hip = np.array([cx, top + 0.9 * T + T])
    sign = _side_of(view)
    p = np.zeros((18, 2))
    neck = mid_hip + _rot(np.array([0.0, -T]), lean)
    p[NECK] = neck
    for s in ("R", "L"):
        sho, hip = JOINTS[s][0], JOINTS[s][3]
        p[sho] = neck + _rot(np.array([sign[s] * 0.40 * T * turn, 0.07 * T]), lean)
        p[hip] = mid_hip + np.array([sign[s] * 0.22 * T * turn, 0.0])
    behind: list[int] = []
    probs = np.array([m[0] for m in _ARM_MODES])
    for s in ("R", "L"):
        sho, elb, wri, *_ = JOINTS[s]
        mode = int(rng.choice(len(_ARM_MODES), p=probs / probs.sum()))
        hidden_mode = _BEHIND if view == "front" else _ACROSS
        if mode == hidden_mode and behind:
            mode = 0  # at most one hidden hand
        _, (u0, u1), (b0, b1) = _ARM_MODES[mode]
        up = rng.uniform(u0, u1)
        bend = rng.uniform(b0, b1)
        fore = rng.uniform(0.85, 1.0)
        p[elb] = p[sho] + 0.62 * T * fore * _rot(_limb_dir(sign[s], up), lean)
        p[wri] = p[elb] + 0.55 * T * fore * _rot(_limb_dir(sign[s], up + bend), lean)
        if mode == hidden_mode:
            behind.append(wri)  # the forearm is on the far side of the torso
    step = rng.uniform() < 0.3
    stepping = "R" if rng.uniform() < 0.5 else "L"
    for s in ("R", "L"):
        _, _, _, hip, kne, ank = JOINTS[s]
        thigh_deg = rng.uniform(-1, 11)
        shin_deg = thigh_deg + rng.uniform(-8, 3)
        short = rng.uniform(0.86, 0.93) if step and s == stepping else rng.uniform(0.97, 1.0)
        p[kne] = p[hip] + 0.82 * T * short * _limb_dir(sign[s], thigh_deg)
        p[ank] = p[kne] + 0.80 * T * short * _limb_dir(sign[s], shin_deg)
    # head: centre above the neck along the (tilted) body axis
    tilt = lean + rng.uniform(-7, 7)
    yaw = rng.uniform(-1, 1)
    centre = neck + _rot(np.array([0.0, -0.5 * T]), tilt)
    p[NOSE] = centre + _rot(np.array([yaw * 0.05 * T, 0.06 * T]), tilt)
    p[R_EYE] = centre + _rot(np.array([sign["R"] * 0.09 * T + yaw * 0.05 * T, -0.03 * T]), tilt)
    p[L_EYE] = centre + _rot(np.array([sign["L"] * 0.09 * T + yaw * 0.05 * T, -0.03 * T]), tilt)
    ear = 0.2 if view == "front" else 0.17  # from behind the ears sit under the hair
    p[R_EAR] = centre + _rot(np.array([sign["R"] * ear * T, 0.0]), tilt)
    p[L_EAR] = centre + _rot(np.array([sign["L"] * ear * T, 0.0]), tilt)
    return Pose(points=np.rint(p).astype(np.int64), view=view, behind=tuple(behind))


# --------------------------------------------------------------------------- rendering
class _Canvas:
    """Draws every shape twice: colour into the RGB image, class index into the parsing map."""

    def __init__(self, size: tuple[int, int]):
        h, w = size
        self.image = Image.new("RGB", (w, h), BACKGROUND_RGB)
        self.labels = Image.new("L", (w, h), BG)
        self._rgb = ImageDraw.Draw(self.image)
        self._lab = ImageDraw.Draw(self.labels)

    def polygon(self, pts: Sequence[np.ndarray] | np.ndarray, rgb: RGB, label: int | None) -> None:
        xy = np.asarray(pts, dtype=np.float64).ravel().tolist()
        self._rgb.polygon(xy, fill=rgb)
        if label is not None:
            self._lab.polygon(xy, fill=label)

    def disc(self, c: np.ndarray, r: float, rgb: RGB, label: int | None) -> None:
        box = (float(c[0] - r), float(c[1] - r), float(c[0] + r), float(c[1] + r))
        self._rgb.ellipse(box, fill=rgb)
        if label is not None:
            self._lab.ellipse(box, fill=label)

    def capsule(self, a: np.ndarray, b: np.ndarray, ra: float, rb: float, rgb: RGB, label: int | None) -> None:
        """A thick limb with rounded ends, tapering from radius `ra` at `a` to `rb` at `b`."""
        v = b - a
        n = np.hypot(*v)
        if n > 1e-6:
            nrm = np.array([-v[1], v[0]]) / n
            self.polygon([a + nrm * ra, b + nrm * rb, b - nrm * rb, a - nrm * ra], rgb, label)
        self.disc(a, ra, rgb, label)
        self.disc(b, rb, rgb, label)


_UNIT_CIRCLE = {n: np.stack([np.cos(t), np.sin(t)], 1) for n in (20, 24, 32) for t in [np.linspace(0, 2 * np.pi, n, endpoint=False)]}


def _ellipse(c: np.ndarray, rx: float, ry: float, deg: float, n: int = 32) -> np.ndarray:
    """Polygon [n, 2] of an ellipse rotated by `deg` degrees."""
    a = np.deg2rad(deg)
    rot = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])  # row-vector form of _rot
    return c + (_UNIT_CIRCLE[n] * np.array([rx, ry])) @ rot


def _mark_polygon(shape: str, c: np.ndarray, r: float) -> np.ndarray | list[np.ndarray]:
    if shape == "circle":
        return _ellipse(c, r, r, 0.0, 24)
    if shape == "diamond":
        return [c + np.array(q) * r for q in ((0, -1.2), (1, 0), (0, 1.2), (-1, 0))]
    if shape == "triangle":
        return [c + np.array(q) * r for q in ((0, -1.1), (1.05, 0.8), (-1.05, 0.8))]
    ang = np.deg2rad(np.arange(10) * 36 - 90)  # star
    rad = np.where(np.arange(10) % 2 == 0, 1.25, 0.5) * r
    return [c + np.array([np.cos(a), np.sin(a)]) * q for a, q in zip(ang, rad)]


def render_person(
    identity: Appearance,
    keypoints: np.ndarray,
    view: View,
    size: tuple[int, int] = CFLD_FRAME,
    rng: np.random.Generator | None = None,
    *,
    behind: Sequence[int] = (),
) -> tuple[Image.Image, np.ndarray]:
    """Draw one person: returns the RGB image and its LIP parsing map (uint8 [H, W]).

    ``keypoints`` is the *full* skeleton in the 256x176 frame (``Pose.points``:
    every point set, hidden ones included), ``behind`` the wrists drawn behind
    the torso. ``size`` is (h, w); the skeleton is scaled to it. ``rng`` adds a
    slight per-photo exposure change (+-4 %; None: none), so images of one
    identity are not pixel-identical in their colours.
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.shape != (18, 2) or (kp == MISSING).all(axis=1).any():
        raise ValueError("render_person needs the full 18-point skeleton (Pose.points: hidden points included, none -1); "
                         f"got shape {kp.shape} with missing points {np.flatnonzero((kp == MISSING).all(axis=1)).tolist()}")
    if view not in ("front", "back"):
        raise ValueError(f"view must be 'front' or 'back', got '{view}'")
    h, w = size
    p = kp * np.array([w / CFLD_FRAME[1], h / CFLD_FRAME[0]])
    a = identity if rng is None else _exposed(identity, float(rng.uniform(0.96, 1.04)))
    sign = _side_of(view)
    mid_hip = (p[R_HIP] + p[L_HIP]) / 2
    T = float(np.hypot(*(mid_hip - p[NECK])))  # body unit: torso length in output pixels
    up = (p[NECK] - mid_hip) / max(T, 1e-6)  # unit vector along the body towards the head
    head_c = (p[R_EAR] + p[L_EAR]) / 2
    head_deg = float(np.degrees(np.arctan2(head_c[0] - p[NECK][0], p[NECK][1] - head_c[1])))
    cv = _Canvas(size)

    def out(s: str) -> np.ndarray:  # unit vector pointing away from the body on side s (perpendicular to `up`)
        return np.array([-up[1], up[0]]) * sign[s]

    def hair_back_panel() -> None:
        top = head_c + _rot(np.array([0.0, -0.1 * T]), head_deg)
        bottom = p[NECK] + np.array([0.0, 0.5 * T])
        cv.polygon([top + np.array([-0.27 * T, 0]), top + np.array([0.27 * T, 0]),
                    bottom + np.array([0.3 * T, 0]), bottom + np.array([-0.3 * T, 0])], a.hair, HAIR)
        cv.disc(bottom, 0.3 * T, a.hair, HAIR)

    def legs() -> None:
        for s in ("R", "L"):
            _, _, _, hip, kne, ank = JOINTS[s]
            cv.capsule(p[hip], p[kne], 0.13 * T, 0.09 * T, a.skin, LEG[s])
            cv.capsule(p[kne], p[ank], 0.09 * T, 0.065 * T, a.skin, LEG[s])

    def lower_garment() -> None:
        waist = [p[R_HIP] + out("R") * 0.09 * T + up * 0.14 * T, p[L_HIP] + out("L") * 0.09 * T + up * 0.14 * T]
        if a.lower == "pants":
            crotch = mid_hip - up * 0.22 * T
            cv.polygon([waist[0], waist[1], p[L_HIP] - up * 0.12 * T + out("L") * 0.1 * T, crotch,
                        p[R_HIP] - up * 0.12 * T + out("R") * 0.1 * T], a.lower_colour, PANTS)
            for s in ("R", "L"):
                _, _, _, hip, kne, ank = JOINTS[s]
                cv.capsule(p[hip], p[kne], 0.16 * T, 0.12 * T, a.lower_colour, PANTS)
                cv.capsule(p[kne], p[ank] - (p[ank] - p[kne]) * 0.04, 0.12 * T, 0.1 * T, a.lower_colour, PANTS)
        else:
            hem = [p[hip] + (p[kne] - p[hip]) * a.skirt_length + out(s) * (0.2 + 0.08 * a.skirt_length) * T
                   for s, hip, kne in (("R", R_HIP, R_KNE), ("L", L_HIP, L_KNE))]
            cv.polygon([waist[0], waist[1], hem[1], hem[0]], a.lower_colour, SKIRT)

    def shoes() -> None:
        for s in ("R", "L"):
            ank = JOINTS[s][5]
            c = p[ank] + np.array([0.0, 0.06 * T])
            cv.polygon(_ellipse(c, 0.12 * T, 0.08 * T, 0.0, 20), a.shoes, SHOE[s])

    def arm(s: str, front: bool) -> None:
        sho, elb, wri = JOINTS[s][:3]
        if (wri in behind) == front:
            return
        if front:
            cv.capsule(p[sho], p[elb], 0.095 * T, 0.075 * T, a.skin, ARM[s])
        cv.capsule(p[elb], p[wri], 0.075 * T, 0.06 * T, a.skin, ARM[s])
        fore = p[wri] - p[elb]
        cv.disc(p[wri] + fore / max(np.hypot(*fore), 1e-6) * 0.05 * T, 0.075 * T, a.skin, ARM[s])
        if a.sleeves == "short" and front:
            cv.capsule(p[sho], p[sho] + (p[elb] - p[sho]) * 0.55, 0.125 * T, 0.11 * T, a.upper, UPPER)
        elif a.sleeves == "long":
            if front:
                cv.capsule(p[sho], p[elb], 0.125 * T, 0.1 * T, a.upper, UPPER)
            cv.capsule(p[elb], p[elb] + fore * 0.85, 0.1 * T, 0.085 * T, a.upper, UPPER)

    def torso() -> None:
        n = p[NECK]
        collar = 0.13 * T
        dip = (0.12 if view == "front" else 0.03) * T
        pts = [
            p[R_SHO] + out("R") * 0.06 * T + up * 0.06 * T,
            n + out("R") * collar + up * 0.03 * T,
            n - up * dip,
            n + out("L") * collar + up * 0.03 * T,
            p[L_SHO] + out("L") * 0.06 * T + up * 0.06 * T,
            p[L_SHO] + out("L") * 0.02 * T - up * 0.4 * T,
            p[L_HIP] + out("L") * 0.1 * T - up * 0.1 * T,
            p[R_HIP] + out("R") * 0.1 * T - up * 0.1 * T,
            p[R_SHO] + out("R") * 0.02 * T - up * 0.4 * T,
        ]
        cv.polygon(pts, a.upper, UPPER)

    def neck() -> None:
        cv.capsule(p[NECK] + up * 0.05 * T, head_c, 0.095 * T, 0.09 * T, a.skin, FACE)

    def head() -> None:
        hair_c = head_c + _rot(np.array([0.0, -0.05 * T]), head_deg)
        if view == "back":
            cv.polygon(_ellipse(hair_c + _rot(np.array([0.0, 0.04 * T]), head_deg), 0.23 * T, 0.3 * T, head_deg), a.hair, HAIR)
            return
        cv.polygon(_ellipse(hair_c, 0.235 * T, 0.29 * T, head_deg), a.hair, HAIR)
        for e in (R_EAR, L_EAR):
            cv.disc(p[e], 0.045 * T, a.skin, FACE)
        if a.hair_style != "short":
            drop = 0.3 if a.hair_style == "medium" else 0.42
            for d in (-1.0, 1.0):
                q = [np.array([d * 0.16 * T, -0.12 * T]), np.array([d * 0.275 * T, -0.12 * T]),
                     np.array([d * 0.28 * T, drop * T]), np.array([d * 0.16 * T, drop * T])]
                cv.polygon([head_c + _rot(v, head_deg) for v in q], a.hair, HAIR)
        face_c = head_c + _rot(np.array([0.0, 0.03 * T]), head_deg)
        cv.polygon(_ellipse(face_c, 0.195 * T, 0.255 * T, head_deg), a.skin, FACE)
        dark = (40, 30, 30)
        for e in (R_EYE, L_EYE):
            cv.disc(p[e], max(0.028 * T, 0.8), dark, None)
        mouth = face_c + _rot(np.array([0.0, 0.15 * T]), head_deg)
        cv.capsule(mouth - _rot(np.array([0.05 * T, 0]), head_deg), mouth + _rot(np.array([0.05 * T, 0]), head_deg),
                   max(0.014 * T, 0.5), max(0.014 * T, 0.5), (150, 60, 60), None)

    long_hair = a.hair_style == "long"
    if view == "front" and long_hair:
        hair_back_panel()
    legs()
    lower_garment()
    shoes()
    for s in ("R", "L"):
        arm(s, front=False)
    neck()
    torso()
    if view == "back" and long_hair:
        hair_back_panel()
    for s in ("R", "L"):
        arm(s, front=True)
    head()

    labels = np.array(cv.labels)
    if a.pattern == "plain" or (a.pattern == "mark" and view == "back"):
        return cv.image, labels
    image = np.array(cv.image)
    _apply_pattern(image, labels, a, p, T)
    return Image.fromarray(image), labels


def _exposed(a: Appearance, gain: float) -> Appearance:
    """The same person under a slightly different exposure (every colour scaled by `gain`)."""
    def g(c: RGB) -> RGB:
        return tuple(min(255, int(round(v * gain))) for v in c)  # type: ignore[return-value]
    return replace(a, skin=g(a.skin), hair=g(a.hair), upper=g(a.upper), pattern_colour=g(a.pattern_colour),
                   lower_colour=g(a.lower_colour), shoes=g(a.shoes))


def _apply_pattern(image: np.ndarray, labels: np.ndarray, a: Appearance, p: np.ndarray, T: float) -> None:
    """Paint the garment pattern (stripes, checks, chest mark) on the Upper-clothes pixels, anchored to the body."""
    garment = labels == UPPER
    if a.pattern == "mark":
        chest = p[NECK] + ((p[R_HIP] + p[L_HIP]) / 2 - p[NECK]) * 0.38
        m = Image.new("L", (labels.shape[1], labels.shape[0]), 0)
        ImageDraw.Draw(m).polygon(np.asarray(_mark_polygon(a.mark, chest, 0.14 * T), dtype=np.float64).ravel().tolist(), fill=1)
        sel = garment & (np.asarray(m) > 0)
    else:
        period = max(a.pattern_period * T, 2.0)
        ys, xs = np.nonzero(garment)
        band_y = np.floor((ys - p[NECK][1]) / period).astype(np.int64)
        on = band_y % 2 == 1
        if a.pattern == "checks":
            band_x = np.floor((xs - p[NECK][0]) / period).astype(np.int64)
            on = (band_x + band_y) % 2 == 1
        sel = np.zeros_like(garment)
        sel[ys[on], xs[on]] = True
    image[sel] = a.pattern_colour


# --------------------------------------------------------------------------- dataset
@dataclass(frozen=True)
class _Job:
    seed: int
    identity: int  # 0-based
    poses: int
    size: tuple[int, int]


def _identity_images(job: _Job) -> list[tuple[str, Image.Image, np.ndarray, np.ndarray]]:
    """All images of one identity: (name, image, written keypoints, parsing). Pure function of the job."""
    rng = np.random.default_rng([job.seed, 1, job.identity])
    app = sample_appearance(rng)
    out = []
    for k in range(job.poses):
        view: View = "front" if k == 0 or rng.uniform() >= 0.25 else "back"
        pose = sample_pose(rng, view)
        image, parsing = render_person(app, pose.points, view, job.size, rng, behind=pose.behind)
        name = deepfashion_name(app.gender, app.category, job.identity + 1, 1, k + 1, view)
        out.append((name, image, pose.keypoints, parsing))
    return out


def _pool_map(jobs: list[_Job], workers: int) -> Iterator[list[tuple[str, Image.Image, np.ndarray, np.ndarray]]]:
    """Render identities in order (so output bytes do not depend on `workers`)."""
    if workers <= 1 or len(jobs) < 2:
        yield from map(_identity_images, jobs)
        return
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else None)  # workers use only numpy/PIL
    with ctx.Pool(min(workers, len(jobs))) as pool:
        yield from pool.imap(_identity_images, jobs, chunksize=max(1, min(16, len(jobs) // (4 * workers))))


_WRITTEN = ("train_highres", "test_highres", "img", "pose", PARSING_DIR)  # folders a previous synthetic run wrote


def write_synthetic_deepfashion(
    out: str | Path,
    *,
    seed: int = 0,
    identities: int = 300,
    poses: int = 4,
    test_fraction: float = 0.2,
    layout: Literal["cfld", "pcdms"] = "cfld",
    size: tuple[int, int] = CFLD_FRAME,
    parsing: bool = True,
    workers: int = 2,
) -> dict:
    """Write a synthetic DeepFashion In-shop copy in a real layout; returns a summary of counts.

    Identities are split into disjoint train/test sets; pairs are all ordered
    (source, target) pairs of different images of one identity. The output is
    byte-identical for the same arguments whatever `workers` is. `out` must be
    new, empty or a previous synthetic dataset (which is replaced).
    """
    if identities < 2:
        raise ValueError(f"identities must be at least 2 (one train and one test identity), got {identities}")
    if poses < 2:
        raise ValueError(f"poses must be at least 2 (a pair needs two images of one identity), got {poses}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    if len(size) != 2 or min(size) < 16:
        raise ValueError(f"size is (h, w) with both at least 16 pixels, got {size}")
    out = prepare_synthetic_out(Path(out), SYNTHETIC_MARKER, _WRITTEN)
    n_test = min(identities - 1, max(1, round(identities * test_fraction)))
    order = np.random.default_rng([seed, 0]).permutation(identities)
    test_ids = set(order[:n_test].tolist())
    writer = DeepFashionWriter(out, layout=layout, parsing=parsing)
    jobs = [_Job(seed, i, poses, (int(size[0]), int(size[1]))) for i in range(identities)]
    counts = {"train": [0, 0, 0], "test": [0, 0, 0]}  # identities, images, pairs
    views = {"front": 0, "back": 0}
    missing_points = 0
    for job, images in zip(jobs, _pool_map(jobs, workers)):
        split = "test" if job.identity in test_ids else "train"
        for name, image, kp, labels in images:
            writer.add_image(name, split, image, kp, labels if parsing else None)
            views["back" if name.endswith("back.jpg") else "front"] += 1
            missing_points += int((kp == MISSING).all(axis=1).sum())
        names = [n for n, *_ in images]
        pairs = [(s, t) for s in names for t in names if s != t]
        writer.add_pairs(split, pairs)
        c = counts[split]
        c[0], c[1], c[2] = c[0] + 1, c[1] + len(names), c[2] + len(pairs)
    summary: dict = {"generator": "pgpis.data.deepfashion.synthetic", "seed": seed, "layout": layout, "size": f"{size[0]}x{size[1]}",
                     "parsing": parsing, "background_rgb": list(BACKGROUND_RGB)}
    for s in ("train", "test"):
        summary.update({f"{s}_identities": counts[s][0], f"{s}_images": counts[s][1], f"{s}_pairs": counts[s][2]})
    summary.update({"front_views": views["front"], "back_views": views["back"], "missing_points": missing_points})
    writer.close(summary)
    return summary
