"""WPose pairs as a test-only LightningDataModule, with the DeepFashion batch dictionary.

So a DeepFashion-trained model runs on WPose unchanged (``pgpis test --config <model>.yaml --config
experiments/wpose/test.yaml``): the samples have the keys of docs/CONVENTIONS.md (``source``, ``target``,
``*_pose``, ``*_keypoints``, ``*_parsing`` in LIP classes, ``<enc>_*`` views, names, ``pair_index``). What
differs from DeepFashion, and why:

* images are brought to ``image_size`` by resize-to-fit and pad (:mod:`pgpis.data.wpose.fit`; WPose crops
  have any aspect ratio), not by a plain resize; keypoints and parsing maps go through the same fit;
* keypoints are the prepared ``keypoints/<stem>.json`` (WPose ships none: ``pgpis data prepare``), points
  scored below 0.3 count as missing;
* parsing maps are CIHP labels mapped to LIP by :data:`pgpis.data.wpose.parsing.CIHP_TO_LIP`;
* there is only a test split: ``train`` / ``val`` raise an error that says so.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset
from typing_extensions import override

from pgpis.data.datamodule import PairDataModule, pair_sample
from pgpis.images import ImageCheck, load_rgb, to_tensor
from pgpis.data.wpose.fit import PAD_RGB, Fit, fit_image, fit_labels
from pgpis.data.wpose.layout import WPoseIndex, read_wpose_index, stem
from pgpis.data.wpose.parsing import read_cihp_as_lip
from pgpis.errors import DataFormatError, Problem
from pgpis.pose import keypoints as kpt

Size = tuple[int, int]


class WPoseDataset(Dataset):
    """The (source, target) pairs of WPose's test split as sample dictionaries."""

    def __init__(self, index: WPoseIndex, pairs: Sequence[tuple[str, str]], *, image_size: Size = (256, 176),
                 encoder_inputs: Mapping[str, Size] | None = None, parsing: bool = True,
                 pad_rgb: tuple[int, int, int] = PAD_RGB):
        self.index, self.pairs = index, list(pairs)
        self.image_size = tuple(int(v) for v in image_size)
        self.encoder_inputs = {k: tuple(v) for k, v in (encoder_inputs or {}).items()}
        self.parsing, self.pad_rgb = parsing, tuple(pad_rgb)

    def __len__(self) -> int:
        return len(self.pairs)

    def _fitted(self, image, points: np.ndarray, size: Size) -> tuple[torch.Tensor, np.ndarray, torch.Tensor]:
        fitted, fit = fit_image(image, size, self.pad_rgb)
        kp = fit.keypoints(points)
        return to_tensor(fitted), kp, to_tensor(kpt.render_pose(kp, size, kpt.OPENPOSE_18))

    def _views(self, name: str) -> dict[str, torch.Tensor]:
        image = load_rgb(self.index.image_path(name), name)
        points = self.index.keypoints[name].points()
        img, kp, pose = self._fitted(image, points, self.image_size)
        views = {"image": img, "keypoints": torch.from_numpy(kp.astype(np.float32)), "pose": pose}
        if self.parsing:
            labels = read_cihp_as_lip(self.index.parsing_path(name))
            views["parsing"] = torch.from_numpy(fit_labels(labels, self.image_size).astype(np.int64))
        for enc, size in self.encoder_inputs.items():
            views[enc], _, views[f"{enc}_pose"] = self._fitted(image, points, size)
        return views

    def __getitem__(self, i: int) -> dict:
        src_name, tgt_name = self.pairs[i]
        src, tgt = self._views(src_name), self._views(tgt_name)
        return pair_sample(src_name, tgt_name, stem(src_name), i, src, tgt, parsing=self.parsing,
                           encoder_inputs=self.encoder_inputs)


class WPoseDataModule(PairDataModule):
    """WPose's 2,304 test pairs (or a synthetic copy) for ``pgpis test``; there is no training split.

    Args:
        root: the WPose folder (docs/wpose.md), with ``keypoints/`` from ``pgpis data prepare``.
        image_size: (h, w) the images are fitted into (resize-to-fit and pad with ``pad_rgb``).
        encoder_inputs: extra fitted views for frozen encoders, e.g. ``{"clip": (224, 224)}``.
        parsing: load the parsing maps (CIHP, returned as LIP classes).
        check_images: how hard set-up checks the images ("header" reads sizes, needed for the parsing check).
        loader_args: ``batch_size``, ``eval_batch_size``, ``num_workers``, ``persistent_workers``, ``pin_memory``,
            ``max_eval_pairs`` (a seeded subset of the test pairs for quick runs; None = all) and ``seed``: see
            :class:`~pgpis.data.datamodule.PairDataModule`.
    """

    def __init__(
        self,
        root: str = "data/wpose",
        image_size: tuple[int, int] = (512, 352),
        encoder_inputs: dict[str, tuple[int, int]] | None = None,
        parsing: bool = True,
        check_images: ImageCheck = "header",
        pad_rgb: tuple[int, int, int] = PAD_RGB,
        **loader_args: Any,
    ):
        super().__init__(**loader_args)
        self.index: WPoseIndex | None = None
        self.test_pairs: list[tuple[str, str]] = []

    @override
    def setup(self, stage: str | None = None) -> None:
        if self.index is not None:
            return
        hp = self.hparams
        self.index = read_wpose_index(hp.root, check_images=hp.check_images, parsing=hp.parsing, keypoints=True)
        self.test_pairs = self.eval_subset(list(self.index.pairs))

    def pairs(self, split: str = "test") -> list[tuple[str, str]]:
        self.setup()
        self._only_test(split)
        return self.test_pairs

    def _only_test(self, split: str) -> None:
        if split != "test":
            raise DataFormatError(Problem(str(self.hparams.root), f"WPose is a test-only set: it has no '{split}' split",
                                          "train on DeepFashion (experiments/deepfashion/*.yaml) and run `pgpis test` "
                                          "with --config experiments/wpose/test.yaml"))

    def dataset(self, split: str) -> WPoseDataset:
        self.setup()
        self._only_test(split)
        hp = self.hparams
        return WPoseDataset(self.index, self.test_pairs, image_size=tuple(hp.image_size), encoder_inputs=hp.encoder_inputs,
                            parsing=hp.parsing, pad_rgb=tuple(hp.pad_rgb))

    @property
    def steps_per_epoch(self) -> int:
        self._only_test("train")
        return 0


__all__ = ["Fit", "WPoseDataModule", "WPoseDataset"]
