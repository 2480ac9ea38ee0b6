"""The app's generate callback, free of any UI: what the user chose -> pipeline inputs -> sample.

Kept apart from the Blocks layout so the mapping (which source, which pose,
which guidance weights) is one plain function the UI and tests both call.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional, Protocol, Union

import numpy as np
from PIL import Image

from pgpis.app.source_photo import PhotoParser, find_parser, source_inputs
from pgpis.app.sources import Catalog
from pgpis.images import as_rgb
from pgpis.inference.estimated_poses import retarget_to
from pgpis.inference.photo_inputs import describe_estimated
from pgpis.inference.pipeline import Pipeline
from pgpis.inference.poses import TargetPose, load_target_pose

# choices of the two radio groups (their labels are what the user reads)
SOURCE_PICK, SOURCE_UPLOAD = "Test source", "Upload a photo"
POSE_PICK, POSE_FILE, POSE_PHOTO = "Test pose", "Keypoint file", "Pose from a photo"

#: smallest height (px) images are shown at; tiny models work at 32x24, too small to see
DISPLAY_HEIGHT = 256


class PoseEstimator(Protocol):
    """Photo -> OpenPose-18 keypoints [18, 2] (x, y) in the CFLD 256x176 frame, -1 for a missing point."""

    name: str

    def __call__(self, image: Image.Image) -> np.ndarray: ...


class PhotoPose:
    """A :mod:`pgpis.pose` estimator as the app's :class:`PoseEstimator`, built on first use.

    Building a backend loads its models (seconds); the page should not wait for that before it can be served,
    nor pay it when nobody picks "Pose from a photo". A photo without a person is a ValueError the page shows.
    """

    def __init__(self, name: str = "mediapipe", options: Optional[dict] = None, estimator: Any = None):
        self._options, self._estimator = dict(options or {}), estimator
        self.name = str(getattr(estimator, "name", name)) if estimator is not None else name
        self._lock = threading.RLock()  # one estimate at a time: backends (MediaPipe graphs) are not thread-safe

    @property
    def estimator(self) -> Any:
        with self._lock:
            if self._estimator is None:
                from pgpis.pose import load_estimator

                self._estimator = load_estimator(self.name, **self._options)
                self.name = str(getattr(self._estimator, "name", self.name))
            return self._estimator

    def __call__(self, image: Image.Image) -> np.ndarray:
        from pgpis.errors import DataFormatError
        from pgpis.inference.estimated_poses import body_from_photo

        try:
            with self._lock:  # the page's preview and Generate run on Gradio's worker threads
                return body_from_photo(image, self.estimator, what="uploaded photo")
        except DataFormatError as err:
            raise ValueError(err.problems[0].what + ": " + err.problems[0].fix) from None


def find_pose_estimator(name: Optional[str] = "mediapipe", options: Optional[dict] = None) -> Optional[PoseEstimator]:
    """The pose estimator the "Pose from a photo" choice runs (:mod:`pgpis.pose`, mediapipe by default), or None.

    None when `name` is None / ``"none"`` or the estimator cannot be used here (the reason goes to stderr, and the
    page offers keypoint files and test poses only). Never a stand-in: a pose that was not estimated would
    mislead the user. The backends pgpis knows are checked without loading their models; a class path is built now,
    so a typo fails at start-up rather than at the first click.
    """
    import sys

    if name is None or name.lower() == "none":
        return None
    from pgpis.pose import EstimatorUnavailable, InvalidEstimator
    from pgpis.pose.registry import BUILTIN

    if name in BUILTIN:  # only this backend is checked: another's check may wait on the network
        import importlib

        try:
            reason = importlib.import_module(BUILTIN[name][0]).unavailable_reason()
        except Exception as err:  # noqa: BLE001 - the backend module itself does not import
            reason = f"{type(err).__name__}: {err}"
        if reason is not None:
            print(f"pgpis app: 'Pose from a photo' is off: the {name} estimator is unavailable ({reason})",
                  file=sys.stderr)
            return None
        return PhotoPose(name, options)
    try:
        from pgpis.pose import load_estimator

        return PhotoPose(name, options, load_estimator(name, **dict(options or {})))
    except (EstimatorUnavailable, InvalidEstimator) as err:
        print(f"pgpis app: 'Pose from a photo' is off: {err}", file=sys.stderr)
        return None


@dataclass(frozen=True)
class Needs:
    """What the pipeline reads besides a source photo and a target pose image (TruePose: the source's parsing
    map and target keypoints; with ``source_pose: true`` also the source's keypoints): the fields the page shows."""

    parsing: bool
    pose: bool  # the source's keypoints
    target_keypoints: bool  # a rendered target-pose image is not enough


def needs(pipe: Pipeline) -> Needs:
    """Asked of the pipeline (`Pipeline.needs_*`, which asks the denoiser), never guessed from the model kind."""
    return Needs(parsing=pipe.needs_parsing, pose=pipe.needs_source_pose, target_keypoints=pipe.needs_keypoints)


@dataclass(frozen=True)
class Request:
    """One click on "Generate": the values of the input widgets."""

    source_mode: str = SOURCE_PICK
    source_name: Optional[str] = None
    source_image: Optional[Image.Image] = None
    parsing_file: Optional[str] = None
    source_pose_file: Optional[str] = None
    pose_mode: str = POSE_PICK
    pose_name: Optional[str] = None
    pose_file: Optional[str] = None
    pose_row: Optional[str] = None
    pose_photo: Optional[Image.Image] = None
    retarget: bool = False  # a pose from a photo: rescale its bones to the source person's proportions
    guidance: tuple[float, ...] = ()
    steps: Optional[int] = None
    seed: int = 0


@dataclass(frozen=True)
class Result:
    pose: Image.Image  # the target pose as the model sees it, upscaled for display
    sample: Image.Image  # the generated image, upscaled for display
    info: str  # one line: what was run, how long it took


def for_display(image: Image.Image, min_height: int = DISPLAY_HEIGHT) -> Image.Image:
    """Upscale by a whole factor (nearest neighbour: each model pixel stays a visible square)."""
    factor = max(1, math.ceil(min_height / image.height))
    return image if factor == 1 else image.resize((image.width * factor, image.height * factor), Image.NEAREST)


def _need(value: Any, what: str) -> Any:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError(what)
    return value


def resolve_source(pipe: Pipeline, catalog: Optional[Catalog], req: Request, parser: Optional[PhotoParser] = None,
                   estimator: Optional[PoseEstimator] = None) -> tuple[Union[Image.Image, str], Any, Any, dict[str, str]]:
    """(photo, parsing map or None, source keypoints or None, {input: parser / estimator that made it}), only what
    the pipeline needs; an uploaded photo's missing inputs are made from it (:mod:`pgpis.app.source_photo`)."""
    need = needs(pipe)
    if req.source_mode == SOURCE_PICK:
        if catalog is None:
            raise ValueError("no dataset to pick a test source from: start the app with --root DIR, or upload a photo")
        name = _need(req.source_name, "pick a test source from the list")
        return (str(catalog.image_path(name)), str(catalog.parsing_path(name)) if need.parsing else None,
                catalog.keypoints(name) if need.pose else None, {})
    if req.source_mode != SOURCE_UPLOAD:
        raise ValueError(f"unknown source choice {req.source_mode!r}; use {SOURCE_PICK!r} or {SOURCE_UPLOAD!r}")
    image = as_rgb(_need(req.source_image, "upload a source photo (or pick a test source)"), "the uploaded source photo",
                   min_size=pipe.image_size, what="source photo")

    def read_pose(path: str) -> np.ndarray:
        pose = load_target_pose(path).keypoints
        if pose is None:
            raise ValueError("the source pose must be keypoints (.txt, .csv, .json), not a rendered pose image")
        return pose

    parsing, pose, made = source_inputs(pipe, image, parsing_file=req.parsing_file, pose_file=req.source_pose_file,
                                        parser=parser, estimator=estimator, need_parsing=need.parsing,
                                        need_pose=need.pose, read_pose=read_pose)
    return image, parsing, pose, made


def resolve_pose(catalog: Optional[Catalog], req: Request,
                 estimator: Optional[PoseEstimator] = None) -> TargetPose:
    """The target pose from the chosen test image, an uploaded keypoint file or (with an estimator) a photo."""
    if req.pose_mode == POSE_PICK:
        if catalog is None:
            raise ValueError("no dataset to pick a test pose from: start the app with --root DIR, or upload a keypoint file")
        return load_target_pose(catalog.keypoints(_need(req.pose_name, "pick a target pose from the list")))
    if req.pose_mode == POSE_FILE:
        path = _need(req.pose_file, "upload a keypoint file (.txt PCDMs, .csv CFLD annotation, .json [[x, y], ...]) "
                     "or a rendered pose image")
        row = (req.pose_row or "").strip()
        return load_target_pose(f"{path}#{row}" if row else path)
    if req.pose_mode == POSE_PHOTO:
        if estimator is None:
            raise ValueError("no pose estimator is available here (see `pgpis pose estimators`): give the target pose "
                             "as a keypoint file or a test pose")
        return load_target_pose(estimator(_need(req.pose_photo, "upload a photo to take the pose from")))
    raise ValueError(f"unknown pose choice {req.pose_mode!r}; use {POSE_PICK!r}, {POSE_FILE!r} or {POSE_PHOTO!r}")


def source_body(catalog: Optional[Catalog], req: Request, source_pose: Any, estimator: PoseEstimator) -> np.ndarray:
    """The source person's keypoints (CFLD frame) for retargeting: known ones where the page has them, else
    estimated on the uploaded photo with the same estimator."""
    if source_pose is not None:
        return np.asarray(source_pose, np.float32)
    if req.source_mode == SOURCE_PICK and catalog is not None and req.source_name:
        return catalog.keypoints(req.source_name)
    return estimator(_need(req.source_image, "upload a source photo (or pick a test source)"))


def render_pose(pipe: Pipeline, pose: TargetPose) -> Image.Image:
    """The pose image the denoiser is conditioned on (at the model's image size), upscaled for display."""
    return for_display(pose.render(pipe.image_size))


def default_guidance(pipe: Pipeline) -> tuple[float, ...]:
    """The model's own weights: FPDM's (w_s, w_f), else the CFG scale (1.0 = no guidance)."""
    policy = pipe.module.guidance
    if hasattr(policy, "fusion_weight"):
        return (float(policy.source_weight), float(policy.fusion_weight))
    return (float(getattr(policy, "scale", 1.0)),)


def generate(pipe: Pipeline, catalog: Optional[Catalog], req: Request,
             progress: Optional[Callable[[int, int], None]] = None,
             estimator: Optional[PoseEstimator] = None, parser: Optional[PhotoParser] = None) -> Result:
    """Run the pipeline on what the user chose; `progress(done, total)` is called after every denoising step."""
    source, parsing, source_pose, made = resolve_source(pipe, catalog, req, parser, estimator)
    pose = resolve_pose(catalog, req, estimator)
    if req.retarget and req.pose_mode == POSE_PHOTO and estimator is not None and pose.keypoints is not None:
        pose = TargetPose(keypoints=retarget_to(pose.keypoints, source_body(catalog, req, source_pose, estimator)))
    steps = int(req.steps) if req.steps else pipe.sampler().num_inference_steps
    guidance: Union[float, tuple[float, ...], None] = None
    if req.guidance:
        guidance = req.guidance[0] if len(req.guidance) == 1 else tuple(req.guidance)

    def hook(latents, t, i, sched):
        if progress is not None:
            progress(i + 1, steps)
        return latents

    extra = {"source_pose": source_pose} if source_pose is not None else {}
    start = time.perf_counter()
    sample = pipe.generate(source, pose.keypoints if pose.keypoints is not None else pose.image,
                           source_parsing=parsing, guidance=guidance, steps=steps, seed=int(req.seed),
                           step_hook=hook, parser=None, source_estimator=None, **extra)
    seconds = time.perf_counter() - start
    h, w = pipe.image_size
    weights = "/".join(f"{g:g}" for g in (req.guidance or default_guidance(pipe)))
    info = (f"{pipe.kind}: {steps} steps, guidance {weights}, seed {int(req.seed)}, {w}x{h} px on {pipe.device.type}, "
            f"{seconds:.1f} s")
    if made:
        info += f". From the source photo: {describe_estimated(made)}"
    return Result(pose=render_pose(pipe, pose), sample=for_display(sample), info=info)


__all__ = ["Request", "Result", "Needs", "needs", "generate", "resolve_source", "resolve_pose",
           "render_pose", "default_guidance", "for_display", "find_pose_estimator", "PoseEstimator", "PhotoPose",
           "PhotoParser", "find_parser",
           "source_body",
           "SOURCE_PICK", "SOURCE_UPLOAD", "POSE_PICK", "POSE_FILE", "POSE_PHOTO"]
