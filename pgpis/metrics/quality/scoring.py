"""IQA / IAA of a generated set and of its ground truth: mean Q-Align scores (1-5), or why there are none.

TruePose's Table 1 reports no-reference quality (IQA) and aesthetics (IAA) for each
method and a "Ground Truth" row for the real target images. Both sets are read by
the caller's `prepare` (the protocol's own resize, so the real images are scored at
the size the generated ones have) and scored one image at a time by the worker
(:mod:`pgpis.metrics.quality.worker`). Under ``torch.distributed`` each rank scores
every world-size-th image with its own worker and the scores are gathered, so the
means are the same as in one process. Nothing is estimated: a score comes from the
scorer or the metric is ``None`` with its reason.
"""
from __future__ import annotations

import math
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
from PIL import Image

from pgpis.metrics.quality.settings import QAlignSettings, configuration_problem
from pgpis.metrics.quality.worker import TASKS, QAlignWorker, QualityUnavailable, QualityWorkerError

QUALITY_METRICS = ("iqa", "iaa", "iqa_ground_truth", "iaa_ground_truth")
SETS = {"generated": "", "ground_truth": "_ground_truth"}  # image set -> metric-name suffix
TASK_METRIC = {"quality": "iqa", "aesthetics": "iaa"}
Log = Callable[[str], None]


@dataclass
class QualityResult:
    """Mean scores by metric name (:data:`QUALITY_METRICS`), reasons for the missing ones, and who scored."""

    metrics: dict[str, float | None] = field(default_factory=lambda: {k: None for k in QUALITY_METRICS})
    unavailable: dict[str, str] = field(default_factory=dict)
    backend: str | None = None
    counts: dict[str, int] = field(default_factory=dict)  # images scored per set

    @classmethod
    def not_available(cls, reason: str) -> "QualityResult":
        return cls(unavailable={k: reason for k in QUALITY_METRICS})


def _rank_world() -> tuple[int, int]:
    if "torch" not in sys.modules:  # no torch, no process group: one process (and no torch import to pay)
        return 0, 1
    from pgpis.metrics.states import rank_and_world

    return rank_and_world()


def _gather(obj: object) -> list[object]:
    rank, world = _rank_world()
    if world == 1:
        return [obj]
    import torch.distributed as dist

    out: list[object] = [None] * world
    dist.all_gather_object(out, obj)
    return out


def _score_share(items: Sequence[tuple[str, int, Path]], settings: QAlignSettings,
                 prepare: Callable[[Path], np.ndarray] | None, log: Log | None) -> dict:
    """This rank's scores {"scores": [(set, index, {task: score})], "backend", "status"}."""
    share = {"scores": [], "backend": None, "status": None}
    try:
        with QAlignWorker(settings) as worker, tempfile.TemporaryDirectory(prefix="pgpis-iqa-") as tmp:
            share["backend"] = worker.backend
            for n, (name, i, path) in enumerate(items):
                file = Path(path)
                if prepare is not None:  # the protocol's pixels, as every other metric sees them
                    file = Path(tmp) / f"{name}-{i}.png"
                    Image.fromarray(prepare(Path(path))).save(file)
                share["scores"].append((name, i, worker.score(file, TASKS)))
                if prepare is not None:
                    file.unlink()
                if log and (n + 1) % 200 == 0:
                    log(f"IQA / IAA: scored {n + 1}/{len(items)} images on this rank")
    except QualityUnavailable as err:
        share["status"] = ("unavailable", str(err))
    except QualityWorkerError as err:
        share["status"] = ("error", str(err))
    return share


def score_quality(generated: Sequence[str | Path], ground_truth: Sequence[str | Path],
                  settings: QAlignSettings | str | None, *, prepare: Callable[[Path], np.ndarray] | None = None,
                  log: Log | None = None) -> QualityResult:
    """Mean IQA / IAA of `generated` (``iqa``, ``iaa``) and `ground_truth` (``*_ground_truth``).

    `settings`: a :class:`QAlignSettings`; a string (scoring switched off, the string is the
    reason); None (not configured). Configuration gaps and a worker that says it cannot run
    give unavailable metrics with the reason; a worker that crashes, breaks the protocol or
    times out raises :class:`QualityWorkerError`. `ground_truth` is scored once per distinct file.
    """
    if isinstance(settings, str):
        return QualityResult.not_available(settings)
    if settings is None:
        settings = QAlignSettings()
    problem = configuration_problem(settings)
    if problem:
        return QualityResult.not_available(problem)
    sets = {"generated": [Path(p) for p in generated],
            "ground_truth": list(dict.fromkeys(Path(p) for p in ground_truth))}
    rank, world = _rank_world()
    items = [(name, i, p) for name, paths in sets.items() for i, p in enumerate(paths)]
    shares = _gather(_score_share(items[rank::world], settings, prepare, log))
    errors = [s["status"][1] for s in shares if s["status"] and s["status"][0] == "error"]
    if errors:
        raise QualityWorkerError(errors[0])
    missing = [s["status"][1] for s in shares if s["status"]]
    if missing:
        return QualityResult.not_available(missing[0])

    result = QualityResult(backend=f"{next(s['backend'] for s in shares if s['backend'])} via {settings.python}")
    by_set: dict[str, list[tuple[int, dict[str, float]]]] = {name: [] for name in sets}
    for s in shares:
        for name, i, scores in s["scores"]:
            by_set[name].append((i, scores))
    for name, rows in by_set.items():
        rows.sort(key=lambda r: r[0])
        result.counts[name] = len(rows)
        for task, metric in TASK_METRIC.items():
            key = metric + SETS[name]
            if not rows:
                result.unavailable[key] = f"no {name.replace('_', ' ')} images to score"
                continue
            result.metrics[key] = math.fsum(r[1][task] for r in rows) / len(rows)
    return result


def quality_table(rows: Mapping[str, tuple[Mapping, Mapping[str, str]]], backend: str | None = None) -> str:
    """TruePose's IQA / IAA columns: one row per method ``{name: (metrics, unavailable)}``, then the
    "Ground Truth" row (from the first method's evaluation), then the reasons for each n/a."""
    def cell(metrics: Mapping, key: str) -> str:
        v = metrics.get(key)
        return f"{v:.3f}" if isinstance(v, (int, float)) else "n/a"

    lines = ["| Images | IQA | IAA |", "|---|---:|---:|"]
    lines += [f"| {name} | {cell(m, 'iqa')} | {cell(m, 'iaa')} |" for name, (m, _) in rows.items()]
    first = next(iter(rows.values()), ({}, {}))
    lines += [f"| Ground Truth | {cell(first[0], 'iqa_ground_truth')} | {cell(first[0], 'iaa_ground_truth')} |", ""]
    by_reason: dict[str, list[str]] = {}
    for n, (name, (_, unavailable)) in enumerate(rows.items()):
        for k in QUALITY_METRICS if n == 0 else QUALITY_METRICS[:2]:
            if k in unavailable:
                by_reason.setdefault(unavailable[k], []).append(k if len(rows) == 1 else f"{k} ({name})")
    lines += [f"- n/a {', '.join(ks)}: {why}" for why, ks in by_reason.items()]
    if backend:
        lines.append(f"IQA / IAA: Q-Align scores (1-5), mean over images; scored by {backend}.")
    return "\n".join(lines)


def score_quality_or_reason(generated: Sequence[str | Path], ground_truth: Sequence[str | Path],
                            settings: QAlignSettings | str | None, *, prepare: Callable[[Path], np.ndarray] | None = None,
                            log: Log | None = None) -> QualityResult:
    """:func:`score_quality`, with a broken worker (crash, protocol error, timeout) turned into the reason the
    IQA / IAA metrics are unavailable, so one failed scorer never costs the rest of an evaluation."""
    from pgpis.metrics.quality.worker import QualityWorkerError

    try:
        return score_quality(generated, ground_truth, settings, prepare=prepare, log=log)
    except QualityWorkerError as err:
        if log:
            log(f"IQA / IAA unavailable: {err}")
        return QualityResult.not_available(f"the Q-Align worker failed: {err}")
