"""`WPoseEvaluation`: after ``DDIMInference`` has generated the WPose test pairs, score them under a WPose protocol.

Listed after :class:`pgpis.callbacks.inference.DDIMInference` in ``trainer.callbacks`` (experiments/wpose/test.yaml
does so), it reads the folder that callback wrote, runs :func:`pgpis.data.wpose.scoring.evaluate_wpose` (LPIPS,
both SSIMs, PSNR, pose accuracy, IQA / IAA for the generated images and the ground truth) and adds the result to
the same ``metrics.json`` under ``"wpose"``, so one file holds the model-resolution figures and the protocol's.
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any, Optional, Protocol, runtime_checkable

import lightning.pytorch as pl
from lightning.pytorch.utilities import rank_zero_info
from typing_extensions import override

from pgpis.atomic import atomic_write_text
from pgpis.data.wpose.protocols import DEFAULT_PROTOCOL


@runtime_checkable
class SampleWriter(Protocol):
    """What this callback reads from the callback that generated the samples
    (:class:`pgpis.callbacks.inference.DDIMInference`): found by these attributes, so the data layer does not
    import the callbacks."""

    output_dir: Path
    metrics_path: Optional[Path]
    max_pairs: Optional[int]


class WPoseEvaluation(pl.Callback):
    """Score DDIMInference's WPose samples under ``protocol``; merge the rows into its ``metrics.json``.

    Args:
        protocol: ``wpose-512x352`` (TruePose's) or ``wpose-256x176``.
        pose_estimator: for pose accuracy: "auto" (mediapipe if it runs here, else unavailable with the reason),
            a backend name / class path, or null (unavailable).
        quality: IQA / IAA: "auto" (the ``PGPIS_QALIGN_*`` environment, docs/iqa.md; unconfigured: unavailable
            with the reason) or a string reason to switch it off.
        metrics_path: where to write; default: the DDIMInference callback's ``metrics_path``.
        batch_size: pairs per scoring batch.
    """

    def __init__(self, protocol: str = DEFAULT_PROTOCOL, pose_estimator: Optional[str] = "auto", quality: str = "auto",
                 metrics_path: Optional[str] = None, batch_size: int = 16):
        self.protocol, self.pose_estimator, self.quality = protocol, pose_estimator, quality
        self.metrics_path = Path(metrics_path) if metrics_path else None
        self.batch_size = int(batch_size)
        self.results: dict[str, Any] | None = None

    @override
    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        from pgpis.data.wpose.datamodule import WPoseDataModule
        from pgpis.data.wpose.scoring import evaluate_wpose

        dm = trainer.datamodule
        if not isinstance(dm, WPoseDataModule):
            raise ValueError("WPoseEvaluation needs data.class_path pgpis.data.wpose.WPoseDataModule "
                             "(experiments/wpose/test.yaml sets both)")
        inference = next((cb for cb in trainer.callbacks if isinstance(cb, SampleWriter)), None)
        if inference is None:
            raise ValueError("WPoseEvaluation scores the files DDIMInference writes: list a DDIMInference callback "
                             "before it (experiments/wpose/test.yaml does)")
        dm.setup("test")
        index = replace(dm.index, pairs=list(dm.test_pairs))
        gen, gt = evaluate_wpose(index, inference.output_dir, self.protocol, pose_estimator=self.pose_estimator,
                                 quality=self.quality, allow_missing=inference.max_pairs is not None,
                                 batch_size=self.batch_size, device=pl_module.device, pad_rgb=tuple(dm.hparams.pad_rgb))
        self.results = {"generated": gen.to_dict(), "ground_truth": gt.to_dict()}
        path = self.metrics_path or inference.metrics_path
        if trainer.is_global_zero and path is not None:
            data = json.loads(path.read_text()) if path.exists() else {}
            data["wpose"] = self.results
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, json.dumps(data, indent=2, allow_nan=False) + "\n")
        rank_zero_info("WPoseEvaluation:\n" + gen.markdown_table("generated", {"ground truth": gt}))
