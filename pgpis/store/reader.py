"""Reading a store: stored tensors by part and key, from the LitData shards the manifest lists."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from pgpis.store.errors import StoreError
from pgpis.store.manifest import Manifest, read_manifest
from pgpis.store.writer import from_stored


class StoreReader:
    """``reader.get(part, key)`` -> float32 tensor; one ``litdata.StreamingDataset`` per shard, opened lazily
    (in each loader worker), random access by the row index the manifest's key list gives."""

    def __init__(self, store: str | Path, manifest: Manifest | None = None):
        self.store = Path(store)
        self.manifest = manifest or read_manifest(store)
        self._index: dict[str, dict[str, tuple[int, int]]] = {}
        for name, rec in self.manifest.parts.items():
            self._index[name] = {k: (s, i) for s, shard in enumerate(rec.shards) for i, k in enumerate(shard["keys"])}
        self._open: dict[tuple[str, int], Any] = {}

    @property
    def parts(self) -> list[str]:
        return list(self.manifest.parts)

    def keys(self, part: str) -> set[str]:
        return set(self._index[part])

    def _shard(self, part: str, s: int) -> Any:
        ds = self._open.get((part, s))
        if ds is None:
            from litdata import StreamingDataset

            folder = self.store / self.manifest.parts[part].shards[s]["dir"]
            if not (folder / "index.json").is_file():
                raise StoreError(f"{folder}: shard listed in the manifest has no index.json (incomplete copy). "
                                 "Fix: copy the store again or re-run pgpis data cache")
            ds = self._open[(part, s)] = StreamingDataset(str(folder))
        return ds

    def get(self, part: str, key: str) -> torch.Tensor:
        try:
            s, i = self._index[part][key]
        except KeyError:
            raise StoreError(f"the store {self.store} has no {part} for view '{key}' (name|flip). Fix: re-run "
                             "pgpis data cache with this experiment's data settings") from None
        item = self._shard(part, s)[i]
        if item["key"] != key:
            raise StoreError(f"{self.store}: {part} row {i} of shard {s} holds '{item['key']}', the manifest says "
                             f"'{key}' (damaged store). Fix: re-run pgpis data cache")
        return from_stored(item["value"], self.manifest.parts[part].dtype)

    def __getstate__(self) -> dict[str, Any]:  # loader workers open their own file handles
        return {**self.__dict__, "_open": {}}
