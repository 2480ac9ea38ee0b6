"""FPDM stage 1: the Image-Pose Fusion (IPF) model as a thin LightningModule.

Composition only: :class:`pgpis.models.fusion.FusionModel` (encoder(s) +
Combiner), :class:`pgpis.losses.contrastive.ContrastiveLoss` and
:class:`pgpis.metrics.retrieval.RetrievalCollector`. What this module adds is the
Lightning wiring:

* the contrastive loss sees the *global* batch: under DDP the fusion, target and
  source embeddings are gathered with ``all_gather(..., sync_grads=True)``;
* whole-gallery retrieval (A1 row and this model's row) at validation end and in
  ``pgpis test``; the test rows are merged into ``metrics_path`` (JSON:
  ``{"A1": {...}, "<loss>": {...}}``) and printed;
* at the end of ``fit`` the frozen-inference fusion model is exported to
  ``export_dir`` for stage 2 (:func:`load_fusion_model` reads it back).

Images come from the batch keys ``<input_key>_source``, ``<input_key>_target_pose``
and ``<input_key>_target`` (the DataModule's ``encoder_inputs``), or ``source``,
``target_pose``, ``target`` when ``input_key`` is null; the encoder's
:class:`~pgpis.models.encoders.EncoderPreprocess` resizes them if needed.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor
from typing_extensions import override

from pgpis.losses.contrastive import ContrastiveLoss, LossName
from pgpis.metrics.retrieval import RetrievalCollector, format_table, update_metrics_json
from pgpis.models.combiner import Combiner
from pgpis.models.encoders import EncoderSpec, build_image_encoder
from pgpis.models.fusion import FusionModel, load_fusion_model
from pgpis.optim import adamw

__all__ = ["IPFCombiner", "load_fusion_model", "FusionModel"]


class IPFCombiner(LightningModule):
    """Train the IPF fusion model contrastively (``baseline`` or ``source_enhanced`` loss).

    Args:
        encoder: image encoder shared by source, pose and target (see :class:`EncoderSpec`).
        pose_encoder: optional separate encoder for the pose image (same embedding size).
        projection_dim, hidden_dim: Combiner sizes (default 4x and 8x the embedding size).
        dropout: Combiner dropout (training only).
        loss: ``baseline`` (B x B) or ``source_enhanced`` (2B x 2B, sources as hard negatives).
        temperature: InfoNCE temperature (paper code 0.07); ``learnable_temperature`` makes it a parameter.
        lr, weight_decay: AdamW (paper: 1e-4, 1e-4).
        input_key: batch key prefix of the encoder-sized images (DataModule ``encoder_inputs``).
        retrieval_ks: the k of R@k.
        metrics_path: JSON file the test retrieval rows are merged into (None: do not write).
        export_dir: folder the frozen fusion model is exported to at the end of fit (None: no export).
    """

    def __init__(
        self,
        encoder: EncoderSpec = EncoderSpec(),
        pose_encoder: EncoderSpec | None = None,
        projection_dim: int | None = None,
        hidden_dim: int | None = None,
        dropout: float = 0.5,
        loss: LossName = "source_enhanced",
        temperature: float = 0.07,
        learnable_temperature: bool = False,
        lr: float = 1e-4,
        weight_decay: float = 1e-4,
        input_key: str | None = "clip",
        retrieval_ks: Sequence[int] = (1, 3, 5),
        metrics_path: str | None = None,
        export_dir: str | None = None,
    ):
        super().__init__()
        encoder = EncoderSpec.coerce(encoder, "model.encoder")
        pose_encoder = EncoderSpec.coerce(pose_encoder, "model.pose_encoder") if pose_encoder is not None else None
        # hparams hold plain dicts (save_hyperparameters reads these locals), so checkpoints load with weights_only
        encoder, pose_encoder = encoder.to_dict(), pose_encoder.to_dict() if pose_encoder else None
        retrieval_ks = [int(k) for k in retrieval_ks]
        self.save_hyperparameters()
        image_encoder = build_image_encoder(encoder, "model.encoder")
        self.fusion = FusionModel(
            image_encoder,
            Combiner(image_encoder.embed_dim, projection_dim, hidden_dim, dropout),
            build_image_encoder(pose_encoder, "model.pose_encoder") if pose_encoder else None,
        )
        self.loss_fn = ContrastiveLoss(loss, temperature, learnable_temperature)
        self.retrieval = RetrievalCollector()

    # ------------------------------------------------------------------ inputs
    def _images(self, batch: Mapping[str, Any]) -> tuple[Tensor, Tensor, Tensor]:
        prefix = f"{self.hparams.input_key}_" if self.hparams.input_key else ""
        keys = [f"{prefix}source", f"{prefix}target_pose", f"{prefix}target"]
        missing = [k for k in keys if k not in batch]
        if missing:
            size = list(self.fusion.encoder.input_size)
            raise KeyError(f"IPFCombiner: the batch has no {missing}. Set `data.encoder_inputs: "
                           f"{{{self.hparams.input_key or 'clip'}: {size}}}` on the DeepFashionDataModule, or "
                           f"`model.input_key: null` to use the full-size images")
        return batch[keys[0]], batch[keys[1]], batch[keys[2]]

    def embed(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        """Un-normalised source/target embeddings and the fusion embedding for a batch.

        Source and target (and the pose, with a shared encoder) go through the encoder in one call.
        """
        source, pose, target = self._images(batch)
        b = len(source)
        shared = self.fusion.pose_encoder is None
        embs = self.fusion.encoder(torch.cat([source, target, pose] if shared else [source, target]))
        s, t = embs[:b], embs[b:2 * b]
        p = embs[2 * b:] if shared else self.fusion.encode_pose(pose)
        return {"source": s, "target": t, "fusion": self.fusion.fuse(s, p)}

    @override
    def forward(self, source: Tensor, pose: Tensor) -> Tensor:
        return self.fusion(source, pose)

    def _global(self, x: Tensor) -> Tensor:
        """The batch of all ranks, with gradients flowing back to each rank's own rows."""
        if self.trainer is None or self.trainer.world_size == 1:
            return x
        return self.all_gather(x, sync_grads=True).flatten(0, 1)

    # ------------------------------------------------------------------ training
    @override
    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> Tensor:
        e = self.embed(batch)
        loss = self.loss_fn(self._global(e["fusion"]), self._global(e["target"]), self._global(e["source"]))
        self.log("train/loss", loss, prog_bar=True, batch_size=len(e["fusion"]))
        if self.hparams.learnable_temperature:
            self.log("train/temperature", self.loss_fn.temperature.detach(), batch_size=len(e["fusion"]))
        return loss

    @override
    def configure_optimizers(self) -> torch.optim.Optimizer:
        params = [p for p in self.parameters() if p.requires_grad]
        return adamw(params, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)

    # ------------------------------------------------------------------ evaluation
    def _eval_step(self, batch: Mapping[str, Any], stage: str) -> None:
        e = self.embed(batch)
        # local batch only: evaluation shards may be uneven across ranks, so no collective here
        loss = self.loss_fn(e["fusion"], e["target"], e["source"])
        self.log(f"{stage}/loss", loss, on_step=False, on_epoch=True, sync_dist=True, batch_size=len(e["fusion"]))
        sources, targets = list(batch["source_name"]), list(batch["target_name"])
        self.retrieval.add_gallery(sources, e["source"])
        new = self.retrieval.missing(targets)
        self.retrieval.add_gallery([targets[i] for i in new], e["target"][new])
        self.retrieval.add_queries(batch["pair_index"], e["fusion"], sources, targets)

    def _retrieval_rows(self) -> dict[str, dict[str, float]]:
        rows = self.retrieval.compute(self.hparams.retrieval_ks)  # collective: every rank calls it
        self.retrieval.reset()
        return {"A1": rows["A1"], self.hparams.loss: rows["fusion"]}

    @override
    def on_validation_epoch_start(self) -> None:
        self.retrieval.reset()

    @override
    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, "val")

    @override
    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:  # a partial gallery would log meaningless numbers
            self.retrieval.reset()
            return
        rows = self._retrieval_rows()
        for name, row in rows.items():
            for k, v in row.items():
                self.log(f"val/{'A1' if name == 'A1' else 'fusion'}/{k}", v, prog_bar=(name != "A1" and k == "R@1"),
                         sync_dist=True)  # equal on every rank; the mean keeps Lightning's DDP check quiet

    @override
    def on_test_epoch_start(self) -> None:
        self.retrieval.reset()

    @override
    def test_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, "test")

    @override
    def on_test_epoch_end(self) -> None:
        n_queries, n_gallery = self.retrieval.sizes
        rows = self._retrieval_rows()
        for name, row in rows.items():
            for k, v in row.items():
                self.log(f"test/{'A1' if name == 'A1' else 'fusion'}/{k}", v, sync_dist=True)
        if self.trainer.is_global_zero:
            if self.hparams.metrics_path:
                update_metrics_json(self.hparams.metrics_path, rows)
            rank_zero_info(f"IPF retrieval on the test split (rank 0 held {n_queries} queries, {n_gallery} images):\n"
                           + format_table(rows, ["A1", self.hparams.loss]))

    # ------------------------------------------------------------------ export
    def export_fusion_model(self, path: str | Path) -> Path:
        """Write the frozen-inference fusion model (config.json + model.safetensors) for stage 2."""
        return self.fusion.save(path)

    @override
    def on_fit_end(self) -> None:
        if self.hparams.export_dir and self.trainer.is_global_zero:
            path = self.export_fusion_model(self.hparams.export_dir)
            rank_zero_info(f"IPF fusion model exported to {path}")
