"""Every private Lightning / torchdata API pgpis relies on, in one place.

Lightning's public API covers nearly all of pgpis; the few things below it cannot do publicly. Each
is wrapped here, named after what pgpis needs, and checked by tests/test_lightning_compat.py, which
fails naming the private API when an installed Lightning or torchdata changes it. Raising the
``lightning`` pin in setup.cfg means running that test file (and the training tests) on the new version.
The pin ``>=2.6,<2.7`` is every published release the tests pass on (2.6.0 and 2.6.6 checked; 2.6.6 is the
newest release): 2.5 has no ``WeightAveraging`` and no ``Trainer.fit(weights_only=...)``.

==========================================  ==========================================================
private API                                 why pgpis needs it
==========================================  ==========================================================
``hparams_mixin._given_hyperparameters``    know whether LightningCLI is instantiating the model (it
                                            then supplies the whole config as hyper-parameters)
``LightningCLI._parse_ckpt_path``           the step that replaces the model config by the one in
                                            ``--ckpt_path``: pgpis reads that file weights-only and
                                            lets a model given on the command line win
``trainer._accelerator_connector``          the cluster environment (SLURM's requeue signal) of any
                                            strategy, single-device included
``trainer._signal_connector``               stop every DDP rank after the same step with Lightning's
                                            own ``SIGTERMException`` path
``ModelCheckpoint._every_n_train_steps``,   save a due step checkpoint one batch later, and always at
``_last_global_step_saved``,                the end of training (pgpis.callbacks.resume.StepCheckpoint)
``_should_skip_saving_checkpoint``,
``_monitor_candidates``,
``_save_topk_checkpoint``,
``_save_last_checkpoint``
``_SubprocessScriptLauncher.procs``         forward a signal to the local DDP child processes
torchdata ``StatefulDataLoader`` state      whether a saved loader state had finished its pass
``"_num_yielded"``
==========================================  ==========================================================
"""
from __future__ import annotations

from typing import Any, Mapping, Optional

import lightning.pytorch as pl
from lightning.fabric.plugins.environments import ClusterEnvironment
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI
from typing_extensions import override

#: key of a torchdata ``StatefulDataLoader.state_dict()``: samples (batches) yielded in the current pass
NUM_YIELDED_KEY = "_num_yielded"


def lightning_cli_is_instantiating() -> bool:
    """True while LightningCLI instantiates the model: ``save_hyperparameters()`` then stores its config."""
    try:
        from lightning.pytorch.core.mixins.hparams_mixin import _given_hyperparameters
    except ImportError:  # moved: behave as in plain Python (the test names the API)
        return False
    return _given_hyperparameters.get() is not None


class CheckpointConfigCLI(LightningCLI):
    """LightningCLI whose "model config from ``--ckpt_path``" step is the overridable :meth:`apply_checkpoint_config`."""

    @override
    def _parse_ckpt_path(self) -> None:  # Lightning's private hook, run by __init__ after parse_arguments
        self.apply_checkpoint_config()

    def apply_checkpoint_config(self) -> None:
        """Lightning's behaviour: the hyper-parameters saved in ``--ckpt_path`` replace the model config."""
        super()._parse_ckpt_path()


def cluster_environment(trainer: pl.Trainer) -> ClusterEnvironment:
    """The run's cluster environment (e.g. ``SLURMEnvironment``), whatever the strategy."""
    return trainer._accelerator_connector.cluster_environment


def stop_after_this_batch(trainer: pl.Trainer) -> None:
    """Set what a SIGTERM sets: Lightning raises ``SIGTERMException`` once the batch in flight completes."""
    trainer._signal_connector.received_sigterm = True


def forward_signal_to_local_ranks(trainer: pl.Trainer, signum: int) -> None:
    """Send `signum` to the DDP child processes this process launched (Lightning's subprocess launcher), if any."""
    launcher = trainer.strategy.launcher
    if launcher is not None and hasattr(launcher, "procs"):
        launcher.kill(signum)


def every_n_train_steps(callback: ModelCheckpoint) -> int:
    """The callback's ``every_n_train_steps`` (0 when it saves on another schedule)."""
    return int(callback._every_n_train_steps or 0)


def last_saved_step(callback: ModelCheckpoint) -> int:
    """Global step of the callback's latest save."""
    return int(callback._last_global_step_saved)


def should_skip_saving(callback: ModelCheckpoint, trainer: pl.Trainer) -> bool:
    """Lightning's own reasons not to save now (fast_dev_run, sanity check, already saved at this step, ...)."""
    return bool(callback._should_skip_saving_checkpoint(trainer))


def save_now(callback: ModelCheckpoint, trainer: pl.Trainer) -> None:
    """What ``ModelCheckpoint.on_train_batch_end`` does once a step interval is due: top-k, then last."""
    candidates = callback._monitor_candidates(trainer)
    callback._save_topk_checkpoint(trainer, candidates)
    callback._save_last_checkpoint(trainer, candidates)


def loader_samples_yielded(state: Mapping[str, Any]) -> int:
    """How far into its pass a ``StatefulDataLoader.state_dict()`` was taken (batches yielded)."""
    return int(state.get(NUM_YIELDED_KEY, 0))
