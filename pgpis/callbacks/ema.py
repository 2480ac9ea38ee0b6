"""EMA of the weights: Lightning's ``EMAWeightAveraging`` with a resume-safe end of training.

Lightning's callback copies the averaged weights into the live model in
``on_train_end`` (so the model in memory after ``fit`` is the EMA model), but
``ModelCheckpoint`` writes the pending ``last.ckpt`` *after* that hook, so the
checkpoint's ``current_model_state`` silently holds the EMA weights and a run
resumed from it continues from the average instead of the live weights (2
steps + resume + 2 steps then differs from 4 steps). This subclass keeps the
live weights at ``on_train_end`` and writes those as ``current_model_state``.
Everything else (``decay``, ``update_every_n_steps``, ``update_starting_at_step``,
averaged weights in ``state_dict``) is Lightning's.
"""
from __future__ import annotations

from copy import deepcopy
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import EMAWeightAveraging as _LightningEMA


class EMAWeightAveraging(_LightningEMA):
    """``lightning.pytorch.callbacks.EMAWeightAveraging`` whose post-training checkpoints resume exactly."""

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._live_state: dict[str, Any] | None = None
        super().setup(trainer, pl_module, stage)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._live_state = deepcopy(pl_module.state_dict())
        super().on_train_end(trainer, pl_module)

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(trainer, pl_module, checkpoint)
        if getattr(self, "_live_state", None) is not None and "current_model_state" in checkpoint:
            checkpoint["current_model_state"] = self._live_state
