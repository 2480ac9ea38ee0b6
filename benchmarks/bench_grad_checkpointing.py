"""Gradient checkpointing of the UNet on the CPU: activation memory saved vs time added, at a small size.

The config switch is ``model.init_args.denoiser.init_args.gradient_checkpointing: true`` (FPDM and TruePose
denoisers; diffusers' ``enable_gradient_checkpointing()`` on each UNet, through
``pgpis.models.unets.build_unet(gradient_checkpointing=True)`` here). Each mode runs in a fresh process so
the peak resident memory (``ru_maxrss``) of its forward + backward is its own; the figure is the peak
less the memory after building the model and its inputs, i.e. the activations and gradients of one step.
Time is the median of ``--repeats`` forward + backward passes. docs/scale-out.md reads the result: what
checkpointing buys against micro-batch 1 + gradient accumulation when a paper-size step runs out of memory.

    .venv/bin/python benchmarks/bench_grad_checkpointing.py [--preset tiny] [--latent 32 24] [--batch 16]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch


def _rss_mib() -> float:
    """Current resident memory (Linux /proc), MiB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def one_mode(preset: str, latent: tuple[int, int], batch: int, checkpointing: bool, repeats: int) -> dict:
    from pgpis.models.unets import build_unet

    torch.manual_seed(0)
    unet = build_unet(preset, gradient_checkpointing=checkpointing).train()
    cfg = unet.config
    x = torch.randn(batch, cfg.in_channels, *latent)
    t = torch.randint(0, 1000, (batch,))
    ehs = torch.randn(batch, 17, cfg.cross_attention_dim)
    base = _rss_mib()

    def step() -> None:
        unet(x, t, encoder_hidden_states=ehs).sample.pow(2).mean().backward()
        unet.zero_grad(set_to_none=True)

    step()  # first pass: its peak is the one reported (nothing ran before it)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return {"checkpointing": checkpointing, "step_peak_mib": peak - base, "seconds": statistics.median(times)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="tiny", help="UNet preset (pgpis.models.unets.UNET_PRESETS)")
    ap.add_argument("--latent", type=int, nargs=2, default=(32, 24), metavar=("H", "W"))
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--mode", choices=["on", "off"], help=argparse.SUPPRESS)  # internal: one mode, JSON out
    args = ap.parse_args()
    if args.mode:
        print(json.dumps(one_mode(args.preset, tuple(args.latent), args.batch, args.mode == "on", args.repeats)))
        return
    rows = {}
    for mode in ("off", "on"):
        cmd = [sys.executable, __file__, "--mode", mode, "--preset", args.preset, "--latent", *map(str, args.latent),
               "--batch", str(args.batch), "--repeats", str(args.repeats)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        rows[mode] = json.loads(out.stdout.strip().splitlines()[-1])
    off, on = rows["off"], rows["on"]
    print(f"UNet '{args.preset}', latent {args.latent[0]}x{args.latent[1]}, batch {args.batch}, fp32 CPU, "
          f"{torch.get_num_threads()} threads, forward + backward")
    for name, r in (("without checkpointing", off), ("with checkpointing", on)):
        print(f"  {name:22s} step memory {r['step_peak_mib']:7.1f} MiB   {r['seconds']:.3f} s/step")
    print(f"  checkpointing: memory x{on['step_peak_mib'] / off['step_peak_mib']:.2f}, "
          f"time x{on['seconds'] / off['seconds']:.2f}")


if __name__ == "__main__":
    main()
