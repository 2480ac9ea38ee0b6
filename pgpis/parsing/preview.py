"""`pgpis parse --preview grid.png`: each image beside the parsing map written for it, in the LIP palette.

A user checks a parser by eye before training on its maps (a coat read as a dress, an arm lost in the background,
left and right swapped): each pair is the image and its map (read back from the written PNG) at the same height,
the map resized nearest-neighbour so classes never blend; the caption names the file and the classes found.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from pgpis.data.parsing import LIP, parsing_image
from pgpis.pose.preview import BACKGROUND, CELL_HEIGHT, cell_image, grid_of


@dataclass(frozen=True)
class ParsingPreview:
    """One pair of the grid: the image, its LIP map ``[H, W]`` (the image's size), a caption."""

    image: Image.Image
    labels: np.ndarray
    label: str


def render_parsing_pair(item: ParsingPreview, height: int = CELL_HEIGHT) -> Image.Image:
    """Image | colour-coded map, side by side at `height` px (an integer multiple for small images)."""
    cell = cell_image(item.image, height)
    colours = parsing_image(item.labels).convert("RGB").resize(cell.size, Image.NEAREST)
    pair = Image.new("RGB", (2 * cell.width, cell.height), BACKGROUND)
    pair.paste(cell, (0, 0))
    pair.paste(colours, (cell.width, 0))
    found = [LIP.classes[i] for i in np.unique(item.labels) if i != 0]
    draw = ImageDraw.Draw(pair)
    draw.text((cell.width + 3, 2), item.label[-40:], fill=(230, 230, 230))
    draw.text((cell.width + 3, 14), ", ".join(found)[:60] if found else "(no person)", fill=(230, 230, 230))
    return pair


def write_parsing_preview(items: Sequence[ParsingPreview], out: str | os.PathLike, columns: int = 4) -> Path:
    """The grid of :func:`render_parsing_pair` s as a PNG (folders created)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    grid_of([render_parsing_pair(it) for it in items], columns).save(out)
    return out


__all__ = ["ParsingPreview", "render_parsing_pair", "write_parsing_preview"]
