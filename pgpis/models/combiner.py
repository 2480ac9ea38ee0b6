"""The Combiner (Baldrati et al., CLIP4Cir) that FPDM uses to fuse a source and a pose embedding.

FPDM's stage 1 feeds it the image embedding of the source and of the target
pose image; its output, L2-normalised, should land on the target image's
embedding. Layout (docs/methods.md, FPDM stage 1), with D = the encoder's embedding size:

* source and pose: Linear(D, P)-ReLU-Dropout each, concatenated -> c [2P];
* residual: Linear(2P, H)-ReLU-Dropout-Linear(H, D) on c;
* dynamic scalar lambda: Linear(2P, H)-ReLU-Dropout-Linear(H, 1)-Sigmoid on c;
* output = normalise(residual + lambda * pose + (1 - lambda) * source).

The embeddings enter un-normalised, as in the reference, so the convex mix of
source and pose stays in the encoder's own space. Dropout is an ``nn.Dropout``:
active in ``train()`` only; a frozen copy for stage 2 lives in eval mode.
P and H default to 4D and 8D (the CLIP4Cir ratio, 640 -> 2560 -> 5120).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class Combiner(nn.Module):
    """Fuse (source, pose) embeddings ``[B, D]`` into a unit-norm fusion embedding ``[B, D]``."""

    def __init__(self, embed_dim: int, projection_dim: int | None = None, hidden_dim: int | None = None,
                 dropout: float = 0.5):
        super().__init__()
        if embed_dim <= 0:
            raise ValueError(f"Combiner embed_dim must be positive, got {embed_dim}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"Combiner dropout must be in [0, 1), got {dropout}")
        p = projection_dim or 4 * embed_dim
        h = hidden_dim or 8 * embed_dim
        self.embed_dim, self.projection_dim, self.hidden_dim, self.dropout = embed_dim, p, h, dropout
        self.source_projection = nn.Sequential(nn.Linear(embed_dim, p), nn.ReLU(), nn.Dropout(dropout))
        self.pose_projection = nn.Sequential(nn.Linear(embed_dim, p), nn.ReLU(), nn.Dropout(dropout))
        self.residual = nn.Sequential(nn.Linear(2 * p, h), nn.ReLU(), nn.Dropout(dropout), nn.Linear(h, embed_dim))
        self.dynamic_scalar = nn.Sequential(nn.Linear(2 * p, h), nn.ReLU(), nn.Dropout(dropout), nn.Linear(h, 1),
                                            nn.Sigmoid())

    def forward(self, source: Tensor, pose: Tensor) -> Tensor:
        if source.shape != pose.shape or source.shape[-1] != self.embed_dim:
            raise ValueError(f"Combiner expects source and pose [B, {self.embed_dim}], "
                             f"got {tuple(source.shape)} and {tuple(pose.shape)}")
        joint = torch.cat([self.source_projection(source), self.pose_projection(pose)], dim=-1)
        lam = self.dynamic_scalar(joint)
        return F.normalize(self.residual(joint) + lam * pose + (1 - lam) * source, dim=-1)

    def config(self) -> dict[str, float | int]:
        """Constructor arguments, for export next to the weights."""
        return {"embed_dim": self.embed_dim, "projection_dim": self.projection_dim, "hidden_dim": self.hidden_dim,
                "dropout": self.dropout}
