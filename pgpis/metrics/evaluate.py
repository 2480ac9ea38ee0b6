"""Scoring a folder of generated images under a named protocol (CLI and callbacks share this).

Every metric is computed independently: a metric whose weights are missing (or
that cannot be computed) becomes ``null`` with its reason in ``unavailable`` and
the others are still reported -- a run is never lost to one weight file and no
number is ever made up. Under ``torch.distributed`` each rank scores its share
of fixed batches and the results are gathered (see :mod:`pgpis.metrics.states`),
so every rank returns the same numbers as a single process.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Collection, Literal, Mapping, Sequence

import numpy as np
import torch

from pgpis.errors import MissingWeightsError
from pgpis.metrics.fid import (FeatureExtractor, GaussianStats, build_extractor, cache_file, frechet_distance,
                               load_stats, save_stats)
from pgpis.metrics.images import load_resized, stack01
from pgpis.metrics.lpips_net import build_lpips, lpips_distance
from pgpis.metrics.pairs import EvalPair, match_generated, missing_error
from pgpis.metrics.psnr import psnr
from pgpis.metrics.protocols import FID_REAL_SETS, Protocol, get_protocol
from pgpis.metrics.quality.scoring import QUALITY_METRICS
from pgpis.metrics.ssim import ssim_gaussian, ssim_window
from pgpis.metrics.states import IndexedValues, broadcast_from_rank0, my_batches, rank_and_world

METRICS = ("fid", "fid_test", "lpips", "ssim", "ssim_gaussian", "psnr")
AUTO = "auto"  # build the backbone from local weights
Log = Callable[[str], None]


@dataclass
class WeightPaths:
    """Explicit weight files (else env vars / library caches, see :mod:`pgpis.metrics.weights`)."""

    alexnet: str | os.PathLike | None = None
    inception: str | os.PathLike | None = None  # for the protocol's FID network


@dataclass
class EvaluationResult:
    """Metric values (``None`` with the reason in `unavailable`); when IQA / IAA were scored, `metrics` also holds
    :data:`~pgpis.metrics.quality.QUALITY_METRICS` and the scorer's description under ``"quality_backend"``."""

    protocol: Protocol
    n_pairs: int
    metrics: dict[str, float | None]
    unavailable: dict[str, str]
    n_expected: int = 0
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    details: dict[str, dict] = field(default_factory=dict)  # extra metrics.json sections, e.g. "pose_accuracy"

    def to_dict(self) -> dict:
        return {
            "protocol": self.protocol.name,
            "n_pairs": self.n_pairs,
            "metrics": {k: self.metrics.get(k) for k in METRICS + self.quality_keys()},
            "unavailable": dict(self.unavailable),
            **({"quality_backend": self.metrics.get("quality_backend")} if self.quality_keys() else {}),
            "files": {"expected": self.n_expected, "missing": self.missing, "unexpected": self.unexpected},
            "protocol_settings": self.protocol.as_dict(),
            **self.details,
        }

    def quality_keys(self) -> tuple[str, ...]:
        """The IQA / IAA names when they were part of this evaluation (scored or unavailable), else ()."""
        return QUALITY_METRICS if any(k in self.metrics or k in self.unavailable for k in QUALITY_METRICS) else ()

    def write_json(self, path: str | os.PathLike) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n")
        return p

    def markdown_table(self, method: str = "generated") -> str:
        """One row in the papers' layout (FPDM Table 1 plus the Gaussian SSIM column)."""
        cols = [("FID", "fid", 3), ("FID_test", "fid_test", 3), ("LPIPS", "lpips", 4), ("SSIM", "ssim", 4),
                ("SSIM (gaussian)", "ssim_gaussian", 4), ("PSNR", "psnr", 3)]
        # the IQA / IAA reasons go under their own table (pgpis.metrics.quality.cli.quality_lines), not twice
        lines = metrics_table({method: self}, cols, [k for k in self.unavailable if k not in self.quality_keys()])
        if "pose_accuracy" in self.details:  # samples / copy-source / ground truth (pgpis.metrics.pose_eval)
            from pgpis.metrics.pose_eval import pose_accuracy_table

            lines += ["", pose_accuracy_table(self.details["pose_accuracy"])]
        return "\n".join(lines)


def metrics_table(results: Mapping[str, EvaluationResult], cols: Sequence[tuple[str, str, int]],
                  reasons_for: Collection[str] | None = None) -> list[str]:
    """Markdown lines of a paper-style table: one row per method in `results` (``cols``: header, metric key,
    digits; ``n/a`` where a value is missing), the first result's protocol line, then one ``n/a`` line per
    reason (for the keys in `reasons_for`, all when None), so a missing number always says why."""
    first = next(iter(results.values()))

    def cell(r: EvaluationResult, key: str, digits: int) -> str:
        return f"{r.metrics[key]:.{digits}f}" if r.metrics.get(key) is not None else "n/a"

    lines = ["| Method | " + " | ".join(c for c, _, _ in cols) + " |", "|---|" + "---:|" * len(cols)]
    lines += [f"| {name} | " + " | ".join(cell(r, k, d) for _, k, d in cols) + " |" for name, r in results.items()]
    lines += ["", f"Protocol `{first.protocol.name}`: {first.protocol.description} {first.n_pairs} pairs."]
    by_reason: dict[str, list[str]] = {}
    for name, r in results.items():
        for k, why in r.unavailable.items():
            if reasons_for is None or k in reasons_for:
                by_reason.setdefault(why, []).append(k if len(results) == 1 else f"{k} ({name})")
    return lines + [f"- n/a {', '.join(ks)}: {why}" for why, ks in by_reason.items()]


# --------------------------------------------------------------------------- backbones
def _backbone(kind: str, given, build: Callable[[], object], unavailable: dict[str, str], names: Sequence[str]):
    """`given` if an object, None if disabled, else build it; failures land in `unavailable`."""
    if given is None:
        for n in names:
            unavailable[n] = f"{kind} disabled by the caller"
        return None
    if not (isinstance(given, str) and given == AUTO):
        return given
    try:
        return build()
    except MissingWeightsError as err:
        for n in names:
            unavailable[n] = str(err)
        return None


# --------------------------------------------------------------------------- scoring
def _score_pairs(pairs: Sequence[EvalPair], protocol: Protocol, batch_size: int, device: torch.device,
                 lpips_net, extractor: FeatureExtractor | None, log: Log | None):
    names = ["ssim", "ssim_gaussian", "psnr"] + (["lpips"] if lpips_net is not None else [])
    scores = IndexedValues(names).to(device)
    feats = IndexedValues(vector_dims={"features": extractor.dim}).to(device) if extractor else None
    batches = my_batches(len(pairs), batch_size)
    for b, batch in enumerate(batches):
        gen = [load_resized(pairs[i].generated, protocol.size) for i in batch]
        tgt = [load_resized(pairs[i].target_path, protocol.size) for i in batch]
        g01, t01 = stack01(gen).to(device), stack01(tgt).to(device)
        vals = {
            "ssim": ssim_window(g01, t01, protocol.ssim_win_size),
            "ssim_gaussian": ssim_gaussian(g01, t01, protocol.ssim_gaussian_sigma, protocol.ssim_gaussian_data_range),
            "psnr": psnr(g01, t01, protocol.psnr_data_range),
        }
        if lpips_net is not None:
            vals["lpips"] = lpips_distance(lpips_net, g01.float(), t01.float())
        idx = torch.tensor(list(batch))
        scores.update(idx, **vals)
        if feats is not None:
            feats.update(idx, features=extractor.features(torch.stack([extractor.preprocess(a) for a in gen])))
        if log and (b + 1) % 20 == 0:
            log(f"scored {b + 1}/{len(batches)} batches on this rank")
    if not batches:
        scores.update_empty()
        if feats is not None:
            feats.update_empty()
    gen_feats = feats.compute()["features"].cpu().numpy() if feats is not None else None
    return scores.compute(), gen_feats


def _real_features(files: Sequence[Path], protocol: Protocol, extractor: FeatureExtractor,
                   batch_size: int, device: torch.device) -> np.ndarray:
    feats = IndexedValues(vector_dims={"features": extractor.dim}).to(device)
    batches = my_batches(len(files), batch_size)
    for batch in batches:
        x = torch.stack([extractor.preprocess(load_resized(files[i], protocol.size)) for i in batch])
        feats.update(torch.tensor(list(batch)), features=extractor.features(x))
    if not batches:
        feats.update_empty()
    return feats.compute()["features"].cpu().numpy()


def real_statistics(files: Sequence[str | Path], protocol: Protocol, extractor: FeatureExtractor, *,
                    batch_size: int = 16, device: str | torch.device = "cpu",
                    cache_dir: str | Path | None = None, log: Log | None = None) -> GaussianStats:
    """Real-set mean/covariance, from the on-disk cache when the exact same files were seen before."""
    files = sorted(Path(f) for f in files)
    path = cache_file(Path(cache_dir), protocol, extractor, files) if cache_dir else None
    if path is not None and broadcast_from_rank0(path.is_file()):
        if log:
            log(f"real-set statistics from cache {path}")
        return load_stats(path)
    stats = GaussianStats.of(_real_features(files, protocol, extractor, batch_size, torch.device(device)))
    if path is not None and rank_and_world()[0] == 0:
        save_stats(path, stats)
        if log:
            log(f"cached real-set statistics ({len(files)} images) in {path}")
    return stats


def evaluate_pairs(
    pairs: Sequence[EvalPair],
    protocol: str | Protocol,
    real_sets: Mapping[str, Sequence[str | Path]] | None = None,
    *,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    lpips_net: torch.nn.Module | Literal["auto"] | None = AUTO,
    fid_extractor: FeatureExtractor | Literal["auto"] | None = AUTO,
    weights: WeightPaths | None = None,
    fid_cache_dir: str | Path | None = None,
    quality: object = "ambient",
    log: Log | None = None,
) -> tuple[dict[str, float | None], dict[str, str]]:
    """(metrics, unavailable) for already matched pairs. `real_sets` maps "fid"/"fid_test" to image files.

    `quality` (IQA / IAA, :mod:`pgpis.metrics.quality`): ``"ambient"`` takes what the enclosing
    ``pgpis evaluate`` asked for (else the ``PGPIS_QALIGN_*`` environment when set, else not scored);
    ``"auto"`` the environment (unavailable with how to set it up when it is not configured); a
    :class:`~pgpis.metrics.quality.QAlignSettings`; None: not scored (no IQA / IAA keys); another
    string: not scored, reported with that reason.
    """
    protocol = get_protocol(protocol)
    weights = weights or WeightPaths()
    dev = torch.device(device)
    unavailable: dict[str, str] = {}
    fid_names = list(protocol.fid_real_sets)
    net = _backbone("LPIPS", lpips_net, lambda: build_lpips(weights.alexnet), unavailable, ["lpips"])
    if net is not None:
        net = net.to(dev)
    ext = _backbone("FID", fid_extractor, lambda: build_extractor(protocol, weights.inception), unavailable, fid_names)
    if ext is not None:
        ext = ext.to(dev)
    per_pair, gen_feats = _score_pairs(pairs, protocol, batch_size, dev, net, ext, log)

    metrics: dict[str, float | None] = {m: None for m in METRICS}
    n = int(per_pair["index"].numel())
    for name in ("ssim", "ssim_gaussian", "psnr", "lpips"):
        if name not in per_pair:
            continue
        if n == 0:
            unavailable[name] = "no pairs to score"
            continue
        value = float(per_pair[name].mean())
        if not math.isfinite(value):
            bad = int((~torch.isfinite(per_pair[name])).sum())
            unavailable[name] = f"{bad} of {n} pairs give a non-finite value (for PSNR: generated image identical to its target)"
            continue
        metrics[name] = value

    if ext is not None:
        gen_stats = None
        try:
            gen_stats = GaussianStats.of(gen_feats)
        except ValueError as err:
            for m in fid_names:
                unavailable[m] = f"generated set: {err}"
        for m in fid_names if gen_stats is not None else []:
            files = (real_sets or {}).get(m)
            if not files:
                unavailable[m] = f"no real image set given for {m} ({FID_REAL_SETS[m]})"
                continue
            try:
                real = real_statistics(files, protocol, ext, batch_size=batch_size, device=dev,
                                       cache_dir=fid_cache_dir, log=log)
                metrics[m] = frechet_distance(gen_stats, real)
            except ValueError as err:
                unavailable[m] = f"real set {FID_REAL_SETS[m]}: {err}"
    _score_quality(pairs, protocol, quality, metrics, unavailable, log)
    return metrics, unavailable


def _score_quality(pairs: Sequence[EvalPair], protocol: Protocol, quality: object, metrics: dict,
                   unavailable: dict[str, str], log: Log | None) -> None:
    """IQA / IAA of the generated and ground-truth images when requested (pgpis.metrics.quality.requested / env)."""
    from pgpis.metrics.quality.scoring import score_quality_or_reason
    from pgpis.metrics.quality.settings import QAlignSettings, ambient

    settings = quality
    if isinstance(quality, str) and quality in ("ambient", AUTO):
        settings = ambient() if quality == "ambient" else QAlignSettings.from_env()
    if settings is None:
        return
    q = score_quality_or_reason([p.generated for p in pairs], [p.target_path for p in pairs], settings,
                                prepare=lambda path: load_resized(path, protocol.size), log=log)
    metrics.update(q.metrics)
    unavailable.update(q.unavailable)
    metrics["quality_backend"] = q.backend


def evaluate_folder(
    generated_dir: str | Path,
    pairs: Sequence[tuple[str, str]],
    image_path: Callable[[str], Path],
    protocol: str | Protocol,
    real_sets: Mapping[str, Sequence[str | Path]] | None = None,
    *,
    allow_missing: bool = False,
    log: Log | None = None,
    pose: Callable[[Sequence[EvalPair]], dict] | None = None,
    **kwargs,
) -> EvaluationResult:
    """Score ``generated_dir/<src>_to_<tgt>.png`` against each pair's target (see :func:`evaluate_pairs`).

    Missing files raise a DataFormatError listing them unless `allow_missing`;
    files matching no pair are reported in the result and never scored. `pose`
    (the matched pairs -> a section) adds ``"pose_accuracy"`` (:mod:`pgpis.metrics.pose_eval`).
    """
    protocol = get_protocol(protocol)
    matching = match_generated(generated_dir, pairs, image_path)
    if matching.missing and not allow_missing:
        raise missing_error(generated_dir, matching, len(pairs))
    if log and matching.unexpected:
        log(f"{len(matching.unexpected)} file(s) in {generated_dir} match no pair and are ignored: "
            + ", ".join(matching.unexpected[:10]) + (" ..." if len(matching.unexpected) > 10 else ""))
    metrics, unavailable = evaluate_pairs(matching.found, protocol, real_sets, log=log, **kwargs)
    return EvaluationResult(protocol, len(matching.found), metrics, unavailable,
                            n_expected=len(pairs) - len(matching.duplicates),
                            missing=matching.missing, unexpected=matching.unexpected,
                            details={"pose_accuracy": pose(matching.found)} if pose is not None else {})
