"""The private Lightning / torchdata APIs of pgpis.training.lightning_compat still behave as pgpis relies on.

Each test names the private API in its failure message, so a new Lightning or torchdata release that moves
one fails here, by name, instead of silently changing training (resume, signals, checkpoint config).
"""
from __future__ import annotations

import inspect
import signal

import lightning
import pytest
import torch
import torchdata
from lightning.fabric.plugins.environments import ClusterEnvironment
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.demos.boring_classes import BoringModel
from lightning.pytorch.utilities.exceptions import SIGTERMException
from torchdata.stateful_dataloader import StatefulDataLoader

from pgpis.training import lightning_compat as compat

TRAINER = {"logger": False, "enable_checkpointing": False, "enable_progress_bar": False,
           "enable_model_summary": False, "accelerator": "cpu", "devices": 1}


def changed(api: str, used_by: str) -> str:
    return (f"lightning {lightning.__version__} / torchdata {torchdata.__version__} changed the private API `{api}` "
            f"that pgpis.training.lightning_compat.{used_by} relies on: adapt that function (and the lightning "
            "pin in setup.cfg)")


class Recorder(BoringModel):
    """Records whether LightningCLI was instantiating it (the case ``lightning_cli_is_instantiating`` detects)."""

    def __init__(self, width: int = 2):
        super().__init__()
        self.under_cli = compat.lightning_cli_is_instantiating()


class RecordingCLI(compat.CheckpointConfigCLI):
    calls: list[str] = []

    def apply_checkpoint_config(self) -> None:
        self.calls.append("apply_checkpoint_config")
        super().apply_checkpoint_config()

    def fit(self, **kwargs) -> None:  # noqa: ANN003  LightningCLI runs getattr(cli, subcommand, trainer.<subcommand>)
        self.calls.append("fit")


def test_given_hyperparameters_and_parse_ckpt_path_and_subcommand_methods(tmp_path):
    RecordingCLI.calls = []
    cli = RecordingCLI(Recorder, args=["fit", f"--trainer.default_root_dir={tmp_path}"],
                       trainer_defaults=TRAINER, save_config_callback=None)
    assert cli.model.under_cli, changed("lightning.pytorch.core.mixins.hparams_mixin._given_hyperparameters",
                                        "lightning_cli_is_instantiating")
    assert not compat.lightning_cli_is_instantiating() and not Recorder().under_cli, changed(
        "_given_hyperparameters", "lightning_cli_is_instantiating")
    assert list(inspect.signature(LightningCLI._parse_ckpt_path).parameters) == ["self"], changed(
        "LightningCLI._parse_ckpt_path(self)", "CheckpointConfigCLI")
    assert RecordingCLI.calls[0] == "apply_checkpoint_config", changed(
        "LightningCLI.__init__ -> self._parse_ckpt_path()", "CheckpointConfigCLI")
    # pgpis.safe_cli.SafeCheckpointCLI defines fit/validate/test on the CLI to pass weights_only
    assert RecordingCLI.calls == ["apply_checkpoint_config", "fit"], changed(
        "LightningCLI._run_subcommand: getattr(self, subcommand)", "(pgpis.safe_cli.SafeCheckpointCLI.fit)")


def test_cluster_environment_of_a_single_device_run():
    env = compat.cluster_environment(Trainer(**TRAINER))
    assert isinstance(env, ClusterEnvironment), changed("trainer._accelerator_connector.cluster_environment",
                                                        "cluster_environment")


class StopAt(Callback):
    def __init__(self, batch: int):
        self.batch = batch

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        if batch_idx == self.batch:
            compat.stop_after_this_batch(trainer)


def test_stop_after_this_batch_raises_sigterm_exception_after_the_step(tmp_path):
    trainer = Trainer(**TRAINER, max_steps=10, default_root_dir=tmp_path, callbacks=[StopAt(batch=1)])
    with pytest.raises(SIGTERMException):
        trainer.fit(BoringModel())
    assert trainer.received_sigterm and trainer.global_step == 2, changed(
        "trainer._signal_connector.received_sigterm", "stop_after_this_batch")


def test_ddp_launcher_forwards_signals_to_local_ranks():
    trainer = Trainer(**{**TRAINER, "devices": 2}, strategy="ddp")
    launcher = trainer.strategy.launcher
    assert launcher is not None and isinstance(getattr(launcher, "procs", None), list), changed(
        "_SubprocessScriptLauncher.procs", "forward_signal_to_local_ranks")
    assert list(inspect.signature(launcher.kill).parameters) == ["signum"], changed(
        "_SubprocessScriptLauncher.kill(signum)", "forward_signal_to_local_ranks")
    compat.forward_signal_to_local_ranks(trainer, signal.SIGTERM)  # no child yet: nothing to signal


@pytest.mark.parametrize(("name", "params"), [
    ("_should_skip_saving_checkpoint", ["self", "trainer"]),
    ("_monitor_candidates", ["self", "trainer"]),
    ("_save_topk_checkpoint", ["self", "trainer", "monitor_candidates"]),
    ("_save_last_checkpoint", ["self", "trainer", "monitor_candidates"]),
])
def test_model_checkpoint_private_methods(name, params):
    method = getattr(ModelCheckpoint, name, None)
    assert callable(method) and list(inspect.signature(method).parameters) == params, changed(
        f"ModelCheckpoint.{name}({', '.join(params)})", "save_now / should_skip_saving")


def test_model_checkpoint_private_attributes(tmp_path):
    cb = ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=3, save_last=True)
    assert compat.every_n_train_steps(cb) == 3, changed("ModelCheckpoint._every_n_train_steps", "every_n_train_steps")
    assert compat.last_saved_step(cb) == 0, changed("ModelCheckpoint._last_global_step_saved", "last_saved_step")
    trainer = Trainer(**{**TRAINER, "enable_checkpointing": True}, max_steps=4, default_root_dir=tmp_path,
                      callbacks=[cb])
    trainer.fit(BoringModel())
    assert compat.last_saved_step(cb) == 3, changed("ModelCheckpoint._last_global_step_saved", "last_saved_step")
    assert not compat.should_skip_saving(cb, trainer), changed("ModelCheckpoint._should_skip_saving_checkpoint",
                                                               "should_skip_saving")
    (tmp_path / "last.ckpt").unlink()
    compat.save_now(cb, trainer)  # the end of training, which Lightning's step interval does not save
    assert (tmp_path / "last.ckpt").is_file() and compat.last_saved_step(cb) == 4, changed(
        "ModelCheckpoint._save_topk_checkpoint / _save_last_checkpoint", "save_now")


def test_stateful_dataloader_counts_what_it_yielded():
    loader = StatefulDataLoader(torch.arange(5), batch_size=1)
    batches = iter(loader)
    next(batches), next(batches)
    assert compat.loader_samples_yielded(loader.state_dict()) == 2, changed(
        f"StatefulDataLoader.state_dict()[{compat.NUM_YIELDED_KEY!r}]", "loader_samples_yielded")
    list(batches)
    assert compat.loader_samples_yielded(loader.state_dict()) == 5, changed(
        f"StatefulDataLoader.state_dict()[{compat.NUM_YIELDED_KEY!r}]", "loader_samples_yielded")


def test_lightning_module_global_rank_without_a_trainer():
    """pgpis.diffusion.core reads ``self.global_rank`` (public) where it once read ``self._trainer``."""
    assert LightningModule().global_rank == 0
