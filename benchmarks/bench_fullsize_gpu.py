"""Full-size TruePose on a GPU: the paper's architecture (random weights) at 512x352, bf16 autocast.

Two SD-1.5 UNets with HPFA/CAA on all 16 self-attention layers, the SD VAE and a
CLIP ViT-L/14 image tower, all built from their configs (no download). Prints:

* a training step (encode, joint dropout, TargetNet + trainable SourceNet,
  backward, fused AdamW) per batch size: seconds, images/s and peak memory;
* DDIM 35 steps with CFG 3.5: SourceNet once per sample vs at every step, and the
  largest difference between the two outputs.

Needs CUDA; without it the script says so and exits 0 (``make bench`` runs it). Measured on one H100 80GB
(2026-11-23): batch 4 0.533 s/step (7.5 img/s, peak 42.5 GiB), batch 8 0.607 s/step (13.2 img/s, 59.4 GiB),
batch 12 out of memory without gradient checkpointing (the paper preset trains 3 per GPU with it); sampling
batch 4 in 3.13 s with SourceNet once vs 6.61 s at every step, 2.11x.

    python benchmarks/bench_fullsize_gpu.py [--batches 4 8] [--sample-batch 4]
"""
from __future__ import annotations

import argparse
import os
import time
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from bench_truepose_cache import person_batch  # noqa: E402
from pgpis.diffusion import AutoencoderKLFirstStage, ClassifierFreeGuidance, Sampler  # noqa: E402
from pgpis.diffusion.core import move_batch  # noqa: E402
from pgpis.models.truepose import SiameseDenoiser  # noqa: E402
from pgpis.optim import adamw  # noqa: E402
from pgpis.stages.parsing_siamese_ldm import ParsingSiameseLDM  # noqa: E402

#: Stable Diffusion's VAE (diffusers ``AutoencoderKL``; sd-v1-5/vae/config.json).
SD_VAE_CONFIG = dict(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
                     down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                     sample_size=512, scaling_factor=0.18215)


def build(device: torch.device) -> ParsingSiameseLDM:
    den = SiameseDenoiser(unet={"preset": "sd15"}, clip_encoder={"preset": "vit-l-14"}, downsample_factor=8)
    model = ParsingSiameseLDM(
        den, AutoencoderKLFirstStage(config=SD_VAE_CONFIG),
        noise_scheduler={"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012},
        sampler=Sampler("DDIMScheduler", num_inference_steps=35), guidance=ClassifierFreeGuidance(3.5), lr=1e-5)
    return model.to(device)


def cuda_time(fn, repeats: int) -> tuple[float, object]:
    out = None
    times = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2], out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, nargs="+", default=[4, 8], help="training batch sizes (paper: 12)")
    ap.add_argument("--sample-batch", type=int, default=4)
    ap.add_argument("--size", type=int, nargs=2, default=(512, 352), help="image h w (paper: 512 352)")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("bench_fullsize_gpu: skipped, no CUDA device (tests/test_truepose_fullsize.py checks the wiring on CPU)")
        return
    warnings.filterwarnings("ignore", message=".*self.log.*")
    device = torch.device("cuda")
    torch.manual_seed(0)
    model = build(device)
    den = model.denoiser
    trainable = [p for p in model.parameters() if p.requires_grad]
    print(f"TruePose full size on {torch.cuda.get_device_name()}: {args.size[0]}x{args.size[1]}, bf16 autocast; "
          f"trainable {sum(p.numel() for p in trainable) / 1e6:.0f}M parameters, "
          f"{len(den.layers)} fused layers")
    opt = adamw(trainable, lr=1e-5, weight_decay=1e-2)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16)

    for b in args.batches:
        batch = move_batch(person_batch(b, *args.size), device)
        batch["target"] = batch["source"].flip(-1)

        def step() -> float:
            with autocast:
                loss = model.training_step(batch, 0)
            loss = loss["loss"] if isinstance(loss, dict) else loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            return loss.detach().item()

        model.train()
        torch.cuda.reset_peak_memory_stats()
        try:
            step()  # warm-up (allocator, kernels)
            sec, loss = cuda_time(step, args.repeats)
        except torch.OutOfMemoryError:
            print(f"  train batch {b:3d}: out of memory")
            opt.zero_grad(set_to_none=True)
            torch.cuda.empty_cache()
            continue
        peak = torch.cuda.max_memory_allocated() / 2**30
        print(f"  train batch {b:3d}: {sec:6.3f} s/step  {b / sec:6.1f} img/s  peak {peak:5.1f} GiB  loss {loss:.3f}")

    model.eval()
    batch = move_batch(person_batch(args.sample_batch, *args.size), device)

    def sample(cache: bool) -> torch.Tensor:
        den.cache_source = cache
        with autocast:
            return model.generate(batch).float()

    sample(True)
    t_cached, cached = cuda_time(lambda: sample(True), 2)
    t_every, every = cuda_time(lambda: sample(False), 2)
    print(f"  sample batch {args.sample_batch}, DDIM 35 + CFG 3.5: SourceNet once {t_cached:.2f} s "
          f"({args.sample_batch / t_cached:.2f} img/s), every step {t_every:.2f} s, speed-up {t_every / t_cached:.2f}x, "
          f"max |diff| {(cached - every).abs().max().item():.2e} (bf16)")


if __name__ == "__main__":
    main()
