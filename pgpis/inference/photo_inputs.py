"""Which parser / estimator makes the source inputs a model reads and the user did not give (generate, animate).

The model says what it reads (:attr:`Pipeline.needs`); only those inputs are made, and only when not given, so a
user's own parsing map or keypoint file always wins and FPDM never loads a parser. ``"none"`` switches one off
(then a missing input is the :class:`~pgpis.inference.inputs.MissingInputError` naming the option to give it).
"""
from __future__ import annotations

from typing import Any, Mapping, Optional

OFF = "none"


def source_input_makers(pipe: Any, *, parser: str, parser_options: Optional[Mapping[str, Any]] = None,
                        estimator: str, estimator_options: Optional[Mapping[str, Any]] = None,
                        parsing_given: bool, pose_given: bool) -> dict[str, Any]:
    """``{"parser": ..., "source_estimator": ...}`` for :meth:`Pipeline.generate`: built parsers / estimators, or None
    where the model does not read the input, the user gave it, or the name is ``none``."""
    made: dict[str, Any] = {"parser": None, "source_estimator": None}
    if pipe.needs_parsing and not parsing_given and str(parser).lower() != OFF:
        from pgpis.parsing import load_parser

        made["parser"] = load_parser(parser, **dict(parser_options or {}))
    if pipe.needs_source_pose and not pose_given and str(estimator).lower() != OFF:
        from pgpis.pose import load_estimator

        made["source_estimator"] = load_estimator(estimator, **dict(estimator_options or {}))
    return made


def describe_estimated(estimated: Mapping[str, str]) -> str:
    """"parsing map by schp-lip:parsing_lip; keypoints by mediapipe-..." for :attr:`Pipeline.estimated` ("" if none)."""
    what = {"source_parsing": "parsing map", "source_pose": "keypoints"}
    return "; ".join(f"{what.get(k, k)} by {v}" for k, v in estimated.items())


__all__ = ["source_input_makers", "describe_estimated", "OFF"]
