"""Photos stored as phone cameras store them: pixels on their side plus an EXIF Orientation tag (values 1-8).

``save_oriented(upright, path, o)`` writes the pixels that :func:`PIL.ImageOps.exif_transpose` turns back into
`upright` under Orientation `o`, so every file it writes shows the same upright picture to a reader that applies
the tag, and a different one (mirrored, upside down or sideways) to a reader that does not. PNG keeps the pixels
exact; pytest puts tests/ on sys.path.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

ORIENTATIONS = range(1, 9)
#: Orientation -> the transpose that stores an upright picture under it (the inverse of what exif_transpose applies)
_STORE = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def asymmetric_photo(size: tuple[int, int] = (64, 48), seed: int = 0) -> Image.Image:
    """An RGB picture of ``size = (h, w)`` no flip or turn maps onto itself: red grows rightwards, green downwards,
    light noise on top (smooth enough for JPEG), and a white spot near the top left."""
    h, w = size
    rng = np.random.default_rng(seed)
    ramp_x = np.linspace(30, 200, w)[None, :].repeat(h, 0)
    ramp_y = np.linspace(30, 200, h)[:, None].repeat(w, 1)
    base = np.stack([ramp_x, ramp_y, np.full((h, w), 90.0)], -1)
    arr = np.clip(base + rng.integers(-8, 9, size=(h, w, 3)), 0, 255).astype(np.uint8)
    arr[h // 8: h // 8 + 3, w // 5: w // 5 + 3] = 255  # the spot; stand-in estimators put the nose on it
    return Image.fromarray(arr)


def save_oriented(upright: Image.Image, path: Path, orientation: int) -> Path:
    """Write `upright` stored under EXIF `orientation` to `path` (.png or .jpg)."""
    method = _STORE[orientation]
    stored = upright if method is None else upright.transpose(method)
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored.save(path, exif=exif.tobytes())
    return path
