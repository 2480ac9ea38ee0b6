"""Finding and reading the pictures a pose estimator or a human parser looks at: image files, video frames.

:func:`discover` turns the command line's files and folders into :class:`Source` s (`pgpis pose extract`,
`pgpis parse`), each named by its path relative to the folder it was found in.

Images are read by :func:`pgpis.images.load_rgb`, as the DataModules and every other entry point read
them (EXIF orientation applied: a phone photo stored sideways is upright), so keypoints written for a file land
on the pixels training and generation will see. Videos are read frame by frame with imageio (mp4, mov, avi, mkv,
webm through imageio-ffmpeg; GIF through Pillow), never whole into memory.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterator, Optional, Sequence

import numpy as np

from pgpis.images import load_rgb

from pgpis.errors import DataFormatError, Problem

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".gif")


def read_image(path: str | os.PathLike) -> np.ndarray:
    """RGB uint8 ``[H, W, 3]`` pixels of an image file, upright (:func:`pgpis.images.load_rgb`)."""
    return np.asarray(load_rgb(path, fix="re-export the image, or remove it from the folder"))


def read_frames(path: str | os.PathLike, max_frames: Optional[int] = None) -> Iterator[np.ndarray]:
    """A video's frames as RGB uint8 ``[H, W, 3]``, in order (at most `max_frames`)."""
    import imageio.v3 as iio

    for t, frame in enumerate(iio.imiter(Path(path))):
        if max_frames is not None and t >= max_frames:
            break
        frame = np.asarray(frame)
        if frame.ndim == 2:
            frame = np.repeat(frame[:, :, None], 3, axis=2)
        yield np.ascontiguousarray(frame[:, :, :3]).astype(np.uint8, copy=False)


def video_fps(path: str | os.PathLike) -> Optional[float]:
    """The clip's frame rate when its container says (mp4 and friends; a GIF's frame duration), else None."""
    import imageio.v3 as iio

    try:
        meta = iio.immeta(Path(path))
    except Exception:  # noqa: BLE001 - metadata is a nicety; reading the frames reports a broken file
        return None
    fps = meta.get("fps")
    if not fps and meta.get("duration"):
        fps = 1000.0 / float(meta["duration"])
    return float(fps) if fps else None


@dataclass(frozen=True)
class Source:
    """One input file: an image or a video, with its path relative to the input it was found under."""

    path: Path
    rel: PurePosixPath
    kind: str  # "image" | "video"


def kind_of(path: Path) -> Optional[str]:
    """Whether `path` is an "image" or a "video" (by its suffix); None for any other file."""
    suffix = path.suffix.lower()
    return "image" if suffix in IMAGE_SUFFIXES else "video" if suffix in VIDEO_SUFFIXES else None


def discover(inputs: Sequence[str]) -> list[Source]:
    """Every image and video under `inputs`, each named by its path relative to the folder it was found in."""
    found: list[Source] = []
    problems: list[Problem] = []
    for given in inputs:
        path = Path(given)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and kind_of(p) and not p.name.startswith("."))
            if not files:
                problems.append(Problem(str(path), "the folder holds no image or video files",
                                        f"images: {' '.join(IMAGE_SUFFIXES)}; videos: {' '.join(VIDEO_SUFFIXES)}"))
            found += [Source(p, PurePosixPath(p.relative_to(path).as_posix()), kind_of(p)) for p in files]
        elif path.is_file():
            kind = kind_of(path)
            if kind is None:
                problems.append(Problem(str(path), f"not an image or video file ('{path.suffix}')",
                                        f"give images ({' '.join(IMAGE_SUFFIXES)}), videos "
                                        f"({' '.join(VIDEO_SUFFIXES)}) or folders of them"))
            else:
                found.append(Source(path, PurePosixPath(path.name), kind))
        else:
            problems.append(Problem(str(path), "no such file or folder", "check the path"))
    seen: dict[PurePosixPath, Path] = {}
    for s in found:  # a.jpg and a.png would both write a.txt (pcdms) / the video key a (npz)
        key = s.rel.with_suffix("")
        if key in seen:
            problems.append(Problem(str(s.path), f"would write the same output '{key}' as {seen[key]}",
                                    "rename one of them, or write the two to different --out locations"))
        seen.setdefault(key, s.path)
    if problems:
        raise DataFormatError(problems)
    return found


__all__ = ["IMAGE_SUFFIXES", "VIDEO_SUFFIXES", "Source", "discover", "kind_of", "read_image", "read_frames",
           "video_fps"]
