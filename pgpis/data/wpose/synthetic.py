"""Synthetic WPose in the real layout: the DeepFashion synthetic people over cluttered, varied backgrounds.

Why: the real WPose needs internet (the images are web photos fetched from ``image_urls.txt``), so the
reader, ``pgpis data prepare/check``, the protocols and the models need a stand-in that runs on the CPU.
What makes WPose hard is kept: each image has its own cluttered background (a gradient, a floor, random
rectangles, discs, polygons, bars and stripes, pixel noise), its own aspect ratio (h/w from 0.7 to 2.0)
and the person at its own scale (40-95 % of the height) and place. The people are
:func:`pgpis.data.deepfashion.synthetic.render_person`'s (one identity's appearance across its
images, a new pose per image), so a pair is the same person in two poses, as in WPose.

Written exactly as the real copy is laid out (:mod:`pgpis.data.wpose.layout`): ``images/*.jpg``,
``parsing/*.png`` in **CIHP** labels (the person's LIP map converted, the visible neck as Torso-skin so
the CIHP->LIP table is exercised), ``image_urls.txt`` (``https://example.invalid/...`` URLs that cannot
be fetched), ``bbox.txt`` (each image's box in an imaginary larger original), ``test_pairs.txt``
("source target" lines) and ``test_data.pkl`` (a plain list of per-pair dicts). No ``keypoints/``: WPose
ships none; the generator's own keypoints go to ``synthetic_keypoints.json`` for
``pgpis data prepare --use-synthetic-keypoints``.
"""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from pgpis.data.deepfashion.synthetic import render_person, sample_appearance, sample_pose
from pgpis.data.parsing import CIHP, LIP, write_parsing_png
from pgpis.data.synthetic_out import prepare_synthetic_out
from pgpis.data.wpose.layout import (BBOX, IMAGE_URLS, IMAGES_DIR, KEYPOINTS_DIR, PARSING_DIR, SYNTHETIC_KEYPOINTS,
                                     SYNTHETIC_MARKER, TEST_DATA, TEST_PAIRS, stem)
from pgpis.data.wpose.parsing import lip_to_cihp
from pgpis.pose.keypoints import CFLD_FRAME, MISSING

URL_BASE = "https://example.invalid/pgpis-synthetic-wpose/"
NECK = 1
_WRITTEN_DIRS = (IMAGES_DIR, PARSING_DIR, KEYPOINTS_DIR)
_WRITTEN_FILES = (IMAGE_URLS, BBOX, TEST_PAIRS, TEST_DATA, SYNTHETIC_KEYPOINTS, "README")


def _colour(rng: np.random.Generator, lo: int = 0, hi: int = 256) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(lo, hi, 3))  # type: ignore[return-value]


def cluttered_background(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """A random busy scene (h, w): gradient wall, floor, 10-24 shapes, stripes, noise."""
    h, w = size
    top, bottom = np.array(_colour(rng)), np.array(_colour(rng))
    t = np.linspace(0.0, 1.0, h)[:, None, None]
    arr = (top * (1 - t) + bottom * t).repeat(w, axis=1)
    image = Image.fromarray(arr.astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    floor = int(h * rng.uniform(0.6, 0.9))
    draw.rectangle((0, floor, w, h), fill=_colour(rng))
    for _ in range(int(rng.integers(10, 25))):
        x0, y0 = rng.uniform(-0.1, 1.0) * w, rng.uniform(-0.1, 1.0) * h
        x1, y1 = x0 + rng.uniform(0.05, 0.5) * w, y0 + rng.uniform(0.05, 0.5) * h
        colour = _colour(rng)
        kind = rng.integers(5)
        if kind == 0:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
        elif kind == 1:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        elif kind == 2:
            pts = [(float(x0 + rng.uniform(0, 1) * (x1 - x0)), float(y0 + rng.uniform(0, 1) * (y1 - y0))) for _ in range(3)]
            draw.polygon(pts, fill=colour)
        elif kind == 3:
            draw.line((x0, y0, x1, y1), fill=colour, width=max(1, int(rng.uniform(0.01, 0.04) * w)))
        else:  # a striped panel (shelves, blinds, a poster)
            other = _colour(rng)
            period = max(2.0, rng.uniform(0.02, 0.06) * h)
            y = y0
            while y + period <= y1:
                draw.rectangle((x0, y, x1, y + period / 2), fill=colour)
                draw.rectangle((x0, y + period / 2, x1, y + period), fill=other)
                y += period
    noisy = np.asarray(image, dtype=np.int16) + rng.integers(-6, 7, (h, w, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB")


def _canvas_size(rng: np.random.Generator, max_side: int) -> tuple[int, int]:
    ratio = float(np.exp(rng.uniform(np.log(0.7), np.log(2.0))))  # h / w
    longer = int(round(max_side * rng.uniform(0.75, 1.0)))
    if ratio >= 1:
        return longer, max(16, int(round(longer / ratio)))
    return max(16, int(round(longer * ratio))), longer


def render_scene(rng: np.random.Generator, appearance, max_side: int, view: str = "front"):
    """One in-the-wild image: (RGB image, CIHP labels uint8 [H, W], keypoints float32 [18, 3] in its pixels)."""
    pose = sample_pose(rng, view)
    h, w = _canvas_size(rng, max_side)
    ph = h * rng.uniform(0.4, 0.95)
    ph = min(ph, 0.95 * w * CFLD_FRAME[0] / CFLD_FRAME[1])  # the 256x176 person box must fit the width
    ph, pw = max(16, int(round(ph))), max(16, int(round(ph * CFLD_FRAME[1] / CFLD_FRAME[0])))
    top, left = int(rng.integers(0, max(1, h - ph + 1))), int(rng.integers(0, max(1, w - pw + 1)))
    person, lip = render_person(appearance, pose.points, view, (ph, pw), rng, behind=pose.behind)
    scale = np.array([pw / CFLD_FRAME[1], ph / CFLD_FRAME[0]])
    cihp = lip_to_cihp(lip)
    # the visible neck (drawn as Face below the chin line) is Torso-skin in CIHP
    pts = pose.points * scale
    torso = float(np.hypot(*(pts[NECK] - (pts[8] + pts[11]) / 2)))
    rows = np.arange(ph)[:, None] > pts[NECK][1] - 0.19 * torso
    cihp[(lip == LIP.index("Face")) & rows] = CIHP.index("Torso-skin")

    image = np.array(cluttered_background(rng, (h, w)))
    labels = np.zeros((h, w), dtype=np.uint8)
    box = (slice(top, top + ph), slice(left, left + pw))
    mask = lip != 0
    image[box][mask] = np.asarray(person)[mask]
    labels[box][mask] = cihp[mask]

    kp = pose.keypoints * scale + np.array([left, top])
    missing = (pose.keypoints == MISSING).any(axis=1)
    out = (kp[:, 0] < 0) | (kp[:, 0] > w - 1) | (kp[:, 1] < 0) | (kp[:, 1] > h - 1)
    body = np.concatenate([kp, np.ones((18, 1))], axis=1).astype(np.float32)
    body[missing | out] = (MISSING, MISSING, 0.0)
    return Image.fromarray(image), labels, body


def write_synthetic_wpose(out: str | Path, *, seed: int = 0, identities: int = 8, poses: int = 3,
                          max_side: int = 160) -> dict:
    """Write a synthetic WPose copy; pairs are all ordered pairs of one identity's images. Returns a summary.

    Deterministic for the same arguments. ``max_side`` is the longer image side's upper bound (px).
    """
    if identities < 1:
        raise ValueError(f"identities must be at least 1, got {identities}")
    if poses < 2:
        raise ValueError(f"poses must be at least 2 (a pair needs two images of one person), got {poses}")
    if max_side < 32:
        raise ValueError(f"max_side must be at least 32 px, got {max_side}")
    out = prepare_synthetic_out(Path(out), SYNTHETIC_MARKER, _WRITTEN_DIRS, _WRITTEN_FILES)
    (out / IMAGES_DIR).mkdir()
    (out / PARSING_DIR).mkdir()
    urls, boxes, pairs, records, keypoints = [], [], [], [], {}
    ratios = []
    for i in range(identities):
        rng = np.random.default_rng([seed, 21, i])
        appearance = sample_appearance(rng)
        names = []
        for k in range(poses):
            view = "front" if k == 0 or rng.uniform() >= 0.2 else "back"
            image, labels, body = render_scene(rng, appearance, max_side, view)
            name = f"synthetic_{i:04d}_{k}.jpg"
            image.save(out / IMAGES_DIR / name, quality=95)
            write_parsing_png(out / PARSING_DIR / f"{stem(name)}.png", labels)
            keypoints[name] = {"image_size": [image.height, image.width], "body": body.round(3).tolist()}
            ox, oy = (int(v) for v in rng.integers(0, 60, 2))
            urls.append(f"{URL_BASE}{name}\t{name}")
            boxes.append(f"{name} {ox} {oy} {ox + image.width} {oy + image.height}")
            ratios.append(image.height / image.width)
            names.append(name)
        for s in names:
            for t in names:
                if s != t:
                    pairs.append(f"{s} {t}")
                    records.append({"source_image": f"{IMAGES_DIR}/{s}", "target_image": f"{IMAGES_DIR}/{t}",
                                    "source_parsing": f"{PARSING_DIR}/{stem(s)}.png",
                                    "target_parsing": f"{PARSING_DIR}/{stem(t)}.png"})
    (out / IMAGE_URLS).write_text("\n".join(urls) + "\n")
    (out / BBOX).write_text("\n".join(boxes) + "\n")
    (out / TEST_PAIRS).write_text("\n".join(pairs) + "\n")
    (out / TEST_DATA).write_bytes(pickle.dumps(records, protocol=4))
    (out / SYNTHETIC_KEYPOINTS).write_text(json.dumps({
        "generator": "pgpis.data.wpose.synthetic", "seed": seed,
        "keypoints": "OpenPose-18 (x, y, score) in pixels of each image, as drawn; hidden points (-1, -1, 0)",
        "images": keypoints}, indent=1) + "\n")
    (out / "README").write_text("Synthetic WPose written by `pgpis data synth --dataset wpose` (pgpis.data.wpose."
                                "synthetic): procedural people over cluttered backgrounds, in UniHuman's WPose layout. "
                                "The URLs cannot be fetched; the images are here.\n")
    summary = {"generator": "pgpis.data.wpose.synthetic", "seed": seed, "identities": identities,
               "images": identities * poses, "pairs": len(pairs), "max_side": max_side,
               "aspect_h_over_w": f"{min(ratios):.2f}-{max(ratios):.2f}", "parsing_labels": "cihp"}
    (out / SYNTHETIC_MARKER).write_text(json.dumps(summary, indent=1, sort_keys=True))
    return summary
