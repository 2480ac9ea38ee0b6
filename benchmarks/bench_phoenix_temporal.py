"""Frame-wise vs temporally consistent sampling on synthetic Phoenix: the table of docs/phoenix.md.

For each sampling variant and seed, the whole test split (each video's first frame to every
frame) is generated with :class:`pgpis.callbacks.inference.DDIMInference`'s generator (clip-wise
when an option is on), timed, and scored with the Phoenix protocol (SSIM and Hand SSIM at
260x210) plus the temporal metrics (warping error, hand warping error, tOF; tLP when the LPIPS
AlexNet weights are found). The ground truth's own temporal scores are the floor row.

    python benchmarks/bench_phoenix_temporal.py --checkpoint outputs/ldm_phoenix/tiny_fpdm_phoenix/checkpoints/last.ckpt \\
        --root data/synthetic/phoenix --out outputs/phoenix_temporal --seeds 0 1 2
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

VARIANTS = {
    "frame-wise": {},
    "shared noise": {"shared_noise": True},
    "cross-frame (first)": {"cross_frame": "first"},
    "shared noise + cross-frame (first)": {"shared_noise": True, "cross_frame": "first"},
    "shared noise + cross-frame (first+previous)": {"shared_noise": True, "cross_frame": "first+previous"},
}
COLUMNS = [("SSIM", "ssim", 1, 4), ("Hand SSIM", "hand_ssim", 1, 4), ("warp err x1e-3", "warping_error", 1e3, 3),
           ("hand warp err x1e-3", "hand_warping_error", 1e3, 3), ("tOF", "tof", 1, 3), ("tLP", "tlp", 1, 4),
           ("s / frame", "seconds_per_frame", 1, 3)]


def sampling_cost(pipe, dataset, collate, clip: range, variants: list[str], reps: int) -> None:
    """Seconds per frame of one clip per variant: repetitions interleaved, the minimum kept (a shared CPU's
    load only ever adds time)."""
    from pgpis.callbacks.video import generate_clip
    from pgpis.models.video import VideoSampling

    best = {name: float("inf") for name in variants}
    for _ in range(reps):
        for name in variants:
            start = time.perf_counter()
            generate_clip(pipe.module, dataset, collate, clip, VideoSampling(**VARIANTS[name], max_frames=len(clip)))
            best[name] = min(best[name], (time.perf_counter() - start) / len(clip))
    base = best.get("frame-wise")
    for name, t in best.items():
        print(f"| {name} | {t:.3f} s/frame" + (f" | x{t / base:.2f} |" if base else " |"))


def variant_folder(out: Path, name: str, seed: int) -> Path:
    return out / name.replace(" ", "_").replace("(", "").replace(")", "").replace("+", "-") / f"seed{seed}"


def run_variant(pipe, dataset, collate, n: int, out: Path, options: dict, seed: int) -> float:
    """Generate the split into `out`; seconds per frame."""
    from pgpis.callbacks.inference import DDIMInference
    from pgpis.models.video import VideoSampling

    pipe.module.seed = seed
    video = VideoSampling(**options) if options else None
    cb = DDIMInference(output_dir=str(out), batch_size=64, metrics_path=None, grid_path=None, video=video,
                       overwrite=True)
    start = time.perf_counter()
    cb.generate(pipe.module, dataset, collate, n)
    return (time.perf_counter() - start) / n


def score(root: str, out: Path) -> dict:
    from pgpis.data.phoenix.evaluate import evaluate_phoenix

    res = evaluate_phoenix(root, "test", out, hand_estimator="none", fid_cache_dir=None, temporal={"flow": "dis"},
                           allow_missing=True)  # --videos: the later videos are not generated
    return res.to_dict()


def write_gif(root: str, folders: dict[str, Path], out: Path, video_index: int = 0, height: int = 104) -> Path:
    """An animated side by side (ground truth | one folder per column) of one test video, labelled, at `height` px."""
    from PIL import Image, ImageDraw

    from pgpis.data.phoenix.evaluate import read_phoenix_frames
    from pgpis.metrics.pairs import generated_name

    frames = read_phoenix_frames(root, "test")
    source = sorted({s for s, _ in frames.pairs}, key=[s for s, _ in frames.pairs].index)[video_index]
    targets = [t for s, t in frames.pairs if s == source]
    width = round(height * 210 / 260)
    pictures = []
    for t in targets:
        cols = [Image.open(frames.path(t)).convert("RGB")]
        cols += [Image.open(f / generated_name(source, t)).convert("RGB") for f in folders.values()]
        canvas = Image.new("RGB", (width * len(cols), height + 14), "white")
        draw = ImageDraw.Draw(canvas)
        for i, (label, im) in enumerate(zip(["ground truth", *folders], cols)):
            canvas.paste(im.resize((width, height), Image.BICUBIC), (i * width, 14))
            draw.text((i * width + 2, 1), label, fill="black")
        pictures.append(canvas.quantize(colors=64))
    out.parent.mkdir(parents=True, exist_ok=True)
    pictures[0].save(out, save_all=True, append_images=pictures[1:], duration=120, loop=0, optimize=True)
    return out


def cell(values: list[float | None], scale: float, digits: int) -> str:
    vals = [v * scale for v in values if v is not None]
    if not vals:
        return "n/a"
    if len(vals) == 1:
        return f"{vals[0]:.{digits}f}"
    return f"{statistics.mean(vals):.{digits}f} ± {statistics.stdev(vals):.{digits}f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--root", default="data/synthetic/phoenix")
    p.add_argument("--out", default="outputs/phoenix_temporal")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--videos", type=int, default=None, help="only the first N test videos (quick runs)")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--cost", type=int, default=0, metavar="REPS",
                   help="only time one test video per variant, REPS interleaved repetitions (minimum kept)")
    p.add_argument("--table-only", action="store_true",
                   help="only rebuild the table (and GIF) from the metrics files already in --out")
    p.add_argument("--gif", default=None, help="write the side by side (ground truth | frame-wise | --gif-variant)")
    p.add_argument("--gif-variant", default="shared noise + cross-frame (first)", choices=list(VARIANTS))
    p.add_argument("--single-seed", nargs="*", default=[], choices=list(VARIANTS),
                   help="variants scored with the first seed only (to save time)")
    args = p.parse_args()
    torch.set_grad_enabled(False)
    from pgpis.data.phoenix import PhoenixDataModule
    from pgpis.inference.animate import load_for_animation

    out = Path(args.out)
    if args.table_only:
        rows = {name: [json.loads(f.read_text()) for f in sorted(variant_folder(out, name, 0).parent.glob("metrics_seed*.json"))]
                for name in args.variants}
        return report({k: v for k, v in rows.items() if v}, args, out)
    pipe, data = load_for_animation(args.checkpoint, device="cpu")
    keep = {"image_size", "encoder_inputs", "score_threshold", "draw_face"}
    dm = PhoenixDataModule(root=args.root, **{k: v for k, v in data.items() if k in keep}, num_workers=0)
    dm.setup("test")
    loader = dm.test_dataloader()
    dataset, collate = loader.dataset, loader.collate_fn
    clips = dataset.sequences()
    n = clips[min(args.videos, len(clips)) - 1].stop if args.videos else len(dataset)
    if args.cost:
        return sampling_cost(pipe, dataset, collate, clips[0], args.variants, args.cost)
    rows: dict[str, list[dict]] = {}
    for name in args.variants:
        for seed in args.seeds[:1] if name in args.single_seed else args.seeds:
            folder = variant_folder(out, name, seed)
            spf = run_variant(pipe, dataset, collate, n, folder, VARIANTS[name], seed)
            d = score(args.root, folder)
            d["seconds_per_frame"] = spf
            (folder.parent / f"metrics_seed{seed}.json").write_text(json.dumps(d, indent=2) + "\n")
            rows.setdefault(name, []).append(d)
            print(f"{name} seed {seed}: {spf:.3f} s/frame", flush=True)
    report(rows, args, out)


def report(rows: dict[str, list[dict]], args: argparse.Namespace, out: Path) -> None:
    """Print and write the table (mean ± standard deviation over seeds) and, with --gif, the animation."""
    floor = next(iter(rows.values()))[0]["temporal"]["ground_truth"] if rows else None
    lines = ["| sampling | seeds | " + " | ".join(c for c, *_ in COLUMNS) + " |",
             "|---|---|" + "---|" * len(COLUMNS)]
    for name, ds in rows.items():
        vals = []
        for _, key, scale, digits in COLUMNS:
            if key in ("ssim", "hand_ssim"):
                v = [d["metrics"].get(key) for d in ds]
            elif key == "seconds_per_frame":
                v = [d[key] for d in ds]
            else:
                v = [d["temporal"]["samples"].get(key) for d in ds]
            vals.append(cell(v, scale, digits))
        lines.append(f"| {name} | {len(ds)} | " + " | ".join(vals) + " |")
    if floor is not None:
        fl = [cell([floor.get(k)], s, dg) if k not in ("ssim", "hand_ssim", "seconds_per_frame") else
              ("1" if k != "seconds_per_frame" else "-") for _, k, s, dg in COLUMNS]
        lines.append("| ground truth (floor) | - | " + " | ".join(fl) + " |")
    table = "\n".join(lines)
    if args.gif:
        folders = {"frame-wise": variant_folder(out, "frame-wise", args.seeds[0]),
                   "consistent": variant_folder(out, args.gif_variant, args.seeds[0])}
        print("wrote", write_gif(args.root, folders, Path(args.gif)))
    (out / "table.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
