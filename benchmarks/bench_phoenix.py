"""Speed of the Phoenix data path: synthetic writer, keypoint containers, samples at 512x512, hand metrics.

Prints wall and CPU seconds (CPU time is the meaningful figure on a shared machine);
tests never assert wall-clock time.

    .venv/bin/python benchmarks/bench_phoenix.py [--videos train=24,dev=4,test=6] [--frames 16-24] [--samples 64]
"""
from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


class _Timer:
    def __init__(self, label: str, per: int = 1, unit: str = "item"):
        self.label, self.per, self.unit = label, per, unit

    def __enter__(self) -> "_Timer":
        self.wall, self.cpu = time.perf_counter(), _cpu()
        return self

    def __exit__(self, *exc) -> None:
        wall, cpu = time.perf_counter() - self.wall, _cpu() - self.cpu
        print(f"{self.label:<48} wall {wall:7.2f} s  cpu {cpu:7.2f} s  "
              f"({1000 * cpu / self.per:.1f} ms cpu per {self.unit}, {self.per} {self.unit}s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", default="train=24,dev=4,test=6")
    ap.add_argument("--frames", default="16-24")
    ap.add_argument("--samples", type=int, default=64)
    args = ap.parse_args()
    torch.set_num_threads(1)

    from pgpis.data import keypoints as kpt
    from pgpis.data.phoenix import PhoenixDataModule
    from pgpis.data.phoenix.layout import read_phoenix_index
    from pgpis.data.phoenix.synthetic import write_synthetic_phoenix
    from pgpis.metrics.hands import HandSSIM

    videos = {k: int(v) for k, v in (p.split("=") for p in args.videos.split(","))}
    lo, hi = (int(v) for v in args.frames.split("-"))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "phoenix"
        t0 = time.perf_counter()
        summary = write_synthetic_phoenix(root, videos=videos, frames=(lo, hi), keypoint_formats=("pickle", "tensor-pickle", "npz"))
        print(f"synthetic Phoenix: {summary['videos']} videos, {summary['frames']} frames in {time.perf_counter() - t0:.1f} s wall")
        with _Timer("write frames (draw + PNG), per frame", summary["frames"], "frame"):
            write_synthetic_phoenix(Path(tmp) / "again", videos=videos, frames=(lo, hi))
        kp_dir = root / "keypoints"
        for label, files in (("pickle (restricted unpickler)", ["phoenix-2014t.keypoints.pkl"]),
                             ("tensor pickles, gzip (restricted)", [f"phoenix-2014t.{s}" for s in ("train", "dev", "test")]),
                             ("npz", ["phoenix-2014t.keypoints.npz"])):
            with _Timer(f"read index, keypoints from {label}", summary["videos"], "video"):
                read_phoenix_index(root, keypoints=[kp_dir / f for f in files])

        index = read_phoenix_index(root)
        kp = index.videos["train"][0].keypoints[0]
        with _Timer("render_pose COCO-133 at 512x512", 50, "render"):
            for _ in range(50):
                kpt.render_pose(kpt.rescale_keypoints(kp[:, :2], (260, 210), (512, 512)), (512, 512),
                                kpt.COCO_WHOLEBODY_133, scores=kp[:, 2])
        dm = PhoenixDataModule(root=str(root), image_size=(512, 512), encoder_inputs={"dino": (512, 512)},
                               num_workers=0, train_pairs=args.samples)
        ds = dm.dataset("train")
        with _Timer("train sample at 512x512 (+dino view)", len(ds), "sample"):
            for i in range(len(ds)):
                ds[i]
        test = dm.dataset("test")
        frames = torch.stack([test[i]["target"] for i in range(min(32, len(test)))])
        frames = torch.nn.functional.interpolate((frames + 1) / 2, size=(260, 210), mode="bilinear").clamp(0, 1)
        kps = torch.stack([torch.from_numpy(index.videos["test"][0].keypoints[0][:, :2])] * len(frames))
        scores = torch.stack([torch.from_numpy(index.videos["test"][0].keypoints[0][:, 2])] * len(frames))
        metric = HandSSIM()
        with _Timer("Hand SSIM update at 260x210", len(frames), "image"):
            metric.update(frames.flip(0), frames, kps, scores)
        print(f"  (Hand SSIM of reversed vs forward test frames: {float(metric.compute()):.3f})")
        print(f"  numpy {np.__version__}, torch {torch.__version__}, 1 torch thread")


if __name__ == "__main__":
    main()
