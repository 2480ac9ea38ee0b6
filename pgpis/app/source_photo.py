"""An uploaded source photo alone: its parsing map and keypoints made by a parser / the pose estimator.

A TruePose checkpoint reads the source's LIP parsing map (and, with ``source_pose: true``, its keypoints). What the
user uploads is used as given; what they do not is made from the photo, only when the model reads it
(:func:`pgpis.app.generate.needs`), with the human parser of ``--parser`` (:mod:`pgpis.parsing`, SCHP on LIP by
default) and the pose estimator of ``--estimator``, and the page says which made it.
"""
from __future__ import annotations

import sys
import threading
from typing import Any, Callable, Optional

import numpy as np
from PIL import Image

from pgpis.inference.pipeline import Pipeline


class PhotoParser:
    """A :mod:`pgpis.parsing` parser built on first use (loading SCHP's weights costs seconds; the page should not wait)."""

    def __init__(self, name: str = "schp-lip", options: Optional[dict] = None, parser: Any = None):
        self._options, self._parser = dict(options or {}), parser
        self.name = str(getattr(parser, "name", name)) if parser is not None else name
        self._lock = threading.RLock()  # Gradio's worker threads; an onnxruntime session is built once

    @property
    def parser(self) -> Any:
        with self._lock:
            if self._parser is None:
                from pgpis.parsing import load_parser

                self._parser = load_parser(self.name, **self._options)
                self.name = str(getattr(self._parser, "name", self.name))
            return self._parser


def find_parser(name: Optional[str] = "schp-lip", options: Optional[dict] = None) -> Optional[PhotoParser]:
    """The parser that makes an uploaded source's parsing map, or None (``none``, or it cannot be used here: the
    reason goes to stderr and the page asks for the map). Built-ins are checked without loading weights; a class
    path is built now, so a typo fails at start-up rather than at the first click."""
    if name is None or name.lower() == "none":
        return None
    from pgpis.parsing import InvalidParser, ParserUnavailable, load_parser
    from pgpis.parsing.registry import BUILTIN

    try:
        if name in BUILTIN:
            if not options or "model" not in options:
                from pgpis.parsing import available_parsers

                reason = available_parsers()[name]
                if reason is not None:
                    raise ParserUnavailable(reason)
            return PhotoParser(name, options)
        return PhotoParser(name, options, load_parser(name, **dict(options or {})))
    except (ParserUnavailable, InvalidParser) as err:
        print(f"pgpis app: an uploaded source needs its parsing map uploaded: the parser is unavailable ({err})",
              file=sys.stderr)
        return None


def source_inputs(pipe: Pipeline, image: Image.Image, *, parsing_file: Optional[str], pose_file: Optional[str],
                  parser: Optional[PhotoParser], estimator: Any, need_parsing: bool, need_pose: bool,
                  read_pose: Callable[[str], np.ndarray]) -> tuple[Any, Any, dict[str, str]]:
    """(parsing map, source keypoints, {input: what made it}) for an uploaded photo: uploads as given, the rest made.

    Raises ValueError with what to upload when an input the model reads can neither be read nor made.
    """
    made: dict[str, str] = {}
    parsing = pose = None
    if need_parsing:
        if parsing_file:
            parsing = parsing_file
        elif parser is not None:
            parsing = pipe.parse_source(image, parser=parser.parser)
            made["source_parsing"] = parser.name
        else:
            raise ValueError("this model reads the source's human-parsing map and no parser is available here "
                             "(see `pgpis parse --list-parsers`, docs/parsing.md): upload the map (a PNG of LIP "
                             "class indices, as <root>/parsing/<name>.png)")
    if need_pose:
        backend = getattr(estimator, "estimator", None)
        if pose_file:
            pose = read_pose(pose_file)
        elif backend is not None:
            pose = pipe.source_keypoints(image, estimator=backend)
            made["source_pose"] = str(getattr(estimator, "name", getattr(backend, "name", "estimator")))
        else:
            raise ValueError("this model reads the source's pose and no pose estimator is available here (see "
                             "`pgpis pose estimators`): upload its keypoint file (.txt PCDMs, .csv CFLD annotation, "
                             ".json [[x, y], ...])")
    return parsing, pose, made


__all__ = ["PhotoParser", "find_parser", "source_inputs"]
