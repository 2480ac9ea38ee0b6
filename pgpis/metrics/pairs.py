"""Matching generated files to a split's pairs, and the copy-the-source baseline.

Generated images are named ``<source stem>_to_<target stem>.png`` (stem = the
dataset image name without extension); the generation callbacks write the
same names. Missing files are an error unless explicitly allowed; files that
match no pair are reported, never silently evaluated.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from PIL import Image

from pgpis.images import load_rgb
from pgpis.errors import DataFormatError, Problem

GENERATED_SUFFIX = ".png"


def image_stem(name: str) -> str:
    """Dataset image name without its extension (``fashionWOMEN...jpg`` -> ``fashionWOMEN...``)."""
    return name.rsplit(".", 1)[0] if "." in name else name


def generated_name(source: str, target: str) -> str:
    return f"{image_stem(source)}_to_{image_stem(target)}{GENERATED_SUFFIX}"


@dataclass(frozen=True)
class EvalPair:
    """One pair to score: its position in the split's pair list and the files involved."""

    index: int
    source: str
    target: str
    generated: Path
    target_path: Path


@dataclass
class Matching:
    found: list[EvalPair] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # expected generated file names not present
    unexpected: list[str] = field(default_factory=list)  # files in the folder that match no pair
    duplicates: list[str] = field(default_factory=list)  # pairs listed more than once (scored once)


def match_generated(
    generated_dir: str | Path,
    pairs: Sequence[tuple[str, str]],
    image_path: Callable[[str], Path],
) -> Matching:
    """Pair each (source, target) with ``generated_dir/<src>_to_<tgt>.png``."""
    gdir = Path(generated_dir)
    if not gdir.is_dir():
        raise DataFormatError(Problem(str(gdir), "the generated-images folder does not exist",
                                      "pass --generated DIR holding <source stem>_to_<target stem>.png files"))
    present = {p.name for p in gdir.iterdir() if p.is_file() and not p.name.startswith(".")}
    m = Matching()
    expected: set[str] = set()
    for i, (src, tgt) in enumerate(pairs):
        name = generated_name(src, tgt)
        if name in expected:
            m.duplicates.append(name)
            continue
        expected.add(name)
        if name in present:
            m.found.append(EvalPair(i, src, tgt, gdir / name, Path(image_path(tgt))))
        else:
            m.missing.append(name)
    m.unexpected = sorted(present - expected)
    return m


def missing_error(generated_dir: str | Path, matching: Matching, n_pairs: int) -> DataFormatError:
    """One problem per missing file, with the fix."""
    fix = "generate them (the DDIM inference callback writes this naming) or pass --allow-missing to score the rest"
    return DataFormatError([
        Problem(str(Path(generated_dir) / name), f"missing generated image ({len(matching.missing)} of {n_pairs} pairs missing)", fix)
        for name in matching.missing
    ])


def copy_source(
    pairs: Sequence[tuple[str, str]],
    image_path: Callable[[str], Path],
    out_dir: str | Path,
    size: tuple[int, int] | None = None,
) -> Path:
    """Write the copy-the-source baseline: every target replaced by its source image.

    `size` (h, w) resizes with PIL bicubic; None keeps the source's size. The
    baseline is the floor any pose-transfer model has to beat.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for src, tgt in pairs:
        img = load_rgb(image_path(src), src)
        if size is not None and img.size != (size[1], size[0]):
            img = img.resize((size[1], size[0]), Image.BICUBIC)
        img.save(out / generated_name(src, tgt))
    return out
