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
* :func:`read_settings` / :func:`write_settings` keep ``.<folder>.pgpis-generation.json`` next to the
  folder (outside it, so the folder holds only the images): what
  decides their pixels (weights fingerprint, seed, batch size, sampler, guidance, pair order, device). A
  re-run with other settings would otherwise keep images of another model or seed; the callers refuse
  (``pgpis generate``) or start over (``DDIMInference``). Starting over (``restart=`` in
  :func:`plan_split`) deletes the share's old files *before* the new record is written, so a kill
  during it cannot leave old images under the new record.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence

from PIL import Image

from pgpis.atomic import TEMP_INFIX, atomic_write
from pgpis.errors import DataFormatError, Problem

SETTINGS_SUFFIX = ".pgpis-generation.json"


def _format_of(path: Path) -> str:
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: unknown image extension '{path.suffix}' (use .png)")
    return fmt


def write_image(image: Image.Image, path: str | os.PathLike) -> Path:
    """Save `image` to `path` (format from the extension) so that `path` is never seen half-written."""
    target = Path(path)
    fmt = _format_of(target)
    return atomic_write(target, lambda f: image.save(f, format=fmt))


def output_folder(path: str | os.PathLike, what: str) -> Path:
    """`path` as a folder for generated images (created), or a named error when a file is in the way."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise DataFormatError(Problem(str(folder), f"{what} is a file, not a folder", "give a folder path (created "
                                      "if missing) for the generated images"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def settings_file(folder: Path) -> Path:
    """Where the settings record of `folder`'s images lives: ``.<name>.pgpis-generation.json`` beside it."""
    folder = Path(folder).resolve()
    return folder.parent / f".{folder.name}{SETTINGS_SUFFIX}"


def read_settings(folder: Path) -> Optional[dict[str, Any]]:
    """The settings record of the files in `folder`; None when there is none (a new folder, or older pgpis)."""
    path = settings_file(folder)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        return {"unreadable record": f"{type(err).__name__}"}
    return data if isinstance(data, dict) else {"unreadable record": type(data).__name__}


def write_settings(folder: Path, settings: Mapping[str, Any]) -> None:
    text = json.dumps(dict(settings), indent=1, sort_keys=True) + "\n"
    atomic_write(settings_file(folder), lambda f: f.write(text.encode()))


def settings_change(old: Optional[Mapping[str, Any]], new: Mapping[str, Any]) -> Optional[str]:
    """None if the record `old` is absent or equals `new`, else which settings differ (old -> new)."""
    if old is None or dict(old) == json.loads(json.dumps(dict(new))):
        return None
    if "unreadable record" in old:
        return f"the record is unreadable ({old['unreadable record']}), so they are unknown"
    def short(v: Any) -> str:
        r = json.dumps(v)
        return r if len(r) <= 60 else r[:57] + "..."

    keys = sorted(set(old) | set(new), key=str)
    return "; ".join(f"{k}: {short(old.get(k))} -> {short(new.get(k))}" for k in keys
                     if json.dumps(old.get(k)) != json.dumps(new.get(k)))


def names_digest(paths: Sequence[Path]) -> str:
    """sha1 of the split's file names in order (pair i's seed and batch depend on its position)."""
    return hashlib.sha1("\n".join(p.name for p in paths).encode()).hexdigest()


def weights_fingerprint(module: Any) -> str:
    """Parameter count and float64 sum of all parameters and buffers: cheap, and changes with any training step."""
    import torch

    with torch.no_grad():
        tensors = [t for t in (*module.parameters(), *module.buffers()) if t.is_floating_point()]
        total = sum((t.detach().double().sum() for t in tensors), torch.zeros((), dtype=torch.float64))
    return f"{sum(t.numel() for t in tensors)}:{float(total).hex()}"


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
    """None if `path` decodes completely, in the format its extension names (and is `size` = (h, w) when
    given), else what is wrong with it."""
    try:
        with Image.open(path) as im:
            fmt = im.format
            im.verify()
        with Image.open(path) as im:
            im.load()
            w, h = im.size
    except Exception as err:  # PIL raises OSError, SyntaxError, ValueError, zlib/struct errors for broken files
        return f"unreadable ({type(err).__name__}: {err})" if str(err) else f"unreadable ({type(err).__name__})"
    expected = Image.registered_extensions().get(path.suffix.lower())
    if expected is not None and fmt != expected:
        return f"a {fmt} file named {path.suffix}, expected {expected}"
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
    restart: Optional[str] = None  # why every existing file of the share was deleted and rewritten

    @property
    def generated(self) -> int:
        return sum(why == "missing" for why in self.write.values())

    @property
    def regenerated(self) -> int:
        return len(self.write) - self.generated

    def counts(self) -> dict[str, int]:
        return {"kept": self.kept, "regenerated": self.regenerated, "generated": self.generated,
                "duplicates": self.duplicates}


def plan_split(paths: Sequence[Path], batches: Sequence[range], *, restart: Optional[str] = None,
               size: Optional[tuple[int, int]] = None) -> SplitPlan:
    """Plan the run over `batches` (this process's share) of a split whose position i writes ``paths[i]``.

    `paths` covers the whole split, so a pair listed twice is owned by its first position whichever
    process holds the later one. Valid files are kept, missing and damaged ones are written; with
    `restart` (why: "overwrite", "settings changed ...") this share's existing files are deleted now
    and all of them written. Temp files that killed writes of this share's targets left are removed (only a
    target's owner writes it, so no other process's write in flight is touched).
    """
    first: dict[Path, int] = {}
    for i, p in enumerate(paths):
        first.setdefault(p, i)
    plan = SplitPlan(restart=restart)
    mine: dict[Path, set[str]] = {}
    for r in batches:
        todo: dict[int, str] = {}
        for i in r:
            p = paths[i]
            if first[p] != i:
                plan.duplicates += 1
                continue
            mine.setdefault(p.parent, set()).add(p.name)
            if p.exists() and not p.is_file():
                raise DataFormatError(Problem(str(p), "is a folder (or other non-file) where a generated image goes",
                                              "move it out of the output folder, or choose another output folder"))
            if not p.exists():
                todo[i] = "missing"
            elif restart is not None:
                p.unlink()
                todo[i] = restart
            elif (damage := image_damage(p, size)) is not None:
                todo[i] = damage
            else:
                plan.kept += 1
        if todo:
            plan.batches.append(r)
            plan.write.update(todo)
    for folder, names in mine.items():
        for stale in stale_temp_files(folder, names):
            stale.unlink(missing_ok=True)
            plan.stale_temps += 1
    return plan


def summary(plan: SplitPlan, paths: Sequence[Path], folder: Path, *, shown: int = 10) -> str:
    """One line of counts, then one line per regenerated damaged file (the first `shown`) with what was wrong."""
    c = plan.counts()
    line = (f"{folder}: {c['kept']} kept, {c['regenerated']} regenerated, {c['generated']} generated"
            + (f", {c['duplicates']} duplicate pairs (written once, from their first listing)" if c["duplicates"] else "")
            + (f", {plan.stale_temps} stale temp files removed" if plan.stale_temps else ""))
    redone = [(i, why) for i, why in sorted(plan.write.items()) if why not in ("missing", plan.restart)]
    if plan.restart is not None and plan.regenerated:
        line += f"\n  started over ({plan.restart})"
    lines = [line] + [f"  regenerated {paths[i].name} (pair {i}): {why}" for i, why in redone[:shown]]
    if len(redone) > shown:
        lines.append(f"  ... and {len(redone) - shown} more")
    return "\n".join(lines)


__all__ = ["output_folder", "write_image", "image_damage", "stale_temp_files", "plan_split", "SplitPlan", "summary",
           "read_settings", "write_settings", "settings_change", "names_digest", "weights_fingerprint", "TEMP_INFIX",
           "settings_file"]
