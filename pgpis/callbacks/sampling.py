"""`CFGSampling`: at validation end, a grid source | pose | target | one sample per guidance setting.

The grid uses the first `num_samples` validation pairs and **fixed noise**,
kept in the callback's ``state_dict`` (so in the checkpoint): grids from
different steps, and from a resumed run, are comparable. Under DDP the pairs
are sharded over ranks, every rank joins one ``all_gather`` (no rank-0-only
collective), and rank 0 writes the PNG (``<log_dir>/samples/step_XXXXXXX.png``)
and the TensorBoard image.

Order matters with ``EMAWeightAveraging``: list ``CFGSampling`` *before* it in
``trainer.callbacks`` to sample the averaged weights (EMA swaps them back in its
own ``on_validation_epoch_end``).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional, Sequence

import lightning.pytorch as pl
import torch
from torch import Tensor
from typing_extensions import override

from pgpis.callbacks.inference import eval_dataset, save_png
from pgpis.diffusion.core import move_batch
from pgpis.diffusion.guidance import GuidancePolicy
from pgpis.diffusion.sampler import Sampler, per_sample_generators, per_sample_noise
from pgpis.grids import DEFAULT_MIN_CELL_HEIGHT, upscale_factor, upscale_nearest


class CFGSampling(pl.Callback):
    """Sample grids during training (see the module docstring).

    Args:
        num_samples: validation pairs in the grid (rows).
        guidances: one sample column per policy (default: the model's guidance).
        sampler: sampling settings (default: the model's).
        every_n_epochs: make a grid every n-th validation run (the first one included).
        seed: seed of the fixed noise (drawn once, then restored from checkpoints).
        dirname: sub-folder of the log dir for the PNGs.
        min_cell_height: the PNG's and TensorBoard image's cells are upscaled (nearest neighbour, integer
            factor) to at least this many pixels tall; 0 keeps the native size. `make_grid` returns native size.
    """

    def __init__(self, num_samples: int = 4, guidances: Optional[Sequence[GuidancePolicy]] = None,
                 sampler: Optional[Sampler] = None, every_n_epochs: int = 1, seed: int = 1234,
                 dirname: str = "samples", min_cell_height: int = DEFAULT_MIN_CELL_HEIGHT):
        self.num_samples, self.guidances, self.sampler = int(num_samples), list(guidances or []), sampler
        self.every_n_epochs, self.seed, self.dirname = max(1, int(every_n_epochs)), int(seed), dirname
        self.min_cell_height = int(min_cell_height)
        self.noise: Tensor | None = None
        self.last_grid: Path | None = None
        self._validations = 0

    # ------------------------------------------------------------------ checkpointed state
    @override
    def state_dict(self) -> dict[str, Any]:
        return {"noise": self.noise, "seed": self.seed, "num_samples": self.num_samples}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.noise = state_dict.get("noise")

    # ------------------------------------------------------------------ hook
    @override
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        self._validations += 1
        if (self._validations - 1) % self.every_n_epochs == 0:
            self.make_grid(trainer, pl_module)

    @torch.no_grad()
    def make_grid(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> Tensor:
        dataset, collate = eval_dataset(trainer, "val")
        n = min(self.num_samples, len(dataset))
        rank, world = trainer.global_rank, trainer.world_size
        per_rank = math.ceil(n / world)
        mine = list(range(n))[rank::world]
        first = collate([dataset[0]])
        shape = pl_module.latent_shape(move_batch(first, pl_module.device))
        if self.noise is None or self.noise.shape != (n, *shape):
            self.noise = per_sample_noise(per_sample_generators([self.seed + i for i in range(n)]), shape, "cpu", torch.float32)
        policies = self.guidances or [pl_module.guidance]
        h, w = first["target"].shape[-2:]
        rows = torch.zeros(per_rank, 3, h, w * (3 + len(policies)), device=pl_module.device)
        if mine:
            batch = move_batch(collate([dataset[i] for i in mine]), pl_module.device)
            conditions = pl_module.denoiser.encode_conditions(batch)
            columns = [batch["source"], batch["target_pose"], batch[pl_module.target_key]]
            for policy in policies:
                columns.append(pl_module.generate(batch, guidance=policy, sampler=self.sampler,
                                                  noise=self.noise[mine], conditions=conditions))
            rows[: len(mine)] = torch.cat(columns, dim=-1).float()
        gathered = pl_module.all_gather(rows)  # every rank joins: [world, per_rank, ...] (or [per_rank, ...])
        gathered = gathered.reshape(-1, *rows.shape[1:]) if world > 1 else rows
        order = [r * per_rank + j for i in range(n) for r, j in [(i % world, i // world)]]
        grid_rows = gathered[order]
        grid = torch.cat(list(grid_rows), dim=-2)  # stack rows vertically: [3, n*h, w*cols]
        log_dir = Path(trainer.log_dir or trainer.default_root_dir)  # a broadcast: every rank must ask
        if trainer.is_global_zero:
            self._write(trainer, grid, policies, log_dir, upscale_factor(h, self.min_cell_height))
        return grid

    def _write(self, trainer: pl.Trainer, grid: Tensor, policies: Sequence[GuidancePolicy], log_dir: Path,
               scale: int) -> None:
        path = log_dir / self.dirname / f"step_{trainer.global_step:07d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_png(grid, path, scale=scale)
        self.last_grid = path
        experiment = getattr(trainer.logger, "experiment", None)
        if experiment is not None and hasattr(experiment, "add_image"):
            tag = "samples/source|pose|target|" + "|".join(p.describe() for p in policies)
            image = upscale_nearest(((grid.clamp(-1, 1) + 1) / 2).cpu(), scale)
            experiment.add_image(tag, image, global_step=trainer.global_step)
