"""Speed of the synthetic DeepFashion writer (issue 2 bar: 400 identities x 4 poses at 256x176 < 30 s on 2 cores).

Prints the wall time per worker count and the serial render-only time per image, so a
regression shows as a number rather than a failed test (tests never assert wall-clock time).

    .venv/bin/python benchmarks/bench_synthetic.py [--identities 400] [--poses 4] [--workers 1 2]
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

from pgpis.data.deepfashion.synthetic import _identity_images, _Job, write_synthetic_deepfashion


def _cpu_seconds() -> float:
    """CPU time of this process and its reaped children (meaningful when the machine is shared)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--identities", type=int, default=400)
    ap.add_argument("--poses", type=int, default=4)
    ap.add_argument("--workers", type=int, nargs="+", default=[2])
    args = ap.parse_args()
    print(f"cpus={os.cpu_count()} load={os.getloadavg()[0]:.2f}")
    t0 = time.perf_counter()
    for i in range(50):
        _identity_images(_Job(0, i, args.poses, (256, 176)))
    print(f"render only: {(time.perf_counter() - t0) / (50 * args.poses) * 1e3:.2f} ms/image (1 process)")
    for workers in args.workers:
        out = Path(tempfile.mkdtemp(prefix="pgpis-bench-synth-"))
        try:
            t0, c0 = time.perf_counter(), _cpu_seconds()
            s = write_synthetic_deepfashion(out, identities=args.identities, poses=args.poses, workers=workers)
            dt, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
        finally:
            shutil.rmtree(out, ignore_errors=True)
        images = s["train_images"] + s["test_images"]
        print(f"write {args.identities}x{args.poses} (cfld, parsing) workers={workers}: {dt:.1f} s "
              f"wall, {cpu:.1f} s CPU ({images / dt:.0f} images/s; bar: 30 s wall on 2 free cores)")


if __name__ == "__main__":
    main()
