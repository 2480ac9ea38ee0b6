"""The folder's pairs as the batch dict every pgpis method trains on (docs/CONVENTIONS.md), on pgpis's PairDataModule."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
from torch.utils.data import Dataset

from pgpis.data.datamodule import PairDataModule, pair_sample
from pgpis.images import load_rgb, resize_image, to_tensor
from pgpis.pose.keypoints import CFLD_FRAME, OPENPOSE_18, render_pose, rescale_keypoints

from folder_pairs.layout import FolderIndex, read_folder

Size = tuple[int, int]


class FolderPairsDataset(Dataset):
    """(source, target) pairs of the folder; no augmentation (a user's handful of photos)."""

    def __init__(self, index: FolderIndex, pairs: list[tuple[str, str]], image_size: Size,
                 encoder_inputs: Mapping[str, Size]):
        self.index, self.pairs, self.image_size = index, pairs, tuple(image_size)
        self.encoder_inputs = {k: tuple(v) for k, v in encoder_inputs.items()}

    def __len__(self) -> int:
        return len(self.pairs)

    def _pose(self, kp: np.ndarray, size: Size) -> tuple[np.ndarray, torch.Tensor]:
        px = rescale_keypoints(kp, CFLD_FRAME, size)
        return px, to_tensor(render_pose(px, size, OPENPOSE_18))

    def _views(self, name: str) -> dict:
        image = load_rgb(self.index.image_path(name), name)
        px, pose = self._pose(self.index.keypoints[name], self.image_size)
        views = {"image": to_tensor(resize_image(image, self.image_size)),
                 "keypoints": torch.from_numpy(np.asarray(px, np.float32)), "pose": pose}
        for enc, size in self.encoder_inputs.items():
            views[enc] = to_tensor(resize_image(image, size))
            views[f"{enc}_pose"] = self._pose(self.index.keypoints[name], size)[1]
        return views

    def __getitem__(self, i: int) -> dict:
        src, tgt = self.pairs[i]
        return pair_sample(src, tgt, src.rsplit(".", 1)[0], i, self._views(src), self._views(tgt), parsing=False,
                           encoder_inputs=self.encoder_inputs)


class FolderPairsDataModule(PairDataModule):
    """Every pair trains; a seeded subset of ``max_eval_pairs`` of them also validates and tests (a user's folder
    has no splits).

    Args:
        root: the folder (images/, keypoints/, pairs.csv).
        image_size: (h, w) of the model's images; encoder_inputs: extra views per frozen encoder (name -> (h, w)).
        loader_args: batch_size, eval_batch_size, num_workers, persistent_workers, pin_memory, max_eval_pairs,
            seed (pgpis.data.datamodule.PairDataModule's).
    """

    def __init__(self, root: str, image_size: Size = (256, 176), encoder_inputs: dict[str, Size] | None = None,
                 **loader_args: Any):
        super().__init__(**loader_args)
        self.index: FolderIndex | None = None

    def dataset(self, split: str) -> FolderPairsDataset:
        hp = self.hparams
        if self.index is None:
            self.index = read_folder(hp.root, decode=False)
        pairs = self.index.pairs if split == "train" else self.eval_subset(self.index.pairs)
        return FolderPairsDataset(self.index, pairs, hp.image_size, hp.encoder_inputs or {})
