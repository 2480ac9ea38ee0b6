"""A precomputed feature store: frozen encoders run once, training reads their outputs (docs/feature-store.md).

`pgpis data cache` writes one (:mod:`pgpis.store.writer`, LitData chunks); `pgpis fit --store DIR` trains
from it (:class:`~pgpis.store.datamodule.StoreDataModule`, the denoisers' ``store`` argument).
"""
from __future__ import annotations

from pgpis.store.errors import NotEnumerableError, StoreError, StoreMismatchError
from pgpis.store.manifest import Manifest, read_manifest

__all__ = ["NotEnumerableError", "StoreError", "StoreMismatchError", "Manifest", "read_manifest"]
