"""Human-parsing label sets (SCHP's LIP, ATR, CIHP), reading label PNGs, flipping, category masks.

Parsing maps are class-index arrays ``uint8 [H, W]`` (``torch.long`` in batches),
never RGB. Category names are shared across label sets ("Upper-clothes",
"Left-arm", ...), so code that asks for categories works with any label set; a
name a label set lacks is simply skipped. Parsers confuse left and right, so
masks merge Left-/Right- classes by default (docs/data-formats.md).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
from PIL import Image

from pgpis.errors import DataFormatError, Problem
from pgpis.pose.keypoints import missing_mask


def _lr_pairs(classes: tuple[str, ...]) -> tuple[tuple[int, int], ...]:
    idx = {c: i for i, c in enumerate(classes)}
    return tuple((i, idx["Right-" + c[5:]]) for i, c in enumerate(classes)
                 if c.startswith("Left-") and "Right-" + c[5:] in idx)


@dataclass(frozen=True)
class LabelSet:
    """Class names of one parser output; ``flip_pairs`` are the (Left-x, Right-x) index pairs."""

    name: str
    classes: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.flip_pairs:
            object.__setattr__(self, "flip_pairs", _lr_pairs(self.classes))

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def index(self, category: str) -> int | None:
        """Index of ``category`` in this label set, or None when the set has no such class."""
        return self.classes.index(category) if category in self.classes else None

    def flip_lut(self) -> np.ndarray:
        """Lookup table mapping each class to its mirror class (identity for non-sided classes)."""
        lut = np.arange(256, dtype=np.uint8)
        for a, b in self.flip_pairs:
            lut[a], lut[b] = b, a
        return lut


LIP = LabelSet("lip", (
    "Background", "Hat", "Hair", "Glove", "Sunglasses", "Upper-clothes", "Dress", "Coat", "Socks", "Pants",
    "Jumpsuits", "Scarf", "Skirt", "Face", "Left-arm", "Right-arm", "Left-leg", "Right-leg", "Left-shoe",
    "Right-shoe",
))
ATR = LabelSet("atr", (
    "Background", "Hat", "Hair", "Sunglasses", "Upper-clothes", "Skirt", "Pants", "Dress", "Belt", "Left-shoe",
    "Right-shoe", "Face", "Left-leg", "Right-leg", "Left-arm", "Right-arm", "Bag", "Scarf",
))
CIHP = LabelSet("cihp", LIP.classes[:10] + ("Torso-skin",) + LIP.classes[11:])
LABEL_SETS: dict[str, LabelSet] = {s.name: s for s in (LIP, ATR, CIHP)}


def read_parsing(path: str | os.PathLike, label_set: LabelSet = LIP) -> np.ndarray:
    """Read a parsing PNG as class indices ``uint8 [H, W]`` (``np.array(Image.open(p))``, never RGB)."""
    path = Path(path)
    fix = (f"write the parsing map as a single-channel (palette 'P' or 'L') PNG whose pixel values are "
           f"{label_set.name.upper()} class indices 0..{label_set.num_classes - 1}")
    try:
        with Image.open(path) as im:
            mode = im.mode
            arr = np.array(im)
    except (OSError, ValueError) as e:
        raise DataFormatError(Problem(str(path), f"cannot decode parsing map ({e})", fix)) from None
    if mode not in ("P", "L", "I", "I;16") or arr.ndim != 2:
        raise DataFormatError(Problem(str(path), f"parsing map is a {mode} image, not class indices", fix))
    top = int(arr.max()) if arr.size else 0
    if top >= label_set.num_classes or (arr.size and int(arr.min()) < 0):
        bad = np.unique(arr[(arr >= label_set.num_classes) | (arr < 0)])[:10].tolist()
        raise DataFormatError(Problem(
            str(path), f"values {bad} are outside the {label_set.name.upper()} label set "
                       f"({label_set.num_classes} classes)", fix))
    return arr.astype(np.uint8)


def flip_parsing(arr, label_set: LabelSet = LIP):
    """Mirror a parsing map horizontally and swap Left-/Right- classes (numpy or torch, ``[..., H, W]``)."""
    lut = label_set.flip_lut()
    if isinstance(arr, np.ndarray):
        return lut[arr[..., ::-1]].astype(arr.dtype)
    import torch

    return torch.as_tensor(lut.astype(np.int64), device=arr.device)[arr.flip(-1).long()].to(arr.dtype)


def resize_parsing(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize to ``size = (h, w)`` (class indices must never be interpolated)."""
    arr = np.asarray(arr, dtype=np.uint8)
    if arr.shape == tuple(size):
        return arr.copy()
    return np.asarray(Image.fromarray(arr).resize((size[1], size[0]), Image.NEAREST), dtype=np.uint8)


# OpenPose-18 index -> parsing categories a present keypoint implies (TruePose's "categories the
# target pose contains"). As in docs/data-formats.md: head points -> face/hair/hat/sunglasses; neck ->
# scarf; shoulders -> upper garments; elbows/wrists -> the arm and sleeves (+glove at wrists);
# hips -> lower garments, belt, bag; knees -> leg and lower garments; ankles -> shoe, socks, leg.
# Torso-skin (CIHP) is added at the neck and shoulders. Pass your own table to override it.
_HEAD = ("Face", "Hair", "Hat", "Sunglasses")
_SHOULDER = ("Upper-clothes", "Coat", "Dress", "Jumpsuits", "Torso-skin")
_HIP = ("Pants", "Skirt", "Dress", "Jumpsuits", "Belt", "Bag")


def _arm(side: str, wrist: bool) -> tuple[str, ...]:
    return (f"{side}-arm", "Upper-clothes", "Coat") + (("Glove",) if wrist else ())


DEFAULT_KEYPOINT_CATEGORIES: Mapping[int, tuple[str, ...]] = {
    0: _HEAD, 14: _HEAD, 15: _HEAD, 16: _HEAD, 17: _HEAD,
    1: ("Scarf", "Torso-skin"),
    2: _SHOULDER, 5: _SHOULDER,
    3: _arm("Right", False), 4: _arm("Right", True), 6: _arm("Left", False), 7: _arm("Left", True),
    8: _HIP, 11: _HIP,
    9: ("Right-leg", "Pants", "Skirt", "Dress"), 12: ("Left-leg", "Pants", "Skirt", "Dress"),
    10: ("Right-shoe", "Socks", "Right-leg"), 13: ("Left-shoe", "Socks", "Left-leg"),
}


def categories_for_keypoints(kp: np.ndarray, table: Mapping[int, Iterable[str]] | None = None) -> set[str]:
    """Parsing categories implied by the present (non-missing) OpenPose-18 keypoints of ``kp [18, 2]``."""
    table = DEFAULT_KEYPOINT_CATEGORIES if table is None else table
    present = ~missing_mask(np.asarray(kp))
    out: set[str] = set()
    for j in np.flatnonzero(present):
        out.update(table.get(int(j), ()))
    return out


def category_indices(categories: Iterable[str], label_set: LabelSet, merge_left_right: bool = True) -> list[int]:
    """Class indices of ``categories`` in ``label_set`` (unknown names skipped; Left-/Right- merged on request)."""
    names = set(categories)
    if merge_left_right:
        for c in list(names):
            for a, b in (("Left-", "Right-"), ("Right-", "Left-")):
                if c.startswith(a):
                    names.add(b + c[len(a):])
    return sorted(i for i, c in enumerate(label_set.classes) if c in names)


def category_mask(parsing, categories: Iterable[str], label_set: LabelSet = LIP, merge_left_right: bool = True):
    """Bool mask ``[..., H, W]`` of pixels whose class is one of ``categories`` (numpy or torch)."""
    ids = category_indices(categories, label_set, merge_left_right)
    if isinstance(parsing, np.ndarray):
        return np.isin(parsing, ids)
    import torch

    return torch.isin(parsing, torch.as_tensor(ids, dtype=parsing.dtype, device=parsing.device))


def _pascal_palette() -> list[int]:
    """The common PASCAL-VOC colour map, so written parsing maps are viewable."""
    palette = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette += [r, g, b]
    return palette


PARSING_PALETTE = _pascal_palette()


def parsing_image(labels: np.ndarray) -> Image.Image:
    """Class indices as a palette ("P") image with :data:`PARSING_PALETTE`, the format human parsers (SCHP) write."""
    arr = np.ascontiguousarray(labels, dtype=np.uint8)
    im = Image.frombytes("P", (arr.shape[1], arr.shape[0]), arr.tobytes())
    im.putpalette(PARSING_PALETTE)
    return im


def write_parsing_png(path: str | os.PathLike, labels: np.ndarray) -> None:
    """Save class indices as a palette ("P") PNG, the format human parsers (SCHP) write."""
    parsing_image(labels).save(path)
