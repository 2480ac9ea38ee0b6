"""WPose parsing maps: CIHP-style Graphonomy labels, mapped to the LIP labels TruePose (pgpis) uses.

WPose ships ``parsing/<image>`` label PNGs from Graphonomy with CIHP's 20 classes, which are LIP's 20
classes (:data:`pgpis.data.parsing.LIP`) except slot 10: CIHP has *Torso-skin* where LIP has *Jumpsuits*.
pgpis's TruePose models (and their ``label_set: lip`` categories) expect LIP, so every WPose map goes
through :data:`CIHP_TO_LIP` once, when it is read:

==========  ===============  ===============  ====================================================
CIHP index  CIHP class       LIP index/class  why
==========  ===============  ===============  ====================================================
0-9         Background ...   same index       identical classes (Background, Hat, Hair, Glove,
            Pants                             Sunglasses, Upper-clothes, Dress, Coat, Socks, Pants)
10          Torso-skin       5 Upper-clothes  LIP has no skin class for the torso; the region
                                              belongs with the upper body (TruePose's shoulder
                                              keypoints select Upper-clothes), not the head
11-19       Scarf ...        same index       identical classes (Scarf, Skirt, Face, Left-/Right-
            Right-shoe                        arm, Left-/Right-leg, Left-/Right-shoe)
==========  ===============  ===============  ====================================================

LIP's Jumpsuits (10) never appears after the mapping (CIHP has no such class). Pass another table to
:func:`read_cihp_as_lip` to change a choice (e.g. ``{10: 0}`` to drop exposed torso skin to background).
"""
from __future__ import annotations

import os
from typing import Mapping

import numpy as np

from pgpis.data.parsing import CIHP, LIP, read_parsing

#: CIHP class index -> LIP class index (see the module docstring for the reasons)
CIHP_TO_LIP: Mapping[int, int] = {
    **{i: i for i in range(CIHP.num_classes)},
    CIHP.index("Torso-skin"): LIP.index("Upper-clothes"),
}


def lookup_table(table: Mapping[int, int] | None = None) -> np.ndarray:
    """uint8 [256] lookup table of ``table`` (default :data:`CIHP_TO_LIP`) over the CIHP indices."""
    table = CIHP_TO_LIP if table is None else {**CIHP_TO_LIP, **table}
    lut = np.zeros(256, dtype=np.uint8)
    for src, dst in table.items():
        if not (0 <= int(src) < CIHP.num_classes and 0 <= int(dst) < LIP.num_classes):
            raise ValueError(f"CIHP->LIP table entry {src} -> {dst}: CIHP indices are 0..{CIHP.num_classes - 1}, "
                             f"LIP indices 0..{LIP.num_classes - 1}")
        lut[int(src)] = int(dst)
    return lut


def cihp_to_lip(labels: np.ndarray, table: Mapping[int, int] | None = None) -> np.ndarray:
    """Map a CIHP class-index array (any shape) to LIP class indices."""
    return lookup_table(table)[np.asarray(labels, dtype=np.uint8)]


def lip_to_cihp(labels: np.ndarray) -> np.ndarray:
    """LIP indices as CIHP indices, for writing synthetic maps: identical except that LIP's Jumpsuits (10),
    which CIHP lacks, becomes Upper-clothes. (Not the inverse of :func:`cihp_to_lip`; Torso-skin is drawn
    separately by the synthetic writer.)"""
    lut = np.arange(256, dtype=np.uint8)
    lut[LIP.index("Jumpsuits")] = CIHP.index("Upper-clothes")
    return lut[np.asarray(labels, dtype=np.uint8)]


def read_cihp_as_lip(path: str | os.PathLike, table: Mapping[int, int] | None = None) -> np.ndarray:
    """Read a WPose parsing PNG (CIHP class indices, validated) and return LIP indices ``uint8 [H, W]``."""
    return cihp_to_lip(read_parsing(path, CIHP), table)
