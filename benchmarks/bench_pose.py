"""Images per second of each available pose-estimator backend, at DeepFashion's 750x1101 and Phoenix's 210x260.

The image is a real photo that ships with scikit-image (``skimage.data.astronaut()``, upper body), scaled to
fit each size and padded with white, so the detector and landmark models do the work they do on real data.
Backends that cannot run here are listed with their reason. Prints wall and CPU time (CPU time is the
meaningful figure on a shared machine); tests never assert wall-clock time.

    .venv/bin/python benchmarks/bench_pose.py [--images 10] [--backends mediapipe,rtmlib] [--threads 1]
"""
from __future__ import annotations

import argparse
import resource
import time

import numpy as np
from PIL import Image

# mediapipe also body-only: what pose accuracy needs (the hand landmarker is a second model per image)
VARIANTS = {"mediapipe": [{}, {"hands": False}]}
SIZES = {"deepfashion 750x1101": (1101, 750), "phoenix 210x260": (260, 210)}  # (h, w)


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def photo(size: tuple[int, int]) -> np.ndarray:
    """``skimage.data.astronaut()`` scaled to fit ``size`` (h, w), centred on white: uint8 RGB [h, w, 3]."""
    from skimage import data

    img = Image.fromarray(data.astronaut())
    h, w = size
    scale = min(w / img.width, h / img.height)
    img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.BICUBIC)
    canvas = Image.new("RGB", (w, h), (255, 255, 255))
    canvas.paste(img, ((w - img.width) // 2, (h - img.height) // 2))
    return np.asarray(canvas)


def bench(estimator, image: np.ndarray, n: int) -> tuple[float, float, int, int]:
    """(wall s, cpu s, images with a person, images with a hand) over ``n`` estimates after one warm-up."""
    estimator.estimate(image)  # model load / graph set-up out of the timing
    wall, cpu = time.perf_counter(), _cpu()
    found = hands = 0
    for _ in range(n):
        est = estimator.estimate(image)
        found += int(est.found)
        hands += int(est.hands is not None and bool((est.hands[..., 2] > 0).any()))
    return time.perf_counter() - wall, _cpu() - cpu, found, hands


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=10, help="timed estimates per backend and size")
    ap.add_argument("--backends", default=None, help="comma-separated names (default: every available backend)")
    ap.add_argument("--threads", type=int, default=1, help="torch / onnxruntime intra-op threads hint")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from pgpis.pose import available_estimators, load_estimator

    backends = available_estimators()
    wanted = args.backends.split(",") if args.backends else list(backends)
    runs = [(n, o) for n in wanted for o in VARIANTS.get(n, [{}])]
    for name, options in runs:
        reason = backends.get(name, f"unknown backend (known: {', '.join(backends)})")
        if reason is not None:
            print(f"{name}: skipped ({reason})")
            continue
        estimator = load_estimator(name, **options)
        print(f"{name}{options or ''}: {getattr(estimator, 'name', name)}")
        try:
            for label, size in SIZES.items():
                image = photo(size)
                wall, cpu, found, hands = bench(estimator, image, args.images)
                print(f"  {label:<22} {args.images / wall:7.1f} images/s wall ({1000 * wall / args.images:6.1f} ms), "
                      f"{1000 * cpu / args.images:6.1f} ms cpu per image; person found {found}/{args.images}, "
                      f"a hand {hands}/{args.images}")
        finally:
            close = getattr(estimator, "close", None)
            if callable(close):
                close()
    if torch.cuda.is_available():
        print("a GPU is present: rtmlib runs on it with onnxruntime-gpu and device='cuda' (not measured here)")


if __name__ == "__main__":
    main()
