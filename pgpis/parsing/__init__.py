"""Human parsing front end: LIP class maps of photos, the source parsing TruePose reads (docs/parsing.md).

Light to import: backends (onnxruntime, OpenCV) are imported only when :func:`load_parser` builds one.
"""
from pgpis.parsing.errors import InvalidParser, InvalidParsing, ParserUnavailable
from pgpis.parsing.parser import BaseParser, HumanParser, parse_lip, parser_name

__all__ = ["BaseParser", "HumanParser", "InvalidParser", "InvalidParsing", "ParserUnavailable", "parse_lip",
           "parser_name", "load_parser", "available_parsers"]


def __getattr__(name: str):
    """``load_parser`` / ``available_parsers`` resolved lazily (the registry imports the pose helpers)."""
    if name in ("load_parser", "available_parsers"):
        from pgpis.parsing import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'pgpis.parsing' has no attribute {name!r}")
