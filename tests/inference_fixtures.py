"""FPDM and TruePose checkpoints trained by `pgpis fit` for two steps (inference API and notebook tests).

Training goes through the public entry point, so the checkpoints carry what real
ones carry: the LightningCLI model config and the DataModule's settings.
:func:`train_shipped_checkpoints` trains the shipped tiny configs themselves
(``experiments/tiny/{ipf,fpdm,truepose}.yaml``, model sections untouched), so a
config change that breaks inference fails the inference, notebook and app tests.
The hand-made helpers (:func:`_module`, :func:`_trainer`, :func:`write_fusion_export`)
build other stages' fixtures (e.g. tests/test_animate.py's Phoenix FPDM).
"""
from __future__ import annotations

from pathlib import Path

import yaml

TINY_CONFIGS = Path(__file__).resolve().parents[1] / "experiments" / "tiny"


def _trainer(out: Path, ema: bool = False) -> dict:
    callbacks = [{"class_path": "lightning.pytorch.callbacks.EMAWeightAveraging", "init_args": {"decay": 0.5}}] if ema else []
    return {"accelerator": "cpu", "max_steps": 2, "logger": False, "enable_progress_bar": False,
            "enable_model_summary": False, "limit_val_batches": 0, "default_root_dir": str(out),
            "callbacks": [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                           "init_args": {"dirpath": str(out / "checkpoints"), "save_last": True, "save_top_k": 0}}, *callbacks]}


def _module(class_path: str, denoiser: str, denoiser_args: dict) -> dict:
    return {"class_path": class_path, "init_args": {
        "denoiser": {"class_path": denoiser, "init_args": {"unet": {"preset": "tiny", "in_channels": 12,
                                                                    "out_channels": 12},
                                                          "downsample_factor": 2, **denoiser_args}},
        "first_stage": {"class_path": "pgpis.diffusion.PixelUnshuffleFirstStage", "init_args": {"factor": 2}},
        "sampler": {"class_path": "pgpis.diffusion.Sampler", "init_args": {"num_inference_steps": 3}}}}


def _fit(config: dict, path: Path) -> Path:
    from pgpis.cli import main

    path.write_text(yaml.safe_dump(config))
    assert main(["fit", "--config", str(path)]) == 0
    ckpt = Path(config["trainer"]["default_root_dir"]) / "checkpoints" / "last.ckpt"
    assert ckpt.is_file(), f"pgpis fit wrote no {ckpt}"
    return ckpt


def write_fusion_export(out: Path) -> Path:
    """A stage-1 IPF export of the tiny preset (its weights come from the FPDM checkpoint at load time)."""
    import torch

    from pgpis.models.combiner import Combiner
    from pgpis.models.encoders import CLIP_PRESETS, CLIPImageEncoder
    from pgpis.models.fusion import FusionModel

    torch.manual_seed(0)
    encoder = CLIPImageEncoder.from_config(CLIP_PRESETS["tiny"])
    return FusionModel(encoder, Combiner(encoder.embed_dim)).save(out)


def _shipped_overlay(out: Path, data_root: Path, model: dict, ema: bool) -> dict:
    """What a two-step test run changes in a shipped config: data root and batch, step budget, where files go.

    The model section stays the shipped one except for the paths it writes or reads (`model`). The callbacks are
    replaced: the shipped ones sample and score the whole test split into outputs/. With `ema` the shipped EMA
    callback stays, so the checkpoint carries averaged weights as the shipped runs do (the export tests need one
    such checkpoint and one without).
    """
    ema_callback = [{"class_path": "pgpis.callbacks.ema.EMAWeightAveraging", "init_args": {"decay": 0.5}}]
    return {"model": {"init_args": model},
            "data": {"init_args": {"root": str(data_root), "batch_size": 4, "eval_batch_size": 4, "num_workers": 0,
                                   "persistent_workers": False, "val_identities": 2, "max_eval_pairs": 4}},
            "trainer": {"max_steps": 2, "max_epochs": 1, "logger": False, "enable_progress_bar": False,
                        "enable_model_summary": False, "limit_val_batches": 0, "limit_test_batches": 0,
                        "default_root_dir": str(out),
                        "callbacks": [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                                       "init_args": {"dirpath": str(out / "checkpoints"), "save_last": True,
                                                     "save_top_k": 0}},
                                      *(ema_callback if ema else [])]}}


def _fit_shipped(name: str, base: Path, data_root: Path, model: dict | None = None, ema: bool = True) -> Path:
    """`pgpis fit --config experiments/tiny/<name>.yaml --config <overlay>` for two steps; the last.ckpt."""
    from pgpis.cli import main

    out = base / name
    base.mkdir(parents=True, exist_ok=True)
    overlay = base / f"{name}_overlay.yaml"
    overlay.write_text(yaml.safe_dump(_shipped_overlay(out, data_root, dict(model or {}), ema)))
    assert main(["fit", "--config", str(TINY_CONFIGS / f"{name}.yaml"), "--config", str(overlay)]) == 0
    ckpt = out / "checkpoints" / "last.ckpt"
    assert ckpt.is_file(), f"pgpis fit --config experiments/tiny/{name}.yaml wrote no {ckpt}"
    return ckpt


def train_shipped_checkpoints(base: Path, data_root: Path) -> dict[str, Path]:
    """{"fpdm", "truepose", "fusion_model", "ipf"}: the shipped tiny configs, two steps each (EMA on TruePose only).

    FPDM stage 2 conditions on the IPF export that stage 1's fit writes (``export_dir``), as `make demo` does.
    """
    fusion = base / "ipf" / "fusion_model"
    ipf = _fit_shipped("ipf", base, data_root, {"export_dir": str(fusion), "metrics_path": None}, ema=False)
    assert (fusion / "config.json").is_file(), f"pgpis fit of experiments/tiny/ipf.yaml exported nothing to {fusion}"
    fpdm = _fit_shipped("fpdm", base, data_root, {"denoiser": {"init_args": {"fusion_model": str(fusion)}}}, ema=False)
    truepose = _fit_shipped("truepose", base, data_root, ema=True)
    return {"fpdm": fpdm, "truepose": truepose, "fusion_model": fusion, "ipf": ipf}
