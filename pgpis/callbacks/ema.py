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
from typing import Any, Optional, Union

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import EMAWeightAveraging as _LightningEMA
from lightning.pytorch.callbacks import WeightAveraging
from torch import Tensor
from torch.optim.swa_utils import get_ema_multi_avg_fn
from typing_extensions import override


def ema_multi_update(decay: float):
    """``multi_avg_fn`` for ``AveragedModel``: EMA of floating tensors (for-each lerp); others (int ids) are copied."""
    lerp = get_ema_multi_avg_fn(decay)

    def update(averaged: list[Tensor], current: list[Tensor], num_averaged: Tensor) -> None:
        if averaged[0].is_floating_point() or averaged[0].is_complex():
            lerp(averaged, current, num_averaged)
        else:
            torch._foreach_copy_(averaged, current)

    return update


class EMAWeightAveraging(WeightAveraging):
    """``lightning.pytorch.callbacks.EMAWeightAveraging`` whose post-training checkpoints resume exactly.

    Built on Lightning's public ``WeightAveraging`` (Lightning's EMA subclass fixes ``avg_fn``, which
    ``AveragedModel`` refuses beside the for-each ``multi_avg_fn``); the update schedule is Lightning's EMA one.
    """

    def __init__(
        self,
        device: Optional[Union[torch.device, str, int]] = None,
        use_buffers: bool = True,
        decay: float = 0.999,
        update_every_n_steps: int = 1,
        update_starting_at_step: Optional[int] = None,
        update_starting_at_epoch: Optional[int] = None,
    ):
        super().__init__(device=device, use_buffers=use_buffers, multi_avg_fn=ema_multi_update(decay))
        self.update_every_n_steps = update_every_n_steps
        self.update_starting_at_step = update_starting_at_step
        self.update_starting_at_epoch = update_starting_at_epoch

    should_update = _LightningEMA.should_update  # reads the three settings above

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._live_state: dict[str, Any] | None = None
        super().setup(trainer, pl_module, stage)

    @override
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._live_state = deepcopy(pl_module.state_dict())
        super().on_train_end(trainer, pl_module)

    @override
    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(trainer, pl_module, checkpoint)
        if getattr(self, "_live_state", None) is not None and "current_model_state" in checkpoint:
            checkpoint["current_model_state"] = self._live_state
