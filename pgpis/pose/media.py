"""Reading the pictures a pose estimator looks at: image files as pgpis's DataModules read them, video frames.

Images are read by :func:`pgpis.data.images.load_rgb`, as the DataModules and every other entry point read
them (EXIF orientation applied: a phone photo stored sideways is upright), so keypoints written for a file land
on the pixels training and generation will see. Videos are read frame by frame with imageio (mp4, mov, avi, mkv,
webm through imageio-ffmpeg; GIF through Pillow), never whole into memory.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from pgpis.data.images import load_rgb

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".gif")


def read_image(path: str | os.PathLike) -> np.ndarray:
    """RGB uint8 ``[H, W, 3]`` pixels of an image file, upright (:func:`pgpis.data.images.load_rgb`)."""
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


__all__ = ["IMAGE_SUFFIXES", "VIDEO_SUFFIXES", "read_image", "read_frames", "video_fps"]
