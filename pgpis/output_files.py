"""A split's generated images on disk: written atomically, checked on resume, each pair written once.

Generating a whole split (``DDIMInference``, ``pgpis generate --pairs``) takes hours and gets
killed (pre-emption, OOM, Ctrl-C). A re-run keeps what is done, generates what is not, and never
trusts a file a crash cut short:

* :func:`write_image` writes ``.<name>.tmp-XXXXXXXX`` in the target's folder and ``os.replace``\\ s it
  over the target (atomic within one filesystem), so a kill leaves either no file or a whole one
  under the final name. A dot-name, so folder scans (:func:`pgpis.metrics.match_generated`) ignore
  it. No fsync per image: a machine crash that loses a renamed file's data leaves an empty or short
  file, which :func:`image_damage` catches on the re-run.
* :func:`image_damage` decodes a file completely: ``verify`` checks the PNG chunks and CRCs, a full
  ``load`` catches short image data. Files from older non-atomic writers, half copies or crashes are
  regenerated, not kept.
* :func:`plan_split` decides per fixed batch what to write. A batch with anything to write is
  generated whole: batch composition can move a pixel by one level (float sums in batched
  kernels), so a resumed split equals an uninterrupted run pixel for pixel only if every sample is
  computed in its original batch. A (source, target) pair listed twice maps to one file; it is
  written once, from its first listing (the seed of that position).
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional, Sequence

from PIL import Image

TEMP_INFIX = ".tmp-"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _format_of(path: Path) -> str:
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: unknown image extension '{path.suffix}' (use .png)")
    return fmt


def write_image(image: Image.Image, path: str | os.PathLike) -> Path:
    """Save `image` to `path` (format from the extension) so that `path` is never seen half-written."""
    target = Path(path)
    fmt = _format_of(target)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}{TEMP_INFIX}", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            image.save(f, format=fmt)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; an image gets the usual file mode
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def stale_temp_files(folder: Path, names: Iterable[str]) -> list[Path]:
    """Temp files that killed writes of `names` in `folder` left behind (this and older pgpis versions)."""
    wanted = set(names)
    if not folder.is_dir():
        return []
    stale = []
    with os.scandir(folder) as entries:
        for e in entries:
            n = e.name
            if n.startswith(".") and TEMP_INFIX in n and n[1:n.rfind(TEMP_INFIX)] in wanted:
                stale.append(Path(e.path))
            elif n.endswith(".tmp") and n[:-4] in wanted:  # the fixed `<name>.tmp` of pgpis before atomic temps
                stale.append(Path(e.path))
    return sorted(stale)


def image_damage(path: Path, size: Optional[tuple[int, int]] = None) -> Optional[str]:
    """None if `path` decodes completely (and is `size` = (h, w) when given), else what is wrong with it."""
    try:
        with Image.open(path) as im:
            im.verify()
        with Image.open(path) as im:
            im.load()
            w, h = im.size
    except Exception as err:  # PIL raises OSError, SyntaxError, ValueError, zlib/struct errors for broken files
        return f"unreadable ({type(err).__name__}: {err})" if str(err) else f"unreadable ({type(err).__name__})"
    if size is not None and (h, w) != tuple(size):
        return f"{w}x{h} px, expected {size[1]}x{size[0]}"
    return None


@dataclass
class SplitPlan:
    """What a (re-)run writes: the fixed batches to generate and, in them, the positions to write."""

    batches: list[range] = field(default_factory=list)
    write: dict[int, str] = field(default_factory=dict)  # position -> why: "missing", "overwrite" or the damage
    kept: int = 0
    duplicates: int = 0
    stale_temps: int = 0

    @property
    def generated(self) -> int:
        return sum(why == "missing" for why in self.write.values())

    @property
    def regenerated(self) -> int:
        return len(self.write) - self.generated

    def counts(self) -> dict[str, int]:
        return {"kept": self.kept, "regenerated": self.regenerated, "generated": self.generated,
                "duplicates": self.duplicates}


def plan_split(paths: Sequence[Path], batches: Sequence[range], *, overwrite: bool = False,
               size: Optional[tuple[int, int]] = None) -> SplitPlan:
    """Plan the run over `batches` (this process's share) of a split whose position i writes ``paths[i]``.

    `paths` covers the whole split, so a pair listed twice is owned by its first position whichever
    process holds the later one. Valid files are kept (unless `overwrite`), missing and damaged ones
    are written; stale temp files of the planned targets are removed (only their owner writes them).
    """
    first: dict[Path, int] = {}
    for i, p in enumerate(paths):
        first.setdefault(p, i)
    plan = SplitPlan()
    for r in batches:
        todo: dict[int, str] = {}
        for i in r:
            p = paths[i]
            if first[p] != i:
                plan.duplicates += 1
            elif not p.exists():
                todo[i] = "missing"
            elif overwrite:
                todo[i] = "overwrite"
            elif (damage := image_damage(p, size)) is not None:
                todo[i] = damage
            else:
                plan.kept += 1
        if todo:
            plan.batches.append(r)
            plan.write.update(todo)
    by_folder: dict[Path, set[str]] = {}
    for i in plan.write:
        by_folder.setdefault(paths[i].parent, set()).add(paths[i].name)
    for folder, names in by_folder.items():
        for stale in stale_temp_files(folder, names):
            stale.unlink(missing_ok=True)
            plan.stale_temps += 1
    return plan


def summary(plan: SplitPlan, paths: Sequence[Path], folder: Path, *, shown: int = 10) -> str:
    """One line of counts, then one line per regenerated file (the first `shown`) with what was wrong."""
    c = plan.counts()
    line = (f"{folder}: {c['kept']} kept, {c['regenerated']} regenerated, {c['generated']} generated"
            + (f", {c['duplicates']} duplicate pairs (written once, from their first listing)" if c["duplicates"] else "")
            + (f", {plan.stale_temps} stale temp files removed" if plan.stale_temps else ""))
    redone = [(i, why) for i, why in sorted(plan.write.items()) if why != "missing"]
    lines = [line] + [f"  regenerated {paths[i].name} (pair {i}): {why}" for i, why in redone[:shown]]
    if len(redone) > shown:
        lines.append(f"  ... and {len(redone) - shown} more")
    return "\n".join(lines)


__all__ = ["write_image", "image_damage", "stale_temp_files", "plan_split", "SplitPlan", "summary", "TEMP_INFIX"]
