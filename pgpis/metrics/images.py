"""Reading images at the report size, the one place every metric gets its pixels from.

The reference scripts open each file, convert to RGB and PIL-bicubic resize to
the report size (w, h); all metrics here start from that uint8 array.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from pgpis.errors import DataFormatError, Problem


def load_resized(path: str | Path, size: tuple[int, int]) -> np.ndarray:
    """uint8 [H, W, 3] of `path` resized to `size` (h, w) with PIL bicubic."""
    try:
        with Image.open(path) as im:
            rgb = im.convert("RGB")
    except (OSError, ValueError) as err:
        raise DataFormatError(Problem(str(path), f"cannot be read as an image ({err})",
                                      "regenerate or remove the file")) from err
    h, w = size
    if rgb.size != (w, h):
        rgb = rgb.resize((w, h), Image.BICUBIC)
    return np.asarray(rgb, dtype=np.uint8)


def stack01(arrays: Sequence[np.ndarray], dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """[B, 3, H, W] tensor in [0, 1] from uint8 HWC arrays (x / 255, as the reference scripts)."""
    if not arrays:
        raise ValueError("stack01 needs at least one image")
    t = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
    return t.to(dtype) / 255.0
