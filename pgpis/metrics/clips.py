"""Temporal metrics of a clip with no ground truth: `pgpis animate` output (a frames folder or the frames in memory).

Without a ground truth the flow comes from the generated frames themselves, so the warping error
measures what the flow cannot explain (flicker, appearing and vanishing detail). Its reference is
the driving video's own warping error (with ``--driving-video``): a real recording's frames at the
same size, the level a steady clip of that motion reaches. tOF and tLP need a ground truth and are
not reported.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
from PIL import Image

from pgpis.errors import DataFormatError, Problem
from pgpis.metrics.temporal import FrameSequence, TemporalResult, format_temporal, temporal_metrics

FRAME_FILE = re.compile(r"^frame(\d+)\.png$")


def folder_frames(folder: str | os.PathLike) -> list[Path]:
    """``frame0001.png ...`` of a `pgpis animate --frames-dir` folder, in frame order (numbers must run 1..N)."""
    root = Path(folder)
    if not root.is_dir():
        raise DataFormatError(Problem(str(root), "is not a folder", "pass the --frames-dir folder of pgpis animate"))
    numbered = sorted((int(m.group(1)), p) for p in root.iterdir() if (m := FRAME_FILE.match(p.name)))
    if not numbered:
        raise DataFormatError(Problem(str(root), "holds no frame0001.png ... files",
                                      "write them with pgpis animate --frames-dir DIR"))
    numbers = [n for n, _ in numbered]
    if numbers != list(range(1, len(numbers) + 1)):
        gap = next(i + 1 for i, n in enumerate(numbers) if n != i + 1)
        raise DataFormatError(Problem(str(root), f"frame{gap:04d}.png is missing (frames must run 1..N)",
                                      "regenerate the folder with pgpis animate --frames-dir"))
    return [p for _, p in numbered]


def clip_metrics(frames: Sequence[Image.Image | np.ndarray | str | os.PathLike], *,
                 driving_video: str | os.PathLike | None = None, max_frames: Optional[int] = None,
                 flow: str = "dis") -> TemporalResult:
    """Warping errors of the clip (flow of its own frames); with `driving_video`, the video's own as ``reference``."""
    frames = [np.asarray(f.convert("RGB")) if isinstance(f, Image.Image) else f for f in frames]
    first = frames[0] if isinstance(frames[0], np.ndarray) else np.asarray(Image.open(frames[0]).convert("RGB"))
    size = first.shape[:2]
    result = temporal_metrics([FrameSequence("clip", frames)], size, flow=flow)
    result.settings["reference"] = None
    if driving_video is not None:
        from pgpis.pose.media import read_frames

        driving = list(read_frames(driving_video, max_frames if max_frames is not None else len(frames)))
        ref = temporal_metrics([FrameSequence("driving video", driving)], size, flow=flow)
        result.reference = ref.samples
        result.settings["reference"] = (f"{driving_video}: the driving video's own warping error (its frames "
                                        f"resized to {size[0]}x{size[1]}, flow of its own frames)")
    return result


def write_clip_metrics(frames: Sequence[Image.Image | np.ndarray | str | os.PathLike], out: str | os.PathLike, *,
                       driving_video: str | os.PathLike | None = None, max_frames: Optional[int] = None,
                       flow: str = "dis", extra: Optional[dict[str, Any]] = None) -> str:
    """Score the clip, write ``{"temporal": ...}`` (+ `extra`) as JSON to `out`; returns the markdown rows."""
    result = clip_metrics(frames, driving_video=driving_video, max_frames=max_frames, flow=flow)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"temporal": result.to_dict("driving_video"), **(extra or {})}, indent=2,
                               allow_nan=False) + "\n")
    return format_temporal(result, "generated clip", "driving video" if driving_video else "no reference")


__all__ = ["clip_metrics", "folder_frames", "write_clip_metrics"]
