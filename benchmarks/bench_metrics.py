"""Images per second for each pgpis metric on CPU at 256x176, and where the time goes.

Pretrained AlexNet / Inception weights are not available offline, so LPIPS and
FID run on randomly initialised backbones of the same architecture: the
timings are representative, the metric values are meaningless (and not printed).

    .venv/bin/python benchmarks/bench_metrics.py [--n 32] [--batch-size 16] [--threads N]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from pgpis.metrics.fid import CleanFidExtractor, TorchvisionInceptionExtractor
from pgpis.metrics.images import load_resized, stack01
from pgpis.metrics.lpips_net import build_lpips, lpips_distance
from pgpis.metrics.psnr import psnr
from pgpis.metrics.ssim import ssim_gaussian, ssim_window

SIZE = (256, 176)  # report size (h, w)
STORED = (512, 352)  # files are stored larger, so the report resize does real work


def timed(fn: Callable[[], object], repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def write_images(folder: Path, n: int, seed: int) -> list[Path]:
    rng = np.random.default_rng(seed)
    h, w = STORED
    paths = []
    for i in range(n):
        coarse = rng.uniform(0, 255, (h // 16, w // 16, 3)).astype(np.uint8)
        img = np.asarray(Image.fromarray(coarse).resize((w, h), Image.BICUBIC)).astype(np.float64)
        img = np.clip(img + rng.normal(0, 10, img.shape), 0, 255).astype(np.uint8)
        p = folder / f"{i:04d}.png"
        Image.fromarray(img).save(p)
        paths.append(p)
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=32, help="image pairs")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    n, bs = args.n, args.batch_size
    print(f"pgpis metrics benchmark: {n} pairs, report size {SIZE[0]}x{SIZE[1]} (h x w) from {STORED[0]}x{STORED[1]} PNGs, "
          f"batch {bs}, CPU, torch threads {torch.get_num_threads()}")
    print("NOTE: LPIPS AlexNet and FID Inception use RANDOM weights (pretrained ones are unavailable offline); "
          "timings are representative, values are not.")

    with tempfile.TemporaryDirectory() as tmp:
        gen_files = write_images(Path(tmp), n, seed=0)
        tgt_dir = Path(tmp) / "t"
        tgt_dir.mkdir()
        tgt_files = write_images(tgt_dir, n, seed=1)

        rows: list[tuple[str, float, str]] = []
        t_decode = timed(lambda: [load_resized(p, SIZE) for p in gen_files + tgt_files]) / 2  # per side
        rows.append(("decode PNG + PIL bicubic resize (per image)", t_decode, "io"))
        gen = [load_resized(p, SIZE) for p in gen_files]
        tgt = [load_resized(p, SIZE) for p in tgt_files]
        batches = [(stack01(gen[i:i + bs]), stack01(tgt[i:i + bs])) for i in range(0, n, bs)]

        rows.append(("SSIM window-51 (uniform, [0,1])", timed(lambda: [ssim_window(g, t) for g, t in batches], 2), "pixel"))
        rows.append(("SSIM gaussian sigma 1.5 (0-255)", timed(lambda: [ssim_gaussian(g, t) for g, t in batches], 2), "pixel"))
        rows.append(("PSNR (data_range 1)", timed(lambda: [psnr(g, t) for g, t in batches], 2), "pixel"))

        torch.manual_seed(0)
        net = build_lpips(random_backbone=True)
        rows.append(("LPIPS AlexNet (random weights)",
                     timed(lambda: [lpips_distance(net, g.float(), t.float()) for g, t in batches], 2), "network"))

        from torchvision.models import inception_v3

        inception = inception_v3(weights=None, aux_logits=True, init_weights=False).eval()
        legacy = TorchvisionInceptionExtractor(module=inception)
        tf_like = torch.nn.Sequential(*list(legacy.blocks.children())).eval()  # same architecture as TF-Inception
        clean = CleanFidExtractor(lambda x: tf_like((x - 128) / 128).flatten(1), name="bench", dim=2048)

        t_clean_pre = timed(lambda: [clean.preprocess(a) for a in gen])
        clean_x = [torch.stack([clean.preprocess(a) for a in gen[i:i + bs]]) for i in range(0, n, bs)]
        rows.append(("clean-fid resize to 299 (PIL float, per channel)", t_clean_pre, "io"))
        rows.append(("FID Inception-v3 forward (clean-fid path)", timed(lambda: [clean.features(x) for x in clean_x]), "network"))
        legacy_x = [torch.stack([legacy.preprocess(a) for a in gen[i:i + bs]]) for i in range(0, n, bs)]
        rows.append(("FID torchvision Inception-v3 (legacy, bilinear 299 inside)",
                     timed(lambda: [legacy.features(x) for x in legacy_x]), "network"))

    print()
    print("| step | s total | images/s |")
    print("|---|---:|---:|")
    for name, secs, _ in rows:
        print(f"| {name} | {secs:.3f} | {n / secs:.1f} |")
    io = sum(s for _, s, kind in rows if kind == "io") + t_decode  # decode both sides, resize for FID
    pixel = sum(s for _, s, kind in rows if kind == "pixel")
    nets = sum(s for name, s, kind in rows if kind == "network" and "legacy" not in name)
    total = io + pixel + nets
    print()
    print(f"one full clean-fid evaluation of {n} pairs (decode both sides + SSIMx2 + PSNR + LPIPS + FID features of "
          f"the generated set): {total:.2f} s = {n / total:.1f} pairs/s")
    print(f"share of time: decoding/resizing {100 * io / total:.0f}%, pixel metrics (SSIM, PSNR) {100 * pixel / total:.0f}%, "
          f"networks (LPIPS, Inception) {100 * nets / total:.0f}%")


if __name__ == "__main__":
    main()
