"""Inference API figures on the CPU: export-folder load time, and seconds per image one-by-one vs batched.

A tiny FPDM (the test preset, random weights, no training) at 32x24 with cumulative guidance (3 UNet branches per
step in one batched call). Run: `.venv/bin/python benchmarks/bench_inference.py [--steps 10] [--images 4]`.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--images", type=int, default=4)
    args = parser.parse_args()
    import numpy as np
    import torch
    from PIL import Image

    from pgpis.inference import load_pipeline
    from pgpis.inference.checkpoint import instantiate
    from pgpis.inference.export import export_pipeline
    from pgpis.inference.pipeline import Pipeline
    from pgpis.models.combiner import Combiner
    from pgpis.models.encoders import CLIP_PRESETS, CLIPImageEncoder
    from pgpis.models.fusion import FusionModel

    torch.manual_seed(0)
    tmp = Path(tempfile.mkdtemp())
    enc = CLIPImageEncoder.from_config(CLIP_PRESETS["tiny"])
    FusionModel(enc, Combiner(enc.embed_dim)).save(tmp / "fusion")
    config = {"_class_path": "pgpis.stages.fusion_ldm.FusionLDM",
              "denoiser": {"class_path": "pgpis.models.fpdm.FPDMDenoiser", "init_args": {
                  "unet": {"preset": "tiny", "in_channels": 12, "out_channels": 12}, "downsample_factor": 2,
                  "source_encoder": {"preset": "tiny", "size": [32, 32]}, "fusion": "ipf",
                  "fusion_model": str(tmp / "fusion")}},
              "first_stage": {"class_path": "pgpis.diffusion.PixelUnshuffleFirstStage", "init_args": {"factor": 2}}}
    pipe = Pipeline(instantiate(config), (32, 24), {"dino": (32, 32), "clip": (64, 64)}, config=config, device="cpu")
    export_pipeline(pipe, tmp / "export")
    t0 = time.perf_counter()
    pipe = load_pipeline(tmp / "export", device="cpu")
    load_s = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    source = Image.fromarray(rng.integers(0, 255, (256, 176, 3), dtype=np.uint8))
    poses = [np.c_[rng.uniform(20, 150, 18), rng.uniform(20, 230, 18)] for _ in range(args.images)]
    pipe.generate(source, poses[0], steps=2)  # warm-up
    t0 = time.perf_counter()
    for i, p in enumerate(poses):
        pipe.generate(source, p, steps=args.steps, seed=i)
    one = (time.perf_counter() - t0) / args.images
    t0 = time.perf_counter()
    pipe.generate(source, poses, steps=args.steps, seed=0)
    batched = (time.perf_counter() - t0) / args.images
    print(f"threads {torch.get_num_threads()}, {args.steps} DDIM steps, cumulative guidance (3 branches), 32x24 px")
    print(f"load export folder: {load_s:.2f} s")
    print(f"one by one: {one:.3f} s/image; batched x{args.images}: {batched:.3f} s/image; speed-up {one / batched:.2f}x")


if __name__ == "__main__":
    main()
