"""What every pgpis pair DataModule shares: loaders, exactly-once evaluation sharding.

Subclasses provide ``dataset(split)`` for "train" | "val" | "test" and the
hyper-parameters ``batch_size``, ``eval_batch_size``, ``num_workers``,
``persistent_workers`` and ``pin_memory``.
"""
from __future__ import annotations

import math
from typing import Iterator

import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset, DistributedSampler


class UnpaddedDistributedSampler(DistributedSampler):
    """Shards indices over ranks *without* padding, so every evaluation item is seen exactly once.

    (The stock sampler pads with duplicates to equalise shards, which biases test
    metrics.) Subclassing DistributedSampler stops Lightning from wrapping it again.
    """

    def __init__(self, dataset: Dataset, num_replicas: int | None = None, rank: int | None = None):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False, drop_last=False)

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, len(self.dataset), self.num_replicas))

    def __len__(self) -> int:
        return len(range(self.rank, len(self.dataset), self.num_replicas))


class PairDataModule(LightningDataModule):
    """Base of the DeepFashion and Phoenix DataModules: the loaders, built the same way for both."""

    def dataset(self, split: str) -> Dataset:  # overridden by every subclass
        raise KeyError(f"{type(self).__name__} defines no dataset for split '{split}'")

    def _loader(self, dataset: Dataset, *, train: bool) -> DataLoader:
        hp = self.hparams
        sampler = None
        if not train and torch.distributed.is_available() and torch.distributed.is_initialized():
            sampler = UnpaddedDistributedSampler(dataset)
        return DataLoader(
            dataset,
            batch_size=hp.batch_size if train else (hp.eval_batch_size or hp.batch_size),
            shuffle=train,
            sampler=sampler,
            drop_last=train and len(dataset) >= hp.batch_size,
            num_workers=hp.num_workers,
            persistent_workers=hp.persistent_workers and hp.num_workers > 0,
            pin_memory=hp.pin_memory,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.dataset("train"), train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.dataset("val"), train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.dataset("test"), train=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.dataset("test"), train=False)

    @property
    def steps_per_epoch(self) -> int:
        return max(1, math.floor(len(self.dataset("train")) / self.hparams.batch_size))
