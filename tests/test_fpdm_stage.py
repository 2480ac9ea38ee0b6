"""FPDM stage 2 as a composition: FusionLDM = the shared core + FPDMDenoiser; configs parse."""
from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from pgpis.diffusion.first_stage import PixelUnshuffleFirstStage
from pgpis.diffusion.guidance import ClassifierFreeGuidance, CumulativeGuidance
from pgpis.diffusion.sampler import Sampler
from pgpis.stages.fusion_ldm import FusionLDM
from test_fpdm import IMAGE, randomise_zero_layers, tiny_batch, tiny_denoiser

REPO = Path(__file__).resolve().parents[1]
X0_COSINE = {"prediction_type": "sample", "beta_schedule": "squaredcos_cap_v2"}


def tiny_stage(fusion: str = "ipf", **kwargs) -> FusionLDM:
    return FusionLDM(tiny_denoiser(fusion), PixelUnshuffleFirstStage(2), noise_scheduler=X0_COSINE,
                     sampler=Sampler("DDIMScheduler", num_inference_steps=3), **kwargs)


class PairsInMemory(Dataset):
    """A few fixed random "pairs" with every key the FPDM denoiser reads."""

    def __init__(self, n: int = 8):
        self.items = [{k: v[0] for k, v in tiny_batch(seed=i, b=1).items()} for i in range(n)]
        for i, item in enumerate(self.items):
            item["target"] = torch.rand(3, IMAGE, IMAGE, generator=torch.Generator().manual_seed(100 + i)) * 2 - 1
            item["pair_index"] = i

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


def test_paper_guidance_defaults_follow_the_ablation_row():
    full, b3 = tiny_stage("ipf"), tiny_stage("none")
    assert isinstance(full.guidance, CumulativeGuidance)
    assert (full.guidance.source_weight, full.guidance.fusion_weight) == (2.0, 2.0)
    assert isinstance(b3.guidance, ClassifierFreeGuidance) and b3.guidance.scale == 2.0
    assert full.condition_dropout.mode == "independent" and full.condition_dropout.p == 0.2
    with pytest.raises(TypeError, match="FPDMDenoiser"):
        FusionLDM(object(), PixelUnshuffleFirstStage(2))  # type: ignore[arg-type]


def test_sampling_encodes_once_and_batches_the_three_branches():
    stage = tiny_stage("ipf").eval()
    randomise_zero_layers(stage.denoiser)
    d = stage.denoiser
    encoder_rows, unet_rows = [], []
    d.source_encoder.model.register_forward_pre_hook(lambda m, a, kw: encoder_rows.append(len(kw["pixel_values"])),
                                                     with_kwargs=True)
    d.fusion_encoder.register_forward_pre_hook(lambda m, a: encoder_rows.append(len(a[0])))
    d.unet.register_forward_pre_hook(lambda m, a: unet_rows.append(len(a[0])))
    batch = {**tiny_batch(b=2), "target": torch.zeros(2, 3, IMAGE, IMAGE), "pair_index": torch.tensor([5, 9])}
    images = stage.generate(batch)
    assert images.shape == (2, 3, IMAGE, IMAGE) and images.abs().max() <= 1
    assert encoder_rows == [2, 2]  # DINOv2 once and the IPF model once, for the 2 samples
    assert unet_rows == [6, 6, 6]  # 3 DDIM steps, each ONE call over 3 guidance branches x 2 samples
    # a sample does not depend on the batch it is generated in (per-sample seeds from pair_index)
    alone = stage.generate({k: v[1:] for k, v in batch.items()})
    torch.testing.assert_close(alone[0], images[1], rtol=1e-4, atol=1e-4)


def test_fit_trains_the_denoiser_and_leaves_the_frozen_encoders_alone(tmp_path):
    stage = tiny_stage("ipf", lr=1e-3)
    d = stage.denoiser
    frozen_before = {k: v.clone() for k, v in d.state_dict().items() if k.startswith(("source_encoder", "fusion_encoder"))}
    trained_before = {k: v.clone() for k, v in d.state_dict().items() if k.startswith(("unet.conv_in", "pose_encoder.conv_out",
                                                                                       "fusion_adapter.net.2"))}
    trainer = pl.Trainer(max_steps=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(stage, DataLoader(PairsInMemory(), batch_size=4))
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
    state = d.state_dict()
    assert all(torch.equal(state[k], v) for k, v in frozen_before.items())
    assert all(not torch.equal(state[k], v) for k, v in trained_before.items())  # zero layers learn too
    assert not d.source_encoder.training and not d.fusion_encoder.training


@pytest.mark.parametrize("config", ["experiments/deepfashion/fpdm.yaml", "experiments/tiny/fpdm.yaml"])
def test_experiment_configs_parse(config, capsys):
    from pgpis.cli import run_lightning_cli

    with pytest.raises(SystemExit) as info:
        run_lightning_cli(["fit", "--config", str(REPO / config), "--print_config"])
    assert info.value.code in (0, None)
    printed = capsys.readouterr().out
    assert "pgpis.stages.fusion_ldm.FusionLDM" in printed and "pgpis.models.fpdm.FPDMDenoiser" in printed


@pytest.mark.parametrize("overlay, expect", [
    ("b3_no_fusion", {"fusion": "none", "fusion_model": None, "guidance": "ClassifierFreeGuidance"}),
    ("b4_clip_source", {"fusion": "clip", "fusion_model": None, "guidance": "CumulativeGuidance",
                        "fusion_keys": ["clip_source"]}),
    ("b5_ipf_baseline", {"fusion": "ipf", "fusion_model": "outputs/ipf_baseline/fusion_model",
                         "guidance": "CumulativeGuidance"}),
])
def test_ablation_overlays_compose_with_the_paper_config(overlay, expect, capsys):
    import yaml

    from pgpis.cli import run_lightning_cli

    with pytest.raises(SystemExit):
        run_lightning_cli(["fit", "--config", str(REPO / "experiments/deepfashion/fpdm.yaml"), "--config",
                           str(REPO / f"experiments/deepfashion/fpdm_ablations/{overlay}.yaml"), "--print_config"])
    model = yaml.safe_load(capsys.readouterr().out)["model"]["init_args"]
    denoiser = model["denoiser"]["init_args"]
    assert model["guidance"]["class_path"].endswith(expect.pop("guidance"))
    assert {k: denoiser[k] for k in expect} == expect
    assert denoiser["source_encoder"]["size"] == [512, 512]  # the rest of the paper row is unchanged
