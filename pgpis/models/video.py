"""Temporally consistent sampling of a clip with an image model: shared initial noise and cross-frame attention.

An image diffusion model sampled frame by frame re-invents details (texture, hand shading,
background noise) in every frame, which shows as flicker. Two training-free remedies, off by
default, combinable:

* ``shared_noise``: every frame of a clip starts from its first frame's initial noise (the seed of
  the clip's first pair), so frames differ only where the conditions (the pose) differ;
* ``cross_frame``: ``"first"``, ``"previous"`` or ``"first+previous"``: each frame's self-attention
  also attends to that frame's keys and values (:mod:`pgpis.models.cross_frame`).
  The clip's frames then go through the denoiser together; a clip longer than ``max_frames``
  is cut into chunks, each with its anchor frame(s) generated again in front (for ``previous``
  the frame before the chunk, which at that boundary attends to itself only).

Cost: shared noise is free; cross-frame attention makes each extended self-attention layer
attend to 2x (3x for both) the keys, and the chunk anchors are extra rows.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Sequence

import torch
from torch import Tensor

from pgpis.models.cross_frame import cross_frame_attention

CROSS_FRAME_MODES = ("first", "previous", "first+previous")


@dataclass(frozen=True)
class VideoSampling:
    """Which consistency options a clip is sampled with (all off = frame-wise sampling)."""

    shared_noise: bool = False
    cross_frame: Optional[str] = None
    max_frames: int = 64

    def __post_init__(self) -> None:
        if self.cross_frame is not None and self.cross_frame not in CROSS_FRAME_MODES:
            raise ValueError(f"cross_frame must be one of {', '.join(CROSS_FRAME_MODES)} or null, got {self.cross_frame!r}")
        if self.max_frames < 2:
            raise ValueError(f"max_frames must be >= 2 (an anchor and a frame), got {self.max_frames}")

    @property
    def enabled(self) -> bool:
        return self.shared_noise or self.cross_frame is not None

    def describe(self) -> str:
        parts = (["shared noise"] if self.shared_noise else []) + (
            [f"cross-frame attention ({self.cross_frame})"] if self.cross_frame else [])
        return " + ".join(parts) or "frame-wise"

    def as_dict(self) -> dict[str, Any]:
        return {"shared_noise": self.shared_noise, "cross_frame": self.cross_frame, "max_frames": self.max_frames,
                "description": self.describe()}


def parse_video_sampling(shared_noise: bool = False, cross_frame: Optional[str] = None,
                         max_frames: int = 64) -> VideoSampling:
    """Options from command-line values ("none" = no cross-frame attention)."""
    return VideoSampling(bool(shared_noise), None if cross_frame in (None, "", "none") else cross_frame, int(max_frames))


def chunks(n: int, options: VideoSampling) -> list[tuple[list[int], int]]:
    """(frame indices to run together, how many leading ones are anchors only) covering frames 0..n-1.

    Without cross-frame attention frames are independent: plain chunks of ``max_frames``.
    """
    if options.cross_frame is None:
        return [(list(range(s, min(s + options.max_frames, n))), 0) for s in range(0, n, options.max_frames)]
    out, start = [], 0
    while start < n:
        lead = [] if start == 0 else sorted({0} if options.cross_frame == "first" else
                                            {start - 1} if options.cross_frame == "previous" else {0, start - 1})
        stop = min(start + options.max_frames - len(lead), n)
        out.append((lead + list(range(start, stop)), len(lead)))
        start = stop
    return out


def anchor_rows(frames: Sequence[int], options: VideoSampling) -> list[list[int]]:
    """Per anchor kind, each row's anchor row within a chunk's `frames` (clip frame indices, anchors first)."""
    pos = {f: i for i, f in enumerate(frames)}
    kinds = options.cross_frame.split("+") if options.cross_frame else []
    rows = []
    for kind in kinds:
        if kind == "first":
            rows.append([pos.get(0, 0) for _ in frames])
        else:  # previous; the chunk's first row has none in the chunk and attends to itself
            rows.append([pos.get(f - 1, i) for i, f in enumerate(frames)])
    return rows


def sample_clip(generate: Callable[..., Tensor], batch_of: Callable[[Sequence[int]], Mapping[str, Any]],
                n: int, seeds: Sequence[int], options: VideoSampling, denoiser: torch.nn.Module,
                **kwargs) -> Tensor:
    """Frames 0..n-1 of one clip, [n, 3, H, W] in [-1, 1].

    `batch_of(frames)` builds the model batch of those clip frames; `generate(batch, seeds=..., **kwargs)`
    is the model's ``generate``; `seeds` are the frames' own seeds (frame-wise sampling), replaced by
    the first frame's with ``shared_noise``; `denoiser` is the module whose attention is extended.
    """
    if len(seeds) != n:
        raise ValueError(f"sample_clip: {len(seeds)} seeds for {n} frames")
    seeds = [seeds[0]] * n if options.shared_noise else list(seeds)
    out: list[Optional[Tensor]] = [None] * n
    for frames, lead in chunks(n, options):
        batch = batch_of(frames)
        chunk_seeds = [seeds[f] for f in frames]
        if options.cross_frame is None:
            images = generate(batch, seeds=chunk_seeds, **kwargs)
        else:
            with cross_frame_attention(denoiser, anchor_rows(frames, options), len(frames)):
                images = generate(batch, seeds=chunk_seeds, **kwargs)
        for f, img in zip(frames[lead:], images[lead:]):
            out[f] = img
    return torch.stack(out)  # type: ignore[arg-type]


__all__ = ["CROSS_FRAME_MODES", "VideoSampling", "anchor_rows", "chunks", "parse_video_sampling", "sample_clip"]
