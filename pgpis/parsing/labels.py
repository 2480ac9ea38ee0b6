"""Parser label sets -> LIP, the 20 classes TruePose reads (``pgpis.data.parsing.LIP``).

Every map pgpis writes or hands to a model is in LIP indices, whatever parser made it. A class of another label
set takes the LIP class of the same name; the few without one are mapped by :data:`NEAREST_LIP` (documented in
docs/parsing.md). A LIP class the source set lacks (ATR has no Glove, Coat, Socks or Jumpsuits) is simply never
produced.
"""
from __future__ import annotations

import numpy as np

from pgpis.data.parsing import ATR, LABEL_SETS, LIP, LabelSet
from pgpis.parsing.errors import InvalidParser, InvalidParsing

#: classes without a LIP namesake -> the LIP class a LIP annotator would have drawn there
NEAREST_LIP: dict[str, dict[str, str]] = {
    "atr": {"Belt": "Pants", "Bag": "Background"},  # a belt is worn over the trousers; a bag is not the person
}

#: label sets a parser may declare (its ``label_set``)
SUPPORTED = ("lip", "atr")


def label_set(name: str) -> LabelSet:
    """The :class:`LabelSet` a parser declares, or InvalidParser naming the supported ones."""
    if name not in SUPPORTED:
        raise InvalidParser(f"label set {name!r} has no mapping to LIP. Fix: return LIP or ATR class indices "
                            f"(label_set one of {list(SUPPORTED)}), or map your classes to LIP in the parser.")
    return LABEL_SETS[name]


def to_lip_table(source: LabelSet) -> np.ndarray:
    """``uint8 [num_classes]``: LIP index of each class of `source` (identity for LIP)."""
    nearest = NEAREST_LIP.get(source.name, {})
    table = []
    for name in source.classes:
        lip_name = name if name in LIP.classes else nearest.get(name)
        if lip_name is None:
            raise InvalidParser(f"label set {source.name!r}: class {name!r} has no LIP counterpart in NEAREST_LIP")
        table.append(LIP.classes.index(lip_name))
    return np.asarray(table, np.uint8)


def to_lip(labels: np.ndarray, source: LabelSet = LIP) -> np.ndarray:
    """Class indices of `source` -> LIP class indices (``uint8 [H, W]``); values outside `source` are an error."""
    arr = np.asarray(labels)
    if arr.size and (int(arr.min()) < 0 or int(arr.max()) >= source.num_classes):
        bad = np.unique(arr[(arr < 0) | (arr >= source.num_classes)])[:10].tolist()
        raise InvalidParsing(f"parsing map has values {bad} outside the {source.name.upper()} label set "
                             f"({source.num_classes} classes)")
    return to_lip_table(source)[arr.astype(np.int64)]


__all__ = ["NEAREST_LIP", "SUPPORTED", "label_set", "to_lip", "to_lip_table", "ATR", "LIP"]
