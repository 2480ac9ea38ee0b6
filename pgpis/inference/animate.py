"""`pgpis animate`: a clip of one source person following a pose sequence (e.g. a Phoenix14T signer).

Every frame is generated from the same source image and the *same initial
noise* (one seed for all frames), so what changes from frame to frame is only
the pose: appearance and background do not flicker the way they would with a
fresh noise sample per frame. Poses are rendered exactly as the DataModule
renders them in training (whole-body COCO-133 like ``PhoenixDataset.render``,
or OpenPose-18), at the image size and at every encoder input size.

Pose sequences: ``.npz`` / ``.npy`` arrays ``[T, K, 2|3]`` (x, y[, score]) with
K = 133 (COCO-WholeBody) or 18 (OpenPose), in pixels of ``pose_frame``
(default the Phoenix frame 260x210, h x w); a Phoenix keypoint container
(``{"<split>/<video>": [T, 133, 3]}`` .npz, or a pickle read with the
restricted unpickler) with ``video=`` picking the entry when it holds several.
Frames without any detection (all scores 0) repeat the previous detected pose.

Or ``--driving-video CLIP``: the sequence is estimated frame by frame from a video of someone moving
(:func:`pgpis.inference.estimated_poses.sequence_from_video`, ``--estimator`` as in ``pgpis pose extract``), in
the skeleton the checkpoint was trained with (OpenPose-18 for DeepFashion models, COCO-WholeBody for Phoenix
models), optionally ``--retarget`` ed to the source person's proportions; the clip keeps the video's frame rate.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch
from PIL import Image

from pgpis.pose import keypoints as kpt
from pgpis.data.phoenix.layout import FRAME_SIZE
from pgpis.errors import DataFormatError, Problem

Size = tuple[int, int]  # (h, w)
VIDEO_SUFFIXES = (".gif", ".mp4")
SPECS = {kpt.COCO_WHOLEBODY_133.num_points: kpt.COCO_WHOLEBODY_133, kpt.OPENPOSE_18.num_points: kpt.OPENPOSE_18}


# --------------------------------------------------------------------------- poses
@dataclass(frozen=True)
class SequencePose:
    """One frame's pose, with the ``render`` / ``keypoints_at`` interface :meth:`Pipeline.make_batch` uses."""

    keypoints: np.ndarray  # float32 [K, 2] in `frame` pixels, -1 missing (below the score threshold)
    scores: Optional[np.ndarray]  # float32 [K] or None
    frame: Size
    spec: kpt.KeypointSpec
    score_threshold: float = 0.3
    draw_face: bool = False

    def keypoints_at(self, size: Size) -> np.ndarray:
        return kpt.rescale_keypoints(self.keypoints, self.frame, size)

    def render(self, size: Size) -> Image.Image:
        img = kpt.render_pose(self.keypoints_at(size), size, self.spec, scores=self.scores,
                              score_threshold=self.score_threshold, draw_face=self.draw_face)
        return Image.fromarray(img)


def _pick(arrays: dict[str, np.ndarray], video: Optional[str], path: Path) -> np.ndarray:
    if video is not None:
        for key in (video, video.strip("/")):
            if key in arrays:
                return arrays[key]
        ends = [k for k in arrays if k.endswith("/" + video)]
        if len(ends) == 1:
            return arrays[ends[0]]
        raise DataFormatError(Problem(str(path), f"no pose sequence named '{video}'",
                                      f"use one of: {', '.join(sorted(arrays)[:8])}{' ...' if len(arrays) > 8 else ''}"))
    if len(arrays) != 1:
        raise DataFormatError(Problem(str(path), f"{len(arrays)} pose sequences in the file; cannot tell which is meant",
                                      "pass --video NAME (e.g. test/<video>), or keep one array in the file"))
    return next(iter(arrays.values()))


def read_pose_sequence(path: Union[str, os.PathLike], video: Optional[str] = None) -> np.ndarray:
    """``float32 [T, K, 3]`` (x, y, score; score 1 when the file has none) from a pose-sequence file."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(Problem(str(path), "pose-sequence file does not exist",
                                      "give a .npz/.npy of [T, 133|18, 2|3] keypoints or a Phoenix keypoint file"))
    if path.suffix in (".npz", ".npy"):
        try:
            loaded = np.load(path, allow_pickle=False)
            arrays = {k: loaded[k] for k in loaded.files} if path.suffix == ".npz" else {"": loaded}
        except (OSError, ValueError) as err:
            raise DataFormatError(Problem(str(path), f"not a readable numpy file without pickles ({err})",
                                          "save the keypoints with numpy.savez / numpy.save")) from None
    else:  # Phoenix pickle containers, through the restricted unpickler
        from pgpis.data.phoenix.keypoints import read_keypoint_file

        arrays = read_keypoint_file(path)
    arr = np.asarray(_pick(arrays, video, path), dtype=np.float32)
    if arr.ndim != 3 or arr.shape[1] not in SPECS or arr.shape[2] not in (2, 3) or len(arr) == 0:
        raise DataFormatError(Problem(str(path), f"pose sequence has shape {list(arr.shape)}",
                                      "expected [T, 133, 3] (COCO-WholeBody x, y, score) or [T, 18, 2|3] (OpenPose), T >= 1"))
    if arr.shape[2] == 2:
        missing = (arr == kpt.MISSING).all(-1, keepdims=True)
        arr = np.concatenate([arr, np.where(missing, 0.0, 1.0).astype(np.float32)], axis=-1)
    return arr


def sequence_poses(seq: np.ndarray, frame: Size = FRAME_SIZE, score_threshold: float = 0.3,
                   draw_face: bool = False) -> tuple[list[SequencePose], int]:
    """One :class:`SequencePose` per frame, and how many undetected frames repeat the previous pose."""
    spec = SPECS[seq.shape[1]]
    poses: list[SequencePose] = []
    held, last = 0, None
    for kp in seq:
        detected = bool((kp[:, 2] >= score_threshold).any())
        if not detected and last is not None:
            poses.append(last)
            held += 1
            continue
        xy = kp[:, :2].copy()
        xy[kp[:, 2] < score_threshold] = kpt.MISSING
        last = SequencePose(xy, kp[:, 2].copy(), tuple(frame), spec, score_threshold, draw_face)
        poses.append(last)
    return poses, held


# --------------------------------------------------------------------------- generation
def animate_frames(pipe, source: Union[Image.Image, str, os.PathLike], poses: Sequence[SequencePose], *,
                   seed: int = 0, batch_size: int = 8, guidance=None, steps: Optional[int] = None,
                   scheduler: Optional[str] = None, progress: bool = True,
                   on_frame: Optional[Callable[[int, Image.Image], None]] = None,
                   source_parsing=None, source_pose=None, video=None) -> list[Image.Image]:
    """Frames of `source` in each pose, all from the same initial noise (`seed`), in batches of `batch_size`.

    `source_parsing` / `source_pose` (the source's parsing map and keypoints, as :meth:`Pipeline.generate` takes
    them) go to every frame, for models that read them (``pipe.needs``). `video`
    (:class:`pgpis.models.video.VideoSampling`, default: shared noise only) picks the consistency options:
    ``shared_noise=False`` gives frame i the seed ``seed + i``; ``cross_frame`` runs the clip through
    :func:`pgpis.models.video.sample_clip` in chunks of `batch_size` frames (anchors included).
    """
    from dataclasses import replace

    from pgpis.models.video import VideoSampling, sample_clip

    from pgpis.inference.pipeline import _to_pil
    from pgpis.inference.poses import load_target_pose

    source_pose = None if source_pose is None else load_target_pose(source_pose, what="source pose")

    policy, sampler = pipe.guidance_policy(guidance), pipe.sampler(steps, scheduler)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(poses), desc="animate", unit="frame")
    frames: list[Image.Image] = []
    video = VideoSampling(shared_noise=True) if video is None else video
    seeds = [seed] * len(poses) if video.shared_noise else [seed + i for i in range(len(poses))]

    def batch_of(chunk: Sequence[int]):
        return pipe.make_batch([source] * len(chunk), [poses[i] for i in chunk],
                               None if source_parsing is None else [source_parsing] * len(chunk),
                               None if source_pose is None else [source_pose] * len(chunk))

    if video.cross_frame is not None and poses:
        with torch.no_grad(), pipe._autocast():
            images = sample_clip(pipe.module.generate, batch_of, len(poses), seeds,
                                 replace(video, max_frames=max(batch_size, 2)), pipe.module.denoiser,
                                 guidance=policy, sampler=sampler)
        for img in images:
            frames.append(_to_pil(img))
            if on_frame is not None:
                on_frame(len(frames) - 1, frames[-1])
        if bar is not None:
            bar.update(len(poses))
            bar.close()
        return frames
    with torch.no_grad():
        for start in range(0, len(poses), batch_size):
            chunk = list(range(start, min(start + batch_size, len(poses))))
            batch = batch_of(chunk)
            with pipe._autocast():
                images = pipe.module.generate(batch, guidance=policy, sampler=sampler, seeds=[seeds[i] for i in chunk])
            for img in images:
                frames.append(_to_pil(img))
                if on_frame is not None:
                    on_frame(len(frames) - 1, frames[-1])
            if bar is not None:
                bar.update(len(chunk))
    if bar is not None:
        bar.close()
    return frames


# --------------------------------------------------------------------------- writing
def mp4_backend() -> Optional[str]:
    """"imageio-ffmpeg" or "av" when one is installed, else None."""
    import importlib.util

    for module, name in (("imageio_ffmpeg", "imageio-ffmpeg"), ("av", "av")):
        if importlib.util.find_spec(module) is not None:
            return name
    return None


MP4_MISSING = ("writing .mp4 needs imageio-ffmpeg or PyAV, neither is installed: `pip install imageio-ffmpeg` "
               "(or `pip install av`), or write a .gif (always available, via PIL)")


def write_clip(frames: Sequence[Image.Image], out: Union[str, os.PathLike], fps: float = 25.0) -> Path:
    """A GIF (PIL, always) or an MP4 (imageio-ffmpeg or PyAV; a clear error when neither is installed)."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise ValueError(f"{out}: unknown clip type '{suffix}'; use .gif or .mp4")
    if not frames:
        raise ValueError("write_clip: no frames")
    if suffix == ".mp4" and mp4_backend() is None:
        raise RuntimeError(MP4_MISSING)
    out.parent.mkdir(parents=True, exist_ok=True)
    rgb = [f.convert("RGB") for f in frames]
    if suffix == ".gif":
        rgb[0].save(out, save_all=True, append_images=rgb[1:], duration=max(1, round(1000 / fps)), loop=0,
                    optimize=False)
        return out
    if mp4_backend() == "imageio-ffmpeg":
        import imageio.v2 as imageio

        with imageio.get_writer(out, format="FFMPEG", fps=fps, codec="libx264", pixelformat="yuv420p",
                                macro_block_size=2) as writer:
            for f in rgb:
                writer.append_data(np.asarray(_even(f)))
        return out
    import av

    with av.open(str(out), mode="w") as container:
        stream = container.add_stream("libx264", rate=round(fps))
        first = _even(rgb[0])
        stream.width, stream.height, stream.pix_fmt = first.width, first.height, "yuv420p"
        for f in rgb:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.asarray(_even(f)), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out


def _even(img: Image.Image) -> Image.Image:
    """yuv420p needs even sides: pad by one black row/column where odd."""
    w, h = img.size
    if w % 2 == 0 and h % 2 == 0:
        return img
    canvas = Image.new("RGB", (w + w % 2, h + h % 2))
    canvas.paste(img)
    return canvas


# --------------------------------------------------------------------------- loading and CLI
def load_for_animation(path: Union[str, os.PathLike], *, device=None, dtype=None, fusion_model=None,
                       trust_checkpoint: bool = False, revision: Optional[str] = None):
    """(Pipeline, the DataModule's settings) -- the settings say how poses were rendered in training.

    `path` may be a hub id (with `revision`), as for :func:`~pgpis.inference.pipeline.load_pipeline`."""
    from pgpis.inference.hub import resolve_checkpoint
    from pgpis.inference.pipeline import Pipeline, load_pipeline

    path = resolve_checkpoint(path, revision)
    if path.is_file():
        from pgpis.inference.checkpoint import module_from_checkpoint

        module, config, data, ema = module_from_checkpoint(path, fusion_model=fusion_model,
                                                           trust_checkpoint=trust_checkpoint)
        if data.get("image_size") is None:
            raise DataFormatError(Problem(str(path), "the checkpoint has no DataModule settings (data.image_size)",
                                          "use a checkpoint written by `pgpis fit` with a DataModule"))
        pipe = Pipeline(module, data["image_size"], data.get("encoder_inputs") or {}, ema=ema, config=config,
                        device=device, dtype=dtype)
        return pipe, data
    return load_pipeline(path, device=device, dtype=dtype, fusion_model=fusion_model), {}


__all__ = ["SequencePose", "animate_frames", "mp4_backend", "read_pose_sequence", "sequence_poses", "write_clip",
           "load_for_animation"]
