"""LatentDiffusion core: first stages, loss targets, dropout, LR schedule, a short fit, reload."""
import math

import lightning.pytorch as pl
import pytest
import torch

from pgpis.diffusion import (AutoencoderKLFirstStage, ConditionalDenoiser, ConditionDropout, PixelUnshuffleFirstStage,
                             WarmupStepDecay, build_noise_scheduler, loss_target)
from pgpis.diffusion.core import LatentDiffusion
from pgpis.errors import MissingWeightsError
from test_diffusion_helpers import RandomPairsDataModule, TinyTestDenoiser, random_batch

TINY_VAE = dict(block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
                up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=8, layers_per_block=1)


def test_pixel_unshuffle_is_lossless():
    fs = PixelUnshuffleFirstStage(2)
    x = torch.rand(2, 3, 16, 12) * 2 - 1
    z = fs.encode(x)
    assert z.shape == (2, 12, 8, 6) and fs.latent_channels == 12 and fs.downsample_factor == 2
    torch.testing.assert_close(fs.decode(z), x, rtol=0, atol=0)
    with pytest.raises(ValueError, match="divisible"):
        fs.latent_size((15, 12))


def test_autoencoder_kl_from_local_folder(tmp_path):
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    vae = AutoencoderKL(**TINY_VAE, scaling_factor=0.5)
    vae.save_pretrained(tmp_path / "pipe" / "vae")
    fs = AutoencoderKLFirstStage(str(tmp_path / "pipe"), subfolder="vae")
    assert fs.scaling_factor == 0.5 and fs.latent_channels == 4 and fs.downsample_factor == 2
    assert not any(p.requires_grad for p in fs.parameters())
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    z = fs.encode(x)
    torch.testing.assert_close(z, vae.encode(x).latent_dist.mode() * 0.5)
    assert fs.decode(z).shape == x.shape
    fs.train()
    assert not fs.training  # frozen stays in eval


def test_autoencoder_kl_missing_weights_says_how():
    with pytest.raises(MissingWeightsError, match="Stable Diffusion VAE.*hf download"):
        AutoencoderKLFirstStage("stabilityai/no-such-vae", subfolder="vae")


@pytest.mark.parametrize("kind", ["epsilon", "v_prediction", "sample"])
def test_loss_target_space(kind):
    sched = build_noise_scheduler({"prediction_type": kind, "beta_schedule": "squaredcos_cap_v2"})
    x0, noise, t = torch.randn(3, 4, 2, 2), torch.randn(3, 4, 2, 2), torch.tensor([0, 400, 999])
    target = loss_target(sched, x0, noise, t)
    a = sched.alphas_cumprod[t].sqrt()[:, None, None, None]
    s = (1 - sched.alphas_cumprod[t]).sqrt()[:, None, None, None]
    expected = {"epsilon": noise, "v_prediction": a * noise - s * x0, "sample": x0}[kind]
    torch.testing.assert_close(target, expected)


def test_noise_scheduler_validation():
    assert build_noise_scheduler(None).config.beta_schedule == "scaled_linear"
    with pytest.raises(ValueError, match="prediction_type"):
        build_noise_scheduler({"prediction_type": "noise"})
    with pytest.raises(ValueError, match="beta_schedule 'cosine'.*squaredcos_cap_v2"):
        build_noise_scheduler({"beta_schedule": "cosine"})
    with pytest.raises(ValueError, match="not a valid DDPMScheduler config"):
        build_noise_scheduler({"beta_stat": 0.1})


def test_condition_dropout_per_sample():
    g = torch.Generator().manual_seed(0)
    ind = ConditionDropout("independent", {"pose": 0.2, "source": 0.5})(("pose", "source"), 20000, "cpu", generator=g)
    assert abs(1 - ind["pose"].float().mean() - 0.2) < 0.02 and abs(1 - ind["source"].float().mean() - 0.5) < 0.02
    assert 0 < (ind["pose"] != ind["source"]).float().mean() < 1  # drawn independently, per sample
    joint = ConditionDropout("joint", 0.3)(("pose", "source"), 20000, "cpu", generator=g)
    assert torch.equal(joint["pose"], joint["source"]) and abs(1 - joint["pose"].float().mean() - 0.3) < 0.02
    with pytest.raises(ValueError, match="no dropout probability"):
        ConditionDropout("independent", {"pose": 0.2})(("pose", "fusion"), 2, "cpu")


def test_warmup_step_decay():
    f = WarmupStepDecay(warmup=5, milestones=[50], gamma=0.1, unit="epoch")
    assert [f(i) for i in range(5)] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert f(49) == 1.0 and f(50) == pytest.approx(0.1) and f(99) == pytest.approx(0.1)


def _model(**kw):
    torch.manual_seed(0)
    kw.setdefault("noise_scheduler", {"prediction_type": "sample", "beta_schedule": "squaredcos_cap_v2"})
    return LatentDiffusion(TinyTestDenoiser(), PixelUnshuffleFirstStage(2), **kw)


def test_fit_updates_only_denoiser_and_schedules_lr(tmp_path):
    model = _model(lr=1e-3, lr_schedule=WarmupStepDecay(warmup=4, milestones=[3], gamma=0.5))
    before = {k: v.clone() for k, v in model.denoiser.state_dict().items()}
    lrs = []

    class Rec(pl.Callback):
        def on_train_batch_start(self, trainer, *_):
            lrs.append(trainer.optimizers[0].param_groups[0]["lr"])

    trainer = pl.Trainer(max_steps=4, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, callbacks=[Rec()], default_root_dir=tmp_path,
                         gradient_clip_val=1.0, limit_val_batches=1)
    trainer.fit(model, RandomPairsDataModule())
    assert lrs == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 0.5e-3])
    changed = [k for k, v in model.denoiser.state_dict().items() if not torch.equal(v, before[k])]
    assert changed and math.isfinite(trainer.callback_metrics["train/loss"].item())
    assert "val/loss" in trainer.callback_metrics


def test_gradient_checkpointing_switch():
    assert _model(gradient_checkpointing=True).denoiser.unet.is_gradient_checkpointing

    class WithoutTheHook(TinyTestDenoiser):  # keeps ConditionalDenoiser's default: refused, naming the fix
        enable_gradient_checkpointing = ConditionalDenoiser.enable_gradient_checkpointing

    with pytest.raises(ValueError, match="enable_gradient_checkpointing"):
        LatentDiffusion(WithoutTheHook(), PixelUnshuffleFirstStage(2), gradient_checkpointing=True)


def test_checkpoint_reload_outside_cli(tmp_path):
    model = _model()
    trainer = pl.Trainer(max_steps=1, accelerator="cpu", logger=False, enable_progress_bar=False,
                         default_root_dir=tmp_path, limit_val_batches=0)
    trainer.fit(model, RandomPairsDataModule())
    ckpt = tmp_path / "m.ckpt"
    trainer.save_checkpoint(ckpt)
    again = LatentDiffusion.load_from_checkpoint(ckpt, denoiser=TinyTestDenoiser(), first_stage=PixelUnshuffleFirstStage(2),
                                                 weights_only=False)
    batch = random_batch(2)
    torch.testing.assert_close(again.generate(batch), model.eval().generate(batch))
    assert again.noise_scheduler.config.prediction_type == "sample"
