"""The test sources and test poses the app offers, read from a DeepFashion copy (either layout).

The demo checkpoint was trained on the synthetic set `make demo` writes, whose
root travels in the checkpoint's DataModule settings; a picked test source
brings everything a pipeline may need besides the photo (its parsing map and
keypoints), so the user does not have to upload those.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np

from pgpis.data.deepfashion.layout import DeepFashionIndex, read_deepfashion_index

#: the split the app picks from: images the model never trained on
SPLIT = "test"


@dataclass(frozen=True)
class Catalog:
    """Test-split source images (with parsing and keypoints) and target poses, by canonical image name."""

    root: Path
    index: DeepFashionIndex
    sources: list[str]  # names used as a source by some test pair
    poses: list[str]  # names used as a target by some test pair
    first_pair: Optional[tuple[str, str]] = None  # the split's first (source, target): the page's defaults

    def image_path(self, name: str) -> Path:
        return self.index.image_path(self._known(name))

    def parsing_path(self, name: str) -> Path:
        return self.index.parsing_path(self._known(name))

    def keypoints(self, name: str) -> np.ndarray:
        """OpenPose-18 (x, y) keypoints in the CFLD 256x176 frame (what `load_target_pose` takes as an array)."""
        return self.index.keypoints[self._known(name)]

    def _known(self, name: str) -> str:
        if name not in self.index.image_paths:
            raise KeyError(f"'{name}' is not an image of the dataset at {self.root}; pick one from the list")
        return name


def _spread(names: list[str], limit: int) -> list[str]:
    """At most `limit` names, evenly spaced (sorted names cluster by category, so the head alone is one kind)."""
    if limit <= 0 or len(names) <= limit:
        return names
    picks = np.linspace(0, len(names) - 1, limit).round().astype(int)
    return [names[i] for i in sorted(set(picks.tolist()))]


def load_catalog(root: Union[str, os.PathLike], *, parsing: bool, limit: int = 200) -> Catalog:
    """The test split of the DeepFashion copy at `root`; `parsing` checks that every source has its parsing map.

    Raises :class:`pgpis.errors.DataFormatError` naming the file and the fix when the copy is malformed.
    """
    root = Path(root)
    index = read_deepfashion_index(root, splits=(SPLIT,), parsing=parsing, check_images="none")
    pairs = index.pairs.get(SPLIT, [])
    sources = _spread(sorted({s for s, _ in pairs}), limit)
    poses = _spread(sorted({t for _, t in pairs}), limit)
    first = next(((s, t) for s, t in pairs if s in sources and t in poses), None)
    return Catalog(root=root, index=index, sources=sources, poses=poses, first_pair=first)


def resolve_root(root: Union[str, os.PathLike, None], checkpoint: Union[str, os.PathLike]) -> Optional[Path]:
    """A dataset root that exists: as given, else relative to one of the checkpoint's parents (where `pgpis fit` ran)."""
    if root is None:
        return None
    path = Path(root)
    if path.is_dir() or path.is_absolute():
        return path if path.is_dir() else None
    for parent in Path(checkpoint).resolve().parents:
        if (parent / path).is_dir():
            return parent / path
    return None


def checkpoint_data_root(checkpoint: Union[str, os.PathLike], *, trust: bool = False) -> Optional[str]:
    """The DataModule's ``root`` stored in a `pgpis fit` checkpoint (None for export folders or when absent).

    Read as `load_pipeline` reads it (weights-only unless `trust`, :func:`pgpis.safe_load.load_checkpoint`),
    memory-mapped and unverified (the pipeline has just verified it), so only the small settings dictionary
    is materialised.
    """
    path = Path(checkpoint)
    if not path.is_file():
        return None
    from pgpis.safe_load import load_checkpoint

    ckpt = load_checkpoint(path, trust=trust, mmap=True, verify=False)
    data = (ckpt.get("datamodule_hyper_parameters") or {}) if isinstance(ckpt, dict) else {}
    root = data.get("root")
    return None if root is None else str(root)


__all__ = ["Catalog", "load_catalog", "resolve_root", "checkpoint_data_root", "SPLIT"]
