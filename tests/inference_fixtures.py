"""Tiny FPDM and TruePose checkpoints trained by `pgpis fit` for two steps (inference API and notebook tests).

Training goes through the public entry point, so the checkpoints carry what real
ones carry: the LightningCLI model config and the DataModule's settings.
"""
from __future__ import annotations

from pathlib import Path

import yaml

IMAGE_SIZE = [32, 24]  # (h, w): 16x12 PixelUnshuffle(2) latents for the tiny UNet


def _data(root: Path, **extra) -> dict:
    return {"class_path": "pgpis.data.deepfashion.DeepFashionDataModule",
            "init_args": {"root": str(root), "image_size": IMAGE_SIZE, "batch_size": 4, "num_workers": 0,
                          "persistent_workers": False, "val_identities": 2, **extra}}


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


def train_tiny_checkpoints(base: Path, data_root: Path) -> dict[str, Path]:
    """{"fpdm": ckpt, "truepose": ckpt, "fusion_model": IPF export folder}."""
    fusion = write_fusion_export(base / "ipf" / "fusion_model")
    fpdm = {"seed_everything": 0,
            "model": _module("pgpis.stages.fusion_ldm.FusionLDM", "pgpis.models.fpdm.FPDMDenoiser",
                             {"source_encoder": {"preset": "tiny", "size": [32, 32]}, "fusion": "ipf",
                              "fusion_model": str(fusion)}),
            "data": _data(data_root, encoder_inputs={"dino": [32, 32], "clip": [64, 64]}),
            "trainer": _trainer(base / "ldm")}
    truepose = {"seed_everything": 0,
                "model": _module("pgpis.stages.parsing_siamese_ldm.ParsingSiameseLDM",
                                 "pgpis.models.truepose.SiameseDenoiser", {}),
                "data": _data(data_root, parsing=True),
                "trainer": _trainer(base / "truepose", ema=True)}  # EMA on: the export must carry the averages
    return {"fpdm": _fit(fpdm, base / "fpdm.yaml"), "truepose": _fit(truepose, base / "truepose.yaml"),
            "fusion_model": fusion}
