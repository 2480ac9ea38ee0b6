"""Which person to keep when an estimator finds several: by default the largest, most central one.

An estimate holds one person (the files pgpis writes hold one pose per image), so a multi-person backend
(rtmlib) must choose. ``"largest-central"`` scores each candidate by ``size * (0.5 + 0.5 * centrality)``:
``size`` is the square root of the area of the box around its present OpenPose-18 points as a fraction of
the image area, ``centrality`` is 1 at the image centre falling linearly to 0 at a corner. Size dominates
(a person twice as tall always wins); centrality breaks near ties, e.g. a passer-by of the same size at the
edge. ``"first"`` keeps the backend's first detection (rtmlib: the detector's most confident box). A callable
``person(bodies, image_size) -> int`` chooses itself (``bodies``: list of ``float32 [18, 3]``).
"""
from __future__ import annotations

import math
from typing import Callable, Sequence, Union

import numpy as np

from pgpis.pose.errors import InvalidEstimator
from pgpis.pose.keypoints import MISSING

PersonChooser = Callable[[Sequence[np.ndarray], tuple[int, int]], int]
PersonRule = Union[str, PersonChooser]
RULES = ("largest-central", "first")


def person_score(body: np.ndarray, image_size: tuple[int, int]) -> float:
    """The ``"largest-central"`` score of one ``[18, 3]`` body (0 with fewer than two present points)."""
    pts = body[(body[:, 0] != MISSING) & (body[:, 1] != MISSING), :2]
    if len(pts) < 2:
        return 0.0
    h, w = image_size
    (x0, y0), (x1, y1) = pts.min(axis=0), pts.max(axis=0)
    size = math.sqrt(max(float(x1 - x0), 0.0) * max(float(y1 - y0), 0.0) / float(h * w))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    centrality = 1.0 - math.hypot(cx - w / 2, cy - h / 2) / math.hypot(w / 2, h / 2)
    return size * (0.5 + 0.5 * max(centrality, 0.0))


def check_rule(person: PersonRule) -> PersonRule:
    """``person`` as given, or a named error for an unknown rule (at construction, not at the first image)."""
    if callable(person) or person in RULES:
        return person
    raise InvalidEstimator(f"person={person!r}: unknown person-selection rule. Fix: use one of {list(RULES)} "
                           "or a callable (bodies, image_size) -> index.")


def select_person(bodies: Sequence[np.ndarray], image_size: tuple[int, int],
                  person: PersonRule = "largest-central") -> int | None:
    """Index of the person to keep among ``bodies`` (``[18, 3]`` each), or None when there is none."""
    if len(bodies) == 0:
        return None
    if callable(person):
        index = int(person(bodies, image_size))
        if not 0 <= index < len(bodies):
            raise InvalidEstimator(f"person selection callable returned {index} for {len(bodies)} people. "
                                   "Fix: return an index into the list it gets.")
        return index
    if person == "first":
        return 0
    check_rule(person)
    scores = [person_score(np.asarray(b), image_size) for b in bodies]
    return int(np.argmax(scores))  # ties: the earlier (more confident) detection
