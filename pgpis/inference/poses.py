"""Poses for inference (target poses, and source poses where a model reads them): keypoints (array, CFLD or
PCDMs file) or an already rendered pose image.

A training batch renders every pose at the size it is used at (the image size
and each encoder input size), from keypoints in the CFLD 256x176 frame. The API
does exactly the same when it is given keypoints, so a pose fed at inference
looks like the poses the model was trained on. A rendered pose image is only
resized (PIL bicubic), as the DataModule resizes images.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, Union

import numpy as np
from PIL import Image

from pgpis.pose import keypoints as kpt
from pgpis.images import as_rgb, load_rgb
from pgpis.errors import DataFormatError, MissingFileError, Problem

Size = tuple[int, int]  # (h, w)
PoseInput = Union[np.ndarray, Sequence[Sequence[float]], str, os.PathLike, Image.Image]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


@dataclass(frozen=True)
class TargetPose:
    """One target pose: OpenPose-18 keypoints in the CFLD 256x176 frame, or a rendered pose image."""

    keypoints: np.ndarray | None = None  # float32 [18, 2], (x, y), -1 missing
    image: Image.Image | None = None  # RGB render (black background)

    def render(self, size: Size) -> Image.Image:
        """The pose image at `size` (h, w): rendered from keypoints, or the given image resized."""
        if self.keypoints is not None:
            kp = kpt.rescale_keypoints(self.keypoints, kpt.CFLD_FRAME, size)
            return Image.fromarray(kpt.render_pose(kp, size, kpt.OPENPOSE_18))
        h, w = size
        assert self.image is not None
        return self.image if self.image.size == (w, h) else self.image.resize((w, h), Image.BICUBIC)

    def keypoints_at(self, size: Size) -> np.ndarray | None:
        """Keypoints in `size` (h, w) pixels, or None for a rendered pose image."""
        return None if self.keypoints is None else kpt.rescale_keypoints(self.keypoints, kpt.CFLD_FRAME, size)


def _check_array(kp: np.ndarray, where: str) -> np.ndarray:
    n = kpt.OPENPOSE_18.num_points
    if kp.ndim != 2 or kp.shape[0] != n or kp.shape[1] < 2:
        raise DataFormatError(Problem(where, f"expected OpenPose-18 keypoints of shape [{n}, 2] (x, y), got "
                                      f"{list(kp.shape)}", f"give {n} (x, y) points, (-1, -1) for a missing one"))
    return kp[:, :2].astype(np.float32)


def read_cfld_annotation(path: Path, name: str | None = None) -> np.ndarray:
    """Keypoints of one row of a CFLD annotation CSV (``name:keypoints_y:keypoints_x``, 256x176 frame).

    `name` picks the row; without it the file must hold exactly one row.
    """
    fix = "write the file as the CFLD annotation CSV: header 'name:keypoints_y:keypoints_x', rows name:[y..]:[x..]"
    lines = [ln for ln in kpt.read_text(path, fix).splitlines() if ln.strip()]
    rows, problems, _ = kpt.cfld_annotation_rows(path, lines)  # the one CFLD parser (pgpis/pose/keypoints.py)
    if name is not None:  # only the header and the chosen row must be sound
        problems = [p for p in problems if p.line == 1 or p.item == name]
        rows = [r for r in rows if r[1] == name]
    if problems:
        raise DataFormatError(problems)
    if name is not None and not rows:
        raise DataFormatError(Problem(str(path), f"no row for image {name!r}", "name an image annotated in the file",
                                      item=name))
    if len(rows) != 1:
        raise DataFormatError(Problem(str(path), f"{len(rows)} keypoint rows; cannot tell which pose is meant",
                                      "append '#<image name>' to the path to pick a row, or keep one row"))
    return rows[0][2]


def load_target_pose(pose: PoseInput, frame: Size = kpt.CFLD_FRAME, *, what: str = "target pose") -> TargetPose:
    """Interpret `pose`, whatever form it comes in (see :meth:`pgpis.inference.Pipeline.generate`).

    `what` names the pose in errors ("target pose", "source pose").

    * array / nested list ``[18, 2]``: (x, y) pixels in `frame` (h, w; default the CFLD 256x176 frame);
    * ``.txt``: a PCDMs pose file (256x256 frame, 40 px padding on each side);
    * ``.csv``: a CFLD annotation CSV (one row, or ``path.csv#<image name>``);
    * ``.json``: ``[[x, y], ...]`` in the CFLD frame;
    * an image file or a PIL image: an already rendered OpenPose-18 pose image.
    """
    if isinstance(pose, Image.Image):
        return TargetPose(image=as_rgb(pose, f"<{what} image>", what=f"{what} image"))
    if isinstance(pose, (str, os.PathLike)):
        text = os.fspath(pose)
        row = None
        if "#" in text and not Path(text).exists():
            text, row = text.split("#", 1)
        path = Path(text)
        if not path.is_file():
            raise MissingFileError(Problem(str(path), f"{what} file does not exist",
                                           "check the path; give an OpenPose-18 keypoint file (.txt PCDMs, .csv CFLD "
                                           "annotation, .json [[x, y], ...]) or a rendered pose image"))
        suffix = path.suffix.lower()
        if suffix == ".txt":
            return TargetPose(keypoints=kpt.pcdms_to_cfld_frame(kpt.read_pcdms_keypoints(path)))
        if suffix == ".csv":
            return TargetPose(keypoints=read_cfld_annotation(path, row))
        if suffix == ".json":
            try:
                data = json.loads(kpt.read_text(path, "write [[x, y], ...] (18 points)"))
            except json.JSONDecodeError as err:
                raise DataFormatError(Problem(str(path), f"not valid JSON ({err.msg})", "write [[x, y], ...] (18 points)",
                                              line=err.lineno)) from err
            return TargetPose(keypoints=_check_array(np.asarray(data, dtype=np.float32), str(path)))
        if suffix in IMAGE_SUFFIXES:
            return TargetPose(image=load_rgb(path, what=f"{what} image", fix="give a readable pose image (.png, .jpg)"))
        raise DataFormatError(Problem(str(path), f"unknown pose file type '{suffix}'",
                                      "use .txt (PCDMs), .csv (CFLD annotation), .json, or a pose image (.png/.jpg)"))
    kp = _check_array(np.asarray(pose, dtype=np.float32), f"{what.replace(' ', '_')} argument")
    if tuple(frame) != kpt.CFLD_FRAME:
        kp = kpt.rescale_keypoints(kp, tuple(frame), kpt.CFLD_FRAME)
    return TargetPose(keypoints=kp)


__all__ = ["TargetPose", "PoseInput", "load_target_pose", "read_cfld_annotation"]
