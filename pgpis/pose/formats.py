"""Estimated keypoints written in the three formats pgpis reads (docs/data-formats.md), by pgpis's own writers.

* ``pcdms``: one txt per image, 18 rows ``x y`` in the **256x256** PCDMs frame
  (:func:`pgpis.pose.keypoints.write_pcdms_keypoints`): the image's pixels are rescaled to the 176x256
  CFLD frame, then shifted right by the 40 px pad (:func:`~pgpis.pose.keypoints.cfld_to_pcdms_frame`).
* ``cfld``: one annotation CSV ``name:keypoints_y:keypoints_x`` (``:`` separated, JSON lists in the
  **256x176** frame, :func:`~pgpis.pose.keypoints.format_cfld_keypoints`), appended row by row so a killed
  run keeps what it wrote.
* ``npz``: Phoenix's ``{"<video>": float32 [T, 133, 3]}`` COCO-WholeBody ``(x, y, score)`` in pixels of the
  **210x260** (w x h) Phoenix frame (written by :func:`pgpis.data.phoenix.keypoints.write_video_npz`), one file
  per video. A point that was not found is ``(0, 0, 0)``, as Phoenix's HRNet files write it (their readers take
  score < 0.3 as missing); a frame with no person is all zeros.

Coordinates are mapped by plain scaling from the image's own size to the frame, as the datasets' own
keypoints were (no crop, no pad), so they stay on the pixels the DataModule's resized image shows; a pose
that drives *another* image is fitted with its proportions kept instead (:func:`to_frame`, ``fit="contain"``). A point the estimator put outside the image is written as missing: it
cannot be drawn, and `pgpis data check` would refuse it.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

import numpy as np

from pgpis.atomic import atomic_write_text
from pgpis.errors import DataFormatError, Problem
from pgpis.pose import keypoints as kpt

FORMATS = ("pcdms", "cfld", "npz")
PHOENIX_FRAME = (260, 210)  # (h, w), as pgpis.data.phoenix.keypoints.FRAME_SIZE
FRAMES: dict[str, tuple[int, int]] = {"cfld": kpt.CFLD_FRAME, "pcdms": kpt.PCDMS_FRAME, "npz": PHOENIX_FRAME}
CFLD_HEADER = kpt.CFLD_HEADER
DECIMALS = 2  # written precision (pixels of the frame): 0.01 px, far below any estimator's error


def _inside(points: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bool ``[K]``: present and inside the ``(h, w)`` image (pixel centres 0..w-1, 0..h-1, 0.5 px slack)."""
    h, w = size
    x, y = points[:, 0], points[:, 1]
    present = ~kpt.missing_mask(points)
    return present & (x >= -0.5) & (x <= w - 0.5) & (y >= -0.5) & (y <= h - 0.5)


def to_frame(points: np.ndarray, image_size: tuple[int, int], frame: tuple[int, int], fit: str = "stretch"
             ) -> np.ndarray:
    """``[K, 2]`` image pixels -> `frame` pixels (missing stay -1).

    ``fit="stretch"``: plain scaling of each axis, as the datasets' keypoints and the DataModules' image resize
    (no crop, no pad): right for keypoints that belong to that image. ``fit="contain"``: one scale for both axes
    (the image fitted inside the frame, centred), so a pose from a photo of another shape keeps its proportions:
    right for a pose that drives another image (``generate --pose-image``, ``animate --driving-video``).
    """
    if fit == "stretch":
        return kpt.rescale_keypoints(points, image_size, frame)
    if fit != "contain":
        raise ValueError(f"fit {fit!r}: use 'stretch' or 'contain'")
    pts = np.asarray(points, dtype=np.float32)
    miss = kpt.missing_mask(pts)
    (ih, iw), (fh, fw) = image_size, frame
    scale = min(fh / ih, fw / iw)
    out = pts[:, :2] * scale + np.array([(fw - iw * scale) / 2, (fh - ih * scale) / 2], np.float32)
    out[miss] = kpt.MISSING
    return out.astype(np.float32)


def body_in_frame(body: np.ndarray, image_size: tuple[int, int], frame: tuple[int, int] = kpt.CFLD_FRAME,
                  fit: str = "stretch") -> np.ndarray:
    """``float32 [18, 2]`` (x, y) of an estimate's body ``[18, 2+]`` (image pixels) in `frame` (h, w); -1 missing.

    Points outside the image are missing; the others are clamped onto the frame's pixel grid and rounded
    (`fit`: see :func:`to_frame`).
    """
    body = np.asarray(body, dtype=np.float32)
    keep = _inside(body, image_size)
    xy = to_frame(body[:, :2], image_size, frame, fit)
    h, w = frame
    xy[:, 0] = np.clip(xy[:, 0], 0, w - 1)
    xy[:, 1] = np.clip(xy[:, 1], 0, h - 1)
    xy = np.round(xy, DECIMALS).astype(np.float32)
    xy[~keep] = kpt.MISSING
    return xy


def body_in_pcdms_frame(body: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """``[18, 2]`` in the 256x256 PCDMs frame: the 176x256 CFLD frame, then the 40 px pad (missing stay -1)."""
    xy = kpt.cfld_to_pcdms_frame(body_in_frame(body, image_size, kpt.CFLD_FRAME))
    present = ~kpt.missing_mask(xy)
    xy[present] = np.round(xy[present], DECIMALS)  # after the shift: 38.73 + 40 is 78.729996 in float32
    return xy


def wholebody_in_phoenix_frame(wholebody: np.ndarray, image_size: tuple[int, int], fit: str = "stretch"
                               ) -> np.ndarray:
    """``float32 [133, 3]`` in the 210x260 Phoenix frame; a missing or outside point is ``(0, 0, 0)``."""
    wb = np.asarray(wholebody, dtype=np.float32)
    keep = _inside(wb, image_size)
    out = np.zeros_like(wb[:, :3])
    xy = to_frame(wb[:, :2], image_size, PHOENIX_FRAME, fit)
    out[:, :2] = np.round(xy, DECIMALS)
    out[:, 2] = wb[:, 2]
    out[~keep] = 0.0
    return out


# --------------------------------------------------------------------------- files
def write_pcdms(path: str | os.PathLike, body: np.ndarray, image_size: tuple[int, int]) -> Path:
    """Write one PCDMs pose txt (atomically: a kill leaves the old file or the whole new one)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, kpt.format_pcdms_keypoints(body_in_pcdms_frame(body, image_size)))


def pcdms_is_valid(path: Path) -> bool:
    """Whether `path` is a PCDMs pose file pgpis reads (a file a kill truncated is not)."""
    try:
        kpt.read_pcdms_keypoints(path)
    except DataFormatError:
        return False
    return True


class CfldAnnotationWriter:
    """A CFLD annotation CSV written one row at a time (flushed), resumable.

    Opening an existing file keeps its valid rows (:attr:`rows`, name -> ``[18, 2]``) and drops a row a kill
    cut short; rows are then appended. A file that is not a CFLD annotation at all is an error, never
    overwritten.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.rows: dict[str, np.ndarray] = {}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            self._resume()
        else:
            self.path.write_text(CFLD_HEADER + "\n")
        self._file = self.path.open("a", encoding="utf-8")

    def _resume(self) -> None:
        lines = kpt.text_lines(kpt.read_text(self.path, "delete it or choose another --out"))
        if not lines or lines[0].strip() != CFLD_HEADER:
            raise DataFormatError(Problem(str(self.path), f"exists but is not a CFLD annotation (header "
                                          f"{(lines[0][:60] if lines else '')!r}, expected {CFLD_HEADER!r})",
                                          "choose another --out, or delete the file to start over", line=1))
        rows, _, _ = kpt.cfld_annotation_rows(self.path, lines)  # a bad row was cut short by a kill: extracted again
        self.rows = {name: kp for _, name, kp in rows}
        kept = [CFLD_HEADER] + [lines[lineno - 1] for lineno, _, _ in rows]
        if len(kept) != len(lines):  # rewrite without the damaged rows
            atomic_write_text(self.path, "\n".join(kept) + "\n")

    def add(self, name: str, body: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
        """Append the row of image `name`; returns its ``[18, 2]`` in the 256x176 frame."""
        if ":" in name or "\n" in name:
            raise DataFormatError(Problem(str(self.path), f"image name {name!r} holds ':' or a newline, which the "
                                          "':'-separated CFLD annotation cannot store", "rename the image file"))
        kp = body_in_frame(body, image_size, kpt.CFLD_FRAME)
        self._file.write(kpt.format_cfld_row(name, kp) + "\n")
        self._file.flush()
        self.rows[name] = kp
        return kp

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "CfldAnnotationWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_record(path: str | os.PathLike, record: dict) -> Path:
    """The run's record (estimator, format, frame, counts) as JSON, atomically."""
    return atomic_write_text(Path(path), json.dumps(record, indent=2, sort_keys=True) + "\n")


def record_conflict(path: str | os.PathLike, expected: Mapping[str, Any]) -> Optional[str]:
    """How the run recorded at `path` differs from `expected` (e.g. ``{"estimator": ..., "format": ...}``), or None.

    None also when there is no record or it does not parse (the new run writes a fresh one). Resumable commands
    refuse a difference: resuming would mix the output of two estimators (parsers, formats) in one folder.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    for key, now in expected.items():
        if old.get(key) != now:
            return f"the files there were written with {key} {old.get(key)!r}, this run uses {now!r}"
    return None


def remove_stale_temps(folder: Path, names: Iterable[str] = ("*.tmp-*",)) -> None:
    """Delete temp files a killed run left (dot-names with ``.tmp-``), so no reader meets half a file."""
    if folder.is_dir():
        for pattern in names:
            for p in folder.rglob("." + pattern):
                if p.is_file():
                    p.unlink(missing_ok=True)


__all__ = ["FORMATS", "FRAMES", "PHOENIX_FRAME", "CFLD_HEADER", "to_frame", "body_in_frame", "body_in_pcdms_frame",
           "wholebody_in_phoenix_frame", "write_pcdms", "pcdms_is_valid", "record_conflict",
           "CfldAnnotationWriter", "write_record", "remove_stale_temps"]
