"""Synthetic Phoenix14T: a few signers whose arms and articulated hands move smoothly, in the real layout.

Each signer has a fixed appearance (skin, hair, dark clothes, place in the frame)
in front of a grey background, like the real broadcasts. A video is a short
clip whose arm angles, wrist flex, finger curl and spread follow smooth random
sinusoids, so consecutive frames differ a little and frames far apart a lot.
The generator knows the 133 COCO-WholeBody keypoints of everything it draws;
they are written in the real containers (pickle ``{"<split>/<video>":
{"keypoints": [T, 133, 3]}}``, MSKA-style per-split gzip pickles with a
``"keypoint"`` tensor, and/or ``.npz``). Like HRNet output, points outside the
frame get low scores, a few hands are marked occluded (score 0.2) and a few
frames have no detection at all (all zeros). Deterministic from the seed.
"""
from __future__ import annotations

import gzip
import math
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image, ImageDraw

from pgpis.data.phoenix.keypoints import write_keypoints_npz
from pgpis.data.phoenix.layout import CORPUS, CORPUS_HEADER, FRAME_SIZE, FRAMES_DIR, KEYPOINTS_DIR, SPLITS, SYNTHETIC_MARKER
from pgpis.data.synthetic_out import prepare_synthetic_out
from pgpis.pose.keypoints import FACE_START, LEFT_HAND_START, RIGHT_HAND_START

KEYPOINT_FORMATS = ("pickle", "tensor-pickle", "npz")
SUPERSAMPLE = 2  # draw at 2x and downsample, so thin fingers are anti-aliased like camera frames

_CLOTHES = ((22, 26, 44), (18, 18, 20), (40, 40, 46), (20, 36, 28), (38, 22, 30))
_SKIN = ((233, 192, 160), (200, 150, 115), (160, 110, 80), (245, 210, 185), (120, 80, 60))
_HAIR = ((30, 22, 16), (90, 60, 30), (170, 140, 90), (60, 60, 60), (120, 50, 25))
_WORDS = ("REGEN", "SONNE", "WOLKE", "MORGEN", "NORD", "SUED", "WIND", "SCHNEE", "TEMPERATUR", "GRAD")
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October")
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@dataclass(frozen=True)
class Signer:
    name: str
    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    clothes: tuple[int, int, int]
    cx: float  # horizontal centre in the 210-wide frame
    scale: float


def make_signers(n: int, rng: np.random.Generator) -> list[Signer]:
    return [Signer(f"Signer{i + 1:02d}", _SKIN[i % len(_SKIN)], _HAIR[(i * 2) % len(_HAIR)],
                   _CLOTHES[i % len(_CLOTHES)], float(rng.uniform(95, 115)), float(rng.uniform(0.93, 1.05)))
            for i in range(n)]


@dataclass(frozen=True)
class Motion:
    """Smooth per-video motion: each channel is ``base + amp * sin(freq * t + phase)``."""

    base: np.ndarray
    amp: np.ndarray
    freq: np.ndarray
    phase: np.ndarray

    # channels: per arm (R, L): shoulder angle, elbow bend, wrist flex, 5 finger curls, spread -> 9 each
    CHANNELS = 18

    @classmethod
    def random(cls, rng: np.random.Generator) -> "Motion":
        arm_base = np.array([0.35, 1.9, 0.0] + [0.6] * 5 + [0.15])
        arm_amp = np.array([0.3, 0.6, 0.35] + [0.55] * 5 + [0.12])
        base = np.concatenate([arm_base, arm_base]) + rng.normal(0, 0.1, cls.CHANNELS)
        amp = np.concatenate([arm_amp, arm_amp]) * rng.uniform(0.5, 1.0, cls.CHANNELS)
        return cls(base, amp, rng.uniform(0.15, 0.45, cls.CHANNELS), rng.uniform(0, 2 * math.pi, cls.CHANNELS))

    def at(self, t: float) -> np.ndarray:
        return self.base + self.amp * np.sin(self.freq * t + self.phase)


def _rot(v: np.ndarray, a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]])


def _hand(root: np.ndarray, direction: float, side: float, curls: np.ndarray, spread: float, s: float) -> np.ndarray:
    """21 hand points (root, then thumb, index, middle, ring, pinky; 4 each) in image pixels.

    ``direction`` is the angle (image coordinates) from the wrist to the middle knuckle; ``side``
    = +1/-1 puts the thumb on one or the other side (mirror hands).
    """
    pts = [root]
    fwd = np.array([math.cos(direction), math.sin(direction)])
    perp = np.array([-fwd[1], fwd[0]]) * side
    # thumb: from the base of the palm, abducted outwards, curling in
    base = root + fwd * 4 * s + perp * 4 * s
    ang = direction - side * (0.9 + spread)
    p = base
    pts.append(p)
    for seg in (6.0, 5.0, 4.0):
        ang += side * curls[0] * 0.6
        p = p + np.array([math.cos(ang), math.sin(ang)]) * seg * s * (1 - 0.3 * curls[0] / 1.5)
        pts.append(p)
    # four fingers: knuckles on the distal palm edge, fanned by `spread`, curled by foreshortening + bend
    for f, offset in enumerate((1.5, 0.5, -0.5, -1.5)):
        knuckle = root + fwd * 15 * s + perp * offset * 3.6 * s
        ang = direction - side * offset * spread
        p = knuckle
        pts.append(p)
        length = (8.0, 6.0, 5.0) if f < 3 else (6.5, 5.0, 4.0)
        for seg in length:
            c = curls[f + 1]
            ang += side * c * 0.35
            p = p + np.array([math.cos(ang), math.sin(ang)]) * seg * s * math.cos(min(c, 1.4) * 0.75)
            pts.append(p)
    return np.asarray(pts)


def _face(cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    """68 iBUG face points on a head ellipse (point 0 on the image left = the subject's right)."""
    jaw = [(cx + rx * 0.95 * math.cos(a), cy + ry * 0.95 * math.sin(a)) for a in np.linspace(math.pi * 0.95, math.pi * 0.05, 17)]
    brow_r = [(cx - rx * (0.75 - 0.13 * i), cy - ry * (0.28 + 0.05 * math.sin(math.pi * i / 4))) for i in range(5)]
    brow_l = [(2 * cx - x, y) for x, y in reversed(brow_r)]
    nose = [(cx, cy - ry * (0.2 - 0.12 * i)) for i in range(4)] + [(cx + rx * 0.12 * (i - 2), cy + ry * 0.3) for i in range(5)]
    def eye(ex: float) -> list[tuple[float, float]]:
        pts = [(ex - rx * 0.16, cy - ry * 0.1), (ex - rx * 0.06, cy - ry * 0.16), (ex + rx * 0.06, cy - ry * 0.16),
               (ex + rx * 0.16, cy - ry * 0.1), (ex + rx * 0.06, cy - ry * 0.05), (ex - rx * 0.06, cy - ry * 0.05)]
        return pts
    eyes = eye(cx - rx * 0.38) + eye(cx + rx * 0.38)
    mouth_outer = [(cx + rx * 0.3 * math.cos(a), cy + ry * (0.55 + 0.1 * math.sin(a))) for a in np.linspace(math.pi, -math.pi, 13)[:-1]]
    mouth_inner = [(cx + rx * 0.2 * math.cos(a), cy + ry * (0.55 + 0.04 * math.sin(a))) for a in np.linspace(math.pi, -math.pi, 9)[:-1]]
    pts = jaw + brow_r + brow_l + nose + eyes + mouth_outer + mouth_inner
    return np.asarray(pts)


def pose_at(signer: Signer, motion: Motion, t: float) -> np.ndarray:
    """Whole-body keypoints ``[133, 3]`` (x, y, score) in the 210x260 frame for time ``t``."""
    h, w = FRAME_SIZE
    s = signer.scale
    m = motion.at(t)
    sway = 2.0 * math.sin(0.2 * t + motion.phase[0])
    cx = signer.cx + sway
    kp = np.zeros((133, 3), np.float32)
    head = np.array([cx, 70.0 * s])
    rx, ry = 21 * s, 27 * s
    kp[0, :2] = head + [0, 4 * s]  # nose
    kp[1, :2], kp[2, :2] = head + [8 * s, -8 * s], head + [-8 * s, -8 * s]  # L/R eye (subject's left = image right)
    kp[3, :2], kp[4, :2] = head + [rx, -2 * s], head + [-rx, -2 * s]
    shoulder = {+1: np.array([cx + 44 * s, 122.0 * s]), -1: np.array([cx - 44 * s, 122.0 * s])}  # +1 = left
    kp[5, :2], kp[6, :2] = shoulder[+1], shoulder[-1]
    kp[11, :2], kp[12, :2] = [cx + 28 * s, 250.0], [cx - 28 * s, 250.0]
    kp[13, :2], kp[14, :2] = [cx + 30 * s, 335.0], [cx - 30 * s, 335.0]
    kp[15, :2], kp[16, :2] = [cx + 30 * s, 420.0], [cx - 30 * s, 420.0]
    kp[17:23, :2] = [[cx + 35 * s, 435.0], [cx + 45 * s, 432.0], [cx + 28 * s, 425.0],
                     [cx - 35 * s, 435.0], [cx - 45 * s, 432.0], [cx - 28 * s, 425.0]]
    kp[FACE_START:LEFT_HAND_START, :2] = _face(head[0], head[1], rx, ry)
    for side, (elbow_i, wrist_i, hand_start, ch) in ((+1, (7, 9, LEFT_HAND_START, 9)), (-1, (8, 10, RIGHT_HAND_START, 0))):
        a1, a2, flex = m[ch], m[ch + 1], m[ch + 2]
        curls, spread = np.clip(m[ch + 3:ch + 8], 0.0, 1.5), float(np.clip(m[ch + 8], 0.0, 0.35))
        # angles from straight down, rotating towards the body centre (-side in x)
        up = 52 * s * np.array([-side * math.sin(a1), math.cos(a1)])
        elbow = shoulder[side] + up
        fa = a1 + a2
        wrist = elbow + 46 * s * np.array([-side * math.sin(fa), math.cos(fa)])
        wrist = np.clip(wrist, [12, 40], [w - 12, h - 8])
        kp[elbow_i, :2], kp[wrist_i, :2] = elbow, wrist
        direction = math.atan2(wrist[1] - elbow[1], wrist[0] - elbow[0]) + side * flex
        kp[hand_start:hand_start + 21, :2] = _hand(wrist, direction, side, curls, spread, s)
    kp[:, 2] = 0.9
    kp[FACE_START:LEFT_HAND_START, 2] = 0.8
    inside = (kp[:, 0] >= 0) & (kp[:, 0] <= w - 1) & (kp[:, 1] >= 0) & (kp[:, 1] <= h - 1)
    kp[~inside, 2] = 0.05  # HRNet still outputs a location, with a low score
    return kp


def draw_frame(signer: Signer, kp: np.ndarray, background: int) -> Image.Image:
    """Render one 210x260 frame from its keypoints (clothes dark, skin on hands and face)."""
    h, w = FRAME_SIZE
    k = SUPERSAMPLE
    img = Image.new("RGB", (w * k, h * k), (background - 6, background, background + 8))
    d = ImageDraw.Draw(img)
    P = lambda i: tuple((kp[i, :2] * k).tolist())  # noqa: E731
    s = signer.scale * k
    skin_dark = tuple(int(c * 0.8) for c in signer.skin)
    # torso and neck
    ls, rs, lh, rh = kp[5, :2] * k, kp[6, :2] * k, kp[11, :2] * k, kp[12, :2] * k
    neck = (kp[5, :2] + kp[6, :2]) / 2 * k
    d.rectangle([neck[0] - 9 * s, neck[1] - 30 * s, neck[0] + 9 * s, neck[1]], fill=signer.skin)
    d.polygon([tuple(rs + [-6 * s, 6 * s]), tuple(rs + [0, -6 * s]), tuple(ls + [0, -6 * s]), tuple(ls + [6 * s, 6 * s]),
               tuple(lh + [6 * s, 30 * s]), tuple(rh + [-6 * s, 30 * s])], fill=signer.clothes)
    d.polygon([tuple(neck + [-9 * s, -4 * s]), tuple(neck + [9 * s, -4 * s]), tuple(neck + [0, 10 * s])], fill=signer.skin)
    # head, hair, eyes, mouth
    hx, hy = kp[0, 0] * k, kp[0, 1] * k - 4 * s
    rx, ry = 21 * s, 27 * s
    d.ellipse([hx - rx - 3 * s, hy - ry - 5 * s, hx + rx + 3 * s, hy + ry * 0.2], fill=signer.hair)
    d.ellipse([hx - rx, hy - ry, hx + rx, hy + ry], fill=signer.skin)
    d.chord([hx - rx - 1 * s, hy - ry - 4 * s, hx + rx + 1 * s, hy - ry * 0.1], 180, 360, fill=signer.hair)
    for i in (1, 2):
        ex, ey = P(i)
        d.ellipse([ex - 2.5 * s, ey - 2 * s, ex + 2.5 * s, ey + 2 * s], fill=(40, 30, 30))
    mouth = [tuple((kp[FACE_START + j, :2] * k).tolist()) for j in range(48, 60)]
    d.polygon(mouth, fill=(150, 70, 70))
    # arms (sleeves) then hands, far arm first
    for shoulder_i, elbow_i, wrist_i in ((5, 7, 9), (6, 8, 10)):
        d.line([P(shoulder_i), P(elbow_i), P(wrist_i)], fill=signer.clothes, width=int(15 * s), joint="curve")
        d.line([P(shoulder_i), P(elbow_i), P(wrist_i)], fill=tuple(min(255, c + 14) for c in signer.clothes), width=int(3 * s))
    for start in (LEFT_HAND_START, RIGHT_HAND_START):
        hand = kp[start:start + 21, :2] * k
        palm = [hand[0], hand[1], hand[5], hand[9], hand[13], hand[17]]
        d.polygon([tuple(p) for p in palm], fill=signer.skin, outline=skin_dark)
        for f in range(5):
            chain = [tuple(p) for p in ([hand[0]] if f == 0 else []) + list(hand[1 + 4 * f:5 + 4 * f])]
            d.line(chain, fill=skin_dark, width=int(4.2 * s), joint="curve")
            d.line(chain, fill=signer.skin, width=int(2.6 * s), joint="curve")
    return img.resize((w, h), Image.LANCZOS)


def _video_name(rng: np.random.Generator, i: int) -> str:
    show = ("tagesschau", "heute")[i % 2]
    return (f"{int(rng.integers(1, 29)):02d}{_MONTHS[int(rng.integers(len(_MONTHS)))]}_{int(rng.integers(2009, 2012))}_"
            f"{_DAYS[int(rng.integers(7))]}_{show}-{int(rng.integers(1000, 9999))}")
_WRITTEN = ("features", "annotations", KEYPOINTS_DIR)  # folders a previous synthetic run wrote


def write_synthetic_phoenix(
    out: str | Path,
    *,
    seed: int = 0,
    signers: int = 3,
    videos: dict[str, int] | None = None,
    frames: tuple[int, int] = (12, 20),
    keypoint_formats: Sequence[str] = ("pickle",),
    no_detection_prob: float = 0.03,
    occluded_hand_prob: float = 0.05,
) -> dict:
    """Write the synthetic Phoenix dataset to ``out``; returns a summary (counts, files)."""
    bad = [f for f in keypoint_formats if f not in KEYPOINT_FORMATS]
    if bad:
        raise ValueError(f"unknown keypoint format(s) {bad}; choose from {KEYPOINT_FORMATS}")
    out = prepare_synthetic_out(Path(out), SYNTHETIC_MARKER, _WRITTEN)
    videos = dict(videos or {"train": 8, "dev": 2, "test": 3})
    rng = np.random.default_rng(seed)
    cast = make_signers(signers, rng)
    all_kp: dict[str, dict[str, np.ndarray]] = {s: {} for s in SPLITS}
    n_frames = 0
    used: set[str] = set()
    for split in SPLITS:
        rows = []
        for v in range(videos.get(split, 0)):
            signer = cast[(v + SPLITS.index(split)) % len(cast)]
            name = _video_name(rng, v)
            while name in used:
                name = _video_name(rng, v)
            used.add(name)
            motion = Motion.random(rng)
            length = int(rng.integers(frames[0], frames[1] + 1))
            background = int(rng.integers(120, 150))
            folder = out / FRAMES_DIR / split / name
            folder.mkdir(parents=True, exist_ok=True)
            kps = np.zeros((length, 133, 3), np.float32)
            for t in range(length):
                kp = pose_at(signer, motion, float(t))
                draw_frame(signer, kp, background).save(folder / f"images{t + 1:04d}.png")
                for start in (LEFT_HAND_START, RIGHT_HAND_START):
                    if t > 0 and rng.random() < occluded_hand_prob:
                        kp[start:start + 21, 2] = 0.2
                if t > 0 and rng.random() < no_detection_prob:
                    kp[:] = 0.0
                kps[t] = kp
            n_frames += length
            all_kp[split][name] = kps
            words = " ".join(rng.choice(_WORDS, size=3))
            rows.append([name, f"{name}/1/*.png", "-1", "-1", signer.name, words, words.lower()])
        corpus = out / CORPUS.format(split=split)
        corpus.parent.mkdir(parents=True, exist_ok=True)
        with corpus.open("w", encoding="utf-8") as f:
            f.write("|".join(CORPUS_HEADER) + "\n")
            f.writelines("|".join(r) + "\n" for r in rows)
    files = write_keypoint_containers(out / KEYPOINTS_DIR, all_kp, keypoint_formats)
    (out / SYNTHETIC_MARKER).write_text(f"seed={seed}\n")
    return {"signers": signers, "videos": sum(len(v) for v in all_kp.values()), "frames": n_frames,
            "keypoint_files": ",".join(str(p.relative_to(out)) for p in files)}


def write_keypoint_containers(folder: Path, keypoints: dict[str, dict[str, np.ndarray]],
                              formats: Iterable[str]) -> list[Path]:
    """Write ``{split: {video: [T, 133, 3]}}`` in the requested real containers."""
    folder.mkdir(parents=True, exist_ok=True)
    flat = {f"{split}/{name}": arr for split, vids in keypoints.items() for name, arr in vids.items()}
    files = []
    for fmt in formats:
        if fmt == "pickle":
            path = folder / "phoenix-2014t.keypoints.pkl"
            with path.open("wb") as f:
                pickle.dump({k: {"keypoints": v} for k, v in flat.items()}, f, protocol=4)
            files.append(path)
        elif fmt == "tensor-pickle":
            import torch

            for split, vids in keypoints.items():
                path = folder / f"phoenix-2014t.{split}"
                items = [{"name": f"{split}/{n}", "keypoint": torch.from_numpy(a.copy()), "num_frames": len(a)}
                         for n, a in vids.items()]
                path.write_bytes(gzip.compress(pickle.dumps(items, protocol=4)))
                files.append(path)
        elif fmt == "npz":
            files.append(write_keypoints_npz(folder / "phoenix-2014t.keypoints.npz", flat))
    return files
