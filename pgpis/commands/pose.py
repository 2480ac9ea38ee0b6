"""`pgpis pose extract INPUT... --out OUT --format pcdms|cfld|npz`: photos and videos to keypoint files pgpis reads.

Inputs are image files, folders (searched recursively for images and videos) and videos (read with imageio;
mp4 and friends through imageio-ffmpeg, GIFs through Pillow). Each image or video frame goes through one pose
estimator (``--estimator``, default mediapipe; see docs/pose.md) and is written by :mod:`pgpis.pose.formats`:

* ``pcdms``: ``OUT/<path relative to the input folder>.txt`` per image, so ``pgpis pose extract ROOT/img --out
  ROOT/pose`` mirrors the ``img/`` tree as a PCDMs ``pose/`` tree; a video's frames go to ``OUT/<video>/frame0001.txt``;
* ``cfld``: one annotation CSV ``OUT`` (``name:keypoints_y:keypoints_x``); names are the file names (the relative
  path for nested folders; a PCDMs ``img/`` path becomes its canonical CFLD name);
* ``npz``: one ``OUT/<video>.npz`` per video (and per folder of frames, Phoenix's layout) holding
  ``{"<video>": [T, 133, 3]}`` in the Phoenix frame.

The run is resumable: a file (or CSV row) already written and readable is kept and counted as "kept". An image or
frame with no person is written all-missing and listed in the closing summary; an unreadable file is named on
its own line, the rest carries on, and the exit code is 1 at the end. ``pose-extract.json`` beside the output
records the estimator, the format, the frame and the counts; resuming with another estimator or format is refused
(``--overwrite`` starts over), so one output never mixes two estimators.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Iterator, Optional, Sequence

import numpy as np
from PIL import Image

from pgpis.data.phoenix.keypoints import video_in_npz, write_video_npz
from pgpis.errors import DataFormatError, PgpisError, Problem
from pgpis.pose import keypoints as kpt
from pgpis.pose import formats as fmt
from pgpis.data.deepfashion.layout import cfld_name
from pgpis.pose.media import Source, discover, read_frames, read_image
from pgpis.pose.options import add_estimator_arguments, load_named_estimator, parse_options
from pgpis.pose.preview import PreviewItem, spread, write_preview

RECORD = "pose-extract.json"
PREVIEW_ROWS = 16
FRAME_NAME = "frame{:04d}"


class ExtractError(PgpisError, ValueError):
    """A problem with the command as a whole (inputs, --out, a record from another run), before any file is made."""


@dataclass
class Tally:
    images: int = 0
    videos: int = 0
    frames: int = 0
    written: int = 0
    kept: int = 0
    no_person: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


# --------------------------------------------------------------------------- inputs
def video_key(rel: PurePosixPath) -> str:
    return rel.with_suffix("").as_posix()


def _npz_file(out: Path, key: str) -> Path:
    return out / (key.replace("/", "__") + ".npz")


# --------------------------------------------------------------------------- extraction
class Extractor:
    """Runs one estimator over the inputs and writes one format (see the module docstring)."""

    def __init__(self, estimator: Any, fmt_name: str, out: Path, preview_slots: set[int], tally: Tally):
        self.estimator, self.format, self.out, self.tally = estimator, fmt_name, out, tally
        self.preview_slots = preview_slots
        self.previews: list[PreviewItem] = []
        self.cfld = fmt.CfldAnnotationWriter(out) if fmt_name == "cfld" else None

    def close(self) -> None:
        if self.cfld is not None:
            self.cfld.close()

    # -- one image or frame in the per-image formats (pcdms, cfld)
    def _estimate(self, rgb: np.ndarray, label: str):
        est = self.estimator.estimate(rgb)
        if not est.found:
            self.tally.no_person.append(label)
        return est

    def _body_from_output(self, unit: str) -> np.ndarray:
        """The written ``[18, 2]`` of a pcdms/cfld unit, in its format's frame (256x176 for both)."""
        if self.format == "pcdms":
            return kpt.pcdms_to_cfld_frame(kpt.read_pcdms_keypoints(self.out / f"{unit}.txt"))
        assert self.cfld is not None
        return self.cfld.rows[unit]

    def _keep(self, unit: str) -> bool:
        if self.format == "pcdms":
            return fmt.pcdms_is_valid(self.out / f"{unit}.txt")
        assert self.cfld is not None
        return unit in self.cfld.rows

    def _write(self, unit: str, body: np.ndarray, size: tuple[int, int]) -> None:
        if self.format == "pcdms":
            fmt.write_pcdms(self.out / f"{unit}.txt", body, size)
        else:
            assert self.cfld is not None
            self.cfld.add(unit, body, size)

    def _preview(self, index: int, rgb: np.ndarray, body_cfld: np.ndarray, label: str) -> None:
        if index not in self.preview_slots:
            return
        self.preview_slots.discard(index)
        image = Image.fromarray(rgb)
        if image.height > 512:
            image = image.resize((max(1, round(image.width * 512 / image.height)), 512), Image.BICUBIC)
        body = kpt.rescale_keypoints(body_cfld, kpt.CFLD_FRAME, (image.height, image.width))
        self.previews.append(PreviewItem(image, body, label))

    def image(self, index: int, src: Source) -> None:
        unit = src.rel.with_suffix("").as_posix() if self.format == "pcdms" else cfld_name(src.rel)
        self.tally.images += 1
        rgb = None
        if self._keep(unit):
            self.tally.kept += 1
        else:
            rgb = read_image(src.path)
            est = self._estimate(rgb, str(src.path))
            self._write(unit, est.body, est.image_size)
            self.tally.written += 1
        if index in self.preview_slots:
            self._preview(index, rgb if rgb is not None else read_image(src.path), self._body_from_output(unit),
                          src.rel.as_posix())

    def video(self, index: int, src: Source) -> None:
        self.tally.videos += 1
        if self.format == "npz":
            return self._video_npz(index, src)
        base = src.rel.with_suffix("")
        for t, rgb in enumerate(read_frames(src.path)):
            name = FRAME_NAME.format(t + 1)
            unit = (base / name).as_posix()
            self.tally.frames += 1
            if self._keep(unit):
                self.tally.kept += 1
            else:
                est = self._estimate(rgb, f"{src.path} frame {t + 1}")
                self._write(unit, est.body, est.image_size)
                self.tally.written += 1
            if t == 0:
                self._preview(index, rgb, self._body_from_output(unit), f"{src.rel.as_posix()} frame 1")

    # -- npz: one array per video (or per folder of frames)
    def _npz_frames(self, frames: Iterator[np.ndarray], label: str) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
        out, first, size = [], None, (0, 0)
        for t, rgb in enumerate(frames):
            est = self._estimate(rgb, f"{label} frame {t + 1}")
            out.append(fmt.wholebody_in_phoenix_frame(est.wholebody(), est.image_size))
            if first is None:
                first, size = rgb, est.image_size
        if not out:
            raise DataFormatError(Problem(label, "holds no frames", "give a video with at least one frame"))
        return np.stack(out), first, size

    def _npz_preview(self, index: int, key: str, rgb: Optional[np.ndarray], label: str) -> None:
        if index not in self.preview_slots:
            return
        with np.load(_npz_file(self.out, key), allow_pickle=False) as z:
            first = z[key][0]
        body_cfld = kpt.rescale_keypoints(coco_to_openpose(first), fmt.PHOENIX_FRAME, kpt.CFLD_FRAME)
        if rgb is not None:
            self._preview(index, rgb, body_cfld, label)

    def _video_npz(self, index: int, src: Source) -> None:
        key = video_key(src.rel)
        path = _npz_file(self.out, key)
        if video_in_npz(path, key):
            self.tally.kept += 1
            rgb = next(read_frames(src.path)) if index in self.preview_slots else None
        else:
            arr, rgb, _ = self._npz_frames(read_frames(src.path), str(src.path))
            self.tally.frames += len(arr)
            write_video_npz(path, key, arr)
            self.tally.written += 1
        self._npz_preview(index, key, rgb, f"{src.rel.as_posix()} frame 1")

    def image_folder_npz(self, index: int, key: str, images: list[Source]) -> None:
        """A folder of frames (Phoenix's ``<video>/images0001.png ...``) as one video, frames in name order."""
        path = _npz_file(self.out, key)
        self.tally.images += len(images)
        if video_in_npz(path, key):
            self.tally.kept += 1
            rgb = read_image(images[0].path) if index in self.preview_slots else None
        else:
            arr, rgb, _ = self._npz_frames((read_image(s.path) for s in images), f"{images[0].path.parent}")
            write_video_npz(path, key, arr)
            self.tally.written += 1
        self._npz_preview(index, key, rgb, f"{key} frame 1")


def coco_to_openpose(wholebody: np.ndarray, threshold: float = kpt.CONFIDENT_SCORE) -> np.ndarray:
    """``[18, 2]`` OpenPose-18 from a COCO-WholeBody row ``[133, 3]`` (points scoring under `threshold` missing;
    neck: mean of the shoulders), -1 missing: :func:`pgpis.pose.mappings.wholebody133_to_openpose18`."""
    from pgpis.pose.mappings import clean_points, wholebody133_to_openpose18

    return wholebody133_to_openpose18(clean_points(wholebody, min_score=threshold))[:, :2].copy()


# --------------------------------------------------------------------------- command
def record_path(out: Path, fmt_name: str) -> Path:
    return out.with_name(f"{out.stem}.{RECORD}") if fmt_name == "cfld" else out / RECORD


def _check_out(out: Path, fmt_name: str, overwrite: bool) -> None:
    if fmt_name == "cfld":
        if out.suffix.lower() != ".csv":
            raise ExtractError(f"--out {out}: --format cfld writes one annotation CSV; give a file name ending in .csv "
                               "(e.g. fasion-resize-annotation-test.csv)")
        if out.is_dir():
            raise ExtractError(f"--out {out} is a folder; --format cfld writes one .csv file")
        if overwrite:
            out.unlink(missing_ok=True)
    else:
        if out.exists() and not out.is_dir():
            raise ExtractError(f"--out {out} is a file; --format {fmt_name} writes a folder of files")
        out.mkdir(parents=True, exist_ok=True)
        if overwrite:
            for p in out.rglob("*.txt" if fmt_name == "pcdms" else "*.npz"):
                p.unlink()
        fmt.remove_stale_temps(out)


def _check_record(path: Path, estimator: str, fmt_name: str, overwrite: bool) -> None:
    conflict = None if overwrite else fmt.record_conflict(path, {"estimator": estimator, "format": fmt_name})
    if conflict:
        raise ExtractError(f"{path}: {conflict}; resuming would mix the two. Fix: rerun with the same "
                           "--estimator/--format, pass --overwrite to extract everything again, or choose another --out")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pgpis pose", description="Pose keypoints from photos and videos "
                                     "(estimators: mediapipe, rtmlib, or your own class; docs/pose.md).")
    sub = parser.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("extract", help="images, folders, videos -> keypoint files pgpis reads",
                        description="Estimate OpenPose-18 (and whole-body) keypoints of every image / video frame "
                                    "and write them as PCDMs txt files, one CFLD annotation CSV, or Phoenix npz "
                                    "arrays. Resumable: files already written are kept.")
    ex.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders (recursive), video files")
    ex.add_argument("--out", required=True, help="pcdms/npz: a folder (e.g. ROOT/pose); cfld: a .csv file")
    ex.add_argument("--format", required=True, choices=fmt.FORMATS,
                    help="pcdms: one .txt per image, 256x256 frame (mirrors the input tree); cfld: one annotation CSV "
                         "in the 256x176 frame; npz: Phoenix [T, 133, 3] per video, 210x260 frame")
    add_estimator_arguments(ex)
    ex.add_argument("--preview", default=None, metavar="PNG", help="also write a grid: image | rendered pose")
    ex.add_argument("--preview-rows", type=int, default=PREVIEW_ROWS, help="images in the preview (default 16)")
    ex.add_argument("--overwrite", action="store_true", help="extract everything again (default: keep written files)")
    sub.add_parser("estimators", help="list the estimators and whether each is usable here")
    return parser


def _summary(tally: Tally, out: Path, fmt_name: str) -> str:
    parts = [f"{tally.images} image(s)"]
    if tally.videos:
        parts.append(f"{tally.videos} video(s), {tally.frames} frame(s)")
    lines = [f"pgpis pose extract: {', '.join(parts)} -> {out} ({fmt_name}): {tally.written} written, "
             f"{tally.kept} kept, no person: {len(tally.no_person)} file(s), failed: {len(tally.failed)}"]
    if tally.no_person:
        shown = tally.no_person[:20]
        lines.append("  no person (written all-missing): " + ", ".join(shown)
                     + (f" and {len(tally.no_person) - 20} more" if len(tally.no_person) > 20 else ""))
    for path, why in tally.failed:
        lines.append(f"  failed: {path}: {why}")
    return "\n".join(lines)


def extract(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    out = Path(args.out)
    sources = discover(args.inputs)
    _check_out(out, args.format, args.overwrite)
    estimator = load_named_estimator(args.estimator, args.estimator_option)
    name = str(getattr(estimator, "name", type(estimator).__name__))
    record = record_path(out, args.format)
    _check_record(record, name, args.format, args.overwrite)

    # units: one per file, except npz, where the images of one folder are the frames of one video
    units: list[tuple[str, Any]] = []
    if args.format == "npz":
        groups: dict[str, list[Source]] = {}
        for s in sources:
            if s.kind == "video":
                units.append(("video", s))
            else:
                key = s.rel.parent.as_posix() if s.rel.parent != PurePosixPath(".") else s.path.parent.name
                if key not in groups:
                    units.append(("folder", key))
                groups.setdefault(key, []).append(s)
    else:
        units = [(s.kind, s) for s in sources]
    slots = set(spread(len(units), max(0, args.preview_rows))) if args.preview else set()
    tally = Tally()
    run = Extractor(estimator, args.format, out, slots, tally)
    try:
        for i, (kind, unit) in enumerate(tqdm(units, desc="pose extract", unit="file")):
            label = str(unit.path) if isinstance(unit, Source) else unit
            try:
                if kind == "image":
                    run.image(i, unit)
                elif kind == "video":
                    run.video(i, unit)
                else:
                    run.image_folder_npz(i, unit, groups[unit])
            except (DataFormatError, OSError, ValueError, RuntimeError) as err:  # unreadable image/video, bad name
                why = f"{type(err).__name__}: {err}" if not isinstance(err, PgpisError) else str(err)
                tally.failed.append((label, why.splitlines()[0] if why else type(err).__name__))
                print(f"pgpis pose extract: cannot read {label}: {why}", file=sys.stderr)
    finally:
        run.close()
        close = getattr(estimator, "close", None)
        if callable(close):
            close()
    frame = fmt.FRAMES[args.format]
    fmt.write_record(record, {
        "tool": "pgpis pose extract", "estimator": name, "format": args.format, "frame_hw": list(frame),
        "frame": {"pcdms": "256x256 PCDMs frame (176-wide image area padded 40 px each side), x y rows, -1 missing",
                  "cfld": "256x176 (h x w) CFLD frame, -1 missing",
                  "npz": "210x260 (w x h) Phoenix frame, COCO-WholeBody (x, y, score), (0, 0, 0) not found"}[args.format],
        "inputs": {"images": tally.images, "videos": tally.videos, "frames": tally.frames},
        "written": tally.written, "kept": tally.kept, "no_person": tally.no_person,
        "failed": [f"{p}: {w}" for p, w in tally.failed]})
    print(_summary(tally, out, args.format))
    if args.preview:
        if run.previews:
            path = write_preview(run.previews, args.preview)
            print(f"pgpis pose extract: preview ({len(run.previews)} image(s)) -> {path}")
        else:
            print("pgpis pose extract: no image could be read; no preview written", file=sys.stderr)
    return 1 if tally.failed else 0


def list_estimators() -> int:
    from pgpis.pose import available_estimators

    for name, reason in available_estimators().items():
        print(f"{name}: {'available' if reason is None else 'unavailable: ' + reason}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """`pgpis pose` (registered in :data:`pgpis.cli.TOOLS`)."""
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.command == "estimators":
        return list_estimators()
    return extract(args)


__all__ = ["main", "extract", "discover", "build_parser", "load_named_estimator", "parse_options", "coco_to_openpose", "Source"]
