"""TruePose sampling: SourceNet once per sample (cached) vs re-run at every denoising step.

Prints the seconds per sampling run of both modes, their ratio (the issue's bar:
>= 1.8x) and the largest difference between the two outputs (must be at float
tolerance). Same model, same seeds, DDIM with CFG (two branches per step).

    .venv/bin/python benchmarks/bench_truepose_cache.py [--preset cpu-small] [--steps 35] [--batch 2]
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from pgpis.data.parsing import LIP  # noqa: E402
from pgpis.diffusion import ClassifierFreeGuidance, PixelUnshuffleFirstStage, Sampler  # noqa: E402
from pgpis.models.truepose import SiameseDenoiser  # noqa: E402
from pgpis.stages.parsing_siamese_ldm import ParsingSiameseLDM  # noqa: E402


def person_batch(b: int, h: int, w: int) -> dict:
    g = torch.Generator().manual_seed(0)
    parsing = torch.zeros(b, h, w, dtype=torch.long)
    parsing[:, h // 16 : h // 5, w // 3 : 2 * w // 3] = LIP.index("Face")
    parsing[:, h // 5 : h // 2, w // 5 : 4 * w // 5] = LIP.index("Upper-clothes")
    parsing[:, h // 2 :, w // 4 : 3 * w // 4] = LIP.index("Pants")
    return {"source": torch.rand(b, 3, h, w, generator=g) * 2 - 1, "target": torch.zeros(b, 3, h, w),
            "target_pose": torch.rand(b, 3, h, w, generator=g) * 2 - 1, "source_parsing": parsing,
            "target_keypoints": torch.rand(b, 18, 2, generator=g) * torch.tensor([w - 1.0, h - 1.0]),
            "pair_index": torch.arange(b)}


def timed(fn, repeats: int) -> tuple[float, torch.Tensor]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="cpu-small", help="UNet preset of both UNets (tiny, cpu-small, sd15)")
    ap.add_argument("--steps", type=int, default=35, help="DDIM steps (paper: 35)")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--size", type=int, nargs=2, default=(64, 44), help="image h w")
    ap.add_argument("--repeats", type=int, default=2, help="best of N timings per mode")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    den = SiameseDenoiser(unet={"preset": args.preset, "in_channels": 12, "out_channels": 12},
                          clip_encoder={"preset": "tiny"}, downsample_factor=2)
    model = ParsingSiameseLDM(den, PixelUnshuffleFirstStage(2),
                              noise_scheduler={"prediction_type": "sample", "beta_schedule": "squaredcos_cap_v2"},
                              sampler=Sampler("DDIMScheduler", num_inference_steps=args.steps),
                              guidance=ClassifierFreeGuidance(3.5)).eval()
    batch = person_batch(args.batch, *args.size)

    def run(cache: bool):
        den.cache_source = cache
        return model.generate(batch)

    run(True)  # warm-up
    t_cached, cached = timed(lambda: run(True), args.repeats)
    t_uncached, uncached = timed(lambda: run(False), args.repeats)
    diff = (cached - uncached).abs().max().item()
    print(f"TruePose sampling, {args.preset} UNets, batch {args.batch}, {args.size[0]}x{args.size[1]} (h x w), "
          f"DDIM {args.steps} steps, CFG 3.5, {torch.get_num_threads()} threads")
    print(f"  SourceNet once per sample : {t_cached:8.2f} s")
    print(f"  SourceNet at every step   : {t_uncached:8.2f} s")
    print(f"  speed-up                  : {t_uncached / t_cached:8.2f}x  (bar: >= 1.8x)")
    print(f"  max |cached - uncached|   : {diff:.2e}  (images in [-1, 1])")


if __name__ == "__main__":
    main()
