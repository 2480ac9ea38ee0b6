"""Pose accuracy: does a generated person really take the target pose? (docs/metrics.md)

A pose estimator (:class:`pgpis.pose.PoseEstimator`) finds the OpenPose-18 body
keypoints on every image; they are compared with the *target* keypoints, given
in the same pixel frame as the images (the report size). Choices, made explicit:

* **PCK@t**: a target point is correct when the estimated point lies within
  ``t * H`` pixels (Euclidean) of it, ``H`` the image height. It is counted over
  the points *visible in the target* (not ``-1``); a point the estimator misses
  (``-1`` or score 0) counts as wrong. Default ``t`` = 0.05 and 0.1.
* **Mean keypoint error** (px): the mean Euclidean distance over points both
  the target and the estimate have (so it says how far, PCK says how often).
* Counts are reported beside the figures (images, images where a person was
  found, target points, matched points), so a low PCK caused by "no person
  found" is told apart from one caused by "person in the wrong pose".

The same metric on the ground-truth target images measures the estimator's own
ceiling on the data; a generated set cannot be expected to beat it. All states
are sums (``dist_reduce_fx="sum"``) of integers (errors in micro-pixels), so under
DDP each rank adds its images and ``compute`` gives the single-process figures bit for bit. With no estimator the metric is
*unavailable* with the reason (NaN from ``compute``), never a made-up number.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch
from torchmetrics import Metric

from pgpis.pose.keypoints import MISSING

if TYPE_CHECKING:  # pgpis.pose is optional at import time (mediapipe extra)
    from pgpis.pose import PoseEstimator

NUM_BODY = 18  # OpenPose-18
MICRO = 1_000_000  # keypoint errors are summed in integer micro-pixels
DEFAULT_THRESHOLDS = (0.05, 0.1)
NO_POSE_ESTIMATOR = "no pose estimator configured (pass --pose-estimator mediapipe|rtmlib|package.module.Class)"


def images_to_uint8(images: torch.Tensor) -> list[np.ndarray]:
    """RGB uint8 ``HxWx3`` arrays of float ``[B, 3, H, W]`` images in [0, 1] (what the estimators take).

    ``round(x * 255)``: the exact inverse of :func:`pgpis.metrics.images.stack01`, so a PNG read back
    and passed here reaches the estimator with its original pixels.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected float images [B, 3, H, W] in [0, 1], got shape {tuple(images.shape)}")
    u8 = (images.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)
    return [np.ascontiguousarray(a) for a in u8.permute(0, 2, 3, 1).cpu().numpy()]


def estimator_name(estimator: object) -> str:
    """The estimator's ``name`` (recorded in metrics.json), else its class name."""
    return str(getattr(estimator, "name", None) or type(estimator).__name__)


def pck_key(threshold: float) -> str:
    """Report key of a threshold: ``pck@0.05``."""
    return f"pck@{threshold:g}"


def missing_points(xy: torch.Tensor, score: torch.Tensor | None = None) -> torch.Tensor:
    """Bool ``[..., K]``: the point is missing (either coordinate ``-1``, or a score <= 0)."""
    missing = (xy == MISSING).any(-1)
    if score is not None:
        missing |= score <= 0
    return missing


class PoseAccuracy(Metric):
    """PCK@t (fraction of the target's visible points within ``t * H``) and mean keypoint error in px.

    ``update(images, keypoints)``: float images ``[B, 3, H, W]`` in [0, 1] and the target
    OpenPose-18 keypoints ``[B, 18, 2+]`` in pixels of those images (``-1`` missing; extra
    columns ignored). ``compute()`` -> ``{"pck@0.05", "pck@0.1", "mean_error_px"}`` (NaN
    where nothing was counted) and the counts; :meth:`report` gives them as plain numbers
    (None for NaN) with the estimator's name.
    """

    higher_is_better = True
    full_state_update = False

    def __init__(self, estimator: "PoseEstimator | None" = None, thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
                 reason: str | None = None, **kwargs):
        super().__init__(**kwargs)
        if not thresholds or any(not (t > 0) for t in thresholds):
            raise ValueError(f"PCK thresholds must be positive fractions of the image height, got {list(thresholds)}")
        self.estimator = estimator
        self.thresholds = tuple(float(t) for t in thresholds)
        self._reason = reason
        self.add_state("correct", torch.zeros(len(self.thresholds), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("n_target", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("n_matched", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        # integer micro-pixels: a fixed-point sum is exact in any order, so DDP gives the single-process bits
        self.add_state("error_sum_upx", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("n_images", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("n_found", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    @property
    def available(self) -> bool:
        return self.estimator is not None

    @property
    def reason(self) -> str | None:
        return None if self.available else (self._reason or NO_POSE_ESTIMATOR)

    @property
    def name(self) -> str | None:
        """The estimator's name, None without one."""
        return estimator_name(self.estimator) if self.estimator is not None else None

    def estimate(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(body ``[B, 18, 3]`` float64 (x, y, score) in image pixels, found ``[B]`` bool) of the estimator."""
        arrays = images_to_uint8(images)
        estimates = self.estimator.estimate_batch(arrays)
        if len(estimates) != len(arrays):
            raise ValueError(f"pose estimator '{self.name}' returned {len(estimates)} estimates for {len(arrays)} images")
        body = []
        for e in estimates:
            b = np.asarray(e.body, dtype=np.float64)
            if b.shape != (NUM_BODY, 3):
                raise ValueError(f"pose estimator '{self.name}' returned body keypoints of shape {list(b.shape)}, "
                                 f"expected [{NUM_BODY}, 3] (OpenPose-18 x, y, score)")
            body.append(b)
        found = torch.tensor([bool(e.found) for e in estimates])
        return torch.from_numpy(np.stack(body)), found

    def update(self, images: torch.Tensor, keypoints: torch.Tensor) -> None:
        if self.estimator is None:
            return
        keypoints = torch.as_tensor(keypoints)
        if keypoints.ndim != 3 or keypoints.shape[0] != images.shape[0] or keypoints.shape[1] != NUM_BODY \
                or keypoints.shape[2] < 2:
            raise ValueError(f"target keypoints must be [B, {NUM_BODY}, 2+] for {images.shape[0]} images, "
                             f"got {list(keypoints.shape)}")
        if len(images) == 0:  # a rank without work still calls update, so compute joins the reduction
            return
        body, found = self.estimate(images)
        target = keypoints[..., :2].detach().to("cpu", torch.float64)
        visible = ~missing_points(target)  # [B, 18]
        have = ~missing_points(body[..., :2], body[..., 2])
        dist = (body[..., :2] - target).norm(dim=-1)  # [B, 18]
        matched = visible & have
        height = float(images.shape[-2])
        correct = torch.stack([(matched & (dist <= t * height)).sum() for t in self.thresholds])
        self.correct += correct.to(self.correct.device)
        self.n_target += int(visible.sum())
        self.n_matched += int(matched.sum())
        self.error_sum_upx += int(torch.round(dist[matched] * MICRO).to(torch.long).sum())
        self.n_images += len(images)
        self.n_found += int(found.sum())

    def compute(self) -> dict[str, torch.Tensor]:
        """Figures (NaN where nothing was counted) and the counts, all gathered over ranks."""
        nan = torch.tensor(float("nan"), dtype=torch.float64)
        out = {pck_key(t): (self.correct[i].double() / self.n_target if self.n_target > 0 else nan)
               for i, t in enumerate(self.thresholds)}
        out["mean_error_px"] = self.error_sum_upx.double() / MICRO / self.n_matched if self.n_matched > 0 else nan
        out.update(n_images=self.n_images.clone(), n_person_found=self.n_found.clone(),
                   n_target_points=self.n_target.clone(), n_matched_points=self.n_matched.clone())
        return out

    def report(self) -> dict[str, float | int | str | None]:
        """Figures (None where not computable), counts, the estimator name and, if any, why a figure is missing.

        Under torch.distributed this is collective (it calls ``compute``): call it on every rank.
        """
        keys = [pck_key(t) for t in self.thresholds] + ["mean_error_px"]
        if not self.available:
            return {**{k: None for k in keys}, "estimator": None, "unavailable": self.reason}
        values = self.compute()
        out: dict[str, float | int | str | None] = {}
        for k in keys:
            v = float(values[k])
            out[k] = v if math.isfinite(v) else None
        counts = {k: int(values[k]) for k in ("n_images", "n_person_found", "n_target_points", "n_matched_points")}
        out.update(estimator=self.name, **counts)
        if counts["n_images"] == 0:
            out["unavailable"] = "no images scored"
        elif counts["n_target_points"] == 0:
            out["unavailable"] = "no target keypoint visible in the scored images"
        elif counts["n_matched_points"] == 0:
            out["unavailable"] = (f"mean_error_px: the estimator found none of the target's points "
                                  f"(a person in {counts['n_person_found']} of {counts['n_images']} images)")
        return out
