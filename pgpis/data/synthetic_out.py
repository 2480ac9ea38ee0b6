"""The output folder of every synthetic writer (`pgpis data synth`): never real data, never stale files."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Sequence

from pgpis.errors import DataFormatError, Problem

#: the file every pgpis synthetic writer leaves in its output folder (what marks a folder as generated data)
SYNTHETIC_MARKER = ".pgpis-synthetic"


def prepare_synthetic_out(out: Path, marker: str, written_dirs: Sequence[str], written_files: Sequence[str] = ()
                          ) -> Path:
    """Create `out`, or reuse it when it is empty or a previous synthetic copy (it holds `marker`), whose
    `written_dirs` / `written_files` are removed first so no stale images remain; a folder holding anything
    else (real data, which synthetic files would mix with) or a file is refused with the fix."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataFormatError(Problem(str(out), "the output path exists and is not a folder", "pass a folder path to --out"))
    if out.is_dir() and any(out.iterdir()):
        if not (out / marker).exists():
            raise DataFormatError(Problem(str(out), f"the folder is not empty and has no {marker} marker, so it may hold "
                                          "real data that synthetic files would mix with",
                                          "pass an empty or new folder to --out"))
        for name in written_dirs:
            shutil.rmtree(out / name, ignore_errors=True)
        for name in written_files:
            (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    return out
