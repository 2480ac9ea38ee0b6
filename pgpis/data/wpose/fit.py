"""Resize-to-fit and pad: how an arbitrary-aspect WPose image becomes a fixed (h, w) size.

WPose crops have any aspect ratio (the web photo cropped to its person box), while the models and the
report sizes are 512x352 / 256x176 (h x w). Stretching would distort the person, cropping could cut
them, so the image is scaled by the largest factor that fits it inside (h, w) (PIL bicubic; parsing
maps nearest-neighbour), centred, and the rest is filled with :data:`PAD_RGB` (parsing: Background).
The same function makes the DataModule's inputs and the metric's report-size images, for generated and
real images alike, so a generated image that already has the report size is only resized (no pad).

Placement (:class:`Fit`): the resized content is ``content_w x content_h`` pixels with its top-left at
``(left, top)``; ``left = (w - content_w) // 2``, ``top = (h - content_h) // 2``; a keypoint
``(x, y)`` maps to ``(x * content_w / W + left, y * content_h / H + top)`` for a source image ``W x H``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from pgpis.metrics.presets import WPOSE_PAD_RGB
from pgpis.pose.keypoints import missing_mask

Size = tuple[int, int]  # (h, w)

#: fill colour of the padding (RGB): white, like the studio backgrounds of DeepFashion, which the
#: DeepFashion-trained models evaluated on WPose paint at image borders
PAD_RGB: tuple[int, int, int] = WPOSE_PAD_RGB  # the WPose protocols' pad colour
#: parsing label of the padding (Background in CIHP and LIP)
PAD_LABEL = 0


@dataclass(frozen=True)
class Fit:
    """Where a ``source_size`` image lands inside ``size`` (both (h, w))."""

    source_size: Size
    size: Size
    content_h: int
    content_w: int
    top: int
    left: int

    @classmethod
    def of(cls, source_size: Size, size: Size) -> "Fit":
        sh, sw = (int(v) for v in source_size)
        h, w = (int(v) for v in size)
        if min(sh, sw, h, w) < 1:
            raise ValueError(f"fit: sizes must be positive, got source {source_size} and target {size}")
        scale = min(h / sh, w / sw)
        ch = min(h, max(1, round(sh * scale)))
        cw = min(w, max(1, round(sw * scale)))
        return cls((sh, sw), (h, w), ch, cw, (h - ch) // 2, (w - cw) // 2)

    def keypoints(self, kp: np.ndarray) -> np.ndarray:
        """``[..., K, 2+]`` pixels of the source image -> pixels of the fitted image (missing stay -1)."""
        kp = np.asarray(kp, dtype=np.float32)
        miss = missing_mask(kp)
        out = kp.copy()
        out[..., 0] = kp[..., 0] * (self.content_w / self.source_size[1]) + self.left
        out[..., 1] = kp[..., 1] * (self.content_h / self.source_size[0]) + self.top
        out[..., 0:2][miss] = -1.0
        return out


def fit_image(image: Image.Image, size: Size, pad_rgb: tuple[int, int, int] = PAD_RGB) -> tuple[Image.Image, Fit]:
    """RGB ``image`` resized to fit ``size`` (h, w) with PIL bicubic, centred on ``pad_rgb``."""
    fit = Fit.of((image.height, image.width), size)
    content = image.convert("RGB")
    if content.size != (fit.content_w, fit.content_h):
        content = content.resize((fit.content_w, fit.content_h), Image.BICUBIC)
    if (fit.content_h, fit.content_w) == fit.size:
        return content, fit
    canvas = Image.new("RGB", (fit.size[1], fit.size[0]), tuple(pad_rgb))
    canvas.paste(content, (fit.left, fit.top))
    return canvas, fit


def fit_labels(labels: np.ndarray, size: Size, pad_label: int = PAD_LABEL) -> np.ndarray:
    """Class-index map ``uint8 [H, W]`` resized to fit ``size`` (nearest neighbour), padded with ``pad_label``."""
    labels = np.asarray(labels, dtype=np.uint8)
    fit = Fit.of(labels.shape, size)
    content = labels
    if labels.shape != (fit.content_h, fit.content_w):
        content = np.asarray(Image.fromarray(labels).resize((fit.content_w, fit.content_h), Image.NEAREST))
    out = np.full(fit.size, pad_label, dtype=np.uint8)
    out[fit.top:fit.top + fit.content_h, fit.left:fit.left + fit.content_w] = content
    return out


def fit_array(image: np.ndarray | Image.Image, size: Size, pad_rgb: tuple[int, int, int] = PAD_RGB) -> np.ndarray:
    """uint8 [h, w, 3] of :func:`fit_image` (what the WPose metrics compare)."""
    img = Image.fromarray(np.asarray(image, dtype=np.uint8)) if isinstance(image, np.ndarray) else image
    return np.asarray(fit_image(img, size, pad_rgb)[0], dtype=np.uint8)
