"""Whole-gallery retrieval metrics for FPDM's stage 1 (paper Table 2).

The gallery is every distinct image of the split (sources and targets), not the
batch: in-batch metrics are inflated and hide the failure FPDM is about (the
fusion embedding retrieving the *source* image). For each pair, the query is the
fusion embedding of (source, target pose) and the correct item is the target
image. Reported per row: R@1/3/5, mean rank (1 = perfect; a random ranking
averages (G + 1) / 2), and ``source_top1`` = share of queries whose top-1 is
their own source image. Row ``A1`` uses the source image's embedding as query.

:class:`RetrievalCollector` accumulates embeddings by image name and pair index
on each rank; :meth:`RetrievalCollector.compute` gathers them from all ranks,
de-duplicates (DistributedSampler pads with repeats) and evaluates every query
exactly once, identically on every rank (no rank-0-only collectives).

``python -m pgpis.metrics.retrieval show outputs/ipf/metrics.json`` prints the table.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from pgpis.atomic import atomic_write_text

ROW_KEYS = ("R@1", "R@3", "R@5", "mean_rank", "source_top1")


def target_ranks(queries: Tensor, gallery: Tensor, target_index: Tensor, chunk: int = 1024) -> tuple[Tensor, Tensor]:
    """1-based rank of each query's target in the gallery (cosine similarity), and each query's top-1 index.

    rank = 1 + number of gallery items scored strictly higher than the target (ties go in the target's favour).
    """
    g = F.normalize(gallery.float(), dim=-1)
    ranks, top1 = [], []
    for start in range(0, len(queries), chunk):
        q = F.normalize(queries[start:start + chunk].float(), dim=-1)
        sims = q @ g.T
        tgt = target_index[start:start + chunk].to(sims.device)
        correct = sims.gather(1, tgt[:, None])
        ranks.append(1 + (sims > correct).sum(dim=1))
        top1.append(sims.argmax(dim=1))
    return torch.cat(ranks), torch.cat(top1)


def retrieval_metrics(queries: Tensor, gallery: Tensor, target_index: Tensor, source_index: Tensor,
                      ks: Sequence[int] = (1, 3, 5)) -> dict[str, float]:
    """R@k, mean rank and source_top1 for `queries` [Q, D] against `gallery` [G, D]."""
    if len(queries) == 0:
        raise ValueError("retrieval_metrics: no queries (is the evaluation split empty?)")
    ranks, top1 = target_ranks(queries, gallery, target_index)
    row = {f"R@{k}": float((ranks <= k).float().mean()) for k in ks}
    row["mean_rank"] = float(ranks.float().mean())
    row["source_top1"] = float((top1 == source_index.to(top1.device)).float().mean())
    return row


def _default_gather(obj: Any) -> list[Any]:
    """All ranks' objects (one list entry per rank); just ``[obj]`` outside torch.distributed."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        out: list[Any] = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(out, obj)
        return out
    return [obj]


class RetrievalCollector:
    """Per-rank store of gallery embeddings (by image name) and queries (by pair index)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.gallery: dict[str, Tensor] = {}
        self.queries: dict[int, tuple[Tensor, str, str]] = {}

    def missing(self, names: Iterable[str]) -> list[int]:
        """Positions in `names` whose image is not in the gallery yet (first occurrence only)."""
        seen, out = set(self.gallery), []
        for i, n in enumerate(names):
            if n not in seen:
                seen.add(n)
                out.append(i)
        return out

    def add_gallery(self, names: Sequence[str], embeddings: Tensor) -> None:
        for n, e in zip(names, embeddings.detach().float().cpu()):
            self.gallery.setdefault(n, e)

    def add_queries(self, pair_index: Sequence[int] | Tensor, fusion: Tensor, source_names: Sequence[str],
                    target_names: Sequence[str]) -> None:
        idx = pair_index.tolist() if isinstance(pair_index, Tensor) else list(pair_index)
        for i, f, s, t in zip(idx, fusion.detach().float().cpu(), source_names, target_names):
            self.queries.setdefault(int(i), (f, s, t))

    def compute(self, ks: Sequence[int] = (1, 3, 5),
                gather: Callable[[Any], list[Any]] = _default_gather) -> dict[str, dict[str, float]]:
        """Gather from all ranks, de-duplicate, and return ``{"A1": row, "fusion": row}`` (same on every rank)."""
        gallery: dict[str, Tensor] = {}
        queries: dict[int, tuple[Tensor, str, str]] = {}
        for part_gallery, part_queries in gather((self.gallery, self.queries)):
            for n, e in part_gallery.items():
                gallery.setdefault(n, e)
            for i, q in part_queries.items():
                queries.setdefault(i, q)
        names = sorted(gallery)
        position = {n: i for i, n in enumerate(names)}
        order = sorted(queries)
        missing = sorted({n for i in order for n in queries[i][1:] if n not in position})
        if missing:
            raise KeyError(f"retrieval: images {missing[:5]} of the queries were never added to the gallery")
        g = torch.stack([gallery[n] for n in names])
        fusion = torch.stack([queries[i][0] for i in order])
        src = torch.tensor([position[queries[i][1]] for i in order])
        tgt = torch.tensor([position[queries[i][2]] for i in order])
        return {"A1": retrieval_metrics(g[src], g, tgt, src, ks), "fusion": retrieval_metrics(fusion, g, tgt, src, ks)}

    @property
    def sizes(self) -> tuple[int, int]:
        """(queries, gallery images) held on this rank."""
        return len(self.queries), len(self.gallery)


# --------------------------------------------------------------------------- metrics.json and the table

def update_metrics_json(path: str | Path, rows: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Merge `rows` (``{"A1": {...}, "<loss name>": {...}}``) into the JSON file at `path`; return the result."""
    path = Path(path)
    data: dict[str, dict[str, float]] = {}
    if path.exists():
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError:
            data = {}  # a truncated file from an interrupted run: rewrite it
    data.update({name: {k: float(v) for k, v in row.items() if k in ROW_KEYS} for name, row in rows.items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
    return data


def format_table(metrics: dict[str, dict[str, float]], rows: Sequence[str] | None = None) -> str:
    """Markdown table of retrieval rows (A1 first, then the losses)."""
    order = list(rows) if rows else sorted(metrics, key=lambda n: (n != "A1", n != "baseline", n))
    lines = ["| row | " + " | ".join(ROW_KEYS) + " |", "|---|" + "---|" * len(ROW_KEYS)]
    for name in order:
        if name not in metrics:
            continue
        r = metrics[name]
        cells = [f"{r[k]:.1f}" if k == "mean_rank" else f"{r[k]:.3f}" for k in ROW_KEYS if k in r]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
