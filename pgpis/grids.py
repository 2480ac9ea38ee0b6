"""Grids a person can look at: nearest-neighbour upscaling of small cells.

The embedded default trains at 32x24 px, so a sample grid written at native
size is a thumbnail nobody can judge. Every grid writer (the training-time
``CFGSampling`` grid, ``DDIMInference``'s grid, ``pgpis data preview``) scales
its cells by one integer factor with nearest neighbour: each pixel becomes an
``f x f`` block of the same value, so nothing is blurred or invented, and the
images that metrics score (the generated files) stay at native size.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, TypeVar, Union

from PIL import Image

if TYPE_CHECKING:  # the data tools stay free of torch at import time
    from torch import Tensor

DEFAULT_MIN_CELL_HEIGHT = 192
"""Cells shorter than this are upscaled (192 px: a 32x24 cell x6, a 256x176 cell x1)."""

ImageLike = TypeVar("ImageLike", bound=Union[Image.Image, "Tensor"])


def upscale_factor(cell_height: int, min_cell_height: int = DEFAULT_MIN_CELL_HEIGHT) -> int:
    """The smallest integer factor that makes a `cell_height` px cell at least `min_cell_height` px tall (>= 1).

    `min_cell_height` <= 0 keeps the native size.
    """
    if cell_height <= 0:
        raise ValueError(f"upscale_factor: cell height must be positive, got {cell_height}")
    return max(1, math.ceil(min_cell_height / cell_height)) if min_cell_height > 0 else 1


def upscale_nearest(image: ImageLike, factor: int) -> ImageLike:
    """`image` (a PIL image, or a tensor [..., H, W]) `factor` times larger, each pixel repeated as an f x f block."""
    if factor < 1 or int(factor) != factor:
        raise ValueError(f"upscale_nearest: factor must be a positive integer, got {factor}")
    factor = int(factor)
    if factor == 1:
        return image
    if isinstance(image, Image.Image):
        return image.resize((image.width * factor, image.height * factor), Image.NEAREST)
    return image.repeat_interleave(factor, dim=-2).repeat_interleave(factor, dim=-1)
