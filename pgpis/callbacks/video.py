"""Clips in `DDIMInference`: clip-wise consistent sampling and the temporal metrics of a generated split.

A dataset whose pairs form clips declares them with ``sequences() -> list[range]`` (runs of pair
indices in frame order; :class:`pgpis.data.phoenix.PhoenixDataset`'s test protocol: one run per
video). For such a dataset `DDIMInference`

* with :class:`~pgpis.models.video.VideoSampling` options on, generates whole clips per batch
  (clips go to ranks round robin, each once) through :func:`pgpis.models.video.sample_clip`;
* always scores the written clips with :func:`pgpis.metrics.temporal.temporal_metrics` against the
  dataset's target frames at the image size (hand boxes from the target keypoints, 60 px at Phoenix's
  260 px frame height, scaled to the image size), samples and ground truth side by side.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from pgpis.diffusion.core import move_batch
from pgpis.models.video import VideoSampling, sample_clip
from pgpis.metrics.hands import CROP, KNUCKLES, present_hands
from pgpis.metrics.images import tensor_to_uint8
from pgpis.metrics.pairs import generated_name
from pgpis.metrics.states import my_batches
from pgpis.metrics.temporal import FrameSequence, lpips_or_reason, temporal_metrics

#: Phoenix's frame height, against which the 60 px hand box is scaled to the image size
REFERENCE_HEIGHT = 260


def dataset_clips(dataset: Dataset, n: int) -> Optional[list[range]]:
    """The dataset's clips cut to the first `n` pairs, or None when it declares none."""
    sequences = getattr(dataset, "sequences", None)
    if not callable(sequences):
        return None
    return [range(r.start, min(r.stop, n)) for r in sequences() if r.start < n]


def my_clips(clips: Sequence[range]) -> list[range]:
    """This rank's clips (round robin, each clip once, whole)."""
    return [clips[i] for r in my_batches(len(clips), 1) for i in r]


def generate_clip(pl_module, dataset: Dataset, collate: Callable, clip: range, options: VideoSampling,
                  **kwargs) -> torch.Tensor:
    """One clip's frames [len(clip), 3, H, W] in [-1, 1] with the consistency `options` (kwargs: guidance, sampler)."""
    idx = list(clip)
    seeds = pl_module.sample_seeds({"pair_index": torch.as_tensor(idx)})

    def batch_of(frames: Sequence[int]):
        batch = collate([dataset[idx[f]] for f in frames])
        batch["pair_index"] = torch.as_tensor([idx[f] for f in frames])
        return move_batch(batch, pl_module.device)

    return sample_clip(pl_module.generate, batch_of, len(idx), seeds, options, pl_module.denoiser, **kwargs)


def hand_box(height: int) -> int:
    """The 60 px Phoenix hand box at an image `height` (at least 4 px)."""
    return max(4, round(CROP * height / REFERENCE_HEIGHT))


def clip_sequences(dataset: Dataset, clips: Sequence[range], output_dir: Path, target_key: str = "target",
                   score_threshold: float = 0.3) -> list[FrameSequence]:
    """The generated files of each clip, with the target frames and target hand knuckles as reference."""
    out = []
    for clip in clips:
        items = [dataset[i] for i in clip]
        refs = [tensor_to_uint8(it[target_key]) for it in items]
        hands = None
        if all("target_keypoints" in it for it in items):
            xy = torch.stack([torch.as_tensor(it["target_keypoints"]) for it in items]).float()
            scores = (torch.stack([torch.as_tensor(it["target_keypoint_scores"]) for it in items]).float()
                      if all("target_keypoint_scores" in it for it in items) else None)
            present = present_hands(xy, scores, score_threshold)
            hands = xy[:, list(KNUCKLES)].double().numpy()
            hands[~present.numpy()] = np.nan
        files = [output_dir / generated_name(str(it["source_name"]), str(it["target_name"])) for it in items]
        out.append(FrameSequence(str(items[0]["source_name"]), files, refs, hands))
    return out


def score_clips(dataset: Dataset, clips: Sequence[range], output_dir: Path, *, target_key: str = "target",
                flow: str = "dis", device: str | torch.device = "cpu") -> dict[str, Any]:
    """``metrics.json``'s ``temporal`` section for the clips written to `output_dir` (a collective under DDP)."""
    size = tuple(int(v) for v in dataset[clips[0].start][target_key].shape[-2:]) if clips else (1, 1)
    # temporal_metrics scores this rank's share (the same round robin as my_clips); the other clips only need their
    # length there, so they are not read here
    mine = {c.start for c in my_clips(clips)}
    sequences = [clip_sequences(dataset, [c], output_dir, target_key)[0] if c.start in mine
                 else FrameSequence(f"clip@{c.start}", [None] * len(c), [None] * len(c)) for c in clips]
    net, reason = lpips_or_reason()
    return temporal_metrics(sequences, size, flow=flow, lpips_net=net, lpips_unavailable=reason, device=device,
                            crop=hand_box(size[0])).to_dict()


__all__ = ["clip_sequences", "dataset_clips", "generate_clip", "hand_box", "my_clips", "score_clips"]
