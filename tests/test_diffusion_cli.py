"""The core through `pgpis fit`: resume continues optimiser, EMA, LR schedule and step; a CPU-DDP fit."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from pgpis.cli import main

TESTS_DIR = Path(__file__).parent


def _config(tmp: Path, max_steps: int, extra_callbacks=()) -> Path:
    cfg = {
        "seed_everything": 0,
        "model": {
            "class_path": "pgpis.diffusion.core.LatentDiffusion",
            "init_args": {
                "denoiser": {"class_path": "test_diffusion_helpers.TinyTestDenoiser"},
                "first_stage": {"class_path": "pgpis.diffusion.first_stage.PixelUnshuffleFirstStage",
                                "init_args": {"factor": 2}},
                "noise_scheduler": {"prediction_type": "v_prediction", "beta_schedule": "scaled_linear"},
                "sampler": {"class_path": "pgpis.diffusion.sampler.Sampler", "init_args": {"num_inference_steps": 2}},
                "guidance": {"class_path": "pgpis.diffusion.guidance.ClassifierFreeGuidance", "init_args": {"scale": 2.0}},
                "lr": 1.0e-3,
                "lr_schedule": {"class_path": "pgpis.diffusion.schedules.WarmupStepDecay",
                                "init_args": {"warmup": 3, "milestones": [3], "gamma": 0.5}},
            },
        },
        # one batch per epoch: Lightning restarts an interrupted epoch's data from its first batch on resume
        # (non-stateful dataloaders), so with several batches per epoch the resumed run would see other data
        "data": {"class_path": "test_diffusion_helpers.RandomPairsDataModule", "init_args": {"n": 2, "batch_size": 2}},
        "trainer": {
            "accelerator": "cpu", "devices": 1, "max_steps": max_steps, "logger": False,
            "enable_progress_bar": False, "enable_model_summary": False, "limit_val_batches": 0,
            "num_sanity_val_steps": 0, "gradient_clip_val": 1.0, "default_root_dir": str(tmp),
            "callbacks": [
                {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                 "init_args": {"dirpath": str(tmp / "ckpt"), "save_last": True, "save_top_k": 0}},
                {"class_path": "pgpis.callbacks.ema.EMAWeightAveraging", "init_args": {"decay": 0.9}},
                *extra_callbacks,
            ],
        },
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _fit(tmp: Path, max_steps: int, *extra: str) -> dict:
    tmp.mkdir(parents=True, exist_ok=True)
    main(["fit", "--config", str(_config(tmp, max_steps)), *extra])
    return torch.load(tmp / "ckpt" / "last.ckpt", weights_only=False, map_location="cpu")


def test_resume_equals_uninterrupted(tmp_path):
    straight = _fit(tmp_path / "a", 4)
    first = _fit(tmp_path / "b", 2)
    assert first["global_step"] == 2
    resumed = _fit(tmp_path / "c", 4, "--ckpt_path", str(tmp_path / "b" / "ckpt" / "last.ckpt"))
    assert resumed["global_step"] == straight["global_step"] == 4
    for key in ("state_dict", "current_model_state"):  # EMA weights and live weights
        for name, value in straight[key].items():
            torch.testing.assert_close(resumed[key][name], value, msg=f"{key}.{name}")
    assert int(resumed["averaging_state"]["n_averaged"]) == int(straight["averaging_state"]["n_averaged"]) == 4
    assert resumed["lr_schedulers"][0] == straight["lr_schedulers"][0]
    opt_a, opt_c = straight["optimizer_states"][0]["state"], resumed["optimizer_states"][0]["state"]
    for k in opt_a:
        torch.testing.assert_close(opt_c[k]["exp_avg_sq"], opt_a[k]["exp_avg_sq"])
    # the checkpoint reloads outside the CLI (config saved as hyper-parameters)
    from pgpis.diffusion.core import LatentDiffusion

    model = LatentDiffusion.load_from_checkpoint(tmp_path / "a" / "ckpt" / "last.ckpt", weights_only=False)
    assert model.noise_scheduler.config.prediction_type == "v_prediction" and model.guidance.scale == 2.0


def test_command_line_model_config_wins_over_checkpoint_hparams(tmp_path):
    """Lightning would replace the model config by the checkpoint's stored one (dropping a guidance override)."""
    _fit(tmp_path / "b", 1)
    ckpt, record = tmp_path / "b" / "ckpt" / "last.ckpt", tmp_path / "guidance.txt"
    (tmp_path / "v").mkdir()
    cfg = _config(tmp_path / "v", 1, [{"class_path": "test_diffusion_helpers.RecordGuidance",
                                        "init_args": {"path": str(record)}}])
    cfg = cfg.rename(tmp_path / "validate.yaml")  # LightningCLI saves the resolved config into the run folder
    main(["validate", "--config", str(cfg), "--ckpt_path", str(ckpt), "--model.init_args.guidance.init_args.scale", "5.0"])
    assert "coefficients=[-4.0, 5.0]" in record.read_text()
    record.unlink()
    main(["validate", "--config", str(cfg), "--ckpt_path", str(ckpt)])
    assert "coefficients=[-1.0, 2.0]" in record.read_text()


def test_cpu_ddp_fit_and_sharded_inference(tmp_path):
    """2 gloo processes: fit, a CFG grid gathered across ranks, each test pair generated exactly once."""
    out = tmp_path / "gen"
    callbacks = [
        {"class_path": "pgpis.callbacks.CFGSampling", "init_args": {"num_samples": 3}},
        {"class_path": "pgpis.callbacks.DDIMInference",
         "init_args": {"output_dir": str(out), "batch_size": 2, "after_fit": True,
                       "metrics_path": str(tmp_path / "metrics.json"), "grid_path": str(tmp_path / "grid.png")}},
    ]
    cfg = _config(tmp_path, 2, callbacks)
    data = yaml.safe_load(cfg.read_text())
    data["trainer"].update({"devices": 2, "strategy": "ddp", "limit_val_batches": 1, "val_check_interval": 1,
                            "logger": {"class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                                       "init_args": {"save_dir": str(tmp_path), "name": "", "version": ""}}})
    cfg.write_text(yaml.safe_dump(data))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS_DIR), os.environ.get("PYTHONPATH", "")]),
           "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "pgpis.cli", "fit", "--config", str(cfg)], env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == [f"src{i}_to_tgt{i}.png" for i in range(5)]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["samples"]["n_pairs"] == metrics["copy_source"]["n_pairs"] == 5
    assert len(list((tmp_path / "samples").glob("step_*.png"))) >= 1
    ckpt = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=False, map_location="cpu")
    assert ckpt["global_step"] == 2
