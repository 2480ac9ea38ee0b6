"""Parsing-region bounding boxes and their crops, batched (CAA's eq. 4 inputs).

Why batched: CAA embeds one crop per parsing class present in each source
image (R_i, "a rectangle region wrapping the i-th category"). A per-image,
per-class Python loop of ``nonzero`` + resize costs more than the tiny CLIP
itself; here every box comes from two ``any`` reductions and every crop from
one :func:`torchvision.ops.roi_align` call (bilinear, with ``sampling_ratio``
adaptive so a crop larger than the output is averaged, not aliased).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor
from torchvision.ops import roi_align


def region_boxes(parsing: Tensor, num_classes: int, allowed: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
    """Pixel boxes ``[x0, y0, x1, y1]`` (x1/y1 exclusive) of every class of `parsing` long [B, H, W].

    Returns ``boxes`` long [B, R, 4] (zeros where absent) and ``present`` bool [B, R];
    `allowed` bool [R] drops classes (e.g. Background) from ``present``. Labels
    outside ``[0, num_classes)`` are ignored.
    """
    classes = torch.arange(num_classes, device=parsing.device)
    masks = parsing[:, None] == classes[None, :, None, None]  # [B, R, H, W]
    rows, cols = masks.any(3), masks.any(2)  # [B, R, H], [B, R, W]
    present = rows.any(-1)
    if allowed is not None:
        present = present & allowed.to(device=parsing.device, dtype=torch.bool)

    def span(hit: Tensor) -> tuple[Tensor, Tensor]:
        n = hit.shape[-1]
        first = hit.int().argmax(-1)
        last = n - hit.flip(-1).int().argmax(-1)  # exclusive
        return first, last

    y0, y1 = span(rows)
    x0, x1 = span(cols)
    boxes = torch.stack([x0, y0, x1, y1], -1) * present[..., None]
    return boxes, present


def crop_regions(images: Tensor, boxes: Tensor, present: Tensor, size: tuple[int, int]) -> Tensor:
    """Crops [N, C, h, w] of `images` [B, C, H, W] at the ``present`` boxes (row-major over [B, R]), resized to `size`."""
    rows, cols = torch.nonzero(present, as_tuple=True)
    if rows.numel() == 0:
        return images.new_zeros(0, images.shape[1], *size)
    rois = torch.cat([rows[:, None].to(images.dtype), boxes[rows, cols].to(images.dtype)], 1)
    # aligned=True: pixel i spans [i, i + 1), so box [x0, x1) covers exactly pixels x0 .. x1 - 1
    return roi_align(images, rois, output_size=size, spatial_scale=1.0, sampling_ratio=-1, aligned=True)


__all__ = ["region_boxes", "crop_regions"]
