"""IPFCombiner through its public entry points: `pgpis fit/test` on synthetic data, DDP equivalence, full size."""
from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from pgpis.cli import main as pgpis_main
from pgpis.models.encoders import EncoderSpec
from pgpis.stages.ipf import IPFCombiner, load_fusion_model

REPO = Path(__file__).resolve().parents[1]
TINY_CONFIG = REPO / "experiments" / "tiny" / "ipf.yaml"


def _cli_overrides(root: Path, out: Path, loss: str) -> list[str]:
    return [
        "--config", str(TINY_CONFIG),
        "--data.root", str(root), "--data.num_workers", "0", "--data.batch_size", "8", "--data.val_identities", "2",
        "--model.encoder.preset", "tiny", "--model.loss", loss,
        "--model.metrics_path", str(out / "metrics.json"), "--model.export_dir", str(out / "fusion_model"),
        "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "3", "--trainer.check_val_every_n_epoch", "1",
        "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(out),
        "--trainer.logger.init_args.save_dir", str(out), "--trainer.logger.init_args.name", loss,
    ]


def test_fit_test_export_through_the_cli(synthetic_root, tmp_path):
    args = _cli_overrides(synthetic_root, tmp_path, "source_enhanced")
    assert pgpis_main(["fit", *args]) == 0
    ckpt = tmp_path / "source_enhanced" / "checkpoints" / "last.ckpt"
    assert ckpt.is_file() and (tmp_path / "source_enhanced" / "config.yaml").is_file()
    assert pgpis_main(["test", *args, "--ckpt_path", str(ckpt)]) == 0

    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics) == {"A1", "source_enhanced"}
    for row in metrics.values():
        assert set(row) == {"R@1", "R@3", "R@5", "mean_rank", "source_top1"}
        assert 0.0 <= row["R@1"] <= row["R@3"] <= row["R@5"] <= 1.0 and row["mean_rank"] >= 1.0
    # the A1 query is the source's own embedding, which is in the gallery: it always ranks first
    assert metrics["A1"]["R@1"] == 0.0 and metrics["A1"]["source_top1"] == 1.0

    # the checkpoint reloads outside the CLI; the export equals the trained model, frozen
    model = IPFCombiner.load_from_checkpoint(ckpt).eval()
    assert model.hparams.encoder["preset"] == "tiny"
    fusion = load_fusion_model(tmp_path / "fusion_model")
    src, pose = torch.rand(2, 3, 64, 64) * 2 - 1, torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(fusion(src, pose), model(src, pose), atol=1e-5)


def test_missing_encoder_inputs_say_which_config_key(synthetic_root):
    model = IPFCombiner(encoder=EncoderSpec(preset="tiny"))
    with pytest.raises(KeyError, match="data.encoder_inputs"):
        model.embed({"source": torch.zeros(1, 3, 64, 64)})


# ----------------------------------------------------------------------------- DDP == 1 process on the big batch
class _Pairs(Dataset):
    def __init__(self, n: int = 8):
        g = torch.Generator().manual_seed(1)
        self.x = torch.rand(n, 3, 3, 64, 64, generator=g) * 2 - 1

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict:
        s, p, t = self.x[i]
        return {"clip_source": s, "clip_target_pose": p, "clip_target": t}


class _RecordGrads(L.Callback):
    def __init__(self, out: str):
        self.out = out

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.loss = outputs["loss"].detach().clone()

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        grads = {n: p.grad.detach().clone() for n, p in pl_module.named_parameters() if p.grad is not None}
        torch.save({"grads": grads}, f"{self.out}/grads_{trainer.world_size}_{trainer.global_rank}.pt")

    def on_train_end(self, trainer, pl_module):
        saved = torch.load(f"{self.out}/grads_{trainer.world_size}_{trainer.global_rank}.pt")
        saved["loss"] = self.loss
        torch.save(saved, f"{self.out}/grads_{trainer.world_size}_{trainer.global_rank}.pt")


def _one_step(tmp_path: Path, devices: int, loss: str) -> None:
    L.seed_everything(0)
    model = IPFCombiner(encoder=EncoderSpec(preset="tiny"), dropout=0.0, loss=loss, learnable_temperature=True)
    loader = DataLoader(_Pairs(8), batch_size=8 // devices, shuffle=False)
    trainer = L.Trainer(accelerator="cpu", devices=devices, strategy="ddp_spawn" if devices > 1 else "auto",
                        max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[_RecordGrads(str(tmp_path))])
    trainer.fit(model, train_dataloaders=loader)


@pytest.mark.parametrize("loss", ["source_enhanced"])
def test_ddp_two_processes_match_one_process_on_the_concatenated_batch(tmp_path, loss):
    _one_step(tmp_path, 1, loss)
    _one_step(tmp_path, 2, loss)
    single = torch.load(tmp_path / "grads_1_0.pt")
    for rank in (0, 1):
        ddp = torch.load(tmp_path / f"grads_2_{rank}.pt")
        assert torch.allclose(ddp["loss"], single["loss"], atol=1e-5)
        assert ddp["grads"].keys() == single["grads"].keys() and "loss_fn.log_scale" in single["grads"]
        for name, g in single["grads"].items():
            assert torch.allclose(ddp["grads"][name], g, atol=1e-5, rtol=1e-4), name


# ----------------------------------------------------------------------------- full size (random weights)
@pytest.mark.slow
def test_paper_preset_full_size_forward_backward():
    model = IPFCombiner(encoder=EncoderSpec(preset="vit-l-14"))
    enc = model.fusion.encoder
    n_encoder = sum(p.numel() for p in enc.parameters())
    n_combiner = sum(p.numel() for p in model.fusion.combiner.parameters())
    assert enc.embed_dim == 768 and enc.input_size == (224, 224)
    assert 303e6 < n_encoder < 305e6  # CLIP ViT-L/14 vision tower + 1024->768 projection
    assert n_combiner == 2 * (768 * 3072 + 3072) + 2 * (6144 * 6144 + 6144) + (6144 * 768 + 768) + (6144 + 1)
    b = 2
    batch = {k: torch.rand(b, 3, 256, 176) * 2 - 1 for k in ("clip_source", "clip_target_pose", "clip_target")}
    e = model.embed(batch)
    loss = model.loss_fn(e["fusion"], e["target"], e["source"])
    loss.backward()
    assert e["fusion"].shape == (b, 768) and torch.isfinite(loss)
    assert enc.model.vision_model.embeddings.patch_embedding.weight.grad is not None
