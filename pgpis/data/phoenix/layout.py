"""Phoenix14T on disk: corpus CSVs, frame folders, keypoint files -> one validated index; the protocols.

Real layout (docs/data-formats.md)::

    <root>/features/fullFrame-210x260px/{train,dev,test}/<name>/images0001.png ...
    <root>/annotations/manual/PHOENIX-2014-T.{train,dev,test}.corpus.csv   "|" separated
    <root>/keypoints/*.npz | *.pkl ...   HRNet COCO-WholeBody [T, 133, 3] per video (or pass `keypoints=`)

(The corpus ``video`` column says ``<name>/1/*.png`` but frames sit directly in
``<name>/``.) Reading never stops at the first problem: every problem is
collected and raised together as one DataFormatError. This module needs no
torch/Lightning, so `pgpis data check|synth --dataset phoenix` start fast.
"""
from __future__ import annotations

import csv
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from pgpis.images import ImageCheck, upright_size
from pgpis.data.phoenix.keypoints import FRAME_SIZE as KEYPOINT_FRAME
from pgpis.data.phoenix.keypoints import PICKLE_SUFFIXES, UnsafePickleError, read_keypoint_files
from pgpis.errors import DataFormatError, Problem
from pgpis.pose import keypoints as kpt

Size = tuple[int, int]  # (height, width)

FRAME_SIZE: Size = KEYPOINT_FRAME  # (260, 210): Phoenix frames are 210 wide x 260 high, the keypoints' frame too
REPORT_SIZE: Size = FRAME_SIZE  # FPDM evaluates at 260x210
SPLITS = ("train", "dev", "test")
FRAMES_DIR = "features/fullFrame-210x260px"
CORPUS = "annotations/manual/PHOENIX-2014-T.{split}.corpus.csv"
CORPUS_HEADER = ("name", "video", "start", "end", "speaker", "orth", "translation")
KEYPOINTS_DIR = "keypoints"
from pgpis.data.synthetic_out import SYNTHETIC_MARKER  # noqa: E402  (re-exported: the one marker)
_FRAME_RE = re.compile(r"^images(\d+)\.png$")


@dataclass
class PhoenixVideo:
    """One video: its frames (sorted) and keypoints ``float32 [T, 133, 3]`` in the 210x260 frame."""

    split: str
    name: str
    speaker: str
    frames: tuple[Path, ...]
    keypoints: np.ndarray

    def __len__(self) -> int:
        return len(self.frames)

    def frame_name(self, t: int) -> str:
        """Flat, unique name of frame ``t`` (0-based): ``<video>_images0001.png``."""
        return f"{self.name}_{self.frames[t].name}"


@dataclass
class PhoenixIndex:
    root: Path
    videos: dict[str, list[PhoenixVideo]] = field(default_factory=dict)  # split -> videos in corpus order
    keypoint_files: list[Path] = field(default_factory=list)

    @property
    def is_synthetic(self) -> bool:
        return (self.root / SYNTHETIC_MARKER).exists()


def resolve_root(root: str | os.PathLike) -> Path:
    """Accept the ``PHOENIX-2014-T`` folder itself or its parent."""
    root = Path(root)
    if not (root / FRAMES_DIR).exists() and (root / "PHOENIX-2014-T" / FRAMES_DIR).exists():
        return root / "PHOENIX-2014-T"
    return root


def find_keypoint_files(root: Path, keypoints: str | os.PathLike | Sequence[str | os.PathLike] | None) -> list[Path]:
    """Explicit file(s) (relative ones tried against ``root`` too), else ``<root>/keypoints/``: .npz first, then pickles."""
    if keypoints is not None:
        given = [keypoints] if isinstance(keypoints, (str, os.PathLike)) else list(keypoints)
        out = []
        for p in map(Path, given):
            out.append(p if p.is_absolute() or p.exists() or not (root / p).exists() else root / p)
        return out
    folder = root / KEYPOINTS_DIR
    if not folder.is_dir():
        return []
    files = sorted(p for p in folder.iterdir() if p.is_file())
    npz = [p for p in files if p.suffix == ".npz"]
    return npz or [p for p in files if p.name.endswith(PICKLE_SUFFIXES)]


def _read_corpus(path: Path, problems: list[Problem]) -> list[tuple[int, str, str]]:
    """(line, name, speaker) rows of a corpus CSV; problems collected."""
    fix_header = "use the original PHOENIX-2014-T corpus file: '|' separated, header " + "|".join(CORPUS_HEADER)
    rows: list[tuple[int, str, str]] = []
    try:
        text = kpt.read_text(path, fix_header)
    except DataFormatError as e:
        problems.extend(e.problems)
        return rows
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="|", quoting=csv.QUOTE_NONE)
    try:
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header) != CORPUS_HEADER:
            shown = "|".join(header or [])
            shown = shown if len(shown) <= 80 else shown[:77] + "..."
            problems.append(Problem(str(path), f"header is {shown!r}", fix_header, line=1))
            return rows
        seen: dict[str, int] = {}
        for row in reader:
            line = reader.line_num
            if not row or not any(c.strip() for c in row):
                continue
            if len(row) != len(CORPUS_HEADER):
                problems.append(Problem(str(path), f"{len(row)} fields, expected {len(CORPUS_HEADER)}", fix_header, line=line))
                continue
            name, speaker = row[0].strip(), row[4].strip()
            if not name:
                problems.append(Problem(str(path), "empty video name", "fill the 'name' column", line=line))
            elif name in seen:
                problems.append(Problem(str(path), f"video listed twice (first on line {seen[name]})", "remove the duplicate row", line=line, item=name))
            else:
                seen[name] = line
                rows.append((line, name, speaker))
    except csv.Error as e:  # e.g. a field over csv's size limit
        problems.append(Problem(str(path), f"not a readable corpus CSV ({e})", fix_header, line=reader.line_num))
    return rows


def _frames(folder: Path, problems: list[Problem], corpus: Path, line: int, name: str) -> tuple[Path, ...]:
    if not folder.is_dir():
        problems.append(Problem(str(folder), "frame folder missing", f"extract the video's frames there (listed in {corpus.name})", line=line, item=name))
        return ()
    numbered = sorted((int(m.group(1)), p) for p in folder.iterdir() if (m := _FRAME_RE.match(p.name)))
    if not numbered:
        problems.append(Problem(str(folder), "no frames named imagesNNNN.png", "extract the video's frames as images0001.png, images0002.png, ...", item=name))
        return ()
    numbers = [n for n, _ in numbered]
    if numbers != list(range(1, len(numbers) + 1)):
        gap = next(i + 1 for i, n in enumerate(numbers) if n != i + 1)
        problems.append(Problem(str(folder), f"frames are not numbered 1..{len(numbers)} (images{gap:04d}.png missing)",
                                "re-extract the video's frames", item=name))
        return ()
    return tuple(p for _, p in numbered)


def _check_frames(video: PhoenixVideo, mode: ImageCheck, problems: list[Problem]) -> None:
    if mode == "none":
        return
    h, w = FRAME_SIZE
    for t, path in enumerate(video.frames):
        try:
            with Image.open(path) as im:
                if mode == "decode":
                    im.load()
                size = upright_size(im)[::-1]  # (w, h) as load_rgb returns it
        except Exception as e:
            problems.append(Problem(str(path), f"frame does not decode ({type(e).__name__}: {e})", "re-extract this frame", item=video.name))
            continue
        if size != (w, h):
            problems.append(Problem(str(path), f"frame is {size[0]}x{size[1]} (w x h), expected {w}x{h}",
                                    "use the fullFrame-210x260px frames (keypoints are in their pixels)", item=video.name))


def read_phoenix_index(
    root: str | os.PathLike,
    splits: Sequence[str] = SPLITS,
    keypoints: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    check_images: ImageCheck = "none",
) -> PhoenixIndex:
    """Read corpus CSVs, frame folders and keypoints; raise one DataFormatError listing every problem."""
    root = resolve_root(root)
    if not root.is_dir():
        raise DataFormatError(Problem(str(root), "the Phoenix root does not exist or is not a folder",
                                      "pass --data.root / --root pointing at PHOENIX-2014-T, or run `pgpis data synth --dataset phoenix --out DIR`"))
    problems: list[Problem] = []
    files = find_keypoint_files(root, keypoints)
    kp: dict[str, np.ndarray] = {}
    if not files:
        problems.append(Problem(str(root / KEYPOINTS_DIR), "no keypoint file found",
                                "put the HRNet COCO-WholeBody keypoints (.npz or .pkl) in <root>/keypoints/ or pass --data.keypoints FILE"))
    else:
        try:
            kp = read_keypoint_files(files)
        except UnsafePickleError:
            raise  # a refused pickle is a security stop, not one problem among others
        except DataFormatError as e:
            problems.extend(e.problems)
    index = PhoenixIndex(root=root, keypoint_files=files)
    for split in splits:
        corpus = root / CORPUS.format(split=split)
        if not corpus.is_file():
            problems.append(Problem(str(corpus), f"corpus CSV of the {split} split missing", "restore annotations/manual/ from the PHOENIX-2014-T archive"))
            continue
        videos = []
        for line, name, speaker in _read_corpus(corpus, problems):
            frames = _frames(root / FRAMES_DIR / split / name, problems, corpus, line, name)
            arr = kp.get(f"{split}/{name}", kp.get(name))
            if arr is None:
                if kp:
                    problems.append(Problem(str(files[0]), "no keypoints for this video",
                                            f"add '{split}/{name}' to the keypoint file", item=f"{split}/{name}"))
                continue
            if frames and len(arr) != len(frames):
                problems.append(Problem(str(files[0]) if len(files) == 1 else ", ".join(map(str, files)),
                                        f"{len(arr)} keypoint frames but {len(frames)} images",
                                        "use the keypoints extracted from these frames", item=f"{split}/{name}"))
                continue
            if frames:
                video = PhoenixVideo(split, name, speaker, frames, arr)
                _check_frames(video, check_images, problems)
                videos.append(video)
        index.videos[split] = videos
    if problems:
        raise DataFormatError(problems)
    return index


# --------------------------------------------------------------------------- protocols
def train_triplets(lengths: Sequence[int], count: int, seed: int) -> np.ndarray:
    """``int64 [count, 3]`` of (video, source frame, target frame), both frames from the same video."""
    lengths = np.asarray(lengths, dtype=np.int64)
    if count <= 0 or len(lengths) == 0 or lengths.sum() == 0:
        return np.zeros((0, 3), np.int64)
    rng = np.random.default_rng(seed)
    video = rng.choice(len(lengths), size=count, p=lengths / lengths.sum())
    src = np.floor(rng.random(count) * lengths[video]).astype(np.int64)
    tgt = np.floor(rng.random(count) * lengths[video]).astype(np.int64)
    return np.stack([video, src, tgt], axis=1)


def first_frame_pairs(lengths: Sequence[int]) -> np.ndarray:
    """Test protocol: for every video, (video, 0, t) for every frame t (frame 1 included)."""
    rows = [(v, 0, t) for v, n in enumerate(lengths) for t in range(n)]
    return np.asarray(rows, dtype=np.int64).reshape(-1, 3)


def keypoints_with_missing(kp: np.ndarray, score_threshold: float) -> np.ndarray:
    """``[..., 133, 3]`` with (x, y) set to MISSING where the score is below the threshold (no detection = all 0)."""
    out = np.asarray(kp, dtype=np.float32).copy()
    out[..., 0:2][out[..., 2] < score_threshold] = kpt.MISSING
    return out
