"""What every pgpis pair DataModule shares: loaders, exactly-once evaluation sharding, exact mid-epoch resume.

Subclasses provide ``dataset(split)`` for "train" | "val" | "test" and the
hyper-parameters ``batch_size``, ``eval_batch_size``, ``num_workers``,
``persistent_workers`` and ``pin_memory``.

The training loader resumes mid-epoch where it stopped (docs/training-faults.md):

* it is a ``torchdata`` ``StatefulDataLoader`` (:class:`TrainLoader`); Lightning's fit loop saves its
  ``state_dict`` (the pass and the samples yielded in it) in every checkpoint and restores it on
  ``--ckpt_path``;
* the order is :class:`SeededShuffleSampler`'s: a permutation of (seed, pass), sharded over ranks,
  so the restored loader skips exactly the samples already seen;
* each draw's augmentation (flips, jitter, identity pairs: the datasets draw them from torch's RNG) runs
  under a seed of (seed, epoch, index) (:class:`SeededItems`), so it is the same after a resume, in
  any worker process, and does not consume the training step's RNG stream.
"""
from __future__ import annotations

import math
import os
from typing import Any, Iterator, NamedTuple, Sequence, TypeVar

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from torchdata.stateful_dataloader import StatefulDataLoader
from typing_extensions import override

from pgpis.training.lightning_compat import loader_samples_yielded


T = TypeVar("T")


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


class SampleKey(NamedTuple):
    """What :class:`SeededShuffleSampler` yields: the dataset index and the seed of this draw's augmentation."""

    index: int
    seed: int


def draw_seed(seed: int, epoch: int, index: int) -> int:
    """A well-mixed 63-bit seed for item `index` in `epoch` of a run seeded with `seed`."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1, np.uint64)[0] >> np.uint64(1))


def _world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size(), torch.distributed.get_rank()
    return 1, 0


class SeededShuffleSampler(DistributedSampler):
    """The training order: ``DistributedSampler``'s shuffle (permutation of seed + epoch, padded, one shard
    per rank; one shard when not distributed), each index tagged with its draw's augmentation seed.

    Deterministic given (seed, epoch), so a restored ``StatefulDataLoader`` skips exactly the samples it
    had yielded. Being a ``DistributedSampler``, Lightning does not replace it under DDP; its epoch is set
    by :class:`TrainLoader` (Lightning's own ``set_epoch`` calls are overridden there).
    """

    def __init__(self, dataset: Dataset, *, seed: int, num_replicas: int | None = None, rank: int | None = None):
        world, my_rank = _world()
        super().__init__(dataset, num_replicas=world if num_replicas is None else num_replicas,
                         rank=my_rank if rank is None else rank, shuffle=True, seed=seed, drop_last=False)

    def __iter__(self) -> Iterator[SampleKey]:  # type: ignore[override]
        # eager, not a generator: the epoch is the one set when iter() is called (TrainLoader sets it then),
        # not whatever a later set_epoch (Lightning's, before the first next()) leaves
        epoch, indices = self.epoch, super().__iter__()
        return iter([SampleKey(i, draw_seed(self.seed, epoch, i)) for i in indices])


class SeededItems(Dataset):
    """``dataset[key.index]`` under torch's RNG seeded with ``key.seed``; the caller's RNG state is restored after.

    The pgpis datasets draw their augmentations from torch's RNG; under this wrapper each draw is a pure
    function of (seed, epoch, index) instead of the order and process the items were fetched in.
    """

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: SampleKey) -> Any:
        with torch.random.fork_rng(devices=[]):  # CPU state saved and restored; CUDA generators untouched
            torch.default_generator.manual_seed(key.seed)
            return self.dataset[key.index]


class TrainLoader(StatefulDataLoader):
    """The training ``StatefulDataLoader``, numbering its own passes so the order survives any resume.

    Lightning (2.6) mis-counts epochs when it resumes from a checkpoint taken at an epoch's last batch
    (e.g. ``every_n_train_steps`` landing there): it counts the epoch as done in ``FitLoop.reset``, then
    the restored, exhausted iterator ends one more "epoch" at once, so the run skips an epoch's data
    (and, with ``max_epochs``, an epoch of training); dropping the exhausted state instead makes it set
    the *old* epoch on the sampler. So the pass number (the shuffle's epoch) is this loader's own: it
    advances at every fresh ``iter()``, is saved in the loader's ``state_dict``, and a restored pass that
    was complete starts the next one. Needs the loader built once per fit (no
    ``reload_dataloaders_every_n_epochs``).
    """

    _PASS = "pgpis_pass"

    def __init__(self, dataset: Dataset, *args: Any, **kwargs: Any):
        super().__init__(dataset, *args, **kwargs)
        self._pass = -1  # the pass in progress; the first iter() starts pass 0
        self._resuming = False

    def __iter__(self):
        if self._resuming:
            self._resuming = False
        else:
            self._pass += 1
        if isinstance(self.sampler, DistributedSampler):
            self.sampler.set_epoch(self._pass)  # over whatever Lightning set: see the class docstring
        return super().__iter__()

    @override
    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), self._PASS: self._pass}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = dict(state_dict)
        saved_pass = state.pop(self._PASS, None)
        if saved_pass is None:  # a plain StatefulDataLoader's state
            super().load_state_dict(state)
            return
        self._pass = int(saved_pass)
        if loader_samples_yielded(state) >= len(self):
            return  # that pass was complete: the next iter() starts pass + 1 afresh
        self._resuming = True
        super().load_state_dict(state)


def pair_sample(source_name: str, target_name: str, identity: str, index: int, source: dict, target: dict, *,
                parsing: bool, encoder_inputs) -> dict:
    """One pair's batch dict from the two images' views (``image``, ``keypoints``, ``pose``, ``parsing``, and
    per frozen encoder ``<enc>`` / ``<enc>_pose``): the keys every pair dataset gives, so a model trained on
    one dataset runs on another (DeepFashion, WPose)."""
    sample: dict = {"source_name": source_name, "target_name": target_name, "identity": identity, "pair_index": index}
    for role, views in (("source", source), ("target", target)):
        sample[role] = views["image"]
        sample[f"{role}_keypoints"] = views["keypoints"]
        sample[f"{role}_pose"] = views["pose"]
        if parsing:
            sample[f"{role}_parsing"] = views["parsing"]
    for enc in encoder_inputs:
        sample[f"{enc}_source"] = source[enc]
        sample[f"{enc}_target"] = target[enc]
        sample[f"{enc}_target_pose"] = target[f"{enc}_pose"]
    return sample


class PairDataModule(LightningDataModule):
    """Base of the DeepFashion and Phoenix DataModules: the loaders, built the same way for both.

    The training order's seed is Lightning's global seed (``seed_everything``, ``PL_GLOBAL_SEED``; 0 if
    unset), kept in the DataModule's checkpoint state so a resumed run continues the same order.
    """

    shuffle_seed: int | None = None

    def __init__(self, *, batch_size: int = 8, eval_batch_size: int | None = None, num_workers: int = 2,
                 persistent_workers: bool = True, pin_memory: bool = False, max_eval_pairs: int | None = None,
                 seed: int = 0):
        """The arguments every pair DataModule takes (a subclass forwards them with ``**loader_args``).

        Args:
            batch_size: training pairs per batch; eval_batch_size: validation / test batch (None: batch_size).
            num_workers, persistent_workers, pin_memory: the ``DataLoader``'s.
            max_eval_pairs: cap validation / test pairs with a seeded subset for quick runs (:meth:`eval_subset`);
                None = all.
            seed: the seed of that subset (and of the dataset's own seeded draws).
        """
        super().__init__()
        self.save_hyperparameters()  # also records the calling subclass's own arguments

    def dataset(self, split: str) -> Dataset:  # overridden by every subclass
        raise KeyError(f"{type(self).__name__} defines no dataset for split '{split}'")

    def eval_subset(self, items: Sequence[T]) -> Sequence[T]:
        """The evaluation `items` capped at ``max_eval_pairs`` by a subset seeded with ``seed`` (kept in their
        order), so quick runs score the same pairs every time; all of them when the cap is None or not reached."""
        n = self.hparams.max_eval_pairs
        if n is None or len(items) <= n:
            return items
        keep = np.sort(np.random.default_rng(self.hparams.seed).choice(len(items), size=n, replace=False))
        return items[keep] if isinstance(items, np.ndarray) else [items[i] for i in keep]

    def _loader(self, dataset: Dataset, *, train: bool) -> DataLoader:
        hp = self.hparams
        if train:
            if self.shuffle_seed is None:
                self.shuffle_seed = int(os.environ.get("PL_GLOBAL_SEED", 0))
            return TrainLoader(
                SeededItems(dataset),
                batch_size=hp.batch_size,
                sampler=SeededShuffleSampler(dataset, seed=self.shuffle_seed),
                drop_last=len(dataset) >= hp.batch_size,
                **self._worker_kwargs(),
            )
        sampler = None
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            sampler = UnpaddedDistributedSampler(dataset)
        return DataLoader(dataset, batch_size=hp.eval_batch_size or hp.batch_size, shuffle=False, sampler=sampler,
                          drop_last=False, **self._worker_kwargs())

    def _worker_kwargs(self) -> dict[str, Any]:
        hp = self.hparams
        return {"num_workers": hp.num_workers, "persistent_workers": hp.persistent_workers and hp.num_workers > 0,
                "pin_memory": hp.pin_memory}

    @override
    def state_dict(self) -> dict[str, Any]:
        """Saved in every checkpoint: the training order's seed (the loader's position is Lightning's)."""
        return {"shuffle_seed": self.shuffle_seed} if self.shuffle_seed is not None else {}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict.get("shuffle_seed") is not None:
            self.shuffle_seed = int(state_dict["shuffle_seed"])

    @override
    def train_dataloader(self) -> TrainLoader:
        return self._loader(self.dataset("train"), train=True)

    @override
    def val_dataloader(self) -> DataLoader:
        return self._loader(self.dataset("val"), train=False)

    @override
    def test_dataloader(self) -> DataLoader:
        return self._loader(self.dataset("test"), train=False)

    @override
    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.dataset("test"), train=False)

    @property
    def steps_per_epoch(self) -> int:
        return max(1, math.floor(len(self.dataset("train")) / self.hparams.batch_size))
