"""Training survives being killed (issue 19 item 3; docs/training-faults.md).

* A checkpoint write that dies midway leaves the previous ``last.ckpt`` intact (AtomicCheckpointIO).
* Under 2-process CPU DDP (gloo), ``pgpis fit`` of the tiny FPDM, SIGKILLed (whole process group)
  at a step inside an epoch once a step checkpoint exists and resumed with ``--ckpt_path last``,
  ends with bitwise the weights (live and EMA) of an uninterrupted run: the loader resumes its
  position (StatefulDataLoader), the order and augmentations are seeded by (seed, epoch, index) and
  the step RNG by (seed, epoch, batch, rank). Bitwise is expected: the same ops run in the same
  order on the same data, and a 2-rank gloo all-reduce sums a + b whichever rank adds.
* SIGTERM: every rank finishes the same step, ``last.ckpt`` is written at that (off-interval) step,
  the process exits with status 0, and resuming again matches the uninterrupted run.
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.demos.boring_classes import BoringModel

from pgpis.training import AtomicCheckpointIO
from pgpis.training.checkpoint_io import stale_temp_files

REPO = Path(__file__).resolve().parents[1]
MAX_STEPS = 12  # 6 steps per epoch (96 training pairs / 2 ranks / batch 8): the runs cross an epoch boundary
EVERY = 2


# ----------------------------------------------------------------------------- atomic writes
class _DiesMidWrite:
    """Stands in for ``torch.save``: on call `n` it writes half the bytes to the file, then raises (a kill)."""

    def __init__(self, n: int):
        self.n, self.calls, self.real = n, 0, torch.save

    def __call__(self, obj, f, *args, **kwargs):
        self.calls += 1
        if self.calls < self.n:
            return self.real(obj, f, *args, **kwargs)
        import io
        buf = io.BytesIO()
        self.real(obj, buf)
        f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
        f.flush()
        raise OSError("simulated kill during the checkpoint write")


def test_a_write_that_dies_midway_leaves_the_previous_last_ckpt(tmp_path, monkeypatch):
    ckpt_dir = tmp_path / "ckpt"
    trainer = Trainer(accelerator="cpu", max_steps=4, logger=False, enable_progress_bar=False,
                      enable_model_summary=False, limit_val_batches=0, plugins=[AtomicCheckpointIO()],
                      callbacks=[ModelCheckpoint(dirpath=ckpt_dir, every_n_train_steps=2, save_last=True, save_top_k=0)])
    dies = _DiesMidWrite(n=2)  # step 2's last.ckpt completes, step 4's write dies halfway
    monkeypatch.setattr("pgpis.training.checkpoint_io.torch.save", dies)
    with pytest.raises(OSError, match="simulated kill"):
        trainer.fit(BoringModel())
    assert dies.calls == 2
    last = ckpt_dir / "last.ckpt"
    assert torch.load(last, weights_only=False)["global_step"] == 2  # the previous checkpoint, complete
    assert stale_temp_files(last) == []  # the failed write's temp file is gone

    # a SIGKILL cannot clean up: its temp file is removed by the next write of the same checkpoint
    monkeypatch.undo()
    orphan = ckpt_dir / ".last.ckpt.tmp-killed"
    orphan.write_bytes(b"half a checkpoint")
    AtomicCheckpointIO().save_checkpoint({"global_step": 6}, last)
    assert stale_temp_files(last) == [] and torch.load(last)["global_step"] == 6
    assert oct(last.stat().st_mode & 0o777) != "0o600"  # not mkstemp's private mode


def test_presets_save_step_checkpoints_atomically_and_stop_cleanly():
    """Every trainer preset (paper and tiny) wires the plugin, a step interval and the resume callbacks."""
    for path in sorted((REPO / "experiments").glob("*/*.yaml")):
        config = yaml.safe_load(path.read_text())
        trainer = config.get("trainer") or {}
        callbacks = {c["class_path"]: c.get("init_args", {}) for c in trainer.get("callbacks") or []}
        assert "lightning.pytorch.callbacks.ModelCheckpoint" not in callbacks, f"{path}: use StepCheckpoint"
        if "pgpis.callbacks.resume.StepCheckpoint" not in callbacks:
            continue  # an overlay that keeps its base preset's callbacks (e.g. experiments/phoenix/ipf.yaml)
        every = callbacks["pgpis.callbacks.resume.StepCheckpoint"].get("every_n_train_steps")
        assert isinstance(every, int) and every > 0, f"{path}: ModelCheckpoint.every_n_train_steps"
        assert {"pgpis.callbacks.resume.StepSeed", "pgpis.callbacks.resume.StopOnSignal"} <= set(callbacks), path
        plugins = [p["class_path"] if isinstance(p, dict) else p for p in trainer.get("plugins") or []]
        if "seed_everything" in config:  # a base preset; overlays (Phoenix) inherit its trainer.plugins
            assert "pgpis.training.AtomicCheckpointIO" in plugins, f"{path}: trainer.plugins"


# ----------------------------------------------------------------------------- the training loader
def _batches(loader, n: int) -> list[tuple[list[str], torch.Tensor]]:
    out = []
    for batch in loader:
        out.append((list(batch["source_name"]), torch.cat([batch["target"], batch["target_pose"]], 1)))
        if len(out) == n:
            break
    return out


def test_a_restored_training_loader_continues_the_same_batches_and_augmentations(synthetic_root):
    from pgpis.data.deepfashion import DeepFashionDataModule

    def datamodule() -> DeepFashionDataModule:
        return DeepFashionDataModule(str(synthetic_root), image_size=(32, 24), batch_size=8, num_workers=0,
                                     val_identities=2, flip_prob=0.5, keypoint_jitter=1.0)

    straight = datamodule().train_dataloader()
    expected = _batches(straight, 5)

    first = datamodule().train_dataloader()
    _batches(first, 2)
    state = first.state_dict()
    torch.manual_seed(123)  # whatever the global RNG holds after a restart must not matter
    again = datamodule()
    again.load_state_dict({"shuffle_seed": 0})
    resumed = again.train_dataloader()
    resumed.sampler.set_epoch(7)  # what Lightning sets is overridden by the loader's own pass number
    resumed.load_state_dict(state)
    got = _batches(resumed, 3)
    assert [names for names, _ in got] == [names for names, _ in expected[2:]]
    for (_, a), (_, b) in zip(got, expected[2:]):
        assert torch.equal(a, b)  # the same flips and keypoint jitter
    next_pass = datamodule().train_dataloader()
    assert len(_batches(next_pass, 10**6)) == len(next_pass)  # pass 0 to its end
    assert _batches(next_pass, 1)[0][0] != expected[0][0]  # pass 1: a new permutation


class _Killed(Exception):
    pass


class _Recorder(BoringModel):
    """Records (epoch, global step, items) of every training batch; dies at global step `kill_at`."""

    def __init__(self, kill_at: int | None = None):
        super().__init__()
        self.kill_at, self.seen = kill_at, []

    def training_step(self, batch, batch_idx):
        if self.global_step == self.kill_at:
            raise _Killed
        self.seen.append((self.current_epoch, self.global_step, batch[0].tolist()))
        return self.layer(torch.ones(1, 32)).sum()

    def train_dataloader(self):
        from pgpis.data.datamodule import SeededItems, SeededShuffleSampler, TrainLoader

        items = torch.utils.data.TensorDataset(torch.arange(8))
        return TrainLoader(SeededItems(items), batch_size=2, sampler=SeededShuffleSampler(items, seed=0))


def _record(out: Path, kill_at: int | None = None, ckpt: str | None = None) -> tuple[list, int]:
    from pgpis.callbacks.resume import StepCheckpoint

    model = _Recorder(kill_at)
    trainer = Trainer(accelerator="cpu", max_epochs=4, logger=False, enable_progress_bar=False,
                      enable_model_summary=False, limit_val_batches=0, default_root_dir=str(out),
                      callbacks=[StepCheckpoint(dirpath=out, every_n_train_steps=2, save_last=True, save_top_k=0)])
    try:
        trainer.fit(model, ckpt_path=ckpt)
    except _Killed:
        pass
    return model.seen, trainer.global_step


@pytest.mark.parametrize("kills", [[5], [7], [5, 6], [9, 13]])
def test_resumes_at_and_after_an_epochs_last_batch_keep_epochs_and_order(tmp_path, kills):
    """4 batches per epoch, a save every 2 steps: steps 4, 8, 12 are epochs' last batches (Lightning would
    mis-count the epoch on resume; StepCheckpoint defers those saves), several kills in one run."""
    straight, steps = _record(tmp_path / "straight")
    assert steps == 16 and torch.load(tmp_path / "straight" / "last.ckpt")["global_step"] == 16  # the end is saved
    seen, ckpt = [], None
    for kill_at in kills:
        part, _ = _record(tmp_path / "killed", kill_at, ckpt)
        seen, ckpt = seen + part, str(tmp_path / "killed" / "last.ckpt")
    rest, steps = _record(tmp_path / "killed", None, ckpt)
    trained = {step: (epoch, items) for epoch, step, items in seen + rest}  # a replayed step overwrites
    assert steps == 16 and trained == {step: (epoch, items) for epoch, step, items in straight}


# ----------------------------------------------------------------------------- DDP kill and resume
def _config(root: Path, out: Path) -> Path:
    """experiments/tiny/fpdm.yaml (its resume wiring, EMA, schedule, condition dropout) at a test size."""
    cfg = yaml.safe_load((REPO / "experiments" / "tiny" / "fpdm.yaml").read_text())
    model = cfg["model"]["init_args"]
    unet = {"preset": "tiny", "in_channels": 12, "out_channels": 12,
            "dropout": 0.1}  # dropout layers draw from the global RNG: StepSeed must reseed it
    model["denoiser"]["init_args"].update(unet=unet, fusion="none", fusion_model=None)  # B3: no stage-1 export
    model["denoiser"]["init_args"].pop("fusion_keys", None)
    model["lr_schedule"]["init_args"]["warmup"] = 3
    cfg["data"]["init_args"].update(root=str(root), batch_size=8, num_workers=0, persistent_workers=False,
                                    val_identities=2)
    trainer = cfg["trainer"]
    keep = ("StepSeed", "StopOnSignal", "EMAWeightAveraging")
    callbacks = [c for c in trainer["callbacks"] if c["class_path"].rsplit(".", 1)[-1] in keep]
    checkpoint = {"class_path": "pgpis.callbacks.resume.StepCheckpoint",
                  "init_args": {"dirpath": str(out / "ckpt"), "filename": "{step}", "every_n_train_steps": EVERY,
                                "save_last": True, "save_top_k": -1}}
    trainer.update(devices=2, strategy="ddp", max_steps=MAX_STEPS, logger=False, enable_progress_bar=False,
                   enable_model_summary=False, limit_val_batches=0, val_check_interval=None,
                   default_root_dir=str(out), callbacks=[checkpoint, *callbacks])
    out.mkdir(parents=True, exist_ok=True)
    path = out / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _fit(config: Path, *extra: str, log: str = "fit.log") -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    with open(config.parent / log, "w") as out:
        return subprocess.Popen([sys.executable, "-m", "pgpis.cli", "fit", "--config", str(config), *extra],
                                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _finish(proc: subprocess.Popen, config: Path, log: str = "fit.log") -> None:
    try:
        rc = proc.wait(timeout=600)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    assert rc == 0, (config.parent / log).read_text()[-3000:]


def _wait_for(proc: subprocess.Popen, path: Path) -> None:
    while not path.exists():
        assert proc.poll() is None, f"pgpis fit exited ({proc.returncode}) before writing {path}"
        time.sleep(0.02)


def _weights(path: Path) -> dict:
    ckpt = torch.load(path, weights_only=False, map_location="cpu")
    return {"global_step": ckpt["global_step"], "state_dict": ckpt["state_dict"],
            "current_model_state": ckpt["current_model_state"]}


def _assert_same_weights(resumed: dict, straight: dict) -> float:
    assert resumed["global_step"] == straight["global_step"] == MAX_STEPS
    worst = 0.0
    for key in ("state_dict", "current_model_state"):  # EMA weights and live weights
        assert resumed[key].keys() == straight[key].keys()
        for name, value in straight[key].items():
            if value.is_floating_point():
                worst = max(worst, (resumed[key][name] - value).abs().max().item())
            assert torch.equal(resumed[key][name], value), f"{key}.{name}"
    return worst


@pytest.fixture(scope="module")
def uninterrupted(synthetic_root, tmp_path_factory) -> dict:
    config = _config(synthetic_root, tmp_path_factory.mktemp("uninterrupted"))
    _finish(_fit(config), config)
    return _weights(config.parent / "ckpt" / "last.ckpt")


@pytest.mark.slow
def test_sigkill_mid_epoch_under_ddp_then_resume_gives_the_uninterrupted_weights(synthetic_root, uninterrupted,
                                                                                 tmp_path):
    config = _config(synthetic_root, tmp_path)
    kill_at = random.Random().choice([4, 8, 10])  # inside epoch 1 (6 steps) or 2; last.ckpt may lag one interval
    proc = _fit(config, log="killed.log")
    _wait_for(proc, tmp_path / "ckpt" / f"step={kill_at}.ckpt")
    os.killpg(proc.pid, signal.SIGKILL)  # rank 0 and its DDP child, no chance to clean up
    proc.wait()
    last = tmp_path / "ckpt" / "last.ckpt"
    step = torch.load(last, weights_only=False)["global_step"]  # complete, never torn
    assert kill_at - EVERY <= step <= kill_at
    _finish(_fit(config, "--ckpt_path", "last", log="resumed.log"), config, "resumed.log")
    worst = _assert_same_weights(_weights(last), uninterrupted)
    print(f"killed at step {kill_at}, resumed from step {step}: max abs weight difference {worst}")


@pytest.mark.slow
def test_sigterm_under_ddp_saves_the_step_in_flight_exits_0_and_resumes_exactly(synthetic_root, uninterrupted,
                                                                                tmp_path):
    config = _config(synthetic_root, tmp_path)
    proc = _fit(config, log="terminated.log")
    _wait_for(proc, tmp_path / "ckpt" / "step=4.ckpt")
    os.kill(proc.pid, signal.SIGTERM)  # rank 0 only, as a scheduler or `kill` would; it forwards to rank 1
    _finish(proc, config, "terminated.log")
    last = tmp_path / "ckpt" / "last.ckpt"
    step = torch.load(last, weights_only=False)["global_step"]
    assert 4 <= step < MAX_STEPS
    assert f"SIGTERM: saved {last} at global step {step}" in (tmp_path / "terminated.log").read_text()
    _finish(_fit(config, "--ckpt_path", "last", log="resumed.log"), config, "resumed.log")
    _assert_same_weights(_weights(last), uninterrupted)
