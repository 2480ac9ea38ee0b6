"""One atomic file write for every writer that a kill must not leave half-done (images, records, checkpoints).

The bytes go to ``.<name>.tmp-XXXXXXXX`` in the target's own folder, which is then ``os.replace``\\ d over
the target: atomic within one filesystem, so the target holds either its previous content or the whole
new one. A dot-name, so folder scans ignore a temp file a kill left behind. ``durable=True`` also
fsyncs the file and the folder, so a machine crash cannot leave an empty file behind a completed rename
(checkpoints want that; generated images skip it, since a damaged image is detected and regenerated).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable

TEMP_INFIX = ".tmp-"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (POSIX); a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(target: Path, write: Callable[[BinaryIO], Any], *, durable: bool = False) -> Path:
    """Call ``write(file)`` on a temp file beside `target`, then move it over `target` (see the module docstring)."""
    target = Path(target)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}{TEMP_INFIX}", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; the file gets the usual mode
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(target.parent)
    return target


def atomic_write_text(target: Path, text: str, *, encoding: str = "utf-8", durable: bool = False) -> Path:
    """:func:`atomic_write` of `text` (JSON records, keypoint files, CSVs)."""
    return atomic_write(target, lambda f: f.write(text.encode(encoding)), durable=durable)


__all__ = ["atomic_write", "atomic_write_text", "fsync_dir", "TEMP_INFIX"]
