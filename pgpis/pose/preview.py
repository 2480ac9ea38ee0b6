"""`pgpis pose extract --preview grid.png`: each image beside the pose that was written for it.

A user checks an estimator's output by eye before training on it: left and right swapped on a back view, a
missed arm, a pose found on the wrong person. Each cell pair is the image and the OpenPose-18 pose rendered
from the *written* keypoints (read back in the image's pixels), on black, at the same size; small images are
upscaled by an integer factor with nearest neighbour (:mod:`pgpis.grids`), large ones shrunk to the cell
height. The file name is printed in the pose cell; a file with no person says so.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from pgpis.grids import upscale_factor, upscale_nearest
from pgpis.pose import keypoints as kpt

CELL_HEIGHT = 256
BACKGROUND = (40, 40, 40)


@dataclass(frozen=True)
class PreviewItem:
    """One row of the preview: the image, its keypoints ``[18, 2]`` in the image's pixels, a caption."""

    image: Image.Image
    body: np.ndarray
    label: str


def cell_image(image: Image.Image, height: int) -> Image.Image:
    """`image` at `height` px (an integer upscale for small images, so pixels stay visible squares)."""
    image = image.convert("RGB")
    if image.height < height:
        factor = upscale_factor(image.height, height)
        return upscale_nearest(image, factor)
    if image.height > height:
        return image.resize((max(1, round(image.width * height / image.height)), height), Image.BICUBIC)
    return image


def render_pair(item: PreviewItem, height: int = CELL_HEIGHT) -> Image.Image:
    """Image | rendered pose, side by side, each `height` px tall (or an integer multiple for small images)."""
    cell = cell_image(item.image, height)
    size = (cell.height, cell.width)
    body = kpt.rescale_keypoints(np.asarray(item.body, np.float32)[:, :2], (item.image.height, item.image.width), size)
    pose = Image.fromarray(kpt.render_pose(body, size, kpt.OPENPOSE_18, reference_height=max(256, size[0])))
    pair = Image.new("RGB", (2 * cell.width, cell.height), BACKGROUND)
    pair.paste(cell, (0, 0))
    pair.paste(pose, (cell.width, 0))
    draw = ImageDraw.Draw(pair)
    found = (~kpt.missing_mask(body)).any()
    draw.text((cell.width + 3, 2), item.label[-40:] + ("" if found else "  (no person)"), fill=(220, 220, 220))
    return pair


def preview_grid(items: Sequence[PreviewItem], columns: int = 4, height: int = CELL_HEIGHT) -> Image.Image:
    """A grid of :func:`render_pair` cells, `columns` pairs a row, each pair centred in the widest pair's slot."""
    if not items:
        raise ValueError("preview_grid: no images to show")
    return grid_of([render_pair(it, height) for it in items], columns)


def grid_of(pairs: Sequence[Image.Image], columns: int = 4) -> Image.Image:
    """`pairs` laid out `columns` a row, each centred in the widest one's slot (pose and parsing previews)."""
    if not pairs:
        raise ValueError("preview grid: no images to show")
    slot_w, slot_h = max(p.width for p in pairs), max(p.height for p in pairs)
    cols = max(1, min(columns, len(pairs)))
    rows = math.ceil(len(pairs) / cols)
    gap = 4
    grid = Image.new("RGB", (cols * slot_w + (cols - 1) * gap, rows * slot_h + (rows - 1) * gap), BACKGROUND)
    for i, pair in enumerate(pairs):
        r, c = divmod(i, cols)
        grid.paste(pair, (c * (slot_w + gap) + (slot_w - pair.width) // 2, r * (slot_h + gap)))
    return grid


def write_preview(items: Sequence[PreviewItem], out: str | os.PathLike, columns: int = 4) -> Path:
    """Write :func:`preview_grid` as a PNG (folders created)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    preview_grid(items, columns).save(out)
    return out


def spread(n: int, limit: int) -> list[int]:
    """At most `limit` indices evenly spaced over ``range(n)`` (a folder's sorted files cluster by kind)."""
    if n <= limit:
        return list(range(n))
    return sorted(set(np.linspace(0, n - 1, limit).round().astype(int).tolist()))


__all__ = ["PreviewItem", "render_pair", "preview_grid", "grid_of", "cell_image", "write_preview", "spread",
           "CELL_HEIGHT", "BACKGROUND"]
