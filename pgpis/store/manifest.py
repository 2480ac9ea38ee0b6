"""The store's manifest: which parts it holds, for which encoders (config + weights digest) and which data.

``<store>/manifest.json`` is written last by the cache job (so a store without one is incomplete) and read
by training before anything is built. Digests are sha256 over tensor bytes in key order (weights) or over
file bytes (a weights folder), shortened to 16 hex digits in messages.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch

from pgpis.store.errors import StoreError

MANIFEST = "manifest.json"
FORMAT = "pgpis-feature-store/1"

#: stored dtype name -> torch dtype; LitData's tensor serialiser has no bfloat16, so bf16 rows travel as int16 bits
DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def state_digest(module: torch.nn.Module | Mapping[str, torch.Tensor]) -> str:
    """sha256 of a state dict's names, dtypes, shapes and bytes (the identity of a frozen encoder's weights)."""
    state = module.state_dict() if isinstance(module, torch.nn.Module) else module
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def files_digest(folder: str | Path, patterns: Iterable[str] = ("*.json", "*.safetensors", "*.bin")) -> str | None:
    """sha256 over the weight/config files of a local folder (None when `folder` is not a local folder)."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    h = hashlib.sha256()
    for path in sorted({p for pat in patterns for p in folder.glob(pat)}):
        h.update(path.name.encode())
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                h.update(block)
    return h.hexdigest()


@dataclass
class PartRecord:
    """One stored part: its identity, the tensor each key maps to, and where its shards are."""

    name: str
    unit: str                      # "image" (key: name|flip) or "pair" (key: source|target|flip)
    dtype: str                     # fp32 | fp16 | bf16
    shape: list[int]               # per-key tensor shape
    config: dict[str, Any]         # the encoder's config (the experiment's YAML keys it reads)
    weights_digest: str            # state_digest of the encoder that wrote the part
    files_digest: str | None       # digest of its weights folder, when it loads from one (checked without building)
    weights_file: str | None       # the encoder's weights inside the store (lazy rebuild for sampling)
    shards: list[dict[str, Any]] = field(default_factory=list)  # [{"dir": "dino/shard-0", "keys": [...]}]

    @property
    def count(self) -> int:
        return sum(len(s["keys"]) for s in self.shards)


@dataclass
class Manifest:
    parts: dict[str, PartRecord]
    data: dict[str, Any]
    world_size: int = 1
    format: str = FORMAT

    def to_json(self) -> str:
        return json.dumps({"format": self.format, "world_size": self.world_size, "data": self.data,
                           "parts": {k: asdict(v) for k, v in self.parts.items()}}, indent=1, sort_keys=True)

    def write(self, store: str | Path) -> Path:
        path = Path(store) / MANIFEST
        tmp = path.with_name(f".{MANIFEST}.{os.getpid()}.tmp")  # ranks may merge at once: same content, own temp
        tmp.write_text(self.to_json())
        tmp.replace(path)
        return path


def read_manifest(store: str | Path) -> Manifest:
    """The manifest of `store`, or a named error saying how to write one."""
    path = Path(store) / MANIFEST
    if not path.is_file():
        raise StoreError(f"{store} is not a feature store (no {MANIFEST}; an interrupted cache job leaves none). "
                         f"Fix: run `pgpis data cache --config <experiment yaml> --out {store}`")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise StoreError(f"{path}:{err.lineno}: not valid JSON ({err.msg}). Fix: re-run pgpis data cache") from err
    if raw.get("format") != FORMAT:
        raise StoreError(f"{path}: format {raw.get('format')!r}, expected {FORMAT!r}. Fix: re-run pgpis data cache")
    parts = {k: PartRecord(**v) for k, v in raw["parts"].items()}
    return Manifest(parts=parts, data=raw["data"], world_size=int(raw.get("world_size", 1)))


def short(digest: str | None) -> str:
    return "none" if digest is None else digest[:16] + ".."
