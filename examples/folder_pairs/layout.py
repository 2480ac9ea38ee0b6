"""Reading a pairs folder with every problem named (file, line, what, fix), as `pgpis data check` prints them."""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from pgpis.errors import DataFormatError, Problem
from pgpis.pose.keypoints import read_pcdms_keypoints, pcdms_to_cfld_frame

IMAGES, KEYPOINTS, PAIRS = "images", "keypoints", "pairs.csv"
SUFFIXES = (".png", ".jpg", ".jpeg")
HEADER = ["source", "target"]


@dataclass
class FolderIndex:
    """What a checked folder holds: image paths by file name, keypoints (``[18, 2]`` in the 256x176 frame
    `pgpis pose extract` writes them in after removing the PCDMs pad) and the pairs in file order."""

    root: Path
    image_paths: dict[str, Path]
    keypoints: dict[str, np.ndarray]
    pairs: list[tuple[str, str]]

    def image_path(self, name: str) -> Path:
        return self.image_paths[name]


def _read_pairs(path: Path, names: set[str], problems: list[Problem]) -> list[tuple[str, str]]:
    if not path.is_file():
        problems.append(Problem(str(path), "missing", f"write {PAIRS} with a header 'source,target' and one pair of "
                                                      f"image file names from {IMAGES}/ per line"))
        return []
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    if not rows or [c.strip() for c in rows[0]] != HEADER:
        problems.append(Problem(str(path), f"header is {rows[0] if rows else 'missing'}, expected 'source,target'",
                                "make the first line exactly 'source,target'", line=1))
        return []
    pairs = []
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != 2:
            problems.append(Problem(str(path), f"expected 2 columns, found {len(row)}", "one 'source,target' per line",
                                    line=line))
            continue
        pair = (row[0].strip(), row[1].strip())
        unknown = [n for n in pair if n not in names]
        for n in unknown:
            problems.append(Problem(str(path), f"image '{n}' is not in {IMAGES}/", "fix the name or add the image",
                                    line=line, item=n))
        if not unknown:
            pairs.append(pair)
    if not pairs and not problems:
        problems.append(Problem(str(path), "holds no pairs", "add one 'source,target' line per pair", line=2))
    return pairs


def read_folder(root: str | Path, *, decode: bool = True) -> FolderIndex:
    """Read and validate `root`; raises :class:`DataFormatError` listing every problem at once."""
    root = Path(root)
    problems: list[Problem] = []
    folder = root / IMAGES
    images = {p.name: p for p in sorted(folder.iterdir()) if p.suffix.lower() in SUFFIXES} if folder.is_dir() else {}
    if not images:
        problems.append(Problem(str(folder), "no .png / .jpg images", f"put the photos in {folder}"))
    keypoints: dict[str, np.ndarray] = {}
    for name, path in images.items():
        kp_file = root / KEYPOINTS / f"{path.stem}.txt"
        if not kp_file.is_file():
            problems.append(Problem(str(kp_file), "missing", f"run `pgpis pose extract {folder} --out {root / KEYPOINTS} "
                                                             "--format pcdms`", item=name))
            continue
        try:
            keypoints[name] = pcdms_to_cfld_frame(read_pcdms_keypoints(kp_file))
        except DataFormatError as err:
            problems.extend(err.problems)
        if decode:
            try:
                with Image.open(path) as im:
                    im.convert("RGB")
            except OSError as err:
                problems.append(Problem(str(path), f"cannot be decoded ({err})", "replace or remove the file"))
    pairs = _read_pairs(root / PAIRS, set(images), problems)
    if problems:
        raise DataFormatError(problems)
    return FolderIndex(root, images, keypoints, pairs)
