"""Benchmark: IPF training throughput of the embedded-default preset and the share of time waiting for data.

Trains the tiny experiment's model (experiments/tiny/ipf.yaml: CLIP "small" preset,
batch 32, 2 loader workers) for a fixed number of steps on the synthetic DeepFashion
data through the real DeepFashionDataModule, and times each step from the
callbacks: *compute* = training_step + backward + optimiser (batch start -> end),
*data wait* = previous batch end -> this batch start (the loader's next()).

    .venv/bin/python benchmarks/bench_ipf.py [--root DIR] [--steps 40] [--batch-size 32] [--num-workers 2]

Prints samples/s and the data-wait share; the figures depend on how busy the CPU is.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import lightning as L  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

from pgpis.data.deepfashion import DeepFashionDataModule  # noqa: E402
from pgpis.models.encoders import EncoderSpec  # noqa: E402
from pgpis.stages.ipf import IPFCombiner  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


class StepTimer(L.Callback):
    """Per-step compute time and the wait for the batch before it."""

    def __init__(self, warmup: int):
        self.warmup, self.compute, self.wait, self.samples = warmup, [], [], 0
        self._end: float | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._start = time.perf_counter()
        if self._end is not None and batch_idx >= self.warmup:
            self.wait.append(self._start - self._end)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self._end = time.perf_counter()
        if batch_idx >= self.warmup:
            self.compute.append(self._end - self._start)
            self.samples += len(batch["source_name"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=Path, default=REPO / "data/synthetic/deepfashion")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=None, help="default: the tiny experiment's")
    p.add_argument("--num-workers", type=int, default=None, help="default: the tiny experiment's")
    args = p.parse_args()

    cfg = yaml.safe_load((REPO / "experiments/tiny/ipf.yaml").read_text())
    model_args, data_args = cfg["model"]["init_args"], cfg["data"]["init_args"]
    root = args.root
    if not (root / ".pgpis-synthetic").exists():
        from pgpis.data.deepfashion.synthetic import write_synthetic_deepfashion

        root = Path(tempfile.mkdtemp(prefix="bench_ipf_")) / "deepfashion"
        write_synthetic_deepfashion(root, identities=40, poses=4, seed=0)
        print(f"(no dataset at {args.root}; wrote 40 synthetic identities to {root})")
    data_args.update(root=str(root), val_identities=2)
    if args.batch_size:
        data_args["batch_size"] = args.batch_size
    if args.num_workers is not None:
        data_args["num_workers"] = args.num_workers
    dm = DeepFashionDataModule(**data_args)
    model = IPFCombiner(encoder=EncoderSpec(**model_args["encoder"]), dropout=model_args["dropout"],
                        loss=model_args["loss"], lr=model_args["lr"], input_key=model_args["input_key"])
    timer = StepTimer(args.warmup)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=args.steps + args.warmup, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        limit_val_batches=0, callbacks=[timer])
    trainer.fit(model, datamodule=dm)

    compute, wait = sum(timer.compute), sum(timer.wait)
    total = compute + wait
    print(f"IPF tiny preset ({model_args['encoder']['preset']}, batch {data_args['batch_size']}, "
          f"{data_args['num_workers']} workers, torch threads {torch.get_num_threads()}, {os.cpu_count()} CPUs)")
    print(f"  steps timed       : {len(timer.compute)}")
    print(f"  training samples/s: {timer.samples / total:.1f}")
    print(f"  step time         : {1000 * total / len(timer.compute):.0f} ms (compute {1000 * compute / len(timer.compute):.0f} ms)")
    print(f"  data-wait share   : {100 * wait / total:.1f} %")


if __name__ == "__main__":
    main()
