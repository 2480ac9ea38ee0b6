"""DeepFashion pairs as a LightningDataModule (either on-disk layout, same samples).

Sample dictionary: see docs/CONVENTIONS.md. Images are resized with PIL
bicubic to ``image_size`` (h, w) with no crop or pad; keypoints travel from the
CFLD 256x176 frame into ``image_size`` pixels; poses are rendered at the size
they are used at (so strokes scale with resolution and match across stages).

Augmentations are train-only and seeded: a joint horizontal flip (images,
keypoints with left/right swap, parsing with left/right class swap), a small
keypoint jitter on the pose that conditions generation, and a probability of
identity pairs (target = source).

Validation holds out whole *training identities* — never the test split.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from typing_extensions import override

from pgpis.data import parsing as prs
from pgpis.data.datamodule import PairDataModule, pair_sample
from pgpis.data.deepfashion.layout import DeepFashionIndex, identity_of, read_deepfashion_index
from pgpis.images import ImageCheck, Size, load_rgb, resize_image, to_tensor
from pgpis.pose import keypoints as kpt

IMAGE_SIZE_PRESETS: dict[str, Size] = {"512x352": (512, 352), "256x176": (256, 176)}


@dataclass(frozen=True)
class Augmentation:
    """Train-time augmentation settings (all off = evaluation)."""

    flip_prob: float = 0.0
    keypoint_jitter: float = 0.0  # std of the jitter in pixels of the 256x176 annotation frame
    identity_pair_prob: float = 0.0

    @property
    def active(self) -> bool:
        return self.flip_prob > 0 or self.keypoint_jitter > 0 or self.identity_pair_prob > 0


class DeepFashionDataset(Dataset):
    """(source, target) pairs of one split, as sample dictionaries."""

    def __init__(
        self,
        index: DeepFashionIndex,
        pairs: Sequence[tuple[str, str]],
        *,
        image_size: Size = (256, 176),
        encoder_inputs: Mapping[str, Size] | None = None,
        parsing: bool = False,
        augmentation: Augmentation = Augmentation(),
        cache_views: bool = False,
    ):
        self.index = index
        self.cache: dict[tuple[str, bool], dict[str, torch.Tensor]] | None = {} if cache_views else None
        self.pairs = list(pairs)
        self.image_size = tuple(image_size)
        self.encoder_inputs = {k: tuple(v) for k, v in (encoder_inputs or {}).items()}
        self.parsing = parsing
        self.augmentation = augmentation

    def __len__(self) -> int:
        return len(self.pairs)

    def _rng(self) -> np.random.Generator:
        # Drawn from torch's RNG, which the training loader seeds per item from (seed, epoch, index)
        # (pgpis.data.datamodule.SeededItems): reproducible, and the same after a mid-epoch resume.
        return np.random.default_rng(int(torch.randint(0, 2**62, ()).item()))

    def _load(self, name: str) -> tuple[Image.Image, np.ndarray, np.ndarray | None]:
        image = load_rgb(self.index.image_path(name), name)
        parsing = prs.read_parsing(self.index.parsing_path(name)) if self.parsing else None
        return image, self.index.keypoints[name].copy(), parsing

    def _views(self, name: str, flipped: bool) -> dict[str, torch.Tensor]:
        """Every tensor one image contributes to a sample; a pure function of (name, flipped).

        With ``cache_views`` the result is memoised, so each image is decoded, resized and its pose
        rendered once per worker instead of once per pair it appears in.
        """
        key = (name, flipped)
        if self.cache is not None and key in self.cache:
            return self.cache[key]
        image, kp, parse = self._load(name)
        if flipped:
            image = image.transpose(Image.FLIP_LEFT_RIGHT)
            kp = kpt.flip_keypoints(kp, kpt.CFLD_FRAME[1], kpt.OPENPOSE_18)
            if parse is not None:
                parse = prs.flip_parsing(parse, prs.LIP)
        size = self.image_size
        kp_px = kpt.rescale_keypoints(kp, kpt.CFLD_FRAME, size)
        views = {"image": to_tensor(resize_image(image, size)),
                 "frame_keypoints": torch.from_numpy(np.asarray(kp, dtype=np.float32)),
                 "keypoints": torch.from_numpy(np.asarray(kp_px, dtype=np.float32)),
                 "pose": to_tensor(kpt.render_pose(kp_px, size, kpt.OPENPOSE_18))}
        if parse is not None:
            views["parsing"] = torch.from_numpy(prs.resize_parsing(parse, size).astype(np.int64))
        for enc, enc_size in self.encoder_inputs.items():
            views[enc] = to_tensor(resize_image(image, enc_size))
            views[f"{enc}_pose"] = self._render(kp, enc_size)
        if self.cache is not None:
            self.cache[key] = views
        return views

    @staticmethod
    def _render(frame_kp: np.ndarray, size: Size) -> torch.Tensor:
        return to_tensor(kpt.render_pose(kpt.rescale_keypoints(frame_kp, kpt.CFLD_FRAME, size), size, kpt.OPENPOSE_18))

    def __getitem__(self, i: int) -> dict:
        src_name, tgt_name = self.pairs[i]
        aug = self.augmentation
        rng = self._rng() if aug.active else None
        if rng is not None and rng.random() < aug.identity_pair_prob:
            tgt_name = src_name
        flipped = bool(rng is not None and rng.random() < aug.flip_prob)
        src, tgt = self._views(src_name, flipped), self._views(tgt_name, flipped)
        if rng is not None and aug.keypoint_jitter > 0:  # the conditioning pose only; never cached
            jittered = kpt.jitter_keypoints(tgt["frame_keypoints"].numpy().copy(), aug.keypoint_jitter, rng)
            kp_px = kpt.rescale_keypoints(jittered, kpt.CFLD_FRAME, self.image_size)
            tgt = dict(tgt, keypoints=torch.from_numpy(np.asarray(kp_px, dtype=np.float32)),
                       pose=to_tensor(kpt.render_pose(kp_px, self.image_size, kpt.OPENPOSE_18)),
                       **{f"{enc}_pose": self._render(jittered, enc_size) for enc, enc_size in self.encoder_inputs.items()})

        return pair_sample(src_name, tgt_name, identity_of(src_name), i, src, tgt, parsing=self.parsing,
                           encoder_inputs=self.encoder_inputs)


class DeepFashionImages(Dataset):
    """The distinct images of a split (a retrieval gallery), one sample per image."""

    def __init__(self, index: DeepFashionIndex, names: Sequence[str], *, image_size: Size = (256, 176),
                 encoder_inputs: Mapping[str, Size] | None = None):
        self.index, self.names = index, list(names)
        self.image_size = tuple(image_size)
        self.encoder_inputs = {k: tuple(v) for k, v in (encoder_inputs or {}).items()}

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int) -> dict:
        name = self.names[i]
        image = load_rgb(self.index.image_path(name), name)
        sample = {"name": name, "identity": identity_of(name), "image_index": i,
                  "image": to_tensor(resize_image(image, self.image_size))}
        for enc, enc_size in self.encoder_inputs.items():
            sample[f"{enc}_image"] = to_tensor(resize_image(image, enc_size))
        return sample


def split_validation_identities(pairs: Sequence[tuple[str, str]], n_identities: int, seed: int) -> tuple[list, list]:
    """Hold out `n_identities` whole training identities (seeded) as the validation split."""
    identities = sorted({identity_of(s) for s, _ in pairs})
    if n_identities <= 0:
        return list(pairs), []
    if n_identities >= len(identities):
        raise ValueError(f"val_identities={n_identities} would leave no training identities (the train split has {len(identities)}); lower it")
    held = set(np.random.default_rng(seed).choice(identities, size=n_identities, replace=False).tolist())
    train = [p for p in pairs if identity_of(p[0]) not in held]
    val = [p for p in pairs if identity_of(p[0]) in held]
    return train, val


class DeepFashionDataModule(PairDataModule):
    """DeepFashion In-shop pairs, CFLD or PCDMs layout (auto-detected), for every pgpis stage.

    Args:
        root: dataset folder (either layout). The embedded default is the synthetic set `make data` writes.
        image_size: (h, w) of images, poses and parsing maps; papers use (512, 352) and (256, 176).
        encoder_inputs: extra encoder views, e.g. ``{"clip": (224, 224), "dino": (512, 512)}`` giving
            ``clip_source``, ``clip_target``, ``clip_target_pose``... resized from the original image.
        parsing: also load LIP parsing maps (``<root>/parsing/<stem>.png``).
        val_identities: training identities held out for validation (never the test split).
        cache_views: memoise each image's decoded, resized views and rendered poses in the dataset
            (per loader worker). Worth it when an epoch is small and revisited (the embedded default: the
            CPU otherwise spends more time decoding and resizing than training); it holds every view of
            every image in RAM, so leave it off for the real 52k-image set at 512x352.
        loader_args: ``batch_size``, ``eval_batch_size``, ``num_workers``, ``persistent_workers``, ``pin_memory``,
            ``max_eval_pairs`` (a seeded subset of the validation / test pairs for quick runs; None = all) and ``seed``: see
            :class:`~pgpis.data.datamodule.PairDataModule`.
    """

    def __init__(
        self,
        root: str = "data/synthetic/deepfashion",
        image_size: tuple[int, int] = (256, 176),
        encoder_inputs: dict[str, tuple[int, int]] | None = None,
        parsing: bool = False,
        val_identities: int = 8,
        flip_prob: float = 0.5,
        keypoint_jitter: float = 0.0,
        identity_pair_prob: float = 0.0,
        check_images: ImageCheck = "header",
        cache_views: bool = False,
        **loader_args: Any,
    ):
        super().__init__(**loader_args)
        self.index: DeepFashionIndex | None = None
        self.splits: dict[str, list[tuple[str, str]]] = {}

    # ------------------------------------------------------------------ set-up
    @override
    def setup(self, stage: str | None = None) -> None:
        if self.index is not None:
            return
        hp = self.hparams
        self.index = read_deepfashion_index(hp.root, parsing=hp.parsing, check_images=hp.check_images)
        train, val = split_validation_identities(self.index.pairs.get("train", []), hp.val_identities, hp.seed)
        test = list(self.index.pairs.get("test", []))
        self.splits = {"train": train, "val": self.eval_subset(val), "test": self.eval_subset(test)}

    def pairs(self, split: str) -> list[tuple[str, str]]:
        """The (source, target) names of "train" | "val" | "test" (after set-up)."""
        self.setup()
        return self.splits[split]

    def dataset(self, split: str) -> DeepFashionDataset:
        self.setup()
        hp = self.hparams
        aug = Augmentation(hp.flip_prob, hp.keypoint_jitter, hp.identity_pair_prob) if split == "train" else Augmentation()
        return DeepFashionDataset(self.index, self.splits[split], image_size=tuple(hp.image_size),
                                  encoder_inputs=hp.encoder_inputs, parsing=hp.parsing, augmentation=aug,
                                  cache_views=hp.cache_views)

    def gallery(self, split: str) -> DeepFashionImages:
        """All distinct images of a split's pairs (sources and targets), for whole-gallery retrieval."""
        self.setup()
        names = sorted({n for pair in self.splits[split] for n in pair})
        return DeepFashionImages(self.index, names, image_size=tuple(self.hparams.image_size),
                                 encoder_inputs=self.hparams.encoder_inputs)

    # ------------------------------------------------------------------ loaders
    def gallery_dataloader(self, split: str) -> DataLoader:
        return self._loader(self.gallery(split), train=False)
