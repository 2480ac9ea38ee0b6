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

from pgpis.images import load_rgb


def load_resized(path: str | Path, size: tuple[int, int]) -> np.ndarray:
    """uint8 [H, W, 3] of `path` resized to `size` (h, w) with PIL bicubic."""
    return resize_pil(load_rgb(path, fix="regenerate or remove the file"), size)


def resize_pil(image: Image.Image | np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 [H, W, 3] of an RGB image at `size` (h, w), PIL bicubic (no-op at the same size)."""
    img = Image.fromarray(image) if isinstance(image, np.ndarray) else image
    h, w = size
    if img.size != (w, h):
        img = img.resize((w, h), Image.BICUBIC)
    return np.asarray(img, dtype=np.uint8)


def tensor_to_uint8(x: torch.Tensor) -> np.ndarray:
    """uint8 [H, W, 3] of a [3, H, W] image in [-1, 1] (the repo convention); write generated PNGs with this.

    Saving through this and re-reading the PNG gives back the same array, so
    in-loop metrics (:mod:`pgpis.metrics.paired`) equal `pgpis evaluate` on the files.
    """
    if x.ndim != 3 or x.shape[0] != 3:
        raise ValueError(f"expected a [3, H, W] image, got shape {tuple(x.shape)}")
    u8 = ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return u8.permute(1, 2, 0).cpu().numpy()


def stack01(arrays: Sequence[np.ndarray], dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """[B, 3, H, W] tensor in [0, 1] from uint8 HWC arrays (x / 255, as the reference scripts)."""
    if not arrays:
        raise ValueError("stack01 needs at least one image")
    t = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
    return t.to(dtype) / 255.0
