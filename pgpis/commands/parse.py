"""`pgpis parse INPUT... --out DIR` / `pgpis parse --dataset deepfashion --root ROOT`: LIP parsing maps of photos.

Inputs are image files, folders (searched recursively) and videos, found as `pgpis pose extract` finds them
(:func:`pgpis.pose.media.discover`). Every image or frame goes through one human parser (``--parser``, default
``schp-lip``: SCHP on LIP, what TruePose's maps came from; docs/parsing.md) and is written as a palette PNG of LIP
class indices (:func:`pgpis.data.parsing.parsing_image`), the format TruePose and ``pgpis data check --parsing``
read:

* a DeepFashion image (a CFLD ``fashion...jpg`` or a PCDMs ``img/...`` path) -> ``DIR/<canonical stem>.png``, so
  ``--out ROOT/parsing`` is where pgpis looks for it (``--dataset deepfashion --root ROOT`` does this for every image
  of the copy); any other image -> ``DIR/<path relative to its input folder>.png``; a video's frames ->
  ``DIR/<video>/frame0001.png``.

The run is resumable: a map already written and readable is kept (counted as "kept"). Maps are written atomically.
An unreadable file is named on its own line, the rest carries on, and the exit code is 1 at the end. ``parse.json``
in DIR records the parser, its label set and the counts; resuming with another parser is refused (``--overwrite``
starts over), so one folder never mixes two parsers.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np
from PIL import Image

from pgpis.atomic import atomic_write
from pgpis.images import load_rgb
from pgpis.data.parsing import LIP, parsing_image, read_parsing
from pgpis.errors import DataFormatError, PgpisError
from pgpis.parsing import InvalidParser, InvalidParsing, ParserUnavailable, parse_lip, parser_name
from pgpis.parsing.options import add_parser_arguments, load_named_parser
from pgpis.parsing.preview import ParsingPreview

RECORD = "parse.json"
PREVIEW_ROWS = 16
FRAME_NAME = "frame{:04d}"


class ParseError(PgpisError, ValueError):
    """A problem with the command as a whole (inputs, --out, a record from another parser), before any map is made."""


@dataclass(frozen=True)
class Unit:
    """One input file: an image, or a video whose frames are parsed in turn, and its map name under --out."""

    path: Path
    name: str  # the map's path relative to --out without .png (a video: the folder of its frames' maps)
    kind: str = "image"  # "image" | "video"


@dataclass
class Tally:
    images: int = 0
    frames: int = 0
    written: int = 0
    kept: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)


# --------------------------------------------------------------------------- inputs
def _image_name(rel: PurePosixPath) -> str:
    """The map's name: a DeepFashion image's canonical stem, else its relative path without suffix."""
    from pgpis.data.deepfashion.layout import stem
    from pgpis.data.deepfashion.layout import cfld_name

    return stem(cfld_name(rel)) if rel.suffix else rel.as_posix()


def units_from_inputs(inputs: Sequence[str]) -> list[Unit]:
    """Every image and video under `inputs` (:func:`pgpis.pose.media.discover`)."""
    from pgpis.pose.media import discover

    return [Unit(src.path, _image_name(src.rel) if src.kind == "image" else src.rel.with_suffix("").as_posix(),
                 src.kind) for src in discover(inputs)]


def units_from_dataset(dataset: str, root: Path) -> list[Unit]:
    """Every image of a DeepFashion copy, named where ``pgpis data check --parsing`` and TruePose read the maps."""
    from pgpis.data.deepfashion.layout import read_deepfashion_index, stem

    if dataset != "deepfashion":
        raise ParseError(f"--dataset {dataset}: only deepfashion has parsing maps in pgpis (TruePose's data)")
    index = read_deepfashion_index(root, check_images="none")
    return [Unit(index.image_path(n), stem(n)) for n in sorted(index.image_paths)]


def pictures(unit: Unit) -> Iterator[tuple[str, str, Callable[[], np.ndarray]]]:
    """(label, map name, pixels) of each picture of a unit: the image itself, or each frame of a video."""
    if unit.kind == "image":
        yield str(unit.path), unit.name, lambda: np.asarray(load_rgb(unit.path, unit.path.name))
        return
    from pgpis.pose.media import read_frames

    for t, rgb in enumerate(read_frames(unit.path)):
        yield f"{unit.path} frame {t + 1}", f"{unit.name}/{FRAME_NAME.format(t + 1)}", lambda rgb=rgb: rgb


# --------------------------------------------------------------------------- writing
def map_is_valid(path: Path) -> bool:
    """Whether `path` is a LIP parsing map pgpis reads (a file a kill truncated is not)."""
    if not path.is_file():
        return False
    try:
        read_parsing(path)
    except DataFormatError:
        return False
    return True


def write_map(path: Path, labels: np.ndarray) -> None:
    """The map as a LIP palette PNG, atomically (a kill leaves no half-written map under the final name)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = parsing_image(labels)
    atomic_write(path, lambda f: image.save(f, format="PNG"))


# --------------------------------------------------------------------------- command
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pgpis parse",
        description="Human parsing of photos and videos: LIP parsing maps (palette PNGs of class indices) where "
                    "TruePose and `pgpis data check --parsing` read them. Resumable: maps already written are kept. "
                    "Parsers: schp-lip (default), schp-atr, or your own class (docs/parsing.md).")
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="image files, folders (recursive), video files")
    p.add_argument("--out", default=None, help="folder for the maps (e.g. ROOT/parsing); default with --dataset: "
                                                "ROOT/parsing")
    p.add_argument("--dataset", choices=("deepfashion",), default=None,
                   help="instead of INPUTs: every image of the dataset at --root")
    p.add_argument("--root", default=None, help="--dataset: the DeepFashion copy (either layout)")
    add_parser_arguments(p)
    p.add_argument("--preview", default=None, metavar="PNG", help="also write a grid: image | parsing map")
    p.add_argument("--preview-rows", type=int, default=PREVIEW_ROWS, help="images in the preview (default 16)")
    p.add_argument("--overwrite", action="store_true", help="parse everything again (default: keep written maps)")
    p.add_argument("--list-parsers", action="store_true", help="list the parsers and whether each is usable here")
    return p


def _out_folder(out: Path, overwrite: bool) -> None:
    from pgpis.pose.formats import remove_stale_temps

    if out.exists() and not out.is_dir():
        raise ParseError(f"--out {out} is a file; pgpis parse writes a folder of PNG maps")
    out.mkdir(parents=True, exist_ok=True)
    if overwrite:
        for path in out.rglob("*.png"):
            path.unlink()
    remove_stale_temps(out)


def _summary(tally: Tally, out: Path, parser: str) -> str:
    parts = f"{tally.images} image(s)" + (f", {tally.frames} video frame(s)" if tally.frames else "")
    lines = [f"pgpis parse: {parts} -> {out} ({parser}): {tally.written} written, {tally.kept} kept, "
             f"failed: {len(tally.failed)}"]
    lines += [f"  failed: {path}: {why}" for path, why in tally.failed]
    return "\n".join(lines)


class Run:
    """One parser over the units: writes or keeps each map, collects the preview pairs and the counts."""

    def __init__(self, parser: Any, out: Path, overwrite: bool, preview_slots: set[int]):
        self.parser, self.out, self.overwrite, self.slots = parser, out, overwrite, preview_slots
        self.tally = Tally()
        self.previews: list[ParsingPreview] = []

    def picture(self, label: str, name: str, pixels: Callable[[], np.ndarray], preview: bool) -> None:
        target = self.out / f"{name}.png"
        rgb = None
        if not self.overwrite and map_is_valid(target):
            self.tally.kept += 1
        else:
            rgb = pixels()
            write_map(target, parse_lip(self.parser, rgb))
            self.tally.written += 1
        if preview:
            self.previews.append(ParsingPreview(Image.fromarray(rgb if rgb is not None else pixels()),
                                                read_parsing(target), name))

    def unit(self, index: int, unit: Unit) -> None:
        for t, (label, name, pixels) in enumerate(pictures(unit)):
            if unit.kind == "image":
                self.tally.images += 1
            else:
                self.tally.frames += 1
            try:
                self.picture(label, name, pixels, preview=t == 0 and index in self.slots)
            except (InvalidParser, InvalidParsing, ParserUnavailable):
                raise  # the parser itself is broken: every picture would fail the same way
            except (DataFormatError, OSError, ValueError, RuntimeError) as err:  # an unreadable image
                why = str(err) if isinstance(err, PgpisError) else f"{type(err).__name__}: {err}"
                self.tally.failed.append((label, why.strip().splitlines()[-1].strip() if why else type(err).__name__))
                print(f"pgpis parse: cannot parse {label}: {why}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from pgpis.parsing.preview import write_parsing_preview
    from pgpis.pose.formats import record_conflict, write_record
    from pgpis.pose.preview import spread

    if args.dataset:
        if not args.root or args.inputs:
            raise ParseError("--dataset deepfashion takes --root ROOT and no INPUTs")
        units = units_from_dataset(args.dataset, Path(args.root))
        out = Path(args.out) if args.out else Path(args.root) / "parsing"
    else:
        if not args.inputs or not args.out:
            raise ParseError("give INPUT... --out DIR (or --dataset deepfashion --root ROOT)")
        units, out = units_from_inputs(args.inputs), Path(args.out)
    _out_folder(out, args.overwrite)
    parser = load_named_parser(args.parser, args.parser_option)
    name = parser_name(parser)
    record = out / RECORD
    conflict = None if args.overwrite else record_conflict(record, {"parser": name})
    if conflict:
        raise ParseError(f"{record}: {conflict}; resuming would mix the two. Fix: rerun with the same --parser, pass "
                         "--overwrite to parse everything again, or choose another --out")
    slots = set(spread(len(units), max(0, args.preview_rows))) if args.preview else set()
    job = Run(parser, out, args.overwrite, slots)
    try:
        for i, unit in enumerate(tqdm(units, desc="parse", unit="file")):
            try:
                job.unit(i, unit)
            except (OSError, ValueError, RuntimeError) as err:
                if isinstance(err, (InvalidParser, InvalidParsing, ParserUnavailable)):
                    raise
                job.tally.failed.append((str(unit.path), f"{type(err).__name__}: {err}".splitlines()[0]))
                print(f"pgpis parse: cannot read {unit.path}: {err}", file=sys.stderr)  # a video that does not decode
    finally:
        close = getattr(parser, "close", None)
        if callable(close):
            close()
    tally = job.tally
    write_record(record, {"tool": "pgpis parse", "parser": name, "label_set": "lip", "classes": list(LIP.classes),
                          "format": "palette PNG of LIP class indices, one per image, the image's size",
                          "inputs": {"images": tally.images, "video_frames": tally.frames},
                          "written": tally.written, "kept": tally.kept,
                          "failed": [f"{p}: {w}" for p, w in tally.failed]})
    print(_summary(tally, out, name))
    if args.preview:
        if job.previews:
            print(f"pgpis parse: preview ({len(job.previews)} image(s)) -> "
                  f"{write_parsing_preview(job.previews, args.preview)}")
        else:
            print("pgpis parse: no image could be read; no preview written", file=sys.stderr)
    return 1 if tally.failed else 0


def list_parsers() -> int:
    from pgpis.parsing import available_parsers

    for name, reason in available_parsers().items():
        print(f"{name}: {'available' if reason is None else 'unavailable: ' + reason}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """`pgpis parse` (registered in :data:`pgpis.cli.TOOLS`)."""
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.list_parsers:
        return list_parsers()
    return run(args)


__all__ = ["main", "build_parser", "run", "units_from_inputs", "units_from_dataset", "map_is_valid", "write_map",
           "pictures", "Unit"]
