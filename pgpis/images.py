"""Image helpers every dataset package shares: decode, resize, to tensor, how hard to check.

Moved out of the DeepFashion code (#21) because Phoenix, WPose and inference
use the same conventions: PIL bicubic resize with no crop or pad, RGB in
[-1, 1], and a decode error that names the file and the fix.

:func:`load_rgb` (a file) and :func:`as_rgb` (an image already in memory) are
the one way a picture enters pgpis, so the same photo gives the same pixels in
every command, the app, the Python API and the DataModules:

- **EXIF orientation applied.** Phone cameras store photos sideways with an
  Orientation tag (values 2-8) that :func:`PIL.Image.open` ignores; the pixels
  are turned upright with :func:`PIL.ImageOps.exif_transpose`.
- **Colour modes normalised to 8-bit RGB.** Transparent images (RGBA, LA, PA,
  P with a transparent colour) are composited on white, the background
  DeepFashion's studio photos have; 16-bit and 32-bit greyscale (I;16, I) are
  scaled to 8 bits instead of clipped; CMYK, greyscale, bilevel and palette
  images go through Pillow's conversion. An animated GIF or multi-page TIFF
  gives its first frame.
- **Unreadable and degenerate images refused**, naming the file and the fix:
  a side under :data:`MIN_SIDE` px always, and a side smaller than `min_size`
  (the model's input, where a caller has one).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, Optional

import numpy as np
import torch
from PIL import Image, ImageOps

from pgpis.errors import DataFormatError, MissingFileError, Problem

Size = tuple[int, int]  # (height, width)
ImageCheck = Literal["none", "header", "decode"]  # how readers check image files: not at all, header, full decode

#: Fewest pixels an image may have on either side: below this it holds no usable person at any model size.
MIN_SIDE = 8
#: EXIF tag number of Orientation (1 = upright; 2-8 = mirrored and/or rotated).
EXIF_ORIENTATION = 0x0112
#: What transparent pixels become: DeepFashion's studio background.
BACKGROUND = (255, 255, 255)
_DEFAULT_FIX = "re-extract this image, or run `pgpis data check` to list every broken file"


def to_tensor(image: Image.Image | np.ndarray) -> torch.Tensor:
    """uint8 RGB (PIL or HxWx3) -> float [3, H, W] in [-1, 1]."""
    arr = np.asarray(image, dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div(127.5).sub(1.0)


def resize_image(image: Image.Image, size: Size) -> Image.Image:
    """PIL bicubic resize to (h, w); no crop, no pad."""
    h, w = size
    return image if image.size == (w, h) else image.resize((w, h), Image.BICUBIC)


def upright(image: Image.Image) -> Image.Image:
    """`image` with its EXIF orientation applied (the image itself when it has none, so no copy)."""
    if image.getexif().get(EXIF_ORIENTATION, 1) in (None, 1):
        return image
    return ImageOps.exif_transpose(image)


def upright_size(image: Image.Image) -> Size:
    """(h, w) of `image` once :func:`upright` turns it: header checks compare what :func:`load_rgb` will return."""
    w, h = image.size
    return (w, h) if image.getexif().get(EXIF_ORIENTATION, 1) in (5, 6, 7, 8) else (h, w)


def rgb_pixels(image: Image.Image) -> Image.Image:
    """8-bit RGB of any Pillow mode: alpha composited on :data:`BACKGROUND`, high bit depths scaled, not clipped."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode == "P" and "transparency" in image.info or mode == "PA":
        image, mode = image.convert("RGBA"), "RGBA"
    if mode in ("RGBA", "LA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, BACKGROUND)
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    if mode.startswith("I") or mode == "F":
        arr = np.asarray(image).astype(np.float64)
        if mode.startswith("I;16") or (mode == "I" and arr.size and arr.max() > 255):
            arr = arr / 257.0  # 16-bit range to 8-bit, as image viewers show it
        grey = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    return image.convert("RGB")


def as_rgb(image: Image.Image, source: str = "image", *, name: Optional[str] = None,
           min_size: Optional[Size] = None, what: str = "image") -> Image.Image:
    """An image already in memory (an upload, a caller's PIL image) as pgpis reads files: upright, RGB, big enough.

    `source` names it in errors (a file name or "the uploaded photo"); `min_size` is (h, w), e.g. the model's input.
    """
    try:
        rgb = rgb_pixels(upright(image))
    except (OSError, ValueError) as err:  # an unsupported mode (LAB, HSV) or a broken EXIF block
        raise DataFormatError(Problem(source, f"{what} cannot be converted to RGB (mode {image.mode}: {err})",
                                      "save it as an RGB JPEG or PNG", item=name)) from err
    _check_size(rgb, source, name, min_size, what)
    return rgb


def load_rgb(path: str | os.PathLike, name: Optional[str] = None, *, min_size: Optional[Size] = None,
             what: str = "image", fix: str = _DEFAULT_FIX) -> Image.Image:
    """The upright 8-bit RGB pixels of an image file (see the module docstring), or a :class:`DataFormatError`.

    `name` is the dataset's name for the image (shown in errors), `min_size` (h, w) the smallest size the
    caller can use, `what` what the image is for ("source image"), `fix` what to do about an unreadable file.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(Problem(str(path), f"{what} file does not exist" if not path.exists() else f"{what} is not a file",
                                      "check the path; give an image file (.jpg, .png, ...)", item=name))
    try:
        with Image.open(path) as im:
            im.load()  # decode now: a truncated file fails here, not in the first conversion
            rgb = rgb_pixels(upright(im))
    except Exception as err:  # PIL raises OSError, SyntaxError, ValueError, DecompressionBombError for broken files
        raise DataFormatError(Problem(str(path), f"{what} does not decode ({type(err).__name__}: {err})", fix,
                                      item=name)) from err
    _check_size(rgb, str(path), name, min_size, what)
    return rgb


def _check_size(image: Image.Image, source: str, name: Optional[str], min_size: Optional[Size], what: str) -> None:
    w, h = image.size
    if min(w, h) < MIN_SIDE:
        raise DataFormatError(Problem(source, f"{what} is {w}x{h} px (w x h): too small to hold a person",
                                      f"give a photo of at least {MIN_SIDE} px a side; a person should fill most of it",
                                      item=name))
    if min_size is not None and (h < min_size[0] or w < min_size[1]):
        mh, mw = min_size
        raise DataFormatError(Problem(source, f"{what} is {w}x{h} px (w x h), smaller than the model's {mw}x{mh} input",
                                      f"give a photo at least {mw}x{mh} px (w x h); upscale it yourself first if a "
                                      "blurry result is acceptable", item=name))


__all__ = ["Size", "ImageCheck", "MIN_SIDE", "BACKGROUND", "to_tensor", "resize_image", "upright", "upright_size", "rgb_pixels",
           "as_rgb", "load_rgb"]
