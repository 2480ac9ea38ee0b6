"""Guidance policies: which condition branches a sampling step queries and how they are combined.

A policy is a list of *branches* (the condition groups kept in each) and one
coefficient per branch; the guided output is ``sum_k c_k * out_k``. Written this
way, plain CFG and FPDM's cumulative CFG are the same code, every branch goes
through one batched denoiser call, and a new policy is a new list, not a new
sampler.

A branch names the kept groups; ``"*"`` means every group of the denoiser, an
empty tuple means none (the unconditional branch).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

ALL = "*"


class GuidancePolicy:
    """Linear combination ``sum_k coefficients[k] * output(branches[k])``."""

    def __init__(self, branches: Sequence[Sequence[str]], coefficients: Sequence[float]):
        if len(branches) != len(coefficients) or not branches:
            raise ValueError(
                f"{type(self).__name__}: need one coefficient per branch, got {len(branches)} branches "
                f"and {len(coefficients)} coefficients"
            )
        self.branches = [tuple(b) for b in branches]
        self.coefficients = [float(c) for c in coefficients]

    @property
    def num_branches(self) -> int:
        return len(self.branches)

    def kept_groups(self, branch: Sequence[str], groups: Sequence[str]) -> set[str]:
        """The groups of `groups` kept in `branch` (``"*"`` expands to all)."""
        if ALL in branch:
            return set(groups)
        unknown = set(branch) - set(groups)
        if unknown:
            raise ValueError(
                f"{type(self).__name__}: branch {branch} names condition group(s) {sorted(unknown)} that the "
                f"denoiser does not have (its groups: {list(groups)}); fix the guidance config"
            )
        return set(branch)

    def keep_masks(self, groups: Sequence[str], batch_size: int, device: torch.device | str) -> dict[str, Tensor]:
        """Keep-mask for the branch-stacked batch: branch k occupies rows [k*B, (k+1)*B)."""
        masks = {g: torch.empty(self.num_branches * batch_size, dtype=torch.bool, device=device) for g in groups}
        for k, branch in enumerate(self.branches):
            kept = self.kept_groups(branch, groups)
            for g in groups:
                masks[g][k * batch_size : (k + 1) * batch_size] = g in kept
        return masks

    def combine(self, outputs: Tensor) -> Tensor:
        """Branch-stacked outputs [K*B, ...] -> guided output [B, ...]."""
        chunks = outputs.chunk(self.num_branches, dim=0)
        guided = self.coefficients[0] * chunks[0]
        for c, chunk in zip(self.coefficients[1:], chunks[1:]):
            guided = guided + c * chunk
        return guided

    def describe(self) -> str:
        """Short label for grids and logs."""
        return type(self).__name__

    def __repr__(self) -> str:
        return f"{type(self).__name__}(branches={self.branches}, coefficients={self.coefficients})"


class NoGuidance(GuidancePolicy):
    """One conditional branch (all groups kept): the plain conditional model."""

    def __init__(self) -> None:
        super().__init__([(ALL,)], [1.0])

    def describe(self) -> str:
        return "cond"


class ClassifierFreeGuidance(GuidancePolicy):
    """eps = eps(0) + w (eps(C) - eps(0)) over all condition groups (TruePose: w = 3.5)."""

    def __init__(self, scale: float = 3.5):
        super().__init__([(), (ALL,)], [1.0 - scale, scale])
        self.scale = float(scale)

    def describe(self) -> str:
        return f"cfg{self.scale:g}"


class CumulativeGuidance(GuidancePolicy):
    """FPDM eq. 12: eps(0,0,0) + w_s (eps(p,s,0) - eps(0,0,0)) + w_f (eps(p,s,f) - eps(p,s,0)).

    The two weights stay separate (the reference code used one, which collapses
    the formula to plain CFG). ``source_groups`` / ``fusion_groups`` name the
    denoiser's groups for the middle and last branch.
    """

    def __init__(
        self,
        source_weight: float = 2.0,
        fusion_weight: float = 2.0,
        source_groups: Sequence[str] = ("pose", "source"),
        fusion_groups: Sequence[str] = ("fusion",),
    ):
        w_s, w_f = float(source_weight), float(fusion_weight)
        middle = tuple(source_groups)
        full = middle + tuple(fusion_groups)
        super().__init__([(), middle, full], [1.0 - w_s, w_s - w_f, w_f])
        self.source_weight, self.fusion_weight = w_s, w_f

    def describe(self) -> str:
        return f"cum_s{self.source_weight:g}_f{self.fusion_weight:g}"
