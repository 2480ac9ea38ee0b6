"""DeepFashion In-shop on disk: the two layouts users have, read into one index.

Both layouts describe the same images (docs/data-formats.md); a user has one or the
other, so both are read into the same :class:`DeepFashionIndex`, keyed by the
**canonical CFLD image name** (``fashionWOMENBlouses_Shirtsid0000000102_1front.jpg``)
with keypoints in the CFLD **256 (h) x 176 (w)** frame.

CFLD / DPTN layout::

    <root>/{train,test}_highres/<name>.jpg
    <root>/fasion-resize-pairs-{train,test}.csv          header "from,to"
    <root>/fasion-resize-annotation-{train,test}.csv     "name:keypoints_y:keypoints_x"

PCDMs / FPDM layout::

    <root>/img/{MEN,WOMEN}/<category>/id_XXXXXXXX/NN_k_view.jpg
    <root>/pose/{MEN,WOMEN}/<category>/id_XXXXXXXX/NN_k_view.txt   18 rows "x y", 256x256 frame
    <root>/{train,test}_pairs_data.json    [{"source_image": "./img/...", "target_image": "./img/..."}]

Optional parsing maps, either layout: ``<root>/parsing/<canonical stem>.png``.

Reading never stops at the first problem: every problem found is collected
(file, line, image, what, fix) and raised together as one
:class:`~pgpis.errors.DataFormatError`, so a user fixes a dataset in one pass.
"""
from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Iterable, Literal

import numpy as np
from PIL import Image

from pgpis.images import ImageCheck
from pgpis.data.parsing import write_parsing_png
from pgpis.errors import DataFormatError, Problem
from pgpis.pose import keypoints as kpt

Layout = Literal["cfld", "pcdms"]
SPLITS = ("train", "test")

CFLD_PAIRS = "fasion-resize-pairs-{split}.csv"
CFLD_ANNOTATION = "fasion-resize-annotation-{split}.csv"
CFLD_IMAGES = "{split}_highres"
PCDMS_PAIRS = "{split}_pairs_data.json"
PARSING_DIR = "parsing"
from pgpis.data.synthetic_out import SYNTHETIC_MARKER  # noqa: E402  (re-exported: the one marker)

_NAME_RE = re.compile(r"^fashion(MEN|WOMEN)(.+?)id(\d{8})(\d{2})_(\d+)([A-Za-z]+)\.jpg$")
_PCDMS_RE = re.compile(r"^img/(MEN|WOMEN)/([^/]+)/id_(\d{8})/(\d{2})_(\d+)_([A-Za-z]+)\.jpg$")


# --------------------------------------------------------------------------- naming
def deepfashion_name(gender: str, category: str, person_id: int, item: int, index: int, view: str) -> str:
    """Canonical (CFLD, flattened) image name, e.g. ``fashionWOMENBlouses_Shirtsid0000000102_1front.jpg``."""
    return f"fashion{gender}{category}id{person_id:08d}{item:02d}_{index}{view}.jpg"


def parse_name(name: str) -> tuple[str, str, int, int, int, str]:
    """Inverse of :func:`deepfashion_name`; raises ValueError for a name that is not DeepFashion's."""
    m = _NAME_RE.match(name)
    if not m:
        raise ValueError(f"'{name}' is not a DeepFashion image name like 'fashionWOMENBlouses_Shirtsid0000000102_1front.jpg'")
    g, cat, pid, item, idx, view = m.groups()
    return g, cat, int(pid), int(item), int(idx), view


def name_to_pcdms_relpath(name: str) -> str:
    """``fashionWOMENBlouses_Shirtsid0000000102_1front.jpg`` -> ``img/WOMEN/Blouses_Shirts/id_00000001/02_1_front.jpg``."""
    g, cat, pid, item, idx, view = parse_name(name)
    return f"img/{g}/{cat}/id_{pid:08d}/{item:02d}_{idx}_{view}.jpg"


def pcdms_relpath_to_name(relpath: str) -> str:
    """Inverse of :func:`name_to_pcdms_relpath`; accepts a leading ``./``."""
    rel = relpath[2:] if relpath.startswith("./") else relpath
    m = _PCDMS_RE.match(rel)
    if not m:
        raise ValueError(f"'{relpath}' is not a PCDMs image path like './img/WOMEN/Blouses_Shirts/id_00000001/02_1_front.jpg'")
    g, cat, pid, item, idx, view = m.groups()
    return deepfashion_name(g, cat, int(pid), int(item), int(idx), view)


def cfld_name(rel: PurePosixPath) -> str:
    """The annotation name of an image: its canonical DeepFashion name for a PCDMs ``img/...`` path, else ``rel``."""
    text = rel.as_posix()
    for candidate in (text, f"img/{text}"):
        try:
            return pcdms_relpath_to_name(candidate)
        except ValueError:
            continue
    return text


def identity_of(name: str) -> str:
    """Person + outfit id of an image: its name without ``_<k><view>.jpg``."""
    return name.rsplit("_", 1)[0]


def stem(name: str) -> str:
    """Image name without extension (the key of parsing maps and generated files)."""
    return name.rsplit(".", 1)[0]


# --------------------------------------------------------------------------- index
@dataclass
class DeepFashionIndex:
    """Everything pgpis needs to know about a DeepFashion copy, layout-independent."""

    root: Path
    layout: Layout
    image_paths: dict[str, Path]  # canonical name -> file
    keypoints: dict[str, np.ndarray]  # canonical name -> [18, 2] in the 256x176 (h x w) frame, -1 missing
    image_split: dict[str, str]  # canonical name -> "train" | "test"
    pairs: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # split -> (source, target)

    def image_path(self, name: str) -> Path:
        return self.image_paths[name]

    def parsing_path(self, name: str) -> Path:
        return self.root / PARSING_DIR / f"{stem(name)}.png"

    def split_images(self, split: str) -> list[str]:
        """All distinct images used by a split's pairs (sources and targets), sorted."""
        names = {n for pair in self.pairs.get(split, []) for n in pair}
        return sorted(names)

    @property
    def is_synthetic(self) -> bool:
        return (self.root / SYNTHETIC_MARKER).exists()


def detect_layout(root: Path) -> Layout:
    """Which layout `root` holds; a clear error when it is neither."""
    root = Path(root)
    if not root.is_dir():
        raise DataFormatError(Problem(str(root), "the dataset root does not exist or is not a folder",
                                      "pass --data.root / --root pointing at your DeepFashion copy, or run `pgpis data synth --dataset deepfashion --out DIR`"))
    has_cfld = any((root / CFLD_PAIRS.format(split=s)).exists() for s in SPLITS)
    has_pcdms = any((root / PCDMS_PAIRS.format(split=s)).exists() for s in SPLITS)
    if has_cfld and not has_pcdms:
        return "cfld"
    if has_pcdms and not has_cfld:
        return "pcdms"
    if has_cfld and has_pcdms:
        raise DataFormatError(Problem(str(root), "both a CFLD pairs CSV and a PCDMs pairs JSON are present, so the layout is ambiguous",
                                      "keep one layout per root folder (move the other files away)"))
    listing = ", ".join(sorted(p.name for p in root.iterdir())[:12]) or "(empty)"
    raise DataFormatError(Problem(str(root), f"neither the CFLD layout (fasion-resize-pairs-{{train,test}}.csv) nor the PCDMs layout ({{train,test}}_pairs_data.json) was found; the folder holds: {listing}",
                                  "point --root at the folder that holds those files (see README, 'Real DeepFashion')"))


def read_deepfashion_index(
    root: str | Path,
    *,
    splits: Iterable[str] = SPLITS,
    parsing: bool = False,
    check_images: ImageCheck = "header",
) -> DeepFashionIndex:
    """Read and validate a DeepFashion copy in either layout; raise one error listing all problems.

    ``check_images``: "header" opens every referenced image (catches missing and
    non-image files quickly), "decode" decodes them fully (``pgpis data check``),
    "none" only checks existence.
    """
    root = Path(root)
    layout = detect_layout(root)
    problems: list[Problem] = []
    reader = _read_cfld if layout == "cfld" else _read_pcdms
    index = DeepFashionIndex(root=root, layout=layout, image_paths={}, keypoints={}, image_split={})
    for split in splits:
        reader(index, split, problems)
    _check_references(index, problems, parsing=parsing, check_images=check_images)
    if problems:
        raise DataFormatError(problems)
    return index


def _read_cfld(index: DeepFashionIndex, split: str, problems: list[Problem]) -> None:
    root = index.root
    ann_path = root / CFLD_ANNOTATION.format(split=split)
    pairs_path = root / CFLD_PAIRS.format(split=split)
    img_dir = root / CFLD_IMAGES.format(split=split)
    rejected: set[str] = set()  # images whose annotation row was reported bad; their pairs are not reported again
    for p, what in ((ann_path, "annotation CSV"), (pairs_path, "pairs CSV")):
        if not p.exists():
            problems.append(Problem(str(p), f"the {split} {what} is missing", f"restore {p.name} from the CFLD/DPTN release"))
    if not img_dir.is_dir():
        problems.append(Problem(str(img_dir), f"the {split} image folder is missing", f"put the {split} images (750x1101 jpg) in {img_dir.name}/"))
    if ann_path.exists():
        try:
            lines = kpt.text_lines(kpt.read_text(ann_path, "restore the original CFLD annotation file (UTF-8 text, ':' separated)"))
        except DataFormatError as err:
            problems.extend(err.problems)
            lines = None
        for lineno, name, kp in _cfld_rows(ann_path, lines, problems, rejected) if lines is not None else ():
            if name in index.keypoints:
                problems.append(Problem(str(ann_path), "image annotated twice", "keep one row per image", line=lineno, item=name))
            index.keypoints[name] = kp
            index.image_split[name] = split
            index.image_paths[name] = img_dir / name
    if pairs_path.exists():
        pairs: list[tuple[str, str]] = []
        n_before = len(problems)
        rows = _csv_rows(pairs_path, problems)
        unreadable = len(problems) > n_before  # already reported with its line
        if not unreadable and (not rows or [c.strip() for c in rows[0][:2]] != ["from", "to"]):
            problems.append(Problem(str(pairs_path), f"header is {rows[0] if rows else 'missing'}, expected 'from,to'", "use the original CFLD pairs CSV", line=1))
        for lineno, row in enumerate(rows[1:], start=2):
            if not row:
                continue
            if len(row) < 2:
                problems.append(Problem(str(pairs_path), f"expected 'source,target', found {row}", "write one 'from,to' pair per line", line=lineno))
                continue
            src, tgt = row[0].strip(), row[1].strip()
            for n in (src, tgt):
                if n not in index.keypoints and n not in rejected:
                    problems.append(Problem(str(pairs_path), f"pair names image '{n}' that has no keypoint row in {ann_path.name}", f"add its keypoints to {ann_path.name} or remove the pair", line=lineno, item=n))
            pairs.append((src, tgt))
        index.pairs[split] = pairs


def _cfld_rows(path: Path, lines: list[str], problems: list[Problem], rejected: set[str]) -> list[tuple[int, str, np.ndarray]]:
    """(line, name, keypoints) of every valid row of a CFLD annotation CSV; every bad row is a problem (name into `rejected`)."""
    rows, found, bad = kpt.cfld_annotation_rows(path, lines)
    problems.extend(found)
    rejected.update(bad)
    return rows


def _csv_rows(path: Path, problems: list[Problem]) -> list[list[str]]:
    """Rows of a comma-separated file; unreadable text or a CSV syntax error is a problem (with its line)."""
    try:
        text = kpt.read_text(path, f"restore {path.name} (UTF-8 text)")
    except DataFormatError as err:
        problems.extend(err.problems)
        return []
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[list[str]] = []
    try:
        for row in reader:
            rows.append(row)
    except csv.Error as err:
        problems.append(Problem(str(path), f"not a readable CSV ({err})", f"restore {path.name}", line=reader.line_num))
    return rows


def _read_pcdms(index: DeepFashionIndex, split: str, problems: list[Problem]) -> None:
    root = index.root
    pairs_path = root / PCDMS_PAIRS.format(split=split)
    if not pairs_path.exists():
        problems.append(Problem(str(pairs_path), f"the {split} pairs JSON is missing", f"restore {pairs_path.name} from the PCDMs release"))
        return
    try:
        entries = json.loads(kpt.read_text(pairs_path, "restore the original file (UTF-8 JSON)"))
    except DataFormatError as err:
        problems.extend(err.problems)
        return
    except json.JSONDecodeError as err:
        problems.append(Problem(str(pairs_path), f"not valid JSON ({err.msg})", "restore the original file", line=err.lineno))
        return
    except (ValueError, RecursionError) as err:  # integer-digit limit, absurd nesting
        problems.append(Problem(str(pairs_path), f"not valid JSON ({type(err).__name__})", "restore the original file"))
        return
    if not isinstance(entries, list):
        problems.append(Problem(str(pairs_path), "expected a JSON list of {source_image, target_image} objects", "restore the original file"))
        return
    pairs: list[tuple[str, str]] = []
    for i, entry in enumerate(entries):
        item = f"entry {i}"
        if not isinstance(entry, dict) or "source_image" not in entry or "target_image" not in entry:
            problems.append(Problem(str(pairs_path), f"{item} lacks 'source_image'/'target_image'", "each entry must be {\"source_image\": \"./img/...\", \"target_image\": \"./img/...\"}"))
            continue
        names = []
        for rel in (entry["source_image"], entry["target_image"]):
            try:
                name = pcdms_relpath_to_name(str(rel))
            except ValueError as err:
                problems.append(Problem(str(pairs_path), str(err), "use paths of the form ./img/<MEN|WOMEN>/<category>/id_XXXXXXXX/NN_k_view.jpg", item=item))
                continue
            names.append(name)
            if name not in index.image_paths:
                relclean = rel[2:] if str(rel).startswith("./") else str(rel)
                index.image_paths[name] = root / relclean
                index.image_split[name] = split
                pose_path = root / "pose" / Path(relclean).relative_to("img").with_suffix(".txt")
                if not pose_path.exists():
                    problems.append(Problem(str(pose_path), "keypoint file missing", "extract OpenPose-18 keypoints for this image (18 rows 'x y', 256x256 frame)", item=name))
                    continue
                try:
                    index.keypoints[name] = kpt.pcdms_to_cfld_frame(kpt.read_pcdms_keypoints(pose_path))
                except DataFormatError as err:
                    problems.extend(err.problems)
        if len(names) == 2:
            pairs.append((names[0], names[1]))
    index.pairs[split] = pairs


def _check_references(index: DeepFashionIndex, problems: list[Problem], *, parsing: bool, check_images: ImageCheck) -> None:
    """Every image a pair or annotation refers to exists (and decodes); parsing maps exist when asked."""
    used = {n for pairs in index.pairs.values() for pair in pairs for n in pair}
    for name in sorted(used):
        path = index.image_paths.get(name)
        if path is None:
            continue  # already reported as unannotated
        if not path.exists():
            problems.append(Problem(str(path), "image file is missing", "restore the image or remove the pairs that use it", item=name))
        elif check_images != "none":
            try:
                with Image.open(path) as im:
                    if check_images == "decode":
                        im.load()
            except Exception as err:  # PIL raises many types for broken files
                problems.append(Problem(str(path), f"image does not decode ({type(err).__name__}: {err})", "re-extract or re-download this image", item=name))
        if parsing:
            ppath = index.parsing_path(name)
            if not ppath.exists():
                problems.append(Problem(str(ppath), "parsing map missing (parsing was requested)",
                                        "produce LIP-label palette PNGs with a human parser (see README, 'Parsing maps') or set parsing: false", item=name))


# --------------------------------------------------------------------------- writing
class DeepFashionWriter:
    """Writes images, keypoints, parsing maps and pairs in either layout (used by the synthetic generator)."""

    def __init__(self, root: str | Path, layout: Layout = "cfld", parsing: bool = True):
        if layout not in ("cfld", "pcdms"):
            raise ValueError(f"layout must be 'cfld' or 'pcdms', got '{layout}'")
        self.root, self.layout, self.parsing = Path(root), layout, parsing
        self.root.mkdir(parents=True, exist_ok=True)
        self._keypoints: dict[str, dict[str, np.ndarray]] = {s: {} for s in SPLITS}
        self._pairs: dict[str, list[tuple[str, str]]] = {s: [] for s in SPLITS}

    def image_file(self, name: str, split: str) -> Path:
        if self.layout == "cfld":
            return self.root / CFLD_IMAGES.format(split=split) / name
        return self.root / name_to_pcdms_relpath(name)

    def add_image(self, name: str, split: str, image: Image.Image, keypoints: np.ndarray, parsing: np.ndarray | None = None) -> None:
        """Write one image (JPEG, quality 95), its keypoints (256x176 frame) and optional LIP parsing map."""
        path = self.image_file(name, split)
        path.parent.mkdir(parents=True, exist_ok=True)
        image.convert("RGB").save(path, quality=95)
        kp = np.asarray(keypoints, dtype=np.float32)
        self._keypoints[split][name] = kp
        if self.layout == "pcdms":
            pose = self.root / "pose" / Path(name_to_pcdms_relpath(name)).relative_to("img").with_suffix(".txt")
            pose.parent.mkdir(parents=True, exist_ok=True)
            kpt.write_pcdms_keypoints(pose, kpt.cfld_to_pcdms_frame(kp))
        if self.parsing and parsing is not None:
            ppath = self.root / PARSING_DIR / f"{stem(name)}.png"
            ppath.parent.mkdir(parents=True, exist_ok=True)
            write_parsing_png(ppath, parsing)

    def add_pairs(self, split: str, pairs: Iterable[tuple[str, str]]) -> None:
        self._pairs[split].extend(pairs)

    def close(self, summary: dict | None = None) -> None:
        """Write the index files and the synthetic-dataset marker."""
        for split in SPLITS:
            if self.layout == "cfld":
                with (self.root / CFLD_ANNOTATION.format(split=split)).open("w") as f:
                    f.write(kpt.CFLD_HEADER + "\n")
                    for name, kp in self._keypoints[split].items():
                        f.write(kpt.format_cfld_row(name, kp) + "\n")
                with (self.root / CFLD_PAIRS.format(split=split)).open("w", newline="") as f:
                    w = csv.writer(f)
                    w.writerow(["from", "to"])
                    w.writerows(self._pairs[split])
            else:
                entries = [{"source_image": "./" + name_to_pcdms_relpath(s), "target_image": "./" + name_to_pcdms_relpath(t)}
                           for s, t in self._pairs[split]]
                (self.root / PCDMS_PAIRS.format(split=split)).write_text(json.dumps(entries, indent=1))
        (self.root / SYNTHETIC_MARKER).write_text(json.dumps(summary or {}, indent=1, sort_keys=True))
