"""Temporal consistency of generated frame sequences: warping error, hand warping error, tOF and tLP.

A sequence generated frame by frame can match every target on its own and still flicker. These
metrics score the change *between* consecutive frames, each computed for the samples and for
the reference sequence itself (its own score is the floor a perfect generator would reach):

* **warping error** (Lai et al., ECCV 2018): the previous frame is warped onto the current one by
  the backward optical flow of the *flow sequence* (the ground truth when there is one, else the
  scored frames themselves); pixels the flow cannot explain are masked by the forward-backward
  consistency check (|b + f(x + b)|^2 > 0.01 (|b|^2 + |f(x + b)|^2) + 0.5, Sundaram et al.), as are
  pixels whose flow leaves the frame. Per frame pair: mean over unmasked pixels of the squared
  RGB distance (images in [0, 1], channels summed); the score is the mean over all frame pairs.
* **hand warping error**: the same, counted only inside 60x60 boxes centred on the ground-truth
  middle-finger knuckles of the current frame (the crops of Hand SSIM, :mod:`pgpis.metrics.hands`),
  over the frame pairs with at least one hand present; the hands are what flickers in sign language.
* **tOF** (TecoGAN): mean end-point distance between the backward flow of the scored frames and that
  of the reference (0 for the reference).
* **tLP** (TecoGAN): |LPIPS(g_t, g_{t-1}) - LPIPS(b_t, b_{t-1})| averaged over frame pairs, with the
  LPIPS AlexNet of :mod:`pgpis.metrics.lpips_net`; unavailable (with the reason) without its weights.
  ``lpips_consecutive`` (mean LPIPS between consecutive frames) is reported for both sequences.

Flow: OpenCV's DIS (default, ``medium`` preset) or Farneback run offline on 8-bit grey frames;
torchvision's RAFT-large only from a local weight file (``PGPIS_RAFT_WEIGHTS`` or an explicit path).
The flow used is named in the settings. Under ``torch.distributed`` whole sequences go to ranks
round robin (each once) and per-pair values are gathered by global index
(:class:`pgpis.metrics.states.IndexedValues`), so every rank returns the single-process numbers.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from pgpis.errors import MissingWeightsError
from pgpis.metrics.hands import CROP, crop_origin
from pgpis.metrics.images import load_resized
from pgpis.metrics.states import IndexedValues, my_batches

FLOW_METHODS = ("dis", "farneback", "raft")
SCORES = ("warping_error", "hand_warping_error", "tof", "tlp", "lpips_consecutive")
Frame = np.ndarray  # uint8 [H, W, 3]
FlowFn = Callable[[Frame, Frame], np.ndarray]  # (from, to) -> float32 [H, W, 2]: from(x) ~ to(x + flow(x))


# --------------------------------------------------------------------------- optical flow
def _grey(frame: Frame) -> np.ndarray:
    import cv2

    return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)


def dis_flow(src: Frame, dst: Frame) -> np.ndarray:
    """OpenCV DIS flow (medium preset): ``src(x) ~ dst(x + flow(x))``, float32 [H, W, 2] (dx, dy)."""
    import cv2

    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return dis.calc(_grey(src), _grey(dst), None)


def farneback_flow(src: Frame, dst: Frame) -> np.ndarray:
    """OpenCV Farneback flow (pyramid 0.5, 3 levels, window 15): same convention as :func:`dis_flow`."""
    import cv2

    return cv2.calcOpticalFlowFarneback(_grey(src), _grey(dst), None, 0.5, 3, 15, 3, 5, 1.2, 0)


class RaftFlow:
    """torchvision RAFT-large from a local weight file (no download): same convention as :func:`dis_flow`."""

    def __init__(self, weights: str | os.PathLike | None = None, device: str | torch.device = "cpu"):
        from pgpis.metrics.weights import RAFT_LARGE
        from torchvision.models.optical_flow import raft_large

        path = RAFT_LARGE.resolve(weights)
        self.device = torch.device(device)
        self.model = raft_large(weights=None).eval().requires_grad_(False).to(self.device)
        self.model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        self.name = f"torchvision raft_large ({Path(path).name})"

    @torch.no_grad()
    def __call__(self, src: Frame, dst: Frame) -> np.ndarray:
        h, w = src.shape[:2]
        ph, pw = -h % 8, -w % 8  # RAFT needs sides divisible by 8

        def prep(f: Frame) -> torch.Tensor:
            t = torch.from_numpy(np.ascontiguousarray(f)).permute(2, 0, 1)[None].float() / 127.5 - 1
            return torch.nn.functional.pad(t, (0, pw, 0, ph), mode="replicate").to(self.device)

        flow = self.model(prep(src), prep(dst))[-1][0, :, :h, :w]
        return flow.permute(1, 2, 0).cpu().numpy().astype(np.float32)


def flow_function(method: str = "dis", weights: str | os.PathLike | None = None,
                  device: str | torch.device = "cpu") -> tuple[FlowFn, str]:
    """(flow function, its name for metrics.json) for ``dis``, ``farneback`` or ``raft`` (local weights only)."""
    if method == "dis":
        return dis_flow, "opencv DIS (medium preset)"
    if method == "farneback":
        return farneback_flow, "opencv Farneback (pyr 0.5, 3 levels, window 15)"
    if method == "raft":
        raft = RaftFlow(weights, device)
        return raft, raft.name
    raise ValueError(f"unknown optical flow '{method}'; use one of {', '.join(FLOW_METHODS)}")


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``image`` sampled at ``x + flow(x)`` (bilinear, border replicated): float32, same shape as `image`."""
    import cv2

    h, w = flow.shape[:2]
    grid = np.stack(np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)), -1) + flow
    return cv2.remap(np.ascontiguousarray(image, dtype=np.float32), grid[..., 0], grid[..., 1],
                     interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def consistent_mask(backward: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """Bool [H, W]: pixels of the current frame whose backward flow is confirmed by the forward flow and stays inside.

    `backward`: current -> previous, `forward`: previous -> current (both as :func:`dis_flow`).
    """
    h, w = backward.shape[:2]
    fwd_at = warp(forward, backward)  # forward flow at x + b(x)
    total = backward + fwd_at
    ok = (total ** 2).sum(-1) <= 0.01 * ((backward ** 2).sum(-1) + (fwd_at ** 2).sum(-1)) + 0.5
    xs, ys = np.meshgrid(np.arange(w), np.arange(h))
    tx, ty = xs + backward[..., 0], ys + backward[..., 1]
    return ok & (tx >= 0) & (tx <= w - 1) & (ty >= 0) & (ty <= h - 1)


def hand_mask(centres: Optional[np.ndarray], frame: tuple[int, int], crop: int = CROP) -> Optional[np.ndarray]:
    """Bool [H, W] union of the `crop` boxes at the present hands' knuckles (``[2, 2]``, NaN = absent); None if none."""
    if centres is None:
        return None
    mask = np.zeros(frame, dtype=bool)
    for c in np.asarray(centres, dtype=np.float64).reshape(-1, 2):
        if np.isfinite(c).all():
            x0, y0 = crop_origin(c.tolist(), frame, crop)
            mask[y0:y0 + crop, x0:x0 + crop] = True
    return mask if mask.any() else None


def masked_sq_error(current: Frame, warped_previous: np.ndarray, mask: np.ndarray) -> float:
    """Mean over `mask` of the squared RGB distance (images in [0, 1], channels summed); NaN for an empty mask."""
    if not mask.any():
        return float("nan")
    diff = current.astype(np.float64) / 255.0 - warped_previous.astype(np.float64) / 255.0
    return float((diff ** 2).sum(-1)[mask].mean())


# --------------------------------------------------------------------------- sequences
@dataclass(frozen=True)
class FrameSequence:
    """One clip to score, in frame order.

    `frames`: the scored frames (generated files or arrays); `reference`: the ground truth of the
    same length (the flow source and tLP/tOF partner), or None (the flow then comes from `frames`
    and only the warping errors are computed); `hands`: ``[T, 2, 2]`` knuckle centres (x, y) at
    the report size, NaN where a hand is absent, or None.
    """

    name: str
    frames: Sequence[str | os.PathLike | Frame]
    reference: Optional[Sequence[str | os.PathLike | Frame]] = None
    hands: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        if self.reference is not None and len(self.reference) != len(self.frames):
            raise ValueError(f"sequence '{self.name}': {len(self.frames)} frames but {len(self.reference)} reference frames")
        if self.hands is not None and len(self.hands) != len(self.frames):
            raise ValueError(f"sequence '{self.name}': {len(self.frames)} frames but hand centres for {len(self.hands)}")


def _load(frames: Sequence[str | os.PathLike | Frame], size: tuple[int, int]) -> list[Frame]:
    from pgpis.metrics.images import resize_pil

    return [resize_pil(f, size) if isinstance(f, np.ndarray) else load_resized(f, size) for f in frames]


@dataclass
class TemporalResult:
    """Scores of the samples and of the reference (the floor), the settings, and what could not be computed."""

    samples: dict[str, Optional[float]]
    reference: dict[str, Optional[float]]
    settings: dict
    unavailable: dict[str, str] = field(default_factory=dict)

    def to_dict(self, reference_name: str = "ground_truth") -> dict:
        return {"samples": self.samples, reference_name: self.reference, "settings": self.settings,
                "unavailable": self.unavailable}

    @classmethod
    def from_dict(cls, d: dict) -> "TemporalResult":
        """Back from :meth:`to_dict` (whatever the reference was called)."""
        ref = next(v for k, v in d.items() if k not in ("samples", "settings", "unavailable"))
        return cls(dict(d["samples"]), dict(ref), dict(d["settings"]), dict(d.get("unavailable", {})))


def sequence_flows(flow_frames: Sequence[Frame], flow: FlowFn) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per frame pair (t-1, t): (backward flow t -> t-1, consistency mask of frame t)."""
    out = []
    for t in range(1, len(flow_frames)):
        backward = flow(flow_frames[t], flow_frames[t - 1])
        out.append((backward, consistent_mask(backward, flow(flow_frames[t - 1], flow_frames[t]))))
    return out


def pair_scores(frames: Sequence[Frame], flows: Sequence[tuple[np.ndarray, np.ndarray]],
                hands: Optional[np.ndarray] = None, crop: int = CROP) -> dict[str, np.ndarray]:
    """Per frame pair (t-1, t), t = 1..T-1: warping error and hand warping error of `frames` under `flows`
    (:func:`sequence_flows`); hand values are NaN where no hand is present."""
    n = len(frames) - 1
    out = {"warping_error": np.full(n, np.nan), "hand_warping_error": np.full(n, np.nan)}
    for t in range(1, len(frames)):
        backward, mask = flows[t - 1]
        warped = warp(frames[t - 1], backward)
        out["warping_error"][t - 1] = masked_sq_error(frames[t], warped, mask)
        hm = hand_mask(None if hands is None else hands[t], frames[t].shape[:2], crop)
        if hm is not None:
            out["hand_warping_error"][t - 1] = masked_sq_error(frames[t], warped, mask & hm)
    return out


def _consecutive_lpips(net: torch.nn.Module, frames: Sequence[Frame], batch: int = 16) -> np.ndarray:
    from pgpis.metrics.images import stack01
    from pgpis.metrics.lpips_net import lpips_distance

    values = []
    for s in range(1, len(frames), batch):
        idx = range(s, min(s + batch, len(frames)))
        cur = stack01([frames[t] for t in idx], torch.float32)
        prev = stack01([frames[t - 1] for t in idx], torch.float32)
        values.append(lpips_distance(net, cur, prev).numpy())
    return np.concatenate(values) if values else np.zeros(0)


def temporal_metrics(sequences: Sequence[FrameSequence], size: tuple[int, int], *, flow: str = "dis",
                     flow_weights: str | os.PathLike | None = None, lpips_net: Optional[torch.nn.Module] = None,
                     lpips_unavailable: Optional[str] = None, device: str | torch.device = "cpu",
                     crop: int = CROP) -> TemporalResult:
    """Warping error, hand warping error, tOF and tLP of `sequences` at the report `size` (h, w).

    `lpips_net` (:func:`pgpis.metrics.lpips_net.build_lpips`) turns on tLP; without it tLP is
    unavailable with `lpips_unavailable` as the reason. Sequences with references score the
    reference too (``reference`` in the result); otherwise the flow comes from the frames themselves.
    A collective under ``torch.distributed``: every rank must call it with the same sequences.
    """
    flow_fn, flow_name = flow_function(flow, flow_weights, device)
    with_ref = [s.reference is not None for s in sequences]
    if any(with_ref) and not all(with_ref):
        raise ValueError("temporal_metrics: either every sequence has reference frames or none has")
    has_ref = bool(sequences) and all(with_ref)
    offsets = np.cumsum([0] + [max(len(s.frames) - 1, 0) for s in sequences])
    names = ["s_warp", "s_hand", "r_warp", "r_hand", "tof", "s_lpips", "r_lpips"]
    values = IndexedValues(names).to(device)
    use_lpips = lpips_net is not None and has_ref
    mine = [i for batch in my_batches(len(sequences), 1) for i in batch]
    for i in mine:
        seq = sequences[i]
        n = len(seq.frames) - 1
        if n <= 0:
            continue
        frames = _load(seq.frames, size)
        ref = _load(seq.reference, size) if has_ref else None
        hands = None if seq.hands is None else np.asarray(seq.hands, dtype=np.float64)
        flows = sequence_flows(ref if ref is not None else frames, flow_fn)
        s = pair_scores(frames, flows, hands, crop)
        row = {"s_warp": s["warping_error"], "s_hand": s["hand_warping_error"]}
        nan = np.full(n, np.nan)
        if ref is not None:
            r = pair_scores(ref, flows, hands, crop)
            own = [flow_fn(frames[t], frames[t - 1]) for t in range(1, len(frames))]
            tof = np.array([np.sqrt(((o - b) ** 2).sum(-1)).mean() for o, (b, _) in zip(own, flows)])
            row.update(r_warp=r["warping_error"], r_hand=r["hand_warping_error"], tof=tof)
        else:
            row.update(r_warp=nan, r_hand=nan, tof=nan)
        if use_lpips:
            row.update(s_lpips=_consecutive_lpips(lpips_net, frames), r_lpips=_consecutive_lpips(lpips_net, ref))
        else:
            row.update(s_lpips=nan, r_lpips=nan)
        values.update(torch.arange(offsets[i], offsets[i] + n),
                      **{k: torch.from_numpy(np.asarray(v, dtype=np.float64)) for k, v in row.items()})
    if not values.item_index:
        values.update_empty()
    got = {k: v.cpu().numpy() for k, v in values.compute().items()}

    def mean(x: np.ndarray) -> Optional[float]:
        x = x[np.isfinite(x)]
        return float(x.mean()) if len(x) else None

    samples = {"warping_error": mean(got["s_warp"]), "hand_warping_error": mean(got["s_hand"])}
    reference = {"warping_error": mean(got["r_warp"]), "hand_warping_error": mean(got["r_hand"])}
    unavailable: dict[str, str] = {}
    if has_ref:
        samples["tof"], reference["tof"] = mean(got["tof"]), (0.0 if len(got["tof"]) else None)
        if use_lpips:
            samples["tlp"] = mean(np.abs(got["s_lpips"] - got["r_lpips"]))
            reference["tlp"] = 0.0 if len(got["s_lpips"]) else None
            samples["lpips_consecutive"], reference["lpips_consecutive"] = mean(got["s_lpips"]), mean(got["r_lpips"])
        else:
            for d in (samples, reference):
                d.update(tlp=None, lpips_consecutive=None)
            unavailable["tlp"] = lpips_unavailable or "no LPIPS network given"
    if samples["hand_warping_error"] is None:
        unavailable["hand_warping_error"] = ("no hand present in the scored frames" if has_hands(sequences)
                                             else "no hand keypoints given for the sequences")
    settings = {"flow": flow_name, "flow_computed_on": "reference (ground truth)" if has_ref else "the scored frames",
                "occlusion": "forward-backward consistency |b+f|^2 <= 0.01(|b|^2+|f|^2)+0.5, inside the frame",
                "error": "mean squared RGB distance in [0, 1] (channels summed) over unmasked pixels, mean over frame pairs",
                "size": list(size), "hand_box": crop, "sequences": len(sequences), "frame_pairs": int(offsets[-1])}
    if use_lpips:
        settings["lpips"] = "AlexNet LPIPS between consecutive frames (tLP = |samples - reference|)"
    return TemporalResult(samples, reference, settings, unavailable)


def has_hands(sequences: Sequence[FrameSequence]) -> bool:
    return any(s.hands is not None for s in sequences)


def lpips_or_reason(weights: str | os.PathLike | None = None) -> tuple[Optional[torch.nn.Module], Optional[str]]:
    """The LPIPS AlexNet for tLP, or (None, why it is unavailable) when its weights cannot be found."""
    from pgpis.metrics.lpips_net import build_lpips

    try:
        return build_lpips(weights), None
    except MissingWeightsError as err:
        return None, str(err)


def format_temporal(result: TemporalResult, samples: str = "samples", reference: str = "ground truth") -> str:
    """Markdown rows: warping errors (x10^-3), tOF, tLP for the samples and the reference (the floor)."""

    def cell(v: Optional[float], scale: float = 1.0, digits: int = 3) -> str:
        return "n/a" if v is None or not math.isfinite(v) else f"{v * scale:.{digits}f}"

    lines = [f"| temporal ({result.settings['flow']}) | warp err x1e-3 | hand warp err x1e-3 | tOF | tLP |",
             "|---|---|---|---|---|"]
    for name, d in ((samples, result.samples), (reference, result.reference)):
        lines.append(f"| {name} | {cell(d.get('warping_error'), 1e3)} | {cell(d.get('hand_warping_error'), 1e3)} | "
                     f"{cell(d.get('tof'))} | {cell(d.get('tlp'), 1.0, 4)} |")
    for k, why in result.unavailable.items():
        lines.append(f"{k}: unavailable ({why})")
    return "\n".join(lines)


__all__ = ["FLOW_METHODS", "FrameSequence", "TemporalResult", "consistent_mask", "dis_flow", "farneback_flow",
           "flow_function", "format_temporal", "hand_mask", "lpips_or_reason", "masked_sq_error", "pair_scores", "sequence_flows",
           "temporal_metrics", "warp"]
