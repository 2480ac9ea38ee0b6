"""Callbacks through Trainer.fit / Trainer.test: sample grids, whole-split inference, metrics, resumability."""
import json
import math

import lightning.pytorch as pl
import numpy as np
import pytest
import torch

from pgpis.callbacks import CFGSampling, DDIMInference
from pgpis.callbacks.metrics import background_image, foreground_psnr, pair_scores
from pgpis.diffusion import ClassifierFreeGuidance, NoGuidance, PixelUnshuffleFirstStage, Sampler
from pgpis.diffusion.core import LatentDiffusion
from test_diffusion_helpers import RandomPairsDataModule, TinyTestDenoiser


def _model():
    torch.manual_seed(0)
    return LatentDiffusion(TinyTestDenoiser(), PixelUnshuffleFirstStage(2),
                           noise_scheduler={"prediction_type": "sample", "beta_schedule": "squaredcos_cap_v2"},
                           sampler=Sampler(num_inference_steps=2))


def _trainer(tmp_path, callbacks, **kw):
    return pl.Trainer(accelerator="cpu", logger=pl.loggers.TensorBoardLogger(tmp_path, name="", version=""),
                      enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
                      callbacks=callbacks, **kw)


def test_foreground_psnr_and_background():
    target = torch.zeros(1, 3, 4, 4)
    pred = target.clone()
    pred[..., :2, :] = 0.5  # error only in the top half
    fg = torch.zeros(1, 4, 4, dtype=torch.bool)
    fg[:, 2:] = True
    assert torch.isinf(foreground_psnr(pred, target, fg)).all()  # no error inside the foreground
    fg[:, 0] = True  # foreground rows 0, 2, 3; squared error 0.25 in row 0 -> MSE 1/12
    assert foreground_psnr(pred, target, fg).item() == pytest.approx(10 * math.log10(12))
    img = torch.full((1, 3, 16, 12), 0.2)
    img[..., 4:12, 3:9] = -0.7
    parsing = torch.zeros(1, 16, 12, dtype=torch.long)
    parsing[:, 4:12, 3:9] = 5
    torch.testing.assert_close(background_image(img, parsing), torch.full((1, 3, 16, 12), 0.2))
    scores = pair_scores(img, img, parsing)
    assert scores["ssim"].item() == pytest.approx(1.0) and torch.isinf(scores["psnr"]).all()


def test_ddim_inference_writes_each_pair_once_and_resumes(tmp_path):
    out = tmp_path / "gen"
    cb = DDIMInference(output_dir=str(out), batch_size=2, metrics_path=str(tmp_path / "m.json"),
                       grid_path=str(tmp_path / "grid.png"), grid_pairs=3, guidance=ClassifierFreeGuidance(1.5))
    model, dm = _model(), RandomPairsDataModule()
    _trainer(tmp_path, [cb]).test(model, dm)
    files = sorted(p.name for p in out.iterdir())
    assert files == [f"src{i}_to_tgt{i}.png" for i in range(5)]
    metrics = json.loads((tmp_path / "m.json").read_text())
    for name in ("samples", "copy_source", "background_only"):
        assert set(metrics[name]) == {"ssim", "psnr", "fg_psnr", "n_pairs"} and metrics[name]["n_pairs"] == 5
    assert (tmp_path / "grid.png").exists()
    # the grid's 16 px cells are upscaled x12 (nearest) to >= 192 px; the scored files stay at native size
    from PIL import Image

    from pgpis.callbacks.inference import load_png

    f = 12
    with Image.open(tmp_path / "grid.png") as im:
        assert im.size == (f * (4 * 17 + 1), f * (3 * 17 + 1))  # 3 pairs x 4 columns, 1 px padding
        grid = np.asarray(im.convert("RGB"))
    with Image.open(out / "src0_to_tgt0.png") as im:
        assert im.size == (16, 16)
        sample = np.asarray(im.convert("RGB"))
    cell = grid[f * 1:f * 17, f * (1 + 3 * 17):f * (1 + 3 * 17 + 16)]  # row 0, column "sample"
    np.testing.assert_array_equal(cell, sample.repeat(f, 0).repeat(f, 1))
    assert load_png(out / "src0_to_tgt0.png").shape == (3, 16, 16)
    # resume: only the deleted file is generated again, the others are left alone
    (out / "src3_to_tgt3.png").unlink()
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    loader = dm.test_dataloader()
    assert cb.generate(model, loader.dataset, loader.collate_fn, 5) == 1
    assert all(p.stat().st_mtime_ns == stamps[p.name] for p in out.iterdir() if p.name in stamps)
    assert (out / "src3_to_tgt3.png").exists()


def test_cfg_sampling_grid_and_checkpointed_noise(tmp_path):
    cb = CFGSampling(num_samples=3, guidances=[NoGuidance(), ClassifierFreeGuidance(2.0)], min_cell_height=0)
    trainer = _trainer(tmp_path, [cb], max_steps=2, val_check_interval=2, limit_val_batches=1, num_sanity_val_steps=0)
    trainer.fit(_model(), RandomPairsDataModule())
    assert cb.last_grid is not None and cb.last_grid.exists()
    from PIL import Image

    with Image.open(cb.last_grid) as im:
        assert im.size == (16 * 5, 16 * 3)  # 3 input columns + 2 guidance columns, 3 rows
    ckpt = tmp_path / "c.ckpt"
    trainer.save_checkpoint(ckpt)
    state = torch.load(ckpt, weights_only=False)["callbacks"]
    saved = next(v for k, v in state.items() if k.startswith("CFGSampling"))
    fresh = CFGSampling(num_samples=3, seed=999)
    fresh.load_state_dict(saved)
    torch.testing.assert_close(fresh.noise, cb.noise)


def test_cfg_sampling_grid_upscales_cells_nearest(tmp_path):
    """By default the PNG's 16 px cells become 192 px (x12); each pixel is a 12x12 block of the native grid."""
    cb = CFGSampling(num_samples=2, guidances=[ClassifierFreeGuidance(2.0)])
    trainer = _trainer(tmp_path, [cb], max_steps=1, val_check_interval=1, limit_val_batches=1, num_sanity_val_steps=0)
    trainer.fit(_model(), RandomPairsDataModule())
    from PIL import Image

    with Image.open(cb.last_grid) as im:
        assert im.size == (12 * 16 * 4, 12 * 16 * 2)
        upscaled = np.asarray(im.convert("RGB"))
    native = cb.make_grid(trainer, trainer.lightning_module)  # same weights, same fixed noise: the same grid
    assert native.shape == (3, 16 * 2, 16 * 4)
    pixels = ((native.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(upscaled, pixels.repeat(12, 0).repeat(12, 1))
