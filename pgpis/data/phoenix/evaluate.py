"""Scoring generated Phoenix14T frames: full-frame SSIM / FID plus Hand SSIM and Hand PE.

The standard metrics come from :func:`pgpis.metrics.evaluate.evaluate_pairs`
(same resize, SSIM variants and FID plumbing as DeepFashion); the hand metrics
need the ground-truth keypoints of every target frame, which only the Phoenix
index knows, so they are computed here with :mod:`pgpis.metrics.hands`.

Pairs follow the test protocol of :class:`pgpis.data.phoenix.PhoenixDataModule`:
for each video of the split, its first frame as source and every frame as
target, generated files named ``<source stem>_to_<target stem>.png`` with the
DataModule's flat frame names (``<video>_images0001.png``). FID's real sets:
``fid`` = all training frames, ``fid_test`` = the split's target frames.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence

import numpy as np
import torch

from pgpis.data.phoenix.layout import FRAME_SIZE, PhoenixIndex, PhoenixVideo, keypoints_with_missing, read_phoenix_index
from pgpis.data.phoenix.protocols import PHOENIX_METRICS, PHOENIX_PROTOCOL_NAME
from pgpis.errors import DataFormatError, Problem
from pgpis.metrics.evaluate import EvaluationResult, evaluate_pairs, metrics_table
from pgpis.metrics.hand_estimators import NoHandEstimator, resolve_hand_estimator
from pgpis.metrics.hands import KNUCKLES, NO_ESTIMATOR, HandKeypointEstimator, HandPE, HandSSIM, present_hands
from pgpis.metrics.images import load_resized, stack01
from pgpis.metrics.pairs import EvalPair, copy_source, match_generated, missing_error
from pgpis.metrics.protocols import Protocol, get_protocol
from pgpis.metrics.states import my_batches
from pgpis.metrics.temporal import FrameSequence, TemporalResult, format_temporal, lpips_or_reason, temporal_metrics
from pgpis.pose import keypoints as kpt

Log = Callable[[str], None]
SPLIT_ALIASES = {"val": "dev", "validation": "dev"}
HAND_SCORE_THRESHOLD = 0.3


def phoenix_split(split: str) -> str:
    """Corpus split name ("val" is the DataModule's name for ``dev``)."""
    return SPLIT_ALIASES.get(split, split)


@dataclass(frozen=True)
class PhoenixFrames:
    """Frame name -> (video, frame index) of the splits read, and the evaluated split's pairs."""

    frames: dict[str, tuple[PhoenixVideo, int]]
    pairs: list[tuple[str, str]]
    train: list[str]

    def path(self, name: str) -> Path:
        video, t = self.frames[name]
        return video.frames[t]

    def keypoints(self, name: str) -> np.ndarray:
        """``[133, 3]`` (x, y, score) in the 210x260 frame."""
        video, t = self.frames[name]
        return video.keypoints[t]


def first_frame_name_pairs(videos: Sequence[PhoenixVideo]) -> list[tuple[str, str]]:
    """The test protocol as frame names: (first frame, every frame) of each video, in DataModule order."""
    return [(v.frame_name(0), v.frame_name(t)) for v in videos for t in range(len(v))]


def phoenix_frames(index: PhoenixIndex, split: str) -> PhoenixFrames:
    """Names, pairs and the training frames (FID's real set) of a read index."""
    frames: dict[str, tuple[PhoenixVideo, int]] = {}
    for videos in index.videos.values():
        for v in videos:
            for t in range(len(v)):
                frames[v.frame_name(t)] = (v, t)
    train = [v.frame_name(t) for v in index.videos.get("train", []) for t in range(len(v))]
    return PhoenixFrames(frames, first_frame_name_pairs(index.videos.get(split, [])), train)


def read_phoenix_frames(root: str | os.PathLike, split: str,
                        keypoints: str | os.PathLike | Sequence[str | os.PathLike] | None = None) -> PhoenixFrames:
    """Read the split (and ``train``, for FID) of a Phoenix copy; a split without videos is an error."""
    split = phoenix_split(split)
    index = read_phoenix_index(root, splits=tuple(dict.fromkeys(("train", split))), keypoints=keypoints)
    if not index.videos.get(split):
        raise DataFormatError(Problem(str(index.root), f"split '{split}' has no videos",
                                      "use --split test, dev or train (the corpus CSVs of the Phoenix copy)"))
    return phoenix_frames(index, split)


# --------------------------------------------------------------------------- hand metrics
def target_hand_keypoints(frames: PhoenixFrames, names: Sequence[str], size: tuple[int, int],
                          score_threshold: float = HAND_SCORE_THRESHOLD) -> tuple[torch.Tensor, torch.Tensor]:
    """Ground-truth ``[B, 133, 2]`` keypoints in `size` pixels (-1 below the threshold) and scores ``[B, 133]``."""
    kps = [keypoints_with_missing(frames.keypoints(n), score_threshold) for n in names]
    xy = np.stack([kpt.rescale_keypoints(k[:, :2], FRAME_SIZE, size) for k in kps])
    return torch.from_numpy(xy), torch.from_numpy(np.stack([k[:, 2] for k in kps]))


def hand_metrics(pairs: Sequence[EvalPair], frames: PhoenixFrames, protocol: Protocol, *,
                 estimator: Optional[HandKeypointEstimator] = None, batch_size: int = 16,
                 device: str | torch.device = "cpu", score_threshold: float = HAND_SCORE_THRESHOLD,
                 no_estimator_reason: str = NO_ESTIMATOR) -> tuple[dict[str, float | None], dict[str, str], dict]:
    """(``{"hand_ssim", "hand_pe"}``, unavailable, ``{"hand_pe": estimator name and counts}``) over the pairs;
    summed over ranks under torch.distributed."""
    dev = torch.device(device)
    hssim = HandSSIM(score_threshold=score_threshold).to(dev)
    hpe = HandPE(estimator, score_threshold=score_threshold).to(dev)
    for batch in my_batches(len(pairs), batch_size):
        chunk = [pairs[i] for i in batch]
        gen = stack01([load_resized(p.generated, protocol.size) for p in chunk]).to(dev)
        real = stack01([load_resized(p.target_path, protocol.size) for p in chunk]).to(dev)
        xy, scores = target_hand_keypoints(frames, [p.target for p in chunk], protocol.size, score_threshold)
        xy, scores = xy.to(dev), scores.to(dev)
        hssim.update(gen, real, xy, scores)
        hpe.update(gen.float(), real.float(), xy, scores)
    metrics: dict[str, float | None] = {"hand_ssim": None, "hand_pe": None}
    unavailable: dict[str, str] = {}
    value = float(hssim.compute())
    if math.isfinite(value):
        metrics["hand_ssim"] = value
    else:
        unavailable["hand_ssim"] = "no ground-truth hand present (knuckle score >= 0.3) in the scored frames"
    details = {"hand_pe": {"estimator": hpe.name, "score_threshold": score_threshold}}
    if estimator is None:
        unavailable["hand_pe"] = no_estimator_reason
    else:
        value = float(hpe.compute())
        with hpe.sync_context():  # the counts of every rank
            counts = hpe.counts()
        details["hand_pe"].update(counts)
        if math.isfinite(value):
            metrics["hand_pe"] = value
        elif counts["gt_hands"] == 0:
            unavailable["hand_pe"] = "no ground-truth hand present (knuckle score >= 0.3) in the scored frames"
        elif counts["found_on_real"] == 0:
            unavailable["hand_pe"] = (f"{hpe.name} detected no hands on the real frames "
                                      f"({counts['gt_hands']} ground-truth hands)")
        else:
            unavailable["hand_pe"] = (f"{hpe.name} found none of the real frames' hand points on the generated frames "
                                      f"({counts['missed_on_generated']} missed)")
    return metrics, unavailable, details


# --------------------------------------------------------------------------- temporal metrics
def hand_centres(frames: PhoenixFrames, name: str, size: tuple[int, int],
                 score_threshold: float = HAND_SCORE_THRESHOLD) -> np.ndarray:
    """``[2, 2]`` ground-truth knuckle centres (left, right) of a frame in `size` pixels, NaN where absent."""
    xy, scores = target_hand_keypoints(frames, [name], size, score_threshold)
    present = present_hands(xy, scores, score_threshold)[0]
    centres = xy[0, list(KNUCKLES)].double().numpy()
    centres[~present.numpy()] = np.nan
    return centres


def phoenix_sequences(pairs: Sequence[EvalPair], frames: PhoenixFrames, size: tuple[int, int]) -> list[FrameSequence]:
    """The scored pairs as clips in frame order: one per run of consecutive frames of a video (a missing file
    splits a video, so no frame pair skips a frame)."""
    runs: list[list[EvalPair]] = []
    last: tuple[str, int] | None = None
    for pair in sorted(pairs, key=lambda p: (frames.frames[p.target][0].name, frames.frames[p.target][1])):
        video, t = frames.frames[pair.target]
        if last is None or last != (video.name, t - 1):
            runs.append([])
        runs[-1].append(pair)
        last = (video.name, t)
    return [FrameSequence(f"{frames.frames[run[0].target][0].name}@{frames.frames[run[0].target][1]}",
                          [p.generated for p in run], [p.target_path for p in run],
                          np.stack([hand_centres(frames, p.target, size) for p in run]))
            for run in runs]


def phoenix_temporal(pairs: Sequence[EvalPair], frames: PhoenixFrames, protocol: Protocol, *, flow: str = "dis",
                     flow_weights: str | os.PathLike | None = None, alexnet: str | os.PathLike | None = None,
                     lpips_net: Optional[torch.nn.Module] = None, device: str | torch.device = "cpu") -> dict:
    """``metrics.json``'s ``temporal`` section: warping error, hand warping error, tOF and tLP of the generated
    clips and of the ground truth (the floor), at the protocol size (:mod:`pgpis.metrics.temporal`)."""
    reason = None
    if lpips_net is None:
        lpips_net, reason = lpips_or_reason(alexnet)
    result = temporal_metrics(phoenix_sequences(pairs, frames, protocol.size), protocol.size, flow=flow,
                              flow_weights=flow_weights, lpips_net=lpips_net, lpips_unavailable=reason, device=device)
    return result.to_dict()


# --------------------------------------------------------------------------- result
class PhoenixEvaluationResult(EvaluationResult):
    """:class:`EvaluationResult` with the Phoenix metric set (adds Hand SSIM / Hand PE, drops LPIPS)."""

    def to_dict(self) -> dict:
        d = super().to_dict()
        d["metrics"] = {k: self.metrics.get(k) for k in PHOENIX_METRICS + self.quality_keys()}
        d["unavailable"] = {k: v for k, v in self.unavailable.items() if k in PHOENIX_METRICS + self.quality_keys()}
        return d

    def markdown_table(self, method: str = "generated", rows: Mapping[str, "PhoenixEvaluationResult"] | None = None) -> str:
        """FPDM's Phoenix table (SSIM, Hand SSIM, Hand PE, FID) plus the extra columns; `rows` adds e.g. a baseline."""
        cols = [("SSIM", "ssim", 4), ("SSIM (gaussian)", "ssim_gaussian", 4), ("Hand SSIM", "hand_ssim", 4),
                ("Hand PE", "hand_pe", 2), ("FID", "fid", 3), ("FID_test", "fid_test", 3), ("PSNR", "psnr", 3)]
        lines = metrics_table({method: self, **(rows or {})}, cols, PHOENIX_METRICS)
        hpe = self.details.get("hand_pe", {})
        if hpe.get("estimator"):
            lines.append(f"Hand PE: hand keypoints by `{hpe['estimator']}` on generated and real frames; "
                         f"{hpe['points']} points averaged, {hpe['missed_on_generated']} not found on the generated "
                         f"frames, {hpe['found_on_real']} of {hpe['gt_hands']} ground-truth hands found on the real ones.")
        for name, row in {method: self, **(rows or {})}.items():
            if "temporal" in row.details:
                lines += ["", format_temporal(TemporalResult.from_dict(row.details["temporal"]), name)]
        return "\n".join(lines)


def evaluate_phoenix(
    root: str | os.PathLike,
    split: str,
    generated_dir: str | os.PathLike,
    protocol: str | Protocol = PHOENIX_PROTOCOL_NAME,
    *,
    keypoints: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    hand_estimator: HandKeypointEstimator | NoHandEstimator | str | None = "auto",
    allow_missing: bool = False,
    frames: Optional[PhoenixFrames] = None,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    log: Optional[Log] = None,
    temporal: Optional[Mapping] = None,
    **kwargs,
) -> PhoenixEvaluationResult:
    """Score ``generated_dir`` against the split's first-frame protocol (SSIM, Hand SSIM, Hand PE, FID).

    `kwargs` go to :func:`pgpis.metrics.evaluate.evaluate_pairs` (``fid_extractor``,
    ``weights``, ``fid_cache_dir``). `hand_estimator` (see
    :func:`pgpis.metrics.hand_estimators.resolve_hand_estimator`): ``"auto"`` = MediaPipe's hands when
    installed; None / "none" = Hand PE unavailable with the reason. Missing files raise a DataFormatError
    listing them unless `allow_missing`.
    """
    protocol = get_protocol(protocol)
    frames = frames or read_phoenix_frames(root, split, keypoints)
    matching = match_generated(generated_dir, frames.pairs, frames.path)
    if matching.missing and not allow_missing:
        raise missing_error(generated_dir, matching, len(frames.pairs))
    if log and matching.unexpected:
        log(f"{len(matching.unexpected)} file(s) in {generated_dir} match no pair and are ignored: "
            + ", ".join(matching.unexpected[:10]) + (" ..." if len(matching.unexpected) > 10 else ""))
    real_sets = {"fid": [frames.path(n) for n in frames.train],
                 "fid_test": sorted({frames.path(t) for _, t in frames.pairs})}
    kwargs.setdefault("lpips_net", None)  # not part of the Phoenix protocol
    metrics, unavailable = evaluate_pairs(matching.found, protocol, real_sets, batch_size=batch_size, device=device,
                                          log=log, **kwargs)
    hand_estimator = resolve_hand_estimator(hand_estimator)
    no_hands = hand_estimator if isinstance(hand_estimator, NoHandEstimator) else None
    hands, hands_na, details = hand_metrics(matching.found, frames, protocol, batch_size=batch_size, device=device,
                                            estimator=None if no_hands else hand_estimator,
                                            no_estimator_reason=no_hands.reason if no_hands else NO_ESTIMATOR)
    metrics.update(hands)
    unavailable.update(hands_na)
    if temporal is not None:
        weights = kwargs.get("weights")
        details["temporal"] = phoenix_temporal(matching.found, frames, protocol, device=device, **{
            "alexnet": getattr(weights, "alexnet", None), **temporal})
    return PhoenixEvaluationResult(protocol, len(matching.found), metrics, unavailable,
                                   n_expected=len(frames.pairs) - len(matching.duplicates),
                                   missing=matching.missing, unexpected=matching.unexpected, details=details)


def copy_first_frame(frames: PhoenixFrames, out_dir: str | os.PathLike) -> Path:
    """Write the copy-the-first-frame baseline (every target replaced by its video's first frame)."""
    return copy_source(frames.pairs, frames.path, out_dir)


__all__ = ["PhoenixFrames", "PhoenixEvaluationResult", "copy_first_frame", "evaluate_phoenix",
           "first_frame_name_pairs", "hand_centres", "hand_metrics", "phoenix_frames", "phoenix_sequences",
           "phoenix_temporal", "phoenix_split", "read_phoenix_frames",
           "target_hand_keypoints"]
