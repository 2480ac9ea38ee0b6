"""Keeping the exporting machine's paths out of files meant for sharing (pipeline.json, the card, configs).

A `pgpis fit` config records where things were on the machine it ran on (``/home/me/pgpis/outputs/ipf/
fusion_model``, the dataset root). An export folder is meant to be moved and uploaded, so its files record
paths relative to the export (what it copied into itself) or relative to the run's folder, and elide the
rest to their last two parts (``.../ipf/fusion_model``): enough to read, nothing about the machine.
"""
from __future__ import annotations

import copy
import json
import os
import re
import warnings
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, Iterable, Mapping, Union

PathLike = Union[str, os.PathLike]
ELIDED = "..."
#: an absolute POSIX path inside a longer text (not the path part of a URL)
_EMBEDDED = re.compile(r"(?<![\w.:/~-])/(?:[\w.+-]+/)+[\w.+-]*")


def is_machine_path(value: Any) -> bool:
    """An absolute path (POSIX, Windows drive or UNC) or one under the home folder (``~``)."""
    if not isinstance(value, str) or not value:
        return False
    return (PurePosixPath(value).is_absolute() or PureWindowsPath(value).is_absolute() or value.startswith("~"))


def portable_path(value: str, roots: Iterable[PathLike] = ()) -> str:
    """`value` relative to the first of `roots` that holds it, else its last two parts after ``.../``."""
    path = Path(os.path.expanduser(value))
    for root in roots:
        try:
            rel = path.resolve().relative_to(Path(root).resolve())
        except (ValueError, OSError):
            continue
        return rel.as_posix() or "."
    parts = PureWindowsPath(value).parts if PureWindowsPath(value).drive else PurePosixPath(value).parts
    return "/".join((ELIDED, *parts[-2:]))


def strip_machine_paths(data: Any, roots: Iterable[PathLike] = (), *, _key: str = "") -> tuple[Any, list[str]]:
    """(a copy of `data` with every machine path made portable, the dotted keys that changed)."""
    roots = tuple(roots)
    if isinstance(data, Mapping):
        out, changed = {}, []
        for key, value in data.items():
            out[key], sub = strip_machine_paths(value, roots, _key=f"{_key}.{key}" if _key else str(key))
            changed += sub
        return out, changed
    if isinstance(data, (list, tuple)):
        items = [strip_machine_paths(v, roots, _key=f"{_key}[{i}]") for i, v in enumerate(data)]
        return [v for v, _ in items], [k for _, sub in items for k in sub]
    if is_machine_path(data):
        return portable_path(data, roots), [_key]
    if isinstance(data, str) and _EMBEDDED.search(data):  # a message naming a file, e.g. a metric's "unavailable" reason
        return _EMBEDDED.sub(lambda m: portable_path(m.group(0), roots), data), [_key]
    return copy.copy(data), []


def set_relative(config: dict[str, Any], relative: Mapping[str, str]) -> dict[str, Any]:
    """A copy of `config` whose dotted keys in `relative` hold the export-relative path (what loading joins to
    the folder) instead of where the exporting machine read them from."""
    out = copy.deepcopy(config)
    for dotted, rel in relative.items():
        node = out
        *parents, last = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = rel
    return out


def portable_config(config: dict[str, Any], relative: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """(`config` for pipeline.json, {dotted key: hub id} of the towers the export saved into its own folders).

    The keys in `relative` get their export-relative folder; any other machine path is made portable with a
    warning (loading cannot follow it on another machine). The hub ids stay on record for the model card.
    """
    from pgpis.inference.hub import is_hub_id

    def original(dotted: str) -> Any:
        node: Any = config
        for part in dotted.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        return node

    sources = {k: str(original(k)) for k in relative if is_hub_id(str(original(k) or ""))}
    out, changed = strip_machine_paths(set_relative(config, relative))
    if changed:
        warnings.warn(f"export: pipeline.json would record paths of this machine at model.{', model.'.join(changed)}; "
                      "recorded as '.../<last two parts>' (loading elsewhere needs them set again)", stacklevel=2)
    return out, sources


def strip_json_files(folder: PathLike, roots: Iterable[PathLike] = ()) -> list[str]:
    """Rewrite every JSON file under `folder` that names a machine path (e.g. a saved tower's ``_name_or_path``)
    with portable paths; the ``file: key`` entries changed."""
    changed: list[str] = []
    for path in sorted(Path(folder).rglob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue  # not ours to judge here; loading names a damaged file
        clean, keys = strip_machine_paths(data, roots)
        if keys:
            path.write_text(json.dumps(clean, indent=2) + "\n", encoding="utf-8")
            changed += [f"{path.relative_to(folder)}: {k}" for k in keys]
    return changed


__all__ = ["is_machine_path", "portable_path", "strip_machine_paths", "set_relative", "portable_config",
           "strip_json_files"]
