"""Scoring generated WPose images under ``wpose-512x352`` / ``wpose-256x176``: two rows, generated and ground truth.

Every image — generated or real — is first brought to the report size by resize-to-fit and pad
(:func:`pgpis.data.wpose.fit.fit_array`), then:

* LPIPS (AlexNet, [-1, 1]), SSIM (51-px window) and Gaussian SSIM, PSNR (data range 1): generated vs real
  target (:mod:`pgpis.metrics.ssim`, :mod:`pgpis.metrics.psnr`, :mod:`pgpis.metrics.lpips_net`);
* pose accuracy (:class:`pgpis.metrics.pose_accuracy.PoseAccuracy`): a pose estimator runs on the fitted
  image; the reference is the target's prepared keypoints (``keypoints/<stem>.json``) carried into the
  report size by the same fit. Scored for the generated images and for the real targets (the estimator's
  ceiling on this data);
* IQA / IAA (:func:`pgpis.metrics.quality.scoring.score_quality_or_reason`, Q-Align in its own environment) for both sets.

Nothing is made up: a metric that cannot be computed (no LPIPS weights, no estimator, no Q-Align
environment, targets without keypoints) is ``None`` with its reason in ``unavailable``. The ground-truth
row has no paired metrics (it is the reference). Under ``torch.distributed`` each rank scores its share
of fixed batches and the results are gathered, so every rank returns the single-process numbers.
"""
from __future__ import annotations

import argparse
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from PIL import Image

from pgpis.images import load_rgb
from pgpis.data.wpose.fit import PAD_RGB, Fit, fit_array
from pgpis.data.wpose.layout import WPoseIndex, read_wpose_index
from pgpis.data.wpose.protocols import DEFAULT_PROTOCOL, WPOSE_METRICS
from pgpis.errors import DataFormatError, MissingWeightsError, Problem
from pgpis.metrics.evaluate import EvaluationResult, WeightPaths, metrics_table
from pgpis.metrics.images import stack01
from pgpis.metrics.pairs import EvalPair, copy_source, match_generated, missing_error
from pgpis.metrics.protocols import Protocol, get_protocol
from pgpis.metrics.psnr import psnr
from pgpis.metrics.ssim import ssim_gaussian, ssim_window
from pgpis.metrics.states import IndexedValues, my_batches

Log = Callable[[str], None]
AUTO = "auto"
PAIRED = ("lpips", "ssim", "ssim_gaussian", "psnr")
POSE_KEYS = {"pck@0.05": "pck@0.05", "pck@0.1": "pck@0.1", "mean_error_px": "pose_error_px"}
GROUND_TRUTH_PAIRED = "not defined for the ground truth (it is the reference the generated images are compared with)"


class WPoseEvaluationResult(EvaluationResult):
    """:class:`EvaluationResult` with the WPose metric set (pose accuracy, IQA / IAA; no FID)."""

    details: dict | None = None  # pose-accuracy counts and estimator, IQA backend

    def to_dict(self) -> dict:
        d = super().to_dict()
        d["metrics"] = {k: self.metrics.get(k) for k in WPOSE_METRICS}
        d["unavailable"] = {k: v for k, v in self.unavailable.items() if k in WPOSE_METRICS}
        d["details"] = self.details or {}
        return d

    def markdown_table(self, method: str = "generated", rows: Mapping[str, "EvaluationResult"] | None = None) -> str:
        """TruePose's WPose columns (LPIPS, SSIM, PSNR, IQA, IAA) plus Gaussian SSIM and pose accuracy."""
        cols = [("LPIPS", "lpips", 4), ("SSIM", "ssim", 4), ("SSIM (gaussian)", "ssim_gaussian", 4), ("PSNR", "psnr", 3),
                ("PCK@0.05", "pck@0.05", 3), ("PCK@0.1", "pck@0.1", 3), ("pose error (px)", "pose_error_px", 2),
                ("IQA", "iqa", 3), ("IAA", "iaa", 3)]
        return "\n".join(metrics_table({method: self, **(rows or {})}, cols, WPOSE_METRICS))


def _result(protocol: Protocol, n: int, metrics: dict, unavailable: dict, details: dict, **files) -> WPoseEvaluationResult:
    r = WPoseEvaluationResult(protocol, n, metrics, unavailable, **files)
    r.details = details
    return r


def _load(path: Path) -> Image.Image:
    return load_rgb(path, fix="regenerate or restore it")


def _lpips(given, weights: WeightPaths, unavailable: dict[str, str]):
    if given is None:
        unavailable["lpips"] = "LPIPS disabled by the caller"
        return None
    if not (isinstance(given, str) and given == AUTO):
        return given
    from pgpis.metrics.lpips_net import build_lpips

    try:
        return build_lpips(weights.alexnet)
    except MissingWeightsError as err:
        unavailable["lpips"] = str(err)
        return None


def target_keypoints(index: WPoseIndex, pairs: Sequence[EvalPair], size: tuple[int, int]) -> tuple[np.ndarray | None, str | None]:
    """``float32 [N, 18, 2]`` target keypoints in report-size pixels (the same fit as the images), or why not."""
    from pgpis.data.wpose.layout import read_keypoint_file

    out, missing = [], []
    for p in pairs:
        kp = index.keypoints.get(p.target)
        if kp is None:
            found = read_keypoint_file(index.keypoint_path(p.target), p.target, None)
            if isinstance(found, Problem):
                missing.append(p.target)
                continue
            kp = index.keypoints[p.target] = found
        out.append(Fit.of(kp.image_size, size).keypoints(kp.points()))
    if missing:
        return None, (f"{len(set(missing))} target image(s) have no usable keypoints (e.g. {missing[0]}); run "
                      f"`pgpis data prepare --dataset wpose --root {index.root}`")
    return (np.stack(out) if out else np.zeros((0, 18, 2), np.float32)), None


def evaluate_wpose(
    root: str | os.PathLike | WPoseIndex,
    generated_dir: str | os.PathLike,
    protocol: str | Protocol = DEFAULT_PROTOCOL,
    *,
    pose_estimator: Any = None,
    quality: Any = AUTO,
    lpips_net: Any = AUTO,
    weights: WeightPaths | None = None,
    allow_missing: bool = False,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    pad_rgb: tuple[int, int, int] = PAD_RGB,
    log: Log | None = None,
) -> tuple[WPoseEvaluationResult, WPoseEvaluationResult]:
    """(generated row, ground-truth row) for ``generated_dir/<source stem>_to_<target stem>.png``.

    ``pose_estimator``: a :class:`pgpis.pose.PoseEstimator`, a name / class path, ``"auto"`` (mediapipe if it
    runs here) or None (pose accuracy unavailable). ``quality``: :class:`pgpis.metrics.quality.QAlignSettings`,
    a string (off, the string is the reason), or ``"auto"`` (what :func:`pgpis.metrics.quality.ambient` says:
    the enclosing ``pgpis evaluate`` flags or ``PGPIS_QALIGN_*``; unconfigured: unavailable with the reason).
    """
    from pgpis.metrics.lpips_net import lpips_distance
    from pgpis.metrics.pose_accuracy import PoseAccuracy
    from pgpis.metrics.pose_eval import MemoEstimator, resolve_pose_estimator

    protocol = get_protocol(protocol)
    size = protocol.size
    index = root if isinstance(root, WPoseIndex) else read_wpose_index(root, check_images="none", parsing=False,
                                                                         keypoints=False)
    matching = match_generated(generated_dir, index.pairs, index.image_path)
    if matching.missing and not allow_missing:
        raise missing_error(generated_dir, matching, len(index.pairs))
    if log and matching.unexpected:
        log(f"{len(matching.unexpected)} file(s) in {generated_dir} match no pair and are ignored: "
            + ", ".join(matching.unexpected[:10]) + (" ..." if len(matching.unexpected) > 10 else ""))
    pairs = matching.found
    dev = torch.device(device)
    gen_na: dict[str, str] = {}
    gt_na: dict[str, str] = {k: GROUND_TRUTH_PAIRED for k in PAIRED}
    net = _lpips(lpips_net, weights or WeightPaths(), gen_na)
    if net is not None:
        net = net.to(dev)

    estimator, pose_reason = resolve_pose_estimator(pose_estimator)
    keypoints, kp_reason = target_keypoints(index, pairs, size) if estimator is not None else (None, None)
    pose_reason = pose_reason or kp_reason
    pose = {}
    if estimator is not None and keypoints is not None:
        real = MemoEstimator(estimator)  # a target appears in several pairs
        pose = {"generated": PoseAccuracy(estimator).to(dev), "ground_truth": PoseAccuracy(real).to(dev)}

    names = ["ssim", "ssim_gaussian", "psnr"] + (["lpips"] if net is not None else [])
    scores = IndexedValues(names).to(dev)
    batches = my_batches(len(pairs), batch_size)
    for b, batch in enumerate(batches):
        gen = [fit_array(_load(pairs[i].generated), size, pad_rgb) for i in batch]
        tgt = [fit_array(_load(pairs[i].target_path), size, pad_rgb) for i in batch]
        g01, t01 = stack01(gen).to(dev), stack01(tgt).to(dev)
        vals = {"ssim": ssim_window(g01, t01, protocol.ssim_win_size),
                "ssim_gaussian": ssim_gaussian(g01, t01, protocol.ssim_gaussian_sigma, protocol.ssim_gaussian_data_range),
                "psnr": psnr(g01, t01, protocol.psnr_data_range)}
        if net is not None:
            vals["lpips"] = lpips_distance(net, g01.float(), t01.float())
        scores.update(torch.tensor(list(batch)), **vals)
        if pose:
            kp = torch.from_numpy(keypoints[list(batch)])
            pose["generated"].update(g01.float(), kp)
            pose["ground_truth"].update(t01.float(), kp)
        if log and (b + 1) % 20 == 0:
            log(f"scored {b + 1}/{len(batches)} batches on this rank")
    if not batches:
        scores.update_empty()
        for m in pose.values():
            m.update(torch.zeros(0, 3, *size), torch.zeros(0, 18, 2))
    per_pair = scores.compute()

    gen_m: dict[str, float | None] = {k: None for k in WPOSE_METRICS}
    gt_m: dict[str, float | None] = {k: None for k in WPOSE_METRICS}
    n = int(per_pair["index"].numel())
    for name in names:
        value = float(per_pair[name].mean()) if n else math.nan
        if n == 0:
            gen_na[name] = "no pairs to score"
        elif not math.isfinite(value):
            bad = int((~torch.isfinite(per_pair[name])).sum())
            gen_na[name] = f"{bad} of {n} pairs give a non-finite value (for PSNR: generated image identical to its target)"
        else:
            gen_m[name] = value

    details: dict[str, dict] = {"generated": {}, "ground_truth": {}}
    for row, metrics, na in (("generated", gen_m, gen_na), ("ground_truth", gt_m, gt_na)):
        if not pose:
            for k in POSE_KEYS.values():
                na[k] = pose_reason or "no pose estimator"
            continue
        report = pose[row].report()
        details[row]["pose_accuracy"] = report
        for src, dst in POSE_KEYS.items():
            metrics[dst] = report.get(src)
            if metrics[dst] is None:
                na[dst] = str(report.get("unavailable") or "not computable")

    q = _quality(pairs, quality, size, pad_rgb, log)
    for row, metrics, na, suffix in (("generated", gen_m, gen_na, ""), ("ground_truth", gt_m, gt_na, "_ground_truth")):
        for k in ("iqa", "iaa"):
            metrics[k] = q.metrics.get(k + suffix)
            if metrics[k] is None:
                na[k] = q.unavailable.get(k + suffix, "not scored")
        if q.backend:
            details[row]["quality"] = {"backend": q.backend, "images": q.counts.get(row)}
    files = dict(n_expected=len(index.pairs) - len(matching.duplicates), missing=matching.missing,
                 unexpected=matching.unexpected)
    targets = len({p.target for p in pairs})
    return (_result(protocol, len(pairs), gen_m, gen_na, details["generated"], **files),
            _result(protocol, len(pairs), gt_m, gt_na, {**details["ground_truth"], "distinct_targets": targets},
                    n_expected=files["n_expected"]))


def _quality(pairs: Sequence[EvalPair], quality: Any, size: tuple[int, int], pad_rgb, log: Log | None):
    from pgpis.metrics.quality import ambient
    from pgpis.metrics.quality.scoring import score_quality_or_reason

    settings = ambient() if isinstance(quality, str) and quality == AUTO else quality
    return score_quality_or_reason([p.generated for p in pairs], [p.target_path for p in pairs], settings,
                                   prepare=lambda path: fit_array(_load(path), size, pad_rgb), log=log)


def write_copy_source(index: WPoseIndex, out_dir: str | os.PathLike, size: tuple[int, int],
                      pad_rgb: tuple[int, int, int] = PAD_RGB) -> Path:
    """The copy-the-source baseline: each target replaced by its source, fitted into `size` (the same fit)."""
    out = Path(out_dir)
    with tempfile.TemporaryDirectory(prefix="pgpis-wpose-") as tmp:
        fitted = {}
        for s, _ in index.pairs:
            if s not in fitted:
                fitted[s] = Path(tmp) / f"{len(fitted)}.png"
                Image.fromarray(fit_array(_load(index.image_path(s)), size, pad_rgb)).save(fitted[s])
        copy_source(index.pairs, lambda name: fitted[name], out)
    return out


def run_cli_evaluation(args: argparse.Namespace, log: Log) -> tuple[WPoseEvaluationResult, dict]:
    """`pgpis evaluate --dataset wpose`: (generated row, {"ground truth": row})."""
    if args.split != "test":
        raise DataFormatError(Problem("--split", f"WPose has only a test split, not '{args.split}'", "pass --split test"))
    protocol = get_protocol(args.protocol)
    index = read_wpose_index(args.root, check_images="none", parsing=False, keypoints=False)
    if args.make_copy_source:
        write_copy_source(index, args.generated, protocol.size)
        log(f"wrote the copy-the-source baseline to {args.generated}")
    gen, gt = evaluate_wpose(index, args.generated, protocol, pose_estimator=getattr(args, "pose_estimator", None),
                             allow_missing=args.allow_missing, batch_size=args.batch_size, device=args.device,
                             weights=WeightPaths(alexnet=args.alexnet_weights), log=log)
    return gen, {"ground truth": gt}


__all__ = ["WPoseEvaluationResult", "evaluate_wpose", "run_cli_evaluation", "target_keypoints", "write_copy_source"]
