"""RWTH-PHOENIX-Weather 2014T as a LightningDataModule: video triplets for training, first-frame test protocol.

Real layout (docs/data-formats.md)::

    <root>/features/fullFrame-210x260px/{train,dev,test}/<name>/images0001.png ...
    <root>/annotations/manual/PHOENIX-2014-T.{train,dev,test}.corpus.csv   "|" separated
    <root>/keypoints/*.npz | *.pkl ...   HRNet COCO-WholeBody [T, 133, 3] per video (or pass `keypoints=`)

Protocols (FPDM): training samples are (source frame, target pose, target frame)
triplets drawn within one video — the source frame uniformly over all training
frames, the target uniformly within its video (it may equal the source) — from
a seed, ``train_pairs`` of them (paper: 100,000). Validation (``dev``) and test
take each video's first frame as source and every frame (frame 1 included) as
target. Samples carry the DeepFashion keys (docs/CONVENTIONS.md) with
whole-body keypoints ``[133, 2]`` plus ``*_keypoint_scores [133]``; points below
``score_threshold`` and frames without a detection (all zeros) are missing
(-1) and never drawn. ``identity`` is the signer.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from typing_extensions import override

from pgpis.data.datamodule import PairDataModule
from pgpis.images import ImageCheck, load_rgb, resize_image, to_tensor
from pgpis.pose import keypoints as kpt
from pgpis.data.phoenix.layout import (  # re-exported by pgpis.data.phoenix
    CORPUS,
    CORPUS_HEADER,
    FRAME_SIZE,
    FRAMES_DIR,
    KEYPOINTS_DIR,
    REPORT_SIZE,
    SPLITS,
    PhoenixIndex,
    PhoenixVideo,
    Size,
    first_frame_pairs,
    keypoints_with_missing,
    read_phoenix_index,
    train_triplets,
)

__all__ = ["CORPUS", "CORPUS_HEADER", "FRAME_SIZE", "FRAMES_DIR", "KEYPOINTS_DIR", "REPORT_SIZE", "SPLITS",
           "PhoenixIndex", "PhoenixVideo", "PhoenixDataset", "PhoenixDataModule", "first_frame_pairs",
           "keypoints_with_missing", "read_phoenix_index", "train_triplets"]


# --------------------------------------------------------------------------- dataset
class PhoenixDataset(Dataset):
    """(video, source frame, target frame) triplets as DeepFashion-style sample dictionaries."""

    def __init__(
        self,
        videos: Sequence[PhoenixVideo],
        triplets: np.ndarray,
        *,
        image_size: Size = (512, 512),
        encoder_inputs: Mapping[str, Size] | None = None,
        score_threshold: float = 0.3,
        draw_face: bool = False,
        flip_prob: float = 0.0,
    ):
        self.videos = list(videos)
        self.triplets = np.asarray(triplets, dtype=np.int64)
        self.image_size = tuple(image_size)
        self.encoder_inputs = {k: tuple(v) for k, v in (encoder_inputs or {}).items()}
        self.score_threshold = score_threshold
        self.draw_face = draw_face
        self.flip_prob = flip_prob

    def __len__(self) -> int:
        return len(self.triplets)

    def names(self, i: int) -> tuple[str, str]:
        v, s, t = self.triplets[i]
        video = self.videos[v]
        return video.frame_name(s), video.frame_name(t)

    def sequences(self) -> list[range]:
        """Runs of pairs that form a clip in frame order (same video and source, consecutive targets): the test
        protocol's videos, for temporal metrics and clip-wise sampling (:mod:`pgpis.callbacks.video`)."""
        tr, runs, start = self.triplets, [], 0
        for i in range(1, len(tr) + 1):
            if i == len(tr) or not (tr[i, 0] == tr[i - 1, 0] and tr[i, 1] == tr[i - 1, 1] and tr[i, 2] == tr[i - 1, 2] + 1):
                runs.append(range(start, i))
                start = i
        return runs

    def render(self, kp: np.ndarray, size: Size) -> torch.Tensor:
        """Whole-body pose image at ``size`` from ``[133, 3]`` keypoints in the 210x260 frame."""
        xy = kpt.rescale_keypoints(kp[:, :2], FRAME_SIZE, size)
        img = kpt.render_pose(xy, size, kpt.COCO_WHOLEBODY_133, scores=kp[:, 2],
                              score_threshold=self.score_threshold, draw_face=self.draw_face)
        return to_tensor(img)

    def __getitem__(self, i: int) -> dict:
        v, s, t = (int(x) for x in self.triplets[i])
        video = self.videos[v]
        src = load_rgb(video.frames[s], video.frame_name(s))
        tgt = load_rgb(video.frames[t], video.frame_name(t))
        src_kp, tgt_kp = (keypoints_with_missing(video.keypoints[k], self.score_threshold) for k in (s, t))
        if self.flip_prob > 0:
            rng = np.random.default_rng(int(torch.randint(0, 2**62, ()).item()))  # seeded per worker by Lightning
            if rng.random() < self.flip_prob:
                src, tgt = (im.transpose(Image.FLIP_LEFT_RIGHT) for im in (src, tgt))
                src_kp, tgt_kp = (kpt.flip_keypoints(k, FRAME_SIZE[1], kpt.COCO_WHOLEBODY_133) for k in (src_kp, tgt_kp))
        size = self.image_size
        sample: dict = {"source_name": video.frame_name(s), "target_name": video.frame_name(t),
                        "identity": video.speaker, "pair_index": i}
        for role, im, kp in (("source", src, src_kp), ("target", tgt, tgt_kp)):
            sample[role] = to_tensor(resize_image(im, size))
            sample[f"{role}_keypoints"] = torch.from_numpy(kpt.rescale_keypoints(kp[:, :2], FRAME_SIZE, size))
            sample[f"{role}_keypoint_scores"] = torch.from_numpy(np.ascontiguousarray(kp[:, 2]))
            sample[f"{role}_pose"] = self.render(kp, size)
        for enc, enc_size in self.encoder_inputs.items():
            sample[f"{enc}_source"] = to_tensor(resize_image(src, enc_size))
            sample[f"{enc}_target"] = to_tensor(resize_image(tgt, enc_size))
            sample[f"{enc}_target_pose"] = self.render(tgt_kp, enc_size)
        return sample


class PhoenixDataModule(PairDataModule):
    """Phoenix14T (real or synthetic) for every pgpis stage, with the DeepFashion sample keys.

    Args:
        root: the PHOENIX-2014-T folder (or its parent). Embedded default: `pgpis data synth --dataset phoenix`.
        keypoints: keypoint file(s) (.npz or pickle; pickles go through a restricted unpickler). Default:
            ``<root>/keypoints/`` (.npz preferred).
        image_size: (h, w) of images and pose renders; FPDM trains at (512, 512) (frames are 260x210).
        encoder_inputs: extra encoder views, e.g. ``{"dino": (512, 512)}``.
        train_pairs: number of seeded training triplets (paper: 100,000).
        score_threshold: keypoints below it are missing (and not drawn).
        draw_face: also draw the 68 face points.
        flip_prob: train-only horizontal flip (left/right hands swap); 0 by default because sign handedness matters.
        check_images: "none" (list frames only; real Phoenix has ~950k), "header" or "decode".
        loader_args: ``batch_size``, ``eval_batch_size``, ``num_workers``, ``persistent_workers``, ``pin_memory``,
            ``max_eval_pairs`` (a seeded subset of the dev / test pairs for quick runs; None = all) and ``seed``: see
            :class:`~pgpis.data.datamodule.PairDataModule`.
    """

    def __init__(
        self,
        root: str = "data/synthetic/phoenix",
        keypoints: str | list[str] | None = None,
        image_size: tuple[int, int] = (512, 512),
        encoder_inputs: dict[str, tuple[int, int]] | None = None,
        train_pairs: int = 100_000,
        score_threshold: float = 0.3,
        draw_face: bool = False,
        flip_prob: float = 0.0,
        check_images: ImageCheck = "none",
        **loader_args: Any,
    ):
        super().__init__(**loader_args)
        self.index: PhoenixIndex | None = None
        self.triplets: dict[str, np.ndarray] = {}

    @override
    def setup(self, stage: str | None = None) -> None:
        if self.index is not None:
            return
        hp = self.hparams
        self.index = read_phoenix_index(hp.root, keypoints=hp.keypoints, check_images=hp.check_images)
        lengths = {split: [len(v) for v in self.index.videos[split]] for split in SPLITS}
        self.triplets = {"train": train_triplets(lengths["train"], hp.train_pairs, hp.seed),
                         "val": first_frame_pairs(lengths["dev"]), "test": first_frame_pairs(lengths["test"])}
        for split in ("val", "test"):
            self.triplets[split] = self.eval_subset(self.triplets[split])

    def videos(self, split: str) -> list[PhoenixVideo]:
        """Videos behind "train" | "val" | "test" (val = the dev split)."""
        self.setup()
        return self.index.videos["dev" if split == "val" else split]

    def dataset(self, split: str) -> PhoenixDataset:
        self.setup()
        hp = self.hparams
        return PhoenixDataset(self.videos(split), self.triplets[split], image_size=tuple(hp.image_size),
                              encoder_inputs=hp.encoder_inputs, score_threshold=hp.score_threshold,
                              draw_face=hp.draw_face, flip_prob=hp.flip_prob if split == "train" else 0.0)

    def pairs(self, split: str) -> list[tuple[str, str]]:
        """(source, target) frame names of a split, in sample order."""
        ds = self.dataset(split)
        return [ds.names(i) for i in range(len(ds))]
