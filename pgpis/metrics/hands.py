"""Hand metrics for sign-language generation (Phoenix14T): Hand SSIM and Hand PE (docs/metrics-protocol.md).

Choices, made explicit:

* Crops are 60x60, centred on the ground-truth middle-finger knuckle (MCP;
  COCO-WholeBody 100 left, 121 right) rounded to the nearest pixel, then shifted
  to lie inside the frame (clamped, never padded). Images are compared at the
  report size (260x210 for Phoenix), in [0, 1], keypoints in those pixels.
* A hand counts only when its ground-truth knuckle is present (not -1) with a
  score >= ``score_threshold`` (0.3). The metric is the mean over all counted
  hands of all images (not a per-image mean), so images with one visible hand
  weigh half as much as images with two.
* Hand SSIM uses the Gaussian SSIM (``pgpis.metrics.ssim.ssim_gaussian``: 11-tap,
  sigma 1.5, no sample covariance, on 0-255 with a fixed data range of 255, as
  skimage): the 51-window variant would leave only 10x10 valid positions in a
  60x60 crop.
* Hand PE is the mean L1 distance ``|dx| + |dy|`` in pixels between the 42 hand
  keypoints a :class:`HandKeypointEstimator` finds on the generated and on the
  real frame, over counted hands and over points the estimator is confident
  about (score >= threshold) on the real frame. A point the estimator misses on
  the generated frame (``-1``) is left out of the mean and counted in
  ``hand_pe_missed`` (its distance to "-1" would be no distance at all). The
  default estimator is MediaPipe's hand landmarker through
  :class:`pgpis.metrics.hand_estimators.PoseHandEstimator`; with no estimator
  Hand PE is reported *unavailable* with the reason, never as a number.
"""
from __future__ import annotations

import hashlib
from typing import Protocol, Sequence, runtime_checkable

import numpy as np
import torch
from torchmetrics import Metric

from pgpis.metrics.ssim import ssim_gaussian
from pgpis.pose.keypoints import LEFT_HAND_KNUCKLE, LEFT_HAND_START, MISSING, RIGHT_HAND_KNUCKLE

CROP = 60
KNUCKLES = (LEFT_HAND_KNUCKLE, RIGHT_HAND_KNUCKLE)
HAND_POINTS = slice(LEFT_HAND_START, LEFT_HAND_START + 42)  # 91..132: left hand then right hand
NO_ESTIMATOR = ("no hand-keypoint estimator configured (pass one implementing "
                "pgpis.metrics.hands.HandKeypointEstimator, e.g. an HRNet-w48 COCO-WholeBody wrapper with local weights)")


def crop_origin(center: Sequence[float], frame: tuple[int, int], crop: int = CROP) -> tuple[int, int]:
    """Top-left ``(x0, y0)`` of a ``crop`` square centred on ``center = (x, y)``, shifted inside ``frame = (h, w)``."""
    h, w = frame
    if h < crop or w < crop:
        raise ValueError(f"frame {h}x{w} is smaller than the {crop}x{crop} hand crop")
    x0 = int(np.floor(center[0] + 0.5)) - crop // 2
    y0 = int(np.floor(center[1] + 0.5)) - crop // 2
    return min(max(x0, 0), w - crop), min(max(y0, 0), h - crop)


def present_hands(keypoints: torch.Tensor, scores: torch.Tensor | None, score_threshold: float) -> torch.Tensor:
    """Bool ``[B, 2]``: (left, right) hand present in the ground truth (knuckle not missing, score >= threshold)."""
    knuckles = keypoints[:, list(KNUCKLES), :2]
    ok = (knuckles != MISSING).all(-1)
    if scores is not None:
        ok &= scores[:, list(KNUCKLES)] >= score_threshold
    return ok


def hand_crops(images: torch.Tensor, keypoints: torch.Tensor, present: torch.Tensor, crop: int = CROP) -> torch.Tensor:
    """``[N, C, crop, crop]`` crops of the present hands, in (image, left, right) order."""
    frame = tuple(images.shape[-2:])
    out = []
    for b, hand in present.nonzero().tolist():
        x0, y0 = crop_origin(keypoints[b, KNUCKLES[hand], :2].tolist(), frame, crop)
        out.append(images[b, :, y0:y0 + crop, x0:x0 + crop])
    return torch.stack(out) if out else images.new_zeros((0, images.shape[1], crop, crop))


def hand_ssim_values(preds: torch.Tensor, target: torch.Tensor, keypoints: torch.Tensor,
                     scores: torch.Tensor | None = None, score_threshold: float = 0.3, crop: int = CROP) -> torch.Tensor:
    """SSIM of every present hand, ``[N]`` (empty when no hand is present)."""
    present = present_hands(keypoints, scores, score_threshold)
    p, t = hand_crops(preds, keypoints, present, crop), hand_crops(target, keypoints, present, crop)
    if len(p) == 0:
        return preds.new_zeros(0)
    return ssim_gaussian(p, t, sigma=1.5, data_range=255.0).to(preds.dtype)


class HandSSIM(Metric):
    """Mean SSIM over ground-truth-present hands (60x60 crops at the GT knuckles); NaN when no hand was seen."""

    higher_is_better = True
    full_state_update = False

    def __init__(self, score_threshold: float = 0.3, crop: int = CROP, **kwargs):
        super().__init__(**kwargs)
        self.score_threshold, self.crop = score_threshold, crop
        self.add_state("total", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor, keypoints: torch.Tensor,
               scores: torch.Tensor | None = None) -> None:
        values = hand_ssim_values(preds, target, keypoints, scores, self.score_threshold, self.crop)
        self.total += values.double().sum()
        self.count += len(values)

    def compute(self) -> torch.Tensor:
        return self.total / self.count if self.count > 0 else torch.tensor(float("nan"), dtype=torch.float64)


@runtime_checkable
class HandKeypointEstimator(Protocol):
    """Estimates hand keypoints on frames.

    ``images``: float ``[B, 3, H, W]`` in [0, 1] (the report size). Returns ``[B, 42, 3]``
    ``(x, y, score)`` in pixels of ``images``: the left hand (COCO-WholeBody 91-111), then
    the right hand (112-132).
    """

    def __call__(self, images: torch.Tensor) -> torch.Tensor: ...


class HandPE(Metric):
    """Mean L1 distance (pixels) between hand keypoints estimated on generated and real frames.

    With ``estimator=None`` nothing is accumulated: :attr:`available` is False,
    :attr:`reason` says why, ``compute()`` returns NaN and :meth:`report` says "unavailable".
    """

    higher_is_better = False
    full_state_update = False

    def __init__(self, estimator: HandKeypointEstimator | None = None, score_threshold: float = 0.3, **kwargs):
        super().__init__(**kwargs)
        self.estimator, self.score_threshold = estimator, score_threshold
        self.add_state("total", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("missed", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")  # points absent on generated
        self.add_state("gt_hands", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")  # ground-truth-present hands
        self.add_state("real_found", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")  # ... found on the real frame

    @property
    def available(self) -> bool:
        return self.estimator is not None

    @property
    def name(self) -> str | None:
        """The estimator's name (recorded in metrics.json), None without one."""
        return None if self.estimator is None else str(getattr(self.estimator, "name", None) or type(self.estimator).__name__)

    def counts(self) -> dict[str, int]:
        """Points averaged, points missed on the generated frames, ground-truth hands and those found on the real frames."""
        return {"points": int(self.count), "missed_on_generated": int(self.missed), "gt_hands": int(self.gt_hands),
                "found_on_real": int(self.real_found)}

    @property
    def reason(self) -> str | None:
        return None if self.available else NO_ESTIMATOR

    def update(self, preds: torch.Tensor, target: torch.Tensor, keypoints: torch.Tensor,
               scores: torch.Tensor | None = None) -> None:
        if self.estimator is None:
            return
        present = present_hands(keypoints, scores, self.score_threshold)  # [B, 2]
        if not present.any():
            return
        fake, real = self.estimator(preds), self.estimator(target)  # [B, 42, 3]
        for est, what in ((fake, "generated"), (real, "real")):
            if est.shape != (len(preds), 42, 3):
                raise ValueError(f"hand-keypoint estimator returned {list(est.shape)} for the {what} frames, "
                                 f"expected [{len(preds)}, 42, 3] (x, y, score; left hand then right)")
        dist = (fake[..., :2].double() - real[..., :2].double()).abs().sum(-1)  # [B, 42]
        use = present.repeat_interleave(21, dim=1) & (real[..., 2] >= self.score_threshold)
        missed = use & (fake[..., :2] == MISSING).any(-1)  # not found on the generated frame: counted, not averaged
        use &= ~missed
        self.total += dist[use].sum()
        self.count += int(use.sum())
        self.missed += int(missed.sum())
        self.gt_hands += int(present.sum())
        self.real_found += int((present & (real[..., 2] >= self.score_threshold).reshape(-1, 2, 21).any(-1)).sum())

    def compute(self) -> torch.Tensor:
        if self.estimator is None or self.count == 0:
            return torch.tensor(float("nan"), dtype=torch.float64)
        return self.total / self.count

    def report(self) -> dict[str, float | str]:
        """``{"hand_pe": value}`` or ``{"hand_pe": "unavailable: <reason>"}`` for printing and logging."""
        if not self.available:
            return {"hand_pe": f"unavailable: {self.reason}"}
        value = float(self.compute())
        return {"hand_pe": value if value == value else "unavailable: no ground-truth hand was present"}


def image_key(image: torch.Tensor | np.ndarray) -> str:
    """Content hash of an image as uint8 HxWx3 (float [3, H, W] in [0, 1] is quantised to 0-255 first)."""
    if isinstance(image, torch.Tensor):
        image = (image.detach().cpu().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return hashlib.sha1(np.ascontiguousarray(image, dtype=np.uint8).tobytes()).hexdigest()


class OracleHandEstimator:
    """Looks hand keypoints up by image content: for data whose keypoints are known (synthetic frames).

    Register frames with their ``[133, 3]`` (or ``[42, 3]``) keypoints; an unknown image raises KeyError.
    """

    def __init__(self) -> None:
        self.table: dict[str, np.ndarray] = {}

    def add(self, image: torch.Tensor | np.ndarray, keypoints: np.ndarray) -> None:
        kp = np.asarray(keypoints, dtype=np.float32)
        self.table[image_key(image)] = kp[HAND_POINTS] if len(kp) == 133 else kp

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        rows = []
        for img in images:
            key = image_key(img)
            if key not in self.table:
                raise KeyError("OracleHandEstimator: image not registered (it only knows frames added with .add)")
            rows.append(torch.from_numpy(self.table[key]))
        return torch.stack(rows).to(images.device)
