"""The human-parser contract: :class:`HumanParser` (``name``, ``label_set``, ``parse(image)``) and :func:`parse_lip`.

A parser returns one class index per pixel of the *input* image (``[H, W]``) in its own label set (``label_set``:
``"lip"`` or ``"atr"``); :func:`parse_lip` checks the map and turns it into the LIP indices TruePose reads, so
every backend, and a user's own class, is used through one checked path.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Protocol, runtime_checkable

import numpy as np

from pgpis.parsing.errors import InvalidParsing
from pgpis.parsing.labels import label_set, to_lip
from pgpis.pose.estimate import ImageLike, to_rgb_array


@runtime_checkable
class HumanParser(Protocol):
    """What pgpis needs from a human parser.

    ``name`` is recorded beside the maps it writes (``parse.json``) and in the messages of `pgpis generate` / the
    app, so a map always says which parser made it. ``label_set``: the classes ``parse`` returns (``"lip"`` or
    ``"atr"``; see docs/parsing.md for the mapping to LIP).
    """

    name: str
    label_set: str

    def parse(self, image: ImageLike) -> np.ndarray:
        """Class indices ``[H, W]`` (integers) of an RGB image ``[H, W, 3]``, same height and width."""
        ...


class BaseParser(ABC):
    """A HumanParser with resources: ``close()`` and ``with`` support (the backends derive from it and implement
    :meth:`parse`; a user's own parser needs only the :class:`HumanParser` attributes)."""

    name: str = "unnamed"
    label_set: str = "lip"

    @abstractmethod
    def parse(self, image: ImageLike) -> np.ndarray:
        """Class indices ``[H, W]`` of an RGB image ``[H, W, 3]`` in :attr:`label_set`."""

    def close(self) -> None:
        """Release the backend's resources (model sessions); the parser is unusable afterwards."""

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def parser_name(parser: Any) -> str:
    return str(getattr(parser, "name", type(parser).__name__))


def parse_lip(parser: HumanParser, image: ImageLike) -> np.ndarray:
    """``uint8 [H, W]`` LIP class indices of `image` by `parser` (checked, mapped from its label set)."""
    rgb = to_rgb_array(image)
    labels = np.asarray(parser.parse(rgb))
    name = parser_name(parser)
    if labels.shape != rgb.shape[:2]:
        raise InvalidParsing(f"parser {name!r} returned a map of shape {list(labels.shape)} for an image of "
                             f"{list(rgb.shape[:2])} (h, w). Fix: return one class index per input pixel, [H, W].")
    if not np.issubdtype(labels.dtype, np.integer):
        raise InvalidParsing(f"parser {name!r} returned {labels.dtype} values. Fix: return integer class indices "
                             "(argmax of the logits), never colours or probabilities.")
    try:
        return to_lip(labels, label_set(str(getattr(parser, "label_set", "lip"))))
    except InvalidParsing as err:
        raise InvalidParsing(f"parser {name!r}: {err}") from None


__all__ = ["HumanParser", "BaseParser", "parse_lip", "parser_name"]
