"""Training from a store: the DataModule serves the stored tensors beside the online inputs.

:class:`StoreDataModule` wraps the experiment's own DataModule (every loader, setting and state is its);
only the training dataset changes: each sample (same order, same flips and jitter: the wrapped dataset draws
them exactly as online) gains ``stored/<part>`` tensors looked up by (image, flip) or (source, target, flip),
which the denoisers read instead of running their frozen networks. Validation, test and sampling stay online.

The flip of a sample is taken from the dataset's own view calls (``_views(name, flipped)``, recorded around
``__getitem__``), never re-derived, so a stored tensor always belongs to the view the sample shows.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Collection, Optional

from lightning.pytorch import LightningDataModule
from torch.utils.data import Dataset
from typing_extensions import override

from pgpis.store.errors import StoreError, StoreMismatchError
from pgpis.store.parts import image_key, pair_key, replaced_encoder_views, served_keys
from pgpis.store.reader import StoreReader
from pgpis.store.verify import verify_data, verify_model


class _ViewRecorder:
    """Wraps a dataset's ``_views`` and remembers the (name, flipped) of each call (picklable for workers)."""

    def __init__(self, views: Any):
        self.views, self.calls = views, []

    def __call__(self, name: str, flipped: bool) -> Any:
        self.calls.append((name, bool(flipped)))
        return self.views(name, flipped)


class StoreDataset(Dataset):
    """The training pairs with their stored tensors (see the module docstring)."""

    def __init__(self, dataset: Any, reader: StoreReader, skip_views: Collection[str] = ()):
        if not callable(getattr(dataset, "_views", None)):
            raise StoreError(f"{type(dataset).__name__} does not expose its per-image views; training from a store "
                             "supports the DeepFashion pair datasets (pgpis.data.deepfashion)")
        if skip_views:  # encoder views only the stored networks read: not decoded, resized or rendered
            dataset = copy.copy(dataset)
            dataset.encoder_inputs = {k: v for k, v in dataset.encoder_inputs.items() if k not in skip_views}
            if getattr(dataset, "cache", None) is not None:
                dataset.cache = {}
        self.skip_views = tuple(sorted(skip_views))
        self.dataset, self.reader = dataset, reader
        self.recorder = _ViewRecorder(dataset._views)
        dataset._views = self.recorder  # instance attribute over the method: the dataset calls it as before

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict:
        self.recorder.calls = []
        sample = self.dataset[i]
        calls = self.recorder.calls
        if len(calls) != 2 or calls[0][0] != sample["source_name"] or calls[1][0] != sample["target_name"]:
            raise StoreError(f"pair {i}: the dataset's view calls {calls} do not match its sample "
                             f"({sample['source_name']}, {sample['target_name']}); pgpis.store cannot key it")
        (src, flip), (tgt, _) = calls
        for part in self.reader.parts:
            for role, served in served_keys(part, self.reader.manifest.parts[part].unit).items():
                key = (pair_key(src, tgt, flip) if role == "pair"
                       else image_key(src if role == "source" else tgt, flip))
                sample[f"stored/{served}"] = self.reader.get(part, key)
        return sample


class StoreDataModule(LightningDataModule):
    """`data` with its training samples carrying the tensors of the store at `store` (module docstring).

    ``setup`` refuses a store that does not match the data or, once a Trainer is attached, the model
    (:mod:`pgpis.store.verify`), naming each difference.
    """

    def __init__(self, data: LightningDataModule, store: str | Path):
        super().__init__()
        self.data, self.store = data, str(store)
        self.reader = StoreReader(store)
        self._checked = False
        self._model: Any = None  # the model checked by verify(): which encoder views it still reads

    @property
    @override
    def hparams(self) -> Any:  # the wrapped DataModule's settings (logged, saved, read by callbacks)
        return self.data.hparams

    def __getattr__(self, name: str) -> Any:
        if name in ("data", "reader", "store") or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.data, name)

    @override
    def prepare_data(self) -> None:
        self.data.prepare_data()

    @override
    def setup(self, stage: Optional[str] = None) -> None:
        self.data.trainer = self.trainer
        self.data.setup(stage)
        if not self._checked:
            self.verify()

    def verify(self, model: Any = None) -> None:
        """Raise :class:`StoreMismatchError` listing what differs between the store and this run."""
        trainer = getattr(self, "trainer", None)
        model = model if model is not None else (trainer.lightning_module if trainer is not None else None)
        diffs = verify_data(self.reader.manifest, self.data, self.data.dataset("train"),
                            {p: self.reader.keys(p) for p in self.reader.parts})
        if model is not None:
            diffs = verify_model(self.reader.manifest, model) + diffs
            self._checked, self._model = True, model
        if diffs:
            raise StoreMismatchError(self.store, diffs)

    @override
    def train_dataloader(self) -> Any:
        self.data.setup("fit")
        dataset = self.data.dataset("train")
        trainer = getattr(self, "trainer", None)
        model = trainer.lightning_module if trainer is not None else self._model
        skip = (replaced_encoder_views(model.denoiser, self.reader.parts, getattr(dataset, "encoder_inputs", {}))
                if model is not None and hasattr(model, "denoiser") else set())
        return self.data._loader(StoreDataset(dataset, self.reader, skip), train=True)

    @override
    def val_dataloader(self) -> Any:
        return self.data.val_dataloader()

    @override
    def test_dataloader(self) -> Any:
        return self.data.test_dataloader()

    @override
    def predict_dataloader(self) -> Any:
        return self.data.predict_dataloader()

    @override
    def state_dict(self) -> dict[str, Any]:
        return self.data.state_dict()

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.data.load_state_dict(state_dict)

    @override
    def teardown(self, stage: Optional[str] = None) -> None:
        self.data.teardown(stage)
