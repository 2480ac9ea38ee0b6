"""The IPF fusion model: image encoder(s) + Combiner, and its frozen export for stage 2.

Training (``pgpis.stages.ipf.IPFCombiner``) and stage 2 share this one module, so
the embedding stage 2 conditions on is computed exactly as in training. An
export is a folder with ``config.json`` (architecture: encoder config, combiner
sizes) and ``model.safetensors``; loading rebuilds the architecture offline and
returns the model frozen: eval mode for good (a parent's ``train()`` does not
turn the Combiner's dropout back on — a pitfall of the reference code),
``requires_grad=False``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import Tensor, nn

from pgpis.errors import DataFormatError, MissingWeightsError, Problem
from pgpis.models.combiner import Combiner
from pgpis.models.encoders import ImageEncoder, encoder_from_export
from pgpis.pretrained import stage1_export_advice
from pgpis.safe_load import load_safetensors

EXPORT_FORMAT = "pgpis-ipf-fusion"
EXPORT_VERSION = 1
CONFIG_NAME, WEIGHTS_NAME = "config.json", "model.safetensors"


class FusionModel(nn.Module):
    """``forward(source, pose)`` -> unit-norm fusion embedding ``[B, D]``; images ``[B, 3, H, W]`` in [-1, 1]."""

    def __init__(self, encoder: ImageEncoder, combiner: Combiner, pose_encoder: ImageEncoder | None = None):
        super().__init__()
        if combiner.embed_dim != encoder.embed_dim:
            raise ValueError(f"combiner embed_dim {combiner.embed_dim} != encoder embed_dim {encoder.embed_dim}")
        if pose_encoder is not None and pose_encoder.embed_dim != encoder.embed_dim:
            raise ValueError(f"pose encoder embed_dim {pose_encoder.embed_dim} != image encoder {encoder.embed_dim}")
        self.encoder, self.combiner, self.pose_encoder = encoder, combiner, pose_encoder
        self._frozen = False

    @property
    def embed_dim(self) -> int:
        return self.encoder.embed_dim

    def encode_image(self, images: Tensor, normalize: bool = True) -> Tensor:
        """Embedding of person images (source or target) in the retrieval space."""
        e = self.encoder(images)
        return F.normalize(e, dim=-1) if normalize else e

    def encode_pose(self, pose_images: Tensor) -> Tensor:
        """Un-normalised embedding of rendered pose images (shared encoder unless a pose encoder is set)."""
        return (self.pose_encoder or self.encoder)(pose_images)

    def fuse(self, source_embedding: Tensor, pose_embedding: Tensor) -> Tensor:
        return self.combiner(source_embedding, pose_embedding)

    def forward(self, source: Tensor, pose: Tensor) -> Tensor:
        return self.fuse(self.encode_image(source, normalize=False), self.encode_pose(pose))

    # ------------------------------------------------------------------ frozen use
    def freeze(self) -> "FusionModel":
        """Inference-only: no gradients, eval mode that survives a parent module's ``train()``."""
        self.requires_grad_(False)
        self._frozen = True
        return self.eval()

    def train(self, mode: bool = True) -> "FusionModel":
        return super().train(mode and not self._frozen)

    # ------------------------------------------------------------------ export
    def export_config(self) -> dict[str, Any]:
        return {"format": EXPORT_FORMAT, "version": EXPORT_VERSION, "embed_dim": self.embed_dim,
                "encoder": self.encoder.export_config(),
                "pose_encoder": self.pose_encoder.export_config() if self.pose_encoder is not None else None,
                "combiner": self.combiner.config()}

    def save(self, path: str | Path) -> Path:
        """Write ``config.json`` + ``model.safetensors`` into the folder `path` (created)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(path / WEIGHTS_NAME), metadata={"format": EXPORT_FORMAT})
        (path / CONFIG_NAME).write_text(json.dumps(self.export_config(), indent=2) + "\n")
        return path


def load_fusion_model(path: str | Path, device: str | torch.device = "cpu") -> FusionModel:
    """Load an exported fusion model, frozen (eval, no grad, dropout off) for stage 2."""
    path = Path(path)
    config_file, weights_file = path / CONFIG_NAME, path / WEIGHTS_NAME
    if not config_file.is_file() or not weights_file.is_file():
        raise MissingWeightsError("IPF fusion model (stage 1)", path, stage1_export_advice(path))
    try:
        cfg = json.loads(config_file.read_text())
    except json.JSONDecodeError as err:
        raise DataFormatError(Problem(str(config_file), f"not valid JSON ({err.msg})", "re-export the fusion model",
                                      line=err.lineno)) from err
    if cfg.get("format") != EXPORT_FORMAT:
        raise DataFormatError(Problem(str(config_file), f"format is {cfg.get('format')!r}, not {EXPORT_FORMAT!r}",
                                      "point at a folder written by IPFCombiner.export_fusion_model", item="format"))
    for key in ("encoder", "combiner"):
        if key not in cfg:
            raise DataFormatError(Problem(str(config_file), f"missing key '{key}'", "re-export the fusion model",
                                          item=key))
    pose_cfg = cfg.get("pose_encoder")
    model = FusionModel(encoder_from_export(cfg["encoder"]), Combiner(**cfg["combiner"]),
                        encoder_from_export(pose_cfg) if pose_cfg else None)
    state = load_safetensors(weights_file, what="IPF fusion model weights",
                             fix="re-export the fusion model (or copy the folder again)")
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise DataFormatError(Problem(str(weights_file), f"weights do not match config.json (missing {missing[:3]}, "
                                      f"unexpected {unexpected[:3]})", "re-export the fusion model"))
    return model.to(device).freeze()
