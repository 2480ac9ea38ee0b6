"""Training that survives being killed: step checkpoints, per-step RNG seeds and a checkpoint on SIGTERM.

Lightning restores weights, optimiser, schedulers, loops, callbacks and (with a stateful
loader, :mod:`pgpis.data.datamodule`) the loader's position, but not the RNG. The diffusion
core draws noise, timesteps and condition dropout from its own generator seeded by
(seed, global step, rank); dropout layers (e.g. IPF's, or a UNet's ``dropout``) and any other
code on torch's global RNG draw from a state that, after a resume, is whatever
``seed_everything`` and start-up left there.

:class:`StepSeed` seeds torch, numpy and ``random`` before every training batch from
(seed, global step, batch index, rank), the core's approach extended to the global RNG. We chose this
over saving and restoring RNG states in the checkpoint because it is exact by construction and
stateless: nothing has to be gathered from every rank at save time, and whatever else draws
between steps (loader prefetching, validation, sample grids) cannot shift the training stream.
It also gives each DDP rank its own dropout masks (``seed_everything`` alone seeds every rank alike).

:class:`StopOnSignal` makes SIGTERM and SLURM's requeue signal finish the batch in flight, write
``last.ckpt`` and exit with status 0 (requeueing the SLURM job on the requeue signal). Lightning's
own handling (2.6) is not enough, measured under 2-process CPU DDP (docs/training-faults.md):

* on SIGTERM it only stops (``SIGTERMException`` at a batch boundary, exit 0) and saves nothing;
  ``ModelCheckpoint(save_on_exception=True)`` would save on *any* exception, including a crash
  halfway through a step, over a good ``last.ckpt``;
* its SIGTERM handler calls ``dist.broadcast`` from inside the signal handler. When the signal lands
  while another rank is in a different collective (here: rank 1 in ``Trainer.save_checkpoint``'s
  barrier, rank 0 in the handler's broadcast) both wait for ever; a 2-process run hung on the first try;
* its SLURM handler (SIGUSR1) saves ``hpc_ckpt_N.ckpt`` from inside the signal handler, i.e. at any
  point of a step (optimiser stepped, counters not yet), with a barrier that can meet the same fate.

So :class:`StopOnSignal` installs handlers that only set a flag (and forward SIGTERM to the DDP
child processes, as Lightning's do); at every training batch end the ranks all-reduce the flag, and
when any rank got a signal they all set Lightning's ``received_sigterm`` together, so Lightning
raises ``SIGTERMException`` on every rank after the same completed step. :meth:`on_exception` then
saves ``last.ckpt`` with every rank taking part.
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
from types import FrameType
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException
from lightning.pytorch.utilities.rank_zero import rank_zero_info, rank_zero_warn
from typing_extensions import override

from pgpis.training import lightning_compat as compat


def step_seed(seed: int, step: int, batch_idx: int, rank: int) -> int:
    """A well-mixed 63-bit seed for one training batch of one rank."""
    return int(np.random.SeedSequence([seed, step, batch_idx, rank]).generate_state(1, np.uint64)[0] >> np.uint64(1))


class StepCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` for step intervals (``every_n_train_steps``) that resume exactly, and that keep the end.

    Two gaps of Lightning 2.6's own callback with a step interval, both measured (tests/test_kill_resume.py):

    * a save that lands on an epoch's *last* batch resumes into mis-counted epochs (the fit loop counts
      that epoch as done on restore and again when its empty remainder ends; with ``max_epochs`` a
      resumed run trained an extra epoch). Such a save is deferred to the next batch, inside the next
      epoch, where resuming is exact;
    * with a step interval it writes nothing when training ends (``on_train_end`` saves only if nothing
      was ever saved), so ``last.ckpt`` missed the steps after the last multiple of N. Here the end of
      training is always saved.
    """

    _deferred = False

    @override
    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if self.monitor is not None:  # a monitored save waits for its metric: Lightning's own logic
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
            return
        every = compat.every_n_train_steps(self)
        due = every >= 1 and trainer.global_step % every == 0
        if trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            self._deferred = self._deferred or due
            return
        if self._deferred and not compat.should_skip_saving(self, trainer):
            self._deferred = False
            compat.save_now(self, trainer)
            return
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    @override
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if compat.last_saved_step(self) != trainer.global_step and not bool(trainer.fast_dev_run):
            compat.save_now(self, trainer)
        super().on_train_end(trainer, pl_module)


class StepSeed(Callback):
    """Seeds torch (CPU and CUDA), numpy and ``random`` before each training batch from (seed, step, batch, rank).

    Args:
        seed: base seed; None takes Lightning's global seed (``seed_everything``, ``PL_GLOBAL_SEED``; 0 if unset).
            The seed in use is saved in the checkpoint and wins on resume, so a resumed run draws what the
            uninterrupted one would have drawn even when ``seed_everything`` is random.
    """

    def __init__(self, seed: int | None = None):
        self.seed = seed

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.seed is None:
            self.seed = int(os.environ.get("PL_GLOBAL_SEED", 0))

    @override
    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int) -> None:
        # global step and batch index (unique per micro-batch), not Lightning's epoch counter, which a resume
        # at an epoch's last batch can mis-count (pgpis.data.datamodule.TrainLoader)
        s = step_seed(int(self.seed or 0), trainer.global_step, batch_idx, trainer.global_rank)
        torch.manual_seed(s)
        np.random.seed(s % 2**32)
        random.seed(s)

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"seed": self.seed}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict.get("seed") is not None:
            self.seed = int(state_dict["seed"])


class StopOnSignal(Callback):
    """SIGTERM or the requeue signal: finish the batch in flight on every rank, save ``last.ckpt``, exit 0.

    The requeue signal is the cluster environment's ``SLURMEnvironment.requeue_signal`` (SIGUSR1 by
    default, also outside SLURM). On it, under SLURM with ``auto_requeue`` (Lightning's default), rank 0
    runs ``scontrol requeue $SLURM_JOB_ID`` after the checkpoint is written; the requeued job resumes with
    ``--ckpt_path last``. The checkpoint is the first ``ModelCheckpoint``'s ``last.ckpt`` (what
    ``--ckpt_path last`` picks), or ``<default_root_dir>/last.ckpt`` without one.

    A signal that arrives during validation or after the last training batch is acted on at the next
    training batch end, or not at all once training is done (the fit then ends normally).
    """

    def __init__(self) -> None:
        self._received: int = 0
        self._fitting: pl.Trainer | None = None  # the trainer whose fit the handlers serve

    # ------------------------------------------------------------------ signals
    def _signals(self, trainer: pl.Trainer) -> list[int]:
        env = compat.cluster_environment(trainer)
        requeue = env.requeue_signal if isinstance(env, SLURMEnvironment) else getattr(signal, "SIGUSR1", None)
        return [int(s) for s in dict.fromkeys([signal.SIGTERM, requeue]) if s is not None]

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        """Async-signal context: no collectives, no I/O beyond forwarding the signal to DDP children."""
        first = not self._received
        self._received = self._received or signum
        if first and self._fitting is not None:
            compat.forward_signal_to_local_ranks(self._fitting, signum)  # the other local ranks get the same signal

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Replace the handlers Lightning registered for this fit (it restores the pre-fit ones at teardown)."""
        self._received, self._fitting = 0, trainer
        if threading.current_thread() is not threading.main_thread():
            rank_zero_warn("StopOnSignal: not in the main thread, signals keep Lightning's handlers")
            return
        for signum in self._signals(trainer):
            signal.signal(signum, self._handle)

    @override
    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if (batch_idx + 1) % trainer.accumulate_grad_batches or trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            return  # stop after an optimiser step, never at an epoch's last batch (StepCheckpoint says why)
        received = self._received
        if trainer.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            flag = torch.tensor([received], dtype=torch.int64, device=trainer.strategy.root_device)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            received = int(flag.item())
        if received:
            self._received = received
            # Lightning raises SIGTERMException on this flag after this batch completes, on every rank alike
            compat.stop_after_this_batch(trainer)

    # ------------------------------------------------------------------ save, requeue
    @override
    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, SIGTERMException) or not self._received or trainer.sanity_checking:
            return
        path = self.last_path(trainer)
        trainer.save_checkpoint(path)
        name = signal.Signals(self._received).name
        rank_zero_info(f"{name}: saved {path} at global step {trainer.global_step}; resume with --ckpt_path last")
        env = compat.cluster_environment(trainer)
        if (trainer.is_global_zero and isinstance(env, SLURMEnvironment) and env.auto_requeue
                and self._received == env.requeue_signal):
            self._requeue()

    @staticmethod
    def _requeue() -> None:
        array_job = os.environ.get("SLURM_ARRAY_JOB_ID")
        job = f"{array_job}_{os.environ['SLURM_ARRAY_TASK_ID']}" if array_job else os.environ.get("SLURM_JOB_ID")
        if not job:
            rank_zero_warn("StopOnSignal: SLURM requeue signal but no SLURM_JOB_ID; not requeued")
            return
        result = subprocess.call(["scontrol", "requeue", job])
        (rank_zero_info if result == 0 else rank_zero_warn)(f"scontrol requeue {job}: exit status {result}")

    @staticmethod
    def last_path(trainer: pl.Trainer) -> str:
        cb = trainer.checkpoint_callback
        if isinstance(cb, ModelCheckpoint) and cb.dirpath:
            return os.path.join(cb.dirpath, cb.CHECKPOINT_NAME_LAST + cb.FILE_EXTENSION)
        return os.path.join(trainer.default_root_dir, "last.ckpt")
