"""Multi-node training with Lightning's own machinery: 2 nodes x 1 process on localhost = 1 node x 2 processes.

Two ``pgpis fit`` processes are launched the way a cluster launcher does (docs/scale-out.md): each gets
``--trainer.num_nodes 2 --trainer.devices 1`` and the variables Lightning's ``LightningEnvironment``
reads (MASTER_ADDR, MASTER_PORT, NODE_RANK, LOCAL_RANK; WORLD_SIZE is set for torchrun-style launchers,
Lightning derives the world size from num_nodes x devices). They train the tiny FPDM (B3, no stage-1
export) for a few steps over gloo. A second run is one ``pgpis fit --trainer.devices 2`` (Lightning starts
the second process). The final weights are **bitwise** equal: both runs have global ranks 0 and 1, so
the DistributedSampler gives each rank the same samples, the per-rank step RNG (seeded by global rank)
draws the same noise, timesteps and dropout, and a 2-rank gloo all-reduce sums the same two gradients.
Only the process layout differs, and nothing reads it.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from pgpis.safe_load import load_checkpoint

REPO = Path(__file__).resolve().parents[1]
MAX_STEPS = 3


def _config(root: Path, out: Path) -> Path:
    """experiments/tiny/fpdm.yaml at a test size: B3 (no fusion model), 3 steps, a checkpoint at the end only."""
    cfg = yaml.safe_load((REPO / "experiments" / "tiny" / "fpdm.yaml").read_text())
    model = cfg["model"]["init_args"]
    model["denoiser"]["init_args"].update(unet={"preset": "tiny", "in_channels": 12, "out_channels": 12},
                                          fusion="none", fusion_model=None)
    model["denoiser"]["init_args"].pop("fusion_keys", None)
    model["guidance"] = None  # FusionLDM picks plain CFG for B3
    cfg["data"]["init_args"].update(root=str(root), batch_size=4, num_workers=0, val_identities=2, cache_views=False)
    checkpoint = {"class_path": "pgpis.callbacks.resume.StepCheckpoint",
                  "init_args": {"dirpath": str(out / "ckpt"), "every_n_train_steps": 1000, "save_last": True,
                                "save_top_k": 0}}
    cfg["trainer"].update(max_steps=MAX_STEPS, logger=False, enable_progress_bar=False, enable_model_summary=False,
                          limit_val_batches=0, val_check_interval=None, default_root_dir=str(out),
                          callbacks=[checkpoint, {"class_path": "pgpis.callbacks.resume.StepSeed"}])
    out.mkdir(parents=True, exist_ok=True)
    path = out.parent / f"{out.name}.yaml"  # not in default_root_dir, where LightningCLI saves the resolved config
    path.write_text(yaml.safe_dump(cfg))
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without any cluster variables (a SLURM or torchrun shell would steer Lightning)."""
    drop = ("SLURM_", "TORCHELASTIC_", "GROUP_RANK", "LOCAL_WORLD_SIZE", "RANK", "NODE_RANK", "LOCAL_RANK",
            "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    return {**env, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", **extra}


def _fit(config: Path, args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, "-m", "pgpis.cli", "fit", "--config", str(config),
                                 "--trainer.accelerator", "cpu", "--trainer.strategy", "ddp", *args],
                                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=REPO)


def _wait(procs: list[subprocess.Popen], logs: list[Path]) -> None:
    try:
        codes = [p.wait(timeout=300) for p in procs]
    except subprocess.TimeoutExpired:
        for p in procs:
            os.killpg(p.pid, signal.SIGKILL)
        raise
    for code, log in zip(codes, logs):
        assert code == 0, log.read_text()[-3000:]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    ckpt = load_checkpoint(path)
    assert ckpt["global_step"] == MAX_STEPS
    return ckpt["state_dict"]


def test_two_nodes_of_one_process_train_the_weights_of_one_node_with_two(synthetic_root, tmp_path):
    two_nodes = _config(synthetic_root, tmp_path / "two_nodes")
    port = str(_free_port())
    logs = [tmp_path / f"node{rank}.log" for rank in (0, 1)]
    procs = [_fit(two_nodes, ["--trainer.num_nodes", "2", "--trainer.devices", "1"],
                  _clean_env(MASTER_ADDR="127.0.0.1", MASTER_PORT=port, NODE_RANK=str(rank), LOCAL_RANK="0",
                             WORLD_SIZE="2"), log)
             for rank, log in zip((0, 1), logs)]
    _wait(procs, logs)

    one_node = _config(synthetic_root, tmp_path / "one_node")
    log = tmp_path / "one_node.log"
    _wait([_fit(one_node, ["--trainer.num_nodes", "1", "--trainer.devices", "2"], _clean_env(), log)], [log])

    a = _weights(tmp_path / "two_nodes" / "ckpt" / "last.ckpt")
    b = _weights(tmp_path / "one_node" / "ckpt" / "last.ckpt")
    assert a.keys() == b.keys()
    for name, value in a.items():
        assert torch.equal(value, b[name]), name
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in logs[1].read_text()  # node 1's process was global rank 1 of 2
