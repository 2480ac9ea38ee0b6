"""Target poses taken from a photo or a video by a pose estimator (`generate --pose-image`, `animate --driving-video`).

The estimator (:func:`pgpis.pose.load_estimator`: ``mediapipe`` by default, ``rtmlib`` or a class path) finds
OpenPose-18 keypoints in pixels of the photo; they are mapped to the frame the model's poses live in (the CFLD
256x176 frame for DeepFashion models, whole-body COCO-133 in the Phoenix 210x260 frame for Phoenix models) with
the photo fitted inside the frame, proportions kept and centred (:func:`pgpis.pose.formats.to_frame`,
``fit="contain"``: a landscape video is not squeezed into a portrait frame), and then rendered like any
keypoint file. With ``retarget`` the driving pose takes the source person's bone lengths
(:func:`pgpis.pose.retarget.retarget_pose`, neck fixed), from the source's keypoints when given, else estimated
on the source photo with the same estimator.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np
from PIL import Image

from pgpis.data import keypoints as kpt
from pgpis.images import as_rgb, load_rgb
from pgpis.errors import DataFormatError, Problem
from pgpis.pose import formats as fmt

EstimatorSpec = Union[str, Any]  # a name / class path, or a built PoseEstimator
PhotoInput = Union[Image.Image, np.ndarray, str, os.PathLike]
SKELETONS = ("openpose18", "wholebody")


@dataclass(frozen=True)
class PoseFromImage:
    """A target pose to be estimated from `image` (a photo of someone else), for :meth:`Pipeline.generate`.

    ``estimator``: ``"mediapipe"`` (default), ``"rtmlib"``, a class path, or a built estimator; ``options``: its
    keyword arguments. ``retarget``: rescale the pose's bones to the source person's proportions.
    """

    image: PhotoInput
    estimator: EstimatorSpec = "mediapipe"
    retarget: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)


def open_photo(image: PhotoInput, what: str = "pose photo") -> np.ndarray:
    """RGB uint8 pixels of a photo, upright (EXIF orientation applied: phone photos are stored on their side)."""
    if isinstance(image, np.ndarray):
        return image
    if isinstance(image, Image.Image):
        return np.asarray(as_rgb(image, f"<{what}>", what=what))
    return np.asarray(load_rgb(image, what=what, fix="give a readable image file (.jpg, .png, ...)"))


class EstimatorCache:
    """Estimators (or parsers: ``loader``) built once per (name, options) and reused: loading a backend costs seconds."""

    def __init__(self, loader: Optional[Any] = None) -> None:
        self._built: dict[tuple[str, tuple], Any] = {}
        self._loader = loader

    def get(self, spec: EstimatorSpec, options: Optional[Mapping[str, Any]] = None) -> Any:
        if not isinstance(spec, str):
            return spec
        key = (spec, tuple(sorted((k, repr(v)) for k, v in (options or {}).items())))
        if key not in self._built:
            loader = self._loader
            if loader is None:
                from pgpis.pose import load_estimator as loader
            self._built[key] = loader(spec, **dict(options or {}))
        return self._built[key]


def _no_person(what: str, where: str, name: str) -> DataFormatError:
    return DataFormatError(Problem(where, f"{name} found no person in the {what}",
                                   "use a photo where one person is clearly visible (whole body for a full-body "
                                   "pose), or give the pose as a keypoint file"))


def body_from_photo(photo: PhotoInput, estimator: Any, *, what: str = "pose photo", fit: str = "contain") -> np.ndarray:
    """``float32 [18, 2]`` OpenPose-18 in the CFLD 256x176 frame, estimated on `photo`; -1 missing.

    ``fit="contain"`` (a pose to drive another image) keeps the photo's proportions; ``fit="stretch"`` scales each
    axis as the photo itself is resized to the model's size (the source person's own keypoints).
    A photo with no person is an error (a pose of nobody would generate nothing meaningful).
    """
    rgb = open_photo(photo, what)
    est = estimator.estimate(rgb)
    if not est.found:
        where = str(photo) if isinstance(photo, (str, os.PathLike)) else f"<{what}>"
        raise _no_person(what, where, str(getattr(estimator, "name", type(estimator).__name__)))
    return fmt.body_in_frame(est.body, est.image_size, kpt.CFLD_FRAME, fit=fit)


def retarget_to(driving: np.ndarray, source: np.ndarray) -> np.ndarray:
    """:func:`pgpis.pose.retarget.retarget_pose` on the (x, y) columns, scores carried along."""
    from pgpis.pose.retarget import retarget_pose

    return retarget_pose(driving, np.asarray(source, np.float32)[:, :2])


# --------------------------------------------------------------------------- videos
def skeleton_of(data: Mapping[str, Any]) -> str:
    """The skeleton a checkpoint's poses were rendered with, from its DataModule settings.

    Phoenix models (``PhoenixDataModule``: whole-body COCO-133 poses) -> ``"wholebody"``; DeepFashion-style
    models (OpenPose-18) -> ``"openpose18"``.
    """
    class_path = str(data.get("_class_path", "")).lower()
    if "phoenix" in class_path or ("train_pairs" in data and "draw_face" in data):
        return "wholebody"
    return "openpose18"


def frame_of(skeleton: str) -> tuple[int, int]:
    """The pixel frame (h, w) driving poses of `skeleton` are written in: CFLD 256x176 or Phoenix 260x210."""
    return kpt.CFLD_FRAME if skeleton == "openpose18" else fmt.PHOENIX_FRAME


def sequence_from_video(path: Union[str, os.PathLike], estimator: Any, skeleton: str = "openpose18", *,
                        max_frames: Optional[int] = None, source_body: Optional[np.ndarray] = None,
                        progress: bool = True) -> tuple[np.ndarray, int]:
    """(``float32 [T, K, 3]`` (x, y, score) in :func:`frame_of` `skeleton`, frames with no person).

    ``openpose18``: K = 18 in the CFLD frame (missing -1 with score 0); ``wholebody``: K = 133 in the Phoenix
    frame (not found: 0, 0, 0). A frame with no person has every score 0 (`pgpis animate` then holds the
    previous pose). ``source_body`` ``[18, 2]`` (CFLD frame) retargets an OpenPose-18 clip: one scale per bone
    for the whole clip (median over frames), so the clip does not jitter.
    """
    from pgpis.pose.media import read_frames

    if skeleton not in SKELETONS:
        raise ValueError(f"skeleton {skeleton!r}: use one of {SKELETONS}")
    if source_body is not None and skeleton != "openpose18":
        raise DataFormatError(Problem(str(path), "--retarget works on OpenPose-18 bodies; this model's poses are "
                                      "whole-body (COCO-133, Phoenix)", "drop --retarget for this checkpoint"))
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(Problem(str(path), "the driving video does not exist",
                                      "give a video file (.mp4, .gif, ...) of one person moving"))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(desc="estimating poses", unit="frame")
    frames: list[np.ndarray] = []
    empty = 0
    try:
        for rgb in read_frames(path, max_frames):
            est = estimator.estimate(rgb)
            empty += not est.found
            if skeleton == "openpose18":
                xy = fmt.body_in_frame(est.body, est.image_size, kpt.CFLD_FRAME, fit="contain")
                score = np.where(kpt.missing_mask(xy), 0.0, 1.0)  # presence is the estimator's call
                frames.append(np.concatenate([xy, score[:, None].astype(np.float32)], axis=1))
            else:
                frames.append(fmt.wholebody_in_phoenix_frame(est.wholebody(), est.image_size, fit="contain"))
            if bar is not None:
                bar.update(1)
    except (OSError, ValueError, RuntimeError) as err:
        if isinstance(err, DataFormatError):
            raise
        raise DataFormatError(Problem(str(path), f"the driving video does not decode ({type(err).__name__}: "
                                      f"{str(err).splitlines()[0] if str(err) else ''})",
                                      "give a readable .mp4/.gif/.mov (imageio-ffmpeg reads most codecs)")) from None
    finally:
        if bar is not None:
            bar.close()
    if not frames:
        raise DataFormatError(Problem(str(path), "the driving video has no frames", "give a video with frames"))
    seq = np.stack(frames).astype(np.float32)
    if empty == len(seq):
        raise _no_person("driving video (any frame)", str(path), str(getattr(estimator, "name", "the estimator")))
    if source_body is not None:
        seq = retarget_to(seq, source_body)
    return seq, empty


__all__ = ["PoseFromImage", "EstimatorCache", "body_from_photo", "open_photo", "retarget_to", "skeleton_of",
           "frame_of", "sequence_from_video", "SKELETONS"]
