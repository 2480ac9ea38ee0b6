"""Image helpers every dataset package shares: decode, resize, to tensor, how hard to check.

Moved out of the DeepFashion code (#21) because Phoenix, WPose and inference
use the same conventions: PIL bicubic resize with no crop or pad, RGB in
[-1, 1], and a decode error that names the file and the fix.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image

from pgpis.errors import DataFormatError, Problem

Size = tuple[int, int]  # (height, width)
ImageCheck = Literal["none", "header", "decode"]  # how readers check image files: not at all, header, full decode


def to_tensor(image: Image.Image | np.ndarray) -> torch.Tensor:
    """uint8 RGB (PIL or HxWx3) -> float [3, H, W] in [-1, 1]."""
    arr = np.asarray(image, dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div(127.5).sub(1.0)


def resize_image(image: Image.Image, size: Size) -> Image.Image:
    """PIL bicubic resize to (h, w); no crop, no pad."""
    h, w = size
    return image if image.size == (w, h) else image.resize((w, h), Image.BICUBIC)


def load_rgb(path: Path, name: str) -> Image.Image:
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except Exception as err:  # surfaced with the file and the fix instead of a bare PIL trace
        raise DataFormatError(Problem(str(path), f"image does not decode ({type(err).__name__}: {err})",
                                      "re-extract this image, or run `pgpis data check` to list every broken file", item=name)) from err
