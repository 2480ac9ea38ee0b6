"""Tiny TruePose training step: time, work per step and what the machine gives, and the projected fit time.

`make train-truepose`'s wall time is max_steps (1300) of these steps. The 2-core VMs this project runs
on differ in speed: the same step took 0.64 s on one and 1.0-1.1 s on another, drifting ~30%
within an hour on the same VM. To tell a slower machine from a slower model, this prints:

- the machine: fp32 GEMM throughput (2048^3 matmul, best of 5) with the current threads;
- the step: median seconds of a full training step of experiments/tiny/truepose.yaml's model
  (loss, backward, fused AdamW) at the yaml's batch size, on random inputs of its image size;
- its work: GFLOP per step (torch.utils.flop_counter; convolutions and matmuls) and the
  achieved GFLOP/s as a fraction of the GEMM figure;
- the projection: max_steps x step time, the training part of `make train-truepose`
  (startup, the periodic validations and the sampling of the test split add ~1 minute);
- dropped rows: with the paper's 30% condition dropout (a fixed mask), the step that runs the
  source side (SourceNet, CLIP, H') on the kept rows only against one that encodes every row,
  as training did before the skip; the loss is the same (tests/test_truepose.py).

    .venv/bin/python benchmarks/bench_truepose_step.py [--repeats 9] [--config experiments/tiny/truepose.yaml]
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import yaml  # noqa: E402
from lightning.pytorch.cli import instantiate_module  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from _ldm_setup import median_time  # noqa: E402
from bench_truepose_cache import person_batch, timed  # noqa: E402
from pgpis.inference.checkpoint import import_class  # noqa: E402

DROPOUT_PAPER = 0.3  # TruePose's joint condition dropout

REPO = Path(__file__).resolve().parents[1]


def gemm_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Best-of-N fp32 matmul throughput: the machine's ceiling for the convs and linears of a step."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best, _ = timed(lambda: a @ b, repeats)
    return 2 * n**3 / best / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="experiments/tiny/truepose.yaml")
    ap.add_argument("--repeats", type=int, default=9, help="timed steps (median)")
    args = ap.parse_args()
    cfg = yaml.safe_load((REPO / args.config).read_text())
    torch.manual_seed(0)
    model = instantiate_module(import_class(cfg["model"]["class_path"]), cfg["model"]["init_args"])
    data = cfg["data"]["init_args"]
    (h, w), batch_size = data["image_size"], int(data["batch_size"])
    max_steps = int(cfg["trainer"]["max_steps"])
    batch = person_batch(batch_size, h, w)
    g = torch.Generator().manual_seed(1)
    batch["target"] = torch.rand(batch["source"].shape, generator=g) * 2 - 1
    batch["source_pose"] = torch.rand(batch["target_pose"].shape, generator=g) * 2 - 1  # source_pose: true
    model.train()
    opt = model.configure_optimizers()["optimizer"]

    def step(keep=None) -> None:
        opt.zero_grad(set_to_none=True)
        model.diffusion_loss(batch, keep=keep).backward()
        opt.step()

    dropped = round(DROPOUT_PAPER * batch_size)
    keep = {"source": torch.arange(batch_size) >= dropped}
    skip_encode = model.denoiser.encode_conditions

    def step_every_row_encoded() -> None:
        model.denoiser.encode_conditions = lambda b, keep=None: skip_encode(b)  # ignore the mask: encode all
        try:
            step(keep)
        finally:
            del model.denoiser.encode_conditions

    step(), step()  # warm-up (allocator, oneDNN primitives)
    with FlopCounterMode(display=False) as counter:
        step()
    gflop = counter.get_total_flops() / 1e9
    t_step = median_time(step, args.repeats)
    gemm = gemm_gflops()
    print(f"{args.config}: batch {batch_size} at {h}x{w}, {torch.get_num_threads()} threads, median of {args.repeats}")
    print(f"  machine fp32 GEMM (2048^3):   {gemm:.0f} GFLOP/s")
    print(f"  training step:                {t_step:.3f} s")
    print(f"  work per step:                {gflop:.1f} GFLOP -> {gflop / t_step:.0f} GFLOP/s, "
          f"{gflop / t_step / gemm:.0%} of the GEMM figure")
    print(f"  projected fit ({max_steps} steps): {max_steps * t_step / 60:.1f} min "
          f"(+ ~1 min startup, validation, test sampling; issue 6 budget: 20 min in all)")
    t_skip, t_all = [], []
    for _ in range(max(args.repeats // 3, 2)):  # interleaved: the VM drifts within minutes
        t_skip.append(median_time(lambda: step(keep), 3))
        t_all.append(median_time(step_every_row_encoded, 3))
    t_skip, t_all = sorted(t_skip)[len(t_skip) // 2], sorted(t_all)[len(t_all) // 2]
    print(f"  {dropped} of {batch_size} rows dropped (paper: {DROPOUT_PAPER:.0%}): source side on the kept rows "
          f"{t_skip:.3f} s, on every row {t_all:.3f} s -> {t_all / t_skip:.2f}x")


if __name__ == "__main__":
    main()
