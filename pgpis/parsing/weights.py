"""Where a parser's model file comes from: a local path, a Hugging Face hub file, or a URL.

``hf://<org>/<repo>/<path in the repo>`` is fetched with ``huggingface_hub.hf_hub_download`` into the Hugging
Face cache (read offline from then on; ``HF_HUB_OFFLINE=1`` never contacts the hub); an ``https://`` URL is
downloaded once into ``$PGPIS_CACHE/parsers`` (default ``~/.cache/pgpis/parsers``). A file that is missing
offline is a :class:`ParserUnavailable` naming the file, where it was looked for and the command that fetches it.
"""
from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

from pgpis.parsing.errors import ParserUnavailable

HUB_PREFIX = "hf://"
_TRUE = ("1", "true", "yes", "on")


def offline_reason(offline: bool | None) -> str | None:
    """Why nothing may be downloaded now (None: downloads are allowed)."""
    if offline is True:
        return "offline=True: nothing is downloaded"
    if offline is False:
        return None
    for var in ("PGPIS_OFFLINE", "HF_HUB_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in _TRUE:
            return f"{var}={os.environ[var]} is set"
    return None


def split_hub_spec(spec: str) -> tuple[str, str]:
    """``hf://org/repo/dir/file.onnx`` -> (``org/repo``, ``dir/file.onnx``)."""
    parts = spec[len(HUB_PREFIX):].split("/")
    if len(parts) < 3 or not all(parts):
        raise ParserUnavailable(f"model {spec!r}: write a hub file as hf://<org>/<repo>/<path in the repo>, e.g. "
                                "hf://levihsu/OOTDiffusion/checkpoints/humanparsing/parsing_lip.onnx")
    return "/".join(parts[:2]), "/".join(parts[2:])


def download_command(spec: str) -> str:
    """The shell command that puts the file of a hub spec into the cache pgpis reads offline."""
    from pgpis.pretrained import hf_download_command

    repo, filename = split_hub_spec(spec)
    return hf_download_command(repo, [filename])


def cache_dir() -> Path:
    return Path(os.environ.get("PGPIS_CACHE", Path.home() / ".cache" / "pgpis")).expanduser() / "parsers"


def _from_hub(spec: str, parser: str, offline: bool | None) -> Path:
    from huggingface_hub import hf_hub_download

    repo, filename = split_hub_spec(spec)
    reason = offline_reason(offline)
    try:
        return Path(hf_hub_download(repo, filename, local_files_only=reason is not None))
    except Exception as err:  # noqa: BLE001 - huggingface_hub raises several types for "not there"
        from pgpis.pretrained import hf_download_command

        why = reason or f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        raise ParserUnavailable(
            f"parser {parser!r}: its model {filename} (hub repo {repo}) is not available ({why}).\n"
            f"  Fix: download it once with internet: `{download_command(spec)}` (into the Hugging Face cache, read "
            f"offline from then on), or `{hf_download_command(repo, [filename], 'DIR')}` and pass "
            f"--parser-option model=DIR/{filename} (Python: load_parser({parser!r}, model='DIR/{filename}')).\n"
            "  Licence and size of the weights: docs/parsing.md") from None


def _from_url(spec: str, parser: str, offline: bool | None) -> Path:
    target = cache_dir() / os.path.basename(urlparse(spec).path)
    if target.is_file():
        return target
    reason = offline_reason(offline)
    if reason is not None:
        raise ParserUnavailable(f"parser {parser!r}: its model is not available offline ({reason}).\n  URL: {spec}\n"
                                f"  looked in: {target}\n  Fix: download the URL to that file with internet, or pass "
                                "--parser-option model=PATH of a local copy")
    import torch.hub

    target.parent.mkdir(parents=True, exist_ok=True)
    torch.hub.download_url_to_file(spec, str(target), progress=True)
    return target


def resolve_weights(spec: str, *, parser: str, offline: bool | None = None) -> Path:
    """A model spec (local path, ``hf://...``, ``https://...``) -> the local file to load."""
    if spec.startswith(HUB_PREFIX):
        return _from_hub(spec, parser, offline)
    if spec.startswith(("http://", "https://")):
        return _from_url(spec, parser, offline)
    path = Path(spec).expanduser()
    if not path.is_file():
        raise ParserUnavailable(f"parser {parser!r}: model file {spec} does not exist. Fix: pass the path of an "
                                "existing .onnx file (--parser-option model=PATH), a hub file hf://org/repo/path, "
                                "or a URL.")
    return path


__all__ = ["resolve_weights", "download_command", "split_hub_spec", "offline_reason", "cache_dir", "HUB_PREFIX"]
