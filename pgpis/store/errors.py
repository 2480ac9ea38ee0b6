"""The feature store's named errors: what differs or what cannot be stored, and the command that fixes it."""
from __future__ import annotations

from pgpis.errors import PgpisError


class StoreError(PgpisError, ValueError):
    """A store that is missing, damaged or was asked for something it cannot hold."""


class StoreMismatchError(StoreError):
    """Training with a store written for other encoders or other data: names each difference."""

    def __init__(self, store: str, differences: list[str]):
        self.store, self.differences = store, list(differences)
        lines = "\n".join(f"  - {d}" for d in self.differences)
        super().__init__(f"the feature store {store} does not match this run:\n{lines}\n"
                         f"Fix: re-run `pgpis data cache --config <this experiment> --out {store}` "
                         "(or drop --store to encode online)")


class NotEnumerableError(StoreError):
    """An augmentation whose outputs cannot be listed ahead of training, so a part cannot be precomputed."""

    def __init__(self, part: str, key: str, why: str):
        self.part, self.key = part, key
        super().__init__(f"cannot store part '{part}': {key} {why}. Fix: set {key} to its off value, or leave "
                         f"'{part}' out of --parts (it is then encoded online)")
