"""Sampling: once-per-sample conditioning + one batched call per step vs a naive loop.

The naive loop is what the reference code does: every step re-runs the
condition encoders (DINOv2, fusion model, pose encoder) and calls the UNet once
per guidance branch (3 calls for FPDM's cumulative CFG). Both use the same DDIM
scheduler and the same per-sample noise; the outputs must agree to float
tolerance. Prints the measured times and the speed-up (issue 4 target: >= 1.3x).

    .venv/bin/python benchmarks/bench_sampling.py [--batch 8] [--steps 10] [--repeats 3]
"""
from __future__ import annotations

import argparse

import torch

from _ldm_setup import median_time, tiny_fpdm
from pgpis.diffusion import CumulativeGuidance
from pgpis.diffusion.sampler import per_sample_generators, per_sample_noise


@torch.no_grad()
def naive_sample(model, batch, guidance, steps: int) -> torch.Tensor:
    sched = model.sampler.make_scheduler(model.noise_scheduler.config)
    b = len(batch["target"])
    lat = per_sample_noise(per_sample_generators(model.sample_seeds(batch)), model.latent_shape(batch), "cpu", torch.float32)
    groups = model.denoiser.condition_groups
    for t in sched.timesteps:
        outs = []
        for branch in guidance.branches:
            kept = guidance.kept_groups(branch, groups)
            keep = {g: torch.full((b,), g in kept) for g in groups}
            outs.append(model.denoiser(lat, t.expand(b), model.denoiser.encode_conditions(batch), keep))
        lat = sched.step(sum(c * o for c, o in zip(guidance.coefficients, outs)), t, lat).prev_sample
    return model.first_stage.decode(lat).clamp(-1, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    model, batch = tiny_fpdm(args.batch, steps=args.steps)
    model.eval()
    guidance = CumulativeGuidance(2.0, 2.0)
    fast = model.generate(batch, guidance=guidance)
    slow = naive_sample(model, batch, guidance, args.steps)
    diff = (fast - slow).abs().max().item()
    t_naive = median_time(lambda: naive_sample(model, batch, guidance, args.steps), args.repeats)
    t_fast = median_time(lambda: model.generate(batch, guidance=guidance), args.repeats)
    print(f"tiny FPDM preset, batch {args.batch}, {args.steps} DDIM steps, cumulative CFG (3 branches), "
          f"{torch.get_num_threads()} threads, median of {args.repeats}")
    print(f"  naive loop (3 UNet calls/step, encoders every step): {t_naive:.3f} s")
    print(f"  pgpis sampler (1 batched call/step, encoders once):  {t_fast:.3f} s")
    print(f"  speed-up: {t_naive / t_fast:.2f}x (target >= 1.3x); max |difference| of outputs: {diff:.2e}")
    assert diff < 1e-4, "outputs differ"


if __name__ == "__main__":
    main()
