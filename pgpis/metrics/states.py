"""torchmetrics states that make DDP evaluation give exactly the single-process numbers.

Each rank keeps per-item values *with their global index* (``cat`` states, so
torchmetrics gathers them across ranks); `compute` sorts by index and reduces
in that fixed order. With work split into fixed batches (see :func:`my_batches`),
every item is counted once and every rank sees the same float operations as a
single process, so the results are bitwise identical, with no padding duplicates.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.distributed as dist
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) of the default process group, (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def my_batches(n: int, batch_size: int) -> list[range]:
    """This rank's share of the fixed batches ``[0, bs), [bs, 2bs), ...`` (round robin, no padding).

    Batches do not depend on the world size, so batched networks see the same
    inputs whatever the number of processes.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    rank, world = rank_and_world()
    return [range(s, min(s + batch_size, n)) for s in range(0, n, batch_size)][rank::world]


def broadcast_from_rank0(value: object) -> object:
    """Rank 0's `value` on every rank (so decisions such as "cache hit" are taken together)."""
    rank, world = rank_and_world()
    if world == 1:
        return value
    box = [value if rank == 0 else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


class IndexedValues(Metric):
    """Per-item values keyed by a global index; `compute` -> {name: values sorted by index}.

    `names` are scalar-per-item series (e.g. "ssim", "psnr"); `vector_dims`
    declares [N, D] series (e.g. {"features": 2048}).
    """

    full_state_update = False

    def __init__(self, names: Sequence[str] = (), vector_dims: dict[str, int] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.names = tuple(names)
        self.vector_dims = dict(vector_dims or {})
        self.add_state("item_index", default=[], dist_reduce_fx="cat")
        for n in (*self.names, *self.vector_dims):
            self.add_state(f"v_{n}", default=[], dist_reduce_fx="cat")

    def update(self, index: torch.Tensor, **values: torch.Tensor) -> None:
        expected = set(self.names) | set(self.vector_dims)
        if set(values) != expected:
            raise ValueError(f"IndexedValues.update needs exactly {sorted(expected)}, got {sorted(values)}")
        index = torch.as_tensor(index, dtype=torch.long, device=self.device).reshape(-1)
        self.item_index.append(index)
        for n, v in values.items():
            v = torch.as_tensor(v, dtype=torch.float64, device=self.device)
            v = v.reshape(-1, self.vector_dims[n]) if n in self.vector_dims else v.reshape(-1)
            if v.shape[0] != index.shape[0]:
                raise ValueError(f"'{n}' has {v.shape[0]} rows for {index.shape[0]} indices")
            getattr(self, f"v_{n}").append(v)

    def update_empty(self) -> None:
        """Register zero items (a rank with no work must still take part in the gather)."""
        empty = {n: torch.empty(0, dtype=torch.float64) for n in self.names}
        empty.update({n: torch.empty(0, d, dtype=torch.float64) for n, d in self.vector_dims.items()})
        self.update(torch.empty(0, dtype=torch.long), **empty)

    def compute(self) -> dict[str, torch.Tensor]:
        index = dim_zero_cat(self.item_index)
        order = torch.argsort(index)
        if torch.unique(index).numel() != index.numel():
            raise RuntimeError("an item was counted more than once across ranks (overlapping shards)")
        out = {"index": index[order]}
        for n in (*self.names, *self.vector_dims):
            out[n] = dim_zero_cat(getattr(self, f"v_{n}"))[order]
        return out
