"""Per-sample condition dropout, the training half of classifier-free guidance.

Dropout is drawn per *sample* (not per batch, a pitfall of the FPDM reference
code), producing the same keep-mask type the sampler uses for its branches, so
the "unconditional" model queried at sampling time is the one training made.

* ``independent``: each group is dropped with its own probability (FPDM: 0.2
  for pose, source and fusion) — trains every subset the cumulative guidance queries.
* ``joint``: all groups are dropped together with one probability (TruePose: 0.3).
"""
from __future__ import annotations

from typing import Literal, Mapping, Sequence

import torch
from torch import Tensor


class ConditionDropout:
    """Draws keep-masks: group -> bool [B], True = condition present."""

    def __init__(self, mode: Literal["independent", "joint"] = "independent", p: float | Mapping[str, float] = 0.2):
        if mode not in ("independent", "joint"):
            raise ValueError(f"ConditionDropout: mode must be 'independent' or 'joint', got '{mode}'")
        if mode == "joint" and not isinstance(p, (int, float)):
            raise ValueError("ConditionDropout: mode 'joint' takes one probability p (a number), not a per-group mapping")
        probs = [p] if isinstance(p, (int, float)) else list(p.values())
        bad = [q for q in probs if not 0.0 <= float(q) <= 1.0]
        if bad:
            raise ValueError(f"ConditionDropout: probabilities must lie in [0, 1], got {bad}")
        self.mode, self.p = mode, p

    def prob(self, group: str) -> float:
        if isinstance(self.p, (int, float)):
            return float(self.p)
        if group not in self.p:
            raise ValueError(
                f"ConditionDropout: no dropout probability for condition group '{group}' "
                f"(configured: {sorted(self.p)}); add it under condition_dropout.init_args.p"
            )
        return float(self.p[group])

    def __call__(self, groups: Sequence[str], batch_size: int, device: torch.device | str,
                 generator: torch.Generator | None = None) -> dict[str, Tensor]:
        if self.mode == "joint":
            kept = torch.rand(batch_size, device=device, generator=generator) >= self.prob("")
            return {g: kept.clone() for g in groups}
        return {g: torch.rand(batch_size, device=device, generator=generator) >= self.prob(g) for g in groups}

    def __repr__(self) -> str:
        return f"ConditionDropout(mode={self.mode!r}, p={self.p!r})"
