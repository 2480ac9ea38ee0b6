"""The WPose folder on disk: reading and validating it, every problem at once.

UniHuman publishes ``wpose.zip`` (annotations) and ``image_urls.txt``; its ``get_wpose_data.py`` downloads
each image, crops it to its ``bbox.txt`` box and limits the longer side to 1024 px (see
:mod:`pgpis.data.wpose.download`). pgpis reads::

    <root>/image_urls.txt   "url<TAB>name" per line (a run of spaces is accepted instead of the tab)
    <root>/bbox.txt         "name left top right bottom" per line (pixels of the original web image)
    <root>/test_pairs.txt   the 2,304 test pairs, "source target" per line
    <root>/test_data.pkl    per-image or per-pair records (read through a restricted unpickler)
    <root>/images/<name>    the cropped images
    <root>/parsing/<stem>.png  (or parsing/<name>) Graphonomy CIHP label maps, the image's size
    <root>/keypoints/<stem>.json  OpenPose-18 keypoints that `pgpis data prepare` writes (WPose ships none)

The columns of ``test_pairs.txt`` and the keys of ``test_data.pkl`` are not documented publicly, so the
plausible forms are accepted (docs/wpose.md lists them): pair lines with two names separated by white
space, a comma or a tab, an optional header line (``source target``, ``from,to`` ...), ``#`` comments and
blank lines; names with or without a leading ``images/`` or ``./``. The pickle may hold a list of pair
records (dicts with a source and a target entry), a list of per-image records (dicts with a name), or a
dict from image name to record; any paths in them must name existing files. When ``test_pairs.txt`` is
absent the pairs come from the pickle's pair records.

A pickle can run code while it loads: ``test_data.pkl`` goes through
:class:`pgpis.data.phoenix.keypoints.RestrictedUnpickler`, which rebuilds plain containers, strings,
numbers and numpy arrays only; a pickle asking for anything else is refused before anything in it runs.
"""
from __future__ import annotations

import io
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Literal

import numpy as np
from PIL import Image

from pgpis.atomic import atomic_write_text
from pgpis.images import upright_size
from pgpis.data.parsing import CIHP, read_parsing
from pgpis.errors import DataFormatError, Problem
from pgpis.pose import keypoints as kpt

IMAGE_URLS = "image_urls.txt"
BBOX = "bbox.txt"
TEST_PAIRS = "test_pairs.txt"
TEST_DATA = "test_data.pkl"
IMAGES_DIR = "images"
PARSING_DIR = "parsing"
PARSING_DIRS = (PARSING_DIR, "gt_parsing")  # the first UniHuman release (ood_test_reposing/) called it gt_parsing
KEYPOINTS_DIR = "keypoints"
from pgpis.data.synthetic_out import SYNTHETIC_MARKER  # noqa: E402  (re-exported: the one marker)
SYNTHETIC_KEYPOINTS = "synthetic_keypoints.json"  # the generator's own keypoints (synthetic copies only)
KEYPOINT_FORMAT = "pgpis-wpose-keypoints-1"

ImageCheck = Literal["none", "header", "decode"]
HEADER_WORDS = {"source", "target", "src", "tgt", "from", "to", "source_image", "target_image", "src_img", "tgt_img",
                "source_name", "target_name", "image", "name", "pose", "person"}
SOURCE_KEYS = ("source", "src", "source_image", "src_image", "source_img", "src_img", "source_name", "from")
TARGET_KEYS = ("target", "tgt", "target_image", "tgt_image", "target_img", "tgt_img", "target_name", "to")
NAME_KEYS = ("name", "image", "img", "image_name", "file", "filename", "path")
PATH_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".npy", ".npz", ".json", ".txt", ".pkl")

PICKLE_FIX = ("do not load this file with pickle; use the test_data.pkl from UniHuman's wpose.zip (plain lists, "
              "dicts, strings and numbers), or delete it: test_pairs.txt is enough for pgpis")
PREPARE_FIX = "run `pgpis data prepare --dataset wpose --root {root}` (it estimates OpenPose-18 keypoints once)"


def normalise_name(text: str) -> str:
    """``./images/a.png``, ``ood_test_reposing/images/a.png``, `` a.png `` -> ``a.png``: names are relative to
    images/ (UniHuman's pickle records hold paths like ``ood_test_reposing/images/1.png``)."""
    name = text.strip().replace("\\", "/")
    while name.startswith("./"):
        name = name[2:]
    parts = name.split("/")
    if IMAGES_DIR in parts[:-1]:
        name = "/".join(parts[len(parts) - 1 - parts[::-1].index(IMAGES_DIR) + 1:])
    return name


def stem(name: str) -> str:
    """The name without its extension (keypoint and parsing files are named after it)."""
    return str(PurePosixPath(name).with_suffix(""))


@dataclass(frozen=True)
class WPoseKeypoints:
    """One image's keypoints file: OpenPose-18 ``body`` float32 [18, 3] (x, y, score) in image pixels."""

    body: np.ndarray
    image_size: tuple[int, int]  # (h, w) of the image they were estimated on
    estimator: str
    origin: str  # "estimator" | "synthetic-generator"
    found: bool

    def points(self, score_threshold: float = kpt.CONFIDENT_SCORE) -> np.ndarray:
        """float32 [18, 2]; points scored below ``score_threshold`` (or missing) are -1."""
        xy = self.body[:, :2].copy()
        xy[(self.body[:, 2] < score_threshold) | kpt.missing_mask(self.body)] = kpt.MISSING
        return xy


@dataclass
class WPoseIndex:
    """What :func:`read_wpose_index` found: pairs, annotations, and where every file is."""

    root: Path
    pairs: list[tuple[str, str]] = field(default_factory=list)
    pair_source: str = TEST_PAIRS
    urls: dict[str, str] = field(default_factory=dict)
    bboxes: dict[str, tuple[float, float, float, float]] = field(default_factory=dict)
    records: dict[str, dict] = field(default_factory=dict)  # per-image records from test_data.pkl
    image_sizes: dict[str, tuple[int, int]] = field(default_factory=dict)  # (h, w), for checked images
    keypoints: dict[str, WPoseKeypoints] = field(default_factory=dict)

    @property
    def is_synthetic(self) -> bool:
        return (self.root / SYNTHETIC_MARKER).exists()

    def names(self) -> list[str]:
        """Every image a pair uses, in first-use order."""
        return list(dict.fromkeys(n for pair in self.pairs for n in pair))

    def image_path(self, name: str) -> Path:
        return self.root / IMAGES_DIR / name

    def parsing_path(self, name: str) -> Path:
        """``parsing/<stem>.png`` (UniHuman: ``parsing/<name>``, the same for its PNG images), else
        ``parsing/<name>``, else the same under ``gt_parsing/``; the first candidate when none exists."""
        candidates = [self.root / d / f for d in PARSING_DIRS for f in (f"{stem(name)}.png", name)]
        return next((c for c in candidates if c.exists()), candidates[0])

    def keypoint_path(self, name: str) -> Path:
        return keypoint_path(self.root, name)


def keypoint_path(root: str | os.PathLike, name: str) -> Path:
    return Path(root) / KEYPOINTS_DIR / f"{stem(name)}.json"


# --------------------------------------------------------------------------- text files
def _lines(path: Path, fix: str) -> list[tuple[int, str]]:
    """(1-based line number, text) of the non-blank, non-comment lines."""
    out = []
    for i, line in enumerate(kpt.text_lines(kpt.read_text(path, fix)), start=1):
        if line.strip() and not line.lstrip().startswith("#"):
            out.append((i, line))
    return out


def read_image_urls(path: Path, problems: list[Problem]) -> dict[str, str]:
    """``image_urls.txt``: name -> URL."""
    fix = f"each line of {IMAGE_URLS} is 'url<TAB>name' (as in UniHuman's release)"
    urls: dict[str, str] = {}
    for no, line in _lines(path, fix):
        fields = line.split("\t") if "\t" in line else line.split()
        fields = [f.strip() for f in fields if f.strip()]
        if len(fields) != 2 or "://" not in fields[0]:
            problems.append(Problem(str(path), f"expected 'url<TAB>name', got {line.strip()[:80]!r}", fix, no))
            continue
        name = normalise_name(fields[1])
        if name in urls:
            problems.append(Problem(str(path), "image listed twice", "keep one line per image", no, name))
            continue
        urls[name] = fields[0]
    return urls


def read_bboxes(path: Path, problems: list[Problem]) -> dict[str, tuple[float, float, float, float]]:
    """``bbox.txt``: name -> (left, top, right, bottom) in pixels of the original image."""
    fix = f"each line of {BBOX} is 'name left top right bottom' (pixels of the original web image)"
    boxes: dict[str, tuple[float, float, float, float]] = {}
    for no, line in _lines(path, fix):
        fields = [f for f in re.split(r"[\s,]+", line.strip()) if f]
        if len(fields) != 5:
            problems.append(Problem(str(path), f"expected 5 fields, got {len(fields)}: {line.strip()[:80]!r}", fix, no))
            continue
        name = normalise_name(fields[0])
        try:
            left, top, right, bottom = (float(v) for v in fields[1:])
        except ValueError:
            problems.append(Problem(str(path), f"box is not four numbers: {' '.join(fields[1:])!r}", fix, no, name))
            continue
        if not all(math.isfinite(v) for v in (left, top, right, bottom)) or right <= left or bottom <= top:
            problems.append(Problem(str(path), f"box ({left:g}, {top:g}, {right:g}, {bottom:g}) is empty or not finite "
                                               "(needs right > left and bottom > top)", fix, no, name))
            continue
        if name in boxes:
            problems.append(Problem(str(path), "image has two boxes", "keep one line per image", no, name))
            continue
        boxes[name] = (left, top, right, bottom)
    return boxes


def _is_header(fields: list[str]) -> bool:
    return all(f.strip().lower().strip("\"'") in HEADER_WORDS for f in fields)


def read_test_pairs(path: Path, problems: list[Problem]) -> list[tuple[str, str, int]]:
    """``test_pairs.txt``: (source, target, line) per pair; an optional header line is skipped."""
    fix = (f"each line of {TEST_PAIRS} names two images of images/: 'source target' (white space, comma or tab "
           "between them)")
    pairs = []
    for k, (no, line) in enumerate(_lines(path, fix)):
        fields = [f.strip().strip("\"'") for f in re.split(r"[\s,]+", line.strip()) if f.strip()]
        if k == 0 and _is_header(fields):
            continue
        if len(fields) != 2:
            problems.append(Problem(str(path), f"malformed pair line: {len(fields)} field(s) in {line.strip()[:80]!r}",
                                    fix, no))
            continue
        pairs.append((normalise_name(fields[0]), normalise_name(fields[1]), no))
    return pairs


# --------------------------------------------------------------------------- test_data.pkl
def load_test_data(path: Path) -> Any:
    """The pickle's object, rebuilt by the restricted unpickler (nothing in the file runs)."""
    from pgpis.data.phoenix.keypoints import RestrictedUnpickler, UnsafePickleError

    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataFormatError(Problem(str(path), f"cannot read the file ({e.strerror or e})", "check the path")) from None
    try:
        return RestrictedUnpickler(io.BytesIO(raw), str(path)).load()
    except UnsafePickleError as err:  # same finding, WPose's fix
        raise UnsafePickleError([Problem(p.file, p.what, PICKLE_FIX, p.line, p.item) for p in err.problems]) from None
    except Exception as e:  # truncated, or not a pickle at all
        raise DataFormatError(Problem(str(path), f"not a readable pickle ({type(e).__name__}: {e})", PICKLE_FIX)) from None


def _first(record: dict, keys: Iterable[str]) -> str | None:
    for k in keys:
        if isinstance(record.get(k), str):
            return record[k]
    return None


def _paths_in(record: dict) -> dict[str, str]:
    """Entries of a record that look like relative file paths (a name with a known suffix)."""
    return {str(k): v for k, v in record.items()
            if isinstance(v, str) and v.lower().endswith(PATH_SUFFIXES) and "://" not in v}


def parse_test_data(obj: Any, source: str, problems: list[Problem]) -> tuple[list[tuple[str, str, str, dict]], dict[str, dict]]:
    """(pair records as (source, target, where, record), per-image records by name) from the pickle's object."""
    fix = ("expected a list of dicts with a source and a target image (keys like 'source'/'target'), a list of dicts "
           "with an image 'name', or a dict from image name to a dict")
    pairs: list[tuple[str, str, str, dict]] = []
    images: dict[str, dict] = {}
    if isinstance(obj, dict):
        entries = [(f"key {k!r}", k, v) for k, v in obj.items()]
    elif isinstance(obj, (list, tuple)):
        entries = [(f"item {i}", None, v) for i, v in enumerate(obj)]
    else:
        problems.append(Problem(source, f"holds a {type(obj).__name__}", fix))
        return pairs, images
    for where, key, value in entries:
        if not isinstance(value, dict):
            problems.append(Problem(source, f"{where} is a {type(value).__name__}, not a record (dict)", fix))
            continue
        src, tgt = _first(value, SOURCE_KEYS), _first(value, TARGET_KEYS)
        if src is not None and tgt is not None:
            pairs.append((normalise_name(src), normalise_name(tgt), where, dict(value)))
            continue
        name = key if isinstance(key, str) else _first(value, NAME_KEYS)
        if name is None:
            problems.append(Problem(source, f"{where} has neither a source/target pair nor an image name "
                                            f"(keys: {sorted(map(str, value))[:8]})", fix))
            continue
        images[normalise_name(name)] = dict(value)
    return pairs, images


def _resolves(root: Path, rel: str) -> bool:
    """A record's path names a file of this copy: as given under root, or by its last 1-3 path components
    (the authors' pickles may hold absolute paths of their own machine), or as an image name."""
    parts = [p for p in rel.strip().replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts:
        return False
    candidates = [root.joinpath(*parts[-k:]) for k in range(1, min(3, len(parts)) + 1)]
    candidates.append(root / IMAGES_DIR / parts[-1])
    return any(c.exists() for c in candidates)


def _check_record_paths(root: Path, source: str, where: str, record: dict, problems: list[Problem]) -> None:
    for key, rel in _paths_in(record).items():
        if not _resolves(root, rel):
            problems.append(Problem(source, f"{where}: '{key}' names {rel!r}, which is not under {root}",
                                    "restore the file (or use the test_data.pkl that belongs to this copy)"))


# --------------------------------------------------------------------------- keypoints files
def write_keypoint_file(root: str | os.PathLike, name: str, body: np.ndarray, image_size: tuple[int, int], *,
                        estimator: str, origin: str = "estimator", found: bool | None = None) -> Path:
    """Write ``keypoints/<stem>.json``: OpenPose-18 (x, y, score) in pixels of the image, and who made them."""
    body = np.asarray(body, dtype=np.float32)
    if body.shape != (18, 3):
        raise ValueError(f"keypoints for {name}: expected [18, 3] (x, y, score), got {list(body.shape)}")
    found = bool((body[:, 2] > 0).any()) if found is None else bool(found)
    path = keypoint_path(root, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"format": KEYPOINT_FORMAT, "image": name, "image_size": [int(image_size[0]), int(image_size[1])],
            "estimator": estimator, "origin": origin, "found": found,
            "keypoints": "OpenPose-18 (x, y, score) in pixels of the image; a missing point is (-1, -1, 0)",
            "body": [[round(float(v), 3) for v in row] for row in body]}
    return atomic_write_text(path, json.dumps(data, indent=1) + "\n")


def read_keypoint_file(path: Path, name: str, image_size: tuple[int, int] | None) -> WPoseKeypoints | Problem:
    """One ``keypoints/<stem>.json`` (validated against the image's size), or the problem with it."""
    fix = f"delete it and re-run `pgpis data prepare --dataset wpose --root {path.parent.parent}`"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        return Problem(str(path), f"keypoint file is not readable JSON ({type(e).__name__}: {e})", fix, item=name)
    if not isinstance(data, dict) or data.get("format") != KEYPOINT_FORMAT:
        return Problem(str(path), f"not a pgpis WPose keypoint file (format {KEYPOINT_FORMAT!r} expected)", fix, item=name)
    try:
        body = np.asarray(data["body"], dtype=np.float32)
        size = (int(data["image_size"][0]), int(data["image_size"][1]))
        estimator, origin, found = str(data["estimator"]), str(data.get("origin", "estimator")), bool(data["found"])
    except (KeyError, TypeError, ValueError, IndexError) as e:
        return Problem(str(path), f"keypoint file lacks or mangles a field ({type(e).__name__}: {e})", fix, item=name)
    if body.shape != (18, 3):
        return Problem(str(path), f"body keypoints have shape {list(body.shape)}, expected [18, 3]", fix, item=name)
    if image_size is not None and size != tuple(image_size):
        return Problem(str(path), f"keypoints were estimated on a {size[1]}x{size[0]} image but the image is "
                                  f"{image_size[1]}x{image_size[0]} (w x h): the image changed since", fix, item=name)
    bad = kpt.validate_keypoints(body[:, :2], size, file=str(path), item=name, spec=kpt.OPENPOSE_18, scores=body[:, 2],
                                 frame_label=f"{size[1]}x{size[0]} (w x h) image", fix=fix)
    if bad:
        return bad[0]
    if not found:
        return Problem(str(path), f"{estimator} found no person in this image",
                       "try another estimator (`pgpis data prepare --estimator rtmlib --overwrite`); on a synthetic "
                       "copy use --use-synthetic-keypoints", item=name)
    return WPoseKeypoints(body, size, estimator, origin, found)


# --------------------------------------------------------------------------- the index
def _image_size(path: Path, name: str, check: ImageCheck, problems: list[Problem]) -> tuple[int, int] | None:
    try:
        with Image.open(path) as im:
            if check == "decode":
                im.load()
            return upright_size(im)  # the size load_rgb (and the keypoint estimator) sees
    except FileNotFoundError:
        problems.append(Problem(str(path), "image file is missing",
                                "fetch it (`pgpis data download-wpose`), or remove the pairs that use it", item=name))
    except Exception as err:  # PIL raises many types for broken files
        problems.append(Problem(str(path), f"image does not decode ({type(err).__name__}: {err})",
                                "re-download this image (`pgpis data download-wpose --overwrite`)", item=name))
    return None


def _check_parsing(index: WPoseIndex, name: str, size: tuple[int, int] | None, check: ImageCheck,
                   problems: list[Problem]) -> None:
    path = index.parsing_path(name)
    if not path.exists():
        problems.append(Problem(str(path), "parsing map missing",
                                "restore parsing/ from wpose.zip (Graphonomy CIHP label PNGs named after the images)",
                                item=name))
        return
    try:
        if check == "decode":
            labels = read_parsing(path, CIHP)
            psize = labels.shape
        else:
            with Image.open(path) as im:
                psize = (im.height, im.width)
    except DataFormatError as err:
        problems.extend(Problem(p.file, p.what, p.fix, p.line, name) for p in err.problems)
        return
    except Exception as err:
        problems.append(Problem(str(path), f"parsing map does not decode ({type(err).__name__}: {err})",
                                "restore it from wpose.zip", item=name))
        return
    if size is not None and tuple(psize) != tuple(size):
        problems.append(Problem(str(path), f"parsing map is {psize[1]}x{psize[0]} but its image is {size[1]}x{size[0]} "
                                           "(w x h)", "use the parsing map made for this image (same file name, same size)",
                                item=name))


def read_wpose_index(root: str | os.PathLike, *, check_images: ImageCheck = "header", parsing: bool = True,
                     keypoints: bool = True) -> WPoseIndex:
    """Read and validate a WPose copy; raise :class:`DataFormatError` listing every problem.

    Args:
        check_images: "decode" (full decode), "header" (sizes only) or "none" (existence only).
        parsing: require a parsing map of the image's size for every image a pair uses.
        keypoints: require ``keypoints/<stem>.json`` (``pgpis data prepare``) for every such image.
    """
    root = Path(root)
    problems: list[Problem] = []
    if not root.is_dir():
        raise DataFormatError(Problem(str(root), "not a folder", "pass the unzipped wpose/ folder as --root"))
    index = WPoseIndex(root)
    for fname, reader, attr in ((IMAGE_URLS, read_image_urls, "urls"), (BBOX, read_bboxes, "bboxes")):
        path = root / fname
        if path.exists():
            try:
                setattr(index, attr, reader(path, problems))
            except DataFormatError as err:
                problems.extend(err.problems)
    listed: list[tuple[str, str, int]] = []
    pairs_path = root / TEST_PAIRS
    if pairs_path.exists():
        try:
            listed = read_test_pairs(pairs_path, problems)
        except DataFormatError as err:
            problems.extend(err.problems)
    pkl_pairs: list[tuple[str, str, str, dict]] = []
    data_path = root / TEST_DATA
    unsafe = False  # a refused pickle keeps its error type (UnsafePickleError) whatever else is found
    if data_path.exists():
        try:
            pkl_pairs, index.records = parse_test_data(load_test_data(data_path), str(data_path), problems)
        except DataFormatError as err:
            problems.extend(err.problems)
            unsafe = type(err).__name__ == "UnsafePickleError"
    if not pairs_path.exists():
        if not data_path.exists():
            problems.append(Problem(str(root), f"neither {TEST_PAIRS} nor {TEST_DATA} is here, so there are no pairs",
                                    "unzip UniHuman's wpose.zip into this folder"))
        index.pair_source = TEST_DATA
    for s, t, where, record in pkl_pairs:  # names the pair check below does not cover, and any other paths
        if not pairs_path.exists():  # then these are the pairs, checked as such below
            record = {k: v for k, v in record.items() if k not in SOURCE_KEYS + TARGET_KEYS}
        _check_record_paths(root, str(data_path), where, record, problems)
    for name, record in index.records.items():
        _check_record_paths(root, str(data_path), f"record {name!r}", record, problems)

    # pairs: each name must be an image of images/
    raw = listed if pairs_path.exists() else [(s, t, None) for s, t, _, _ in pkl_pairs]
    for s, t, no in raw:
        absent = [n for n in (s, t) if not index.image_path(n).exists()]
        for n in absent:
            where = str(pairs_path) if no is not None else str(data_path)
            problems.append(Problem(where, f"pair names '{n}', which is not in {IMAGES_DIR}/",
                                    "fetch the image (`pgpis data download-wpose`) or correct the name", no, n))
        if not absent:
            index.pairs.append((s, t))
    if (pairs_path.exists() or pkl_pairs) and not raw and not problems:
        problems.append(Problem(str(pairs_path if pairs_path.exists() else data_path), "lists no pairs",
                                "use the file from UniHuman's wpose.zip"))

    # every existing image any pair names is checked (also those whose partner is missing: one pass finds all)
    referenced = [n for n in dict.fromkeys(n for s, t, _ in raw for n in (s, t)) if index.image_path(n).exists()]
    # stems must be unique: keypoint and parsing files are named after them
    by_stem: dict[str, str] = {}
    for name in referenced:
        other = by_stem.setdefault(stem(name), name)
        if other != name:
            problems.append(Problem(str(index.image_path(name)), f"'{name}' and '{other}' share the file stem "
                                    f"'{stem(name)}', so their parsing and keypoint files would collide",
                                    "rename one of the images (and its pairs)", item=name))

    for name in referenced:
        size = None
        if check_images != "none":
            size = _image_size(index.image_path(name), name, check_images, problems)
            if size is not None:
                index.image_sizes[name] = size
        if parsing:
            _check_parsing(index, name, size, check_images, problems)
        if keypoints:
            path = index.keypoint_path(name)
            if not path.exists():
                problems.append(Problem(str(path), "keypoints missing (WPose ships none)",
                                        PREPARE_FIX.format(root=root), item=name))
                continue
            found = read_keypoint_file(path, name, size)
            if isinstance(found, Problem):
                problems.append(found)
            else:
                index.keypoints[name] = found
    if problems:
        if unsafe:
            from pgpis.data.phoenix.keypoints import UnsafePickleError

            raise UnsafePickleError(problems)
        raise DataFormatError(problems)
    return index
