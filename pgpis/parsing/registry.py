"""``load_parser(name, **options)`` and ``available_parsers()``: the one way pgpis gets a human parser.

Built-in names map to backend modules imported only on demand (``import pgpis.parsing`` never imports
onnxruntime); anything with a dot is a user's class path, built as pose estimators' class paths are
(:mod:`pgpis.pose.backends.classpath`).
"""
from __future__ import annotations

import importlib
from typing import Any

from pgpis.parsing.errors import InvalidParser, ParserUnavailable
from pgpis.parsing.parser import HumanParser

DEFAULT = "schp-lip"
# name -> (module, class, fixed keyword arguments)
BUILTIN: dict[str, tuple[str, str, dict[str, Any]]] = {
    "schp-lip": ("pgpis.parsing.backends.schp", "SchpOnnxParser", {"dataset": "lip"}),
    "schp-atr": ("pgpis.parsing.backends.schp", "SchpOnnxParser", {"dataset": "atr"}),
}


def load_parser(name: str = DEFAULT, **options: Any) -> HumanParser:
    """Build a parser: ``"schp-lip"`` (default; what TruePose used), ``"schp-atr"`` (mapped to LIP) or a class path.

    ``options`` go to the backend's constructor (``model=PATH`` for a local ONNX file; docs/parsing.md). Raises
    :class:`ParserUnavailable` (unknown name, dependency or weights missing, with the download command) or
    :class:`InvalidParser` (bad option, a class path that builds no parser).
    """
    from pgpis.pose.backends.classpath import build_class_path, check_options

    name = (name or DEFAULT).strip()
    if name in BUILTIN:
        module_name, cls_name, fixed = BUILTIN[name]
        cls = getattr(importlib.import_module(module_name), cls_name)
        taken = sorted(set(options) & set(fixed))
        if taken:
            raise InvalidParser(f"parser {name!r}: option(s) {taken} are fixed by the name; drop them.")
        check_options(name, cls, options, kind="parser", error=InvalidParser)
        return cls(**fixed, **options)
    if "." in name or ":" in name:
        parser = build_class_path(name, options, kind="parser", error=InvalidParser)
        missing = [m for m in ("name", "parse") if not hasattr(parser, m)]
        if missing or not callable(getattr(parser, "parse", None)):
            raise InvalidParser(f"parser {name!r}: built a {type(parser).__name__}, which is not a human parser "
                                f"(missing: {', '.join(missing) or 'a callable parse'}). Fix: subclass "
                                "pgpis.parsing.BaseParser, set `name` (and `label_set` if not 'lip') and implement "
                                "`parse(rgb) -> class indices [H, W]`.")
        return parser
    raise ParserUnavailable(f"unknown parser {name!r}. Fix: use one of {sorted(BUILTIN)} or a class path "
                            "'package.module.ClassName' of your own parser (docs/parsing.md).")


def available_parsers() -> dict[str, str | None]:
    """Built-in name -> None if it can be loaded here with its default weights, else why not (nothing downloads)."""
    out: dict[str, str | None] = {}
    for name, (module_name, _, fixed) in BUILTIN.items():
        try:
            out[name] = importlib.import_module(module_name).unavailable_reason(**fixed)
        except Exception as exc:  # the backend module itself failed to import
            out[name] = f"{type(exc).__name__}: {exc}"
    return out


__all__ = ["load_parser", "available_parsers", "BUILTIN", "DEFAULT"]
