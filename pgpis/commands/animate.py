"""`pgpis animate`: a clip of the source person following a pose sequence (keypoints or a driving video)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from pgpis.errors import DataFormatError
from PIL import Image

from pgpis.inference.animate import (FRAME_SIZE, MP4_MISSING, VIDEO_SUFFIXES, animate_frames,
                                     load_for_animation, read_pose_sequence, sequence_poses, write_clip)
from pgpis.inference import animate as clips  # clips.mp4_backend() looked up at call time
from pgpis.inference.hub import REVISION_HELP
from pgpis.inference.inputs import MissingInputError
from pgpis.parsing.options import add_parser_arguments
from pgpis.pose.options import add_estimator_arguments
from pgpis.safe_load import TRUST_HELP

Size = tuple[int, int]


def build_parser():
    import argparse

    p = argparse.ArgumentParser(
        prog="pgpis animate",
        description="A clip of the source person following a pose sequence (e.g. a Phoenix14T signer from one frame) "
                    "with a trained FPDM (or TruePose) model; the initial noise is the same for every frame.")
    p.add_argument("--checkpoint", required=True, help="`pgpis fit` checkpoint (.ckpt), `pgpis export` folder or its "
                                                       "hub id ORG/NAME")
    p.add_argument("--revision", default=None, help=REVISION_HELP)
    p.add_argument("--source", required=True, help="source frame (e.g. images0001.png of a Phoenix video)")
    p.add_argument("--poses", default=None, help=".npz/.npy [T, 133|18, 2|3] keypoints, or a Phoenix keypoint file")
    p.add_argument("--driving-video", default=None, metavar="CLIP",
                   help="instead of --poses: take the pose sequence from a video of someone moving (.mp4, .gif, ...), "
                        "estimated frame by frame (docs/pose.md)")
    add_estimator_arguments(p, used_by="--driving-video, and the source's keypoints when the model reads them and "
                            "--source-pose is not given")
    p.add_argument("--retarget", action="store_true",
                   help="--driving-video: rescale the driving bones to the source person's proportions (one scale "
                        "per bone for the whole clip; source keypoints from --source-pose, else estimated on --source)")
    p.add_argument("--skeleton", choices=("auto", "openpose18", "wholebody"), default="auto",
                   help="--driving-video: the skeleton to estimate (default: the checkpoint's, OpenPose-18 for "
                        "DeepFashion models, whole-body COCO-133 for Phoenix models)")
    p.add_argument("--video", default=None, help="entry of --poses to use when it holds several (e.g. test/<video>)")
    p.add_argument("--parsing", default=None, help="the source's LIP parsing map, for models that read it (TruePose); "
                                                   "not given: made from --source by --parser")
    add_parser_arguments(p, used_by="models that read a parsing map, when --parsing is not given",
                         also=", or none to require --parsing")
    p.add_argument("--source-pose", default=None, help="the source's OpenPose-18 keypoint file, for models that read "
                                                       "the source pose (TruePose with source_pose: true); not given: "
                                                       "estimated on --source by --estimator")
    p.add_argument("--out", required=True, help="clip.gif (always available) or clip.mp4 (needs imageio-ffmpeg or av)")
    p.add_argument("--pose-frame", type=int, nargs=2, default=list(FRAME_SIZE), metavar=("H", "W"),
                   help="frame the keypoints are in (default: the Phoenix frame %(default)s)")
    p.add_argument("--max-frames", type=int, default=None, help="only the first N poses")
    p.add_argument("--fps", type=float, default=None,
                   help="clip frame rate (default: the driving video's, else 25 as Phoenix)")
    p.add_argument("--size", type=int, nargs=2, default=None, metavar=("H", "W"),
                   help="resize the clip's frames (PIL bicubic), e.g. 260 210 for Phoenix's frame size")
    p.add_argument("--frames-dir", default=None, help="also write every frame as frame0001.png ... there")
    p.add_argument("--seed", type=int, default=0, help="seed of the initial noise shared by all frames")
    p.add_argument("--guidance", type=float, nargs="+", default=None, help="CFG scale, or FPDM's 'W_S W_F'")
    p.add_argument("--steps", type=int, default=None, help="sampling steps (default: the model's sampler)")
    p.add_argument("--scheduler", default=None, help="diffusers scheduler class, e.g. DDIMScheduler")
    p.add_argument("--batch-size", type=int, default=8, help="frames per denoiser batch")
    p.add_argument("--frame-noise", action="store_true",
                   help="a fresh initial noise per frame (seed + frame index) instead of one shared by all frames")
    p.add_argument("--cross-frame", default="none", choices=("none", "first", "previous", "first+previous"),
                   help="cross-frame attention: each frame's self-attention also attends to the first (or previous) "
                        "frame's keys and values (docs/phoenix.md, temporal consistency; default none)")
    p.add_argument("--temporal-metrics", default=None, metavar="JSON",
                   help="also write the clip's temporal metrics there (warping error with the flow of the generated "
                        "frames; with --driving-video also the driving video's own, as the reference)")
    p.add_argument("--score-threshold", type=float, default=None,
                   help="drop keypoints below this score (default: the training DataModule's, else 0.3)")
    p.add_argument("--draw-face", action=argparse.BooleanOptionalAction, default=None,
                   help="draw the 68 face points (default: as in training)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda when available)")
    p.add_argument("--fusion-model", default=None, help="FPDM checkpoints: the IPF export folder if it moved")
    p.add_argument("--trust-checkpoint", action="store_true", help=TRUST_HELP)
    return p


def _driving_sequence(args, data: dict) -> tuple[np.ndarray, Size, Optional[float]]:
    """(poses [T, K, 3], their frame, the clip's fps or --fps) estimated on --driving-video (see docs/pose.md)."""

    from pgpis.inference.estimated_poses import body_from_photo, frame_of, sequence_from_video, skeleton_of
    from pgpis.inference.poses import load_target_pose
    from pgpis.pose.media import video_fps
    from pgpis.pose.options import load_named_estimator

    skeleton = skeleton_of(data) if args.skeleton == "auto" else args.skeleton
    estimator = load_named_estimator(args.estimator, args.estimator_option)
    source_body = None
    if args.retarget:
        given = load_target_pose(args.source_pose, what="source pose").keypoints if args.source_pose else None
        source_body = given if given is not None else body_from_photo(args.source, estimator,
                                                                       what="source photo (for --retarget)")
    try:
        seq, empty = sequence_from_video(args.driving_video, estimator, skeleton, max_frames=args.max_frames,
                                         source_body=source_body)
    finally:
        close = getattr(estimator, "close", None)
        if callable(close):
            close()
    print(f"pgpis animate: {len(seq)} poses ({skeleton}) from {args.driving_video} by {estimator.name}"
          f"{', retargeted to the source' if source_body is not None else ''}"
          f"{f'; no person in {empty} frame(s)' if empty else ''}", file=sys.stderr)
    fps = args.fps if args.fps is not None else video_fps(args.driving_video)
    return seq, frame_of(skeleton), fps


def _source_inputs(pipe, args) -> tuple:
    """(parsing map, source keypoints) for every frame: as given, else made from --source for a model that reads them
    (:mod:`pgpis.inference.photo_inputs`), saying which parser / estimator made them."""

    from pgpis.inference.photo_inputs import describe_estimated, source_input_makers
    from pgpis.parsing.options import parser_options
    from pgpis.pose.options import parse_options

    made = source_input_makers(pipe, parser=args.parser, parser_options=parser_options(args.parser_option),
                               estimator=args.estimator, estimator_options=parse_options(args.estimator_option),
                               parsing_given=args.parsing is not None, pose_given=args.source_pose is not None)
    parsing, source_pose, estimated = args.parsing, args.source_pose, {}
    if made["parser"] is not None:
        parsing = pipe.parse_source(args.source, parser=made["parser"])
        estimated["source_parsing"] = made["parser"].name
    if made["source_estimator"] is not None:
        source_pose = pipe.source_keypoints(args.source, estimator=made["source_estimator"])
        estimated["source_pose"] = made["source_estimator"].name
    if estimated:
        print(f"pgpis animate: from the source photo {args.source}: {describe_estimated(estimated)}", file=sys.stderr)
    return parsing, source_pose


def main(argv: Sequence[str] | None = None) -> int:
    """`pgpis animate` (registered in :data:`pgpis.cli.TOOLS`)."""

    from pgpis.models.video import parse_video_sampling

    parser = build_parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    if (args.poses is None) == (args.driving_video is None):
        parser.error("give the pose sequence once: --poses FILE or --driving-video CLIP")
    if args.retarget and args.driving_video is None:
        parser.error("--retarget is for --driving-video (poses estimated on another person)")
    out = Path(args.out)
    if out.suffix.lower() not in VIDEO_SUFFIXES:
        print(f"pgpis animate: --out {out}: use a .gif or .mp4 file name", file=sys.stderr)
        return 2
    if out.suffix.lower() == ".mp4" and clips.mp4_backend() is None:
        print(f"pgpis animate: {MP4_MISSING}", file=sys.stderr)
        return 2
    pose_frame = tuple(args.pose_frame)
    fps = args.fps
    try:
        pipe, data = load_for_animation(args.checkpoint, device=args.device, fusion_model=args.fusion_model,
                                        trust_checkpoint=args.trust_checkpoint, revision=args.revision)
        if args.driving_video is not None:
            seq, pose_frame, fps = _driving_sequence(args, data)
        else:
            seq = read_pose_sequence(args.poses, args.video)
    except DataFormatError as err:
        print(f"pgpis animate: {err}", file=sys.stderr)
        return 2
    fps = 25.0 if fps is None else fps
    threshold = args.score_threshold if args.score_threshold is not None else float(data.get("score_threshold", 0.3))
    draw_face = args.draw_face if args.draw_face is not None else bool(data.get("draw_face", False))
    poses, held = sequence_poses(seq[:args.max_frames], pose_frame, threshold, draw_face)
    if held:
        print(f"pgpis animate: {held} of {len(poses)} frames have no detection and repeat the previous pose",
              file=sys.stderr)
    frames_dir = Path(args.frames_dir) if args.frames_dir else None
    if frames_dir is not None:
        frames_dir.mkdir(parents=True, exist_ok=True)
    size = tuple(args.size) if args.size else None

    def finish(i: int, img: Image.Image) -> None:
        if frames_dir is not None:
            img.save(frames_dir / f"frame{i + 1:04d}.png")

    guidance = None if args.guidance is None else (args.guidance[0] if len(args.guidance) == 1 else args.guidance)
    try:
        parsing, source_pose = _source_inputs(pipe, args)
        frames = animate_frames(pipe, args.source, poses, seed=args.seed, batch_size=args.batch_size,
                                guidance=guidance, steps=args.steps, scheduler=args.scheduler, on_frame=finish,
                                source_parsing=parsing, source_pose=source_pose,
                                video=parse_video_sampling(not args.frame_noise, args.cross_frame))
    except MissingInputError as err:  # what the checkpoint needs and how to give it
        print(f"pgpis animate: {err}", file=sys.stderr)
        return 2
    if size is not None:
        frames = [f.resize((size[1], size[0]), Image.BICUBIC) for f in frames]
    write_clip(frames, out, fps)
    print(f"wrote {out} ({len(frames)} frames at {fps:g} fps, {frames[0].width}x{frames[0].height} w x h)")
    if args.temporal_metrics:
        from pgpis.metrics.clips import write_clip_metrics

        print(write_clip_metrics(frames, args.temporal_metrics, driving_video=args.driving_video,
                                 max_frames=args.max_frames,
                                 extra={"video_sampling": parse_video_sampling(not args.frame_noise,
                                                                              args.cross_frame).as_dict()}))
    return 0


__all__ = ["build_parser", "main"]
