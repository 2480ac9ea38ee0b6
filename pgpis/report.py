"""`pgpis report`: the demo's markdown report from the stages' metrics files.

It only reads what the stages wrote (``outputs/ipf/metrics.json``,
``outputs/ldm/metrics.json``, ``outputs/truepose/metrics.json``) and says
plainly when a stage has not been run; it never fills in numbers.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

RETRIEVAL_KEYS = ("R@1", "R@3", "R@5", "mean_rank", "source_top1")
RETRIEVAL_ROWS = {"A1": "A1: source embedding as query", "baseline": "A2: baseline loss",
                  "source_enhanced": "A3: source-enhanced loss"}
IMAGE_KEYS = ("ssim", "psnr", "fg_psnr")
IMAGE_ROWS = {"samples": "generated samples", "copy_source": "copy the source image",
              "background_only": "plain background"}


def _load(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.exists() else None


def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 100 else f"{v:.1f}"
    return str(v)


def retrieval_table(metrics: dict[str, Any]) -> list[str]:
    lines = ["| query | " + " | ".join(RETRIEVAL_KEYS) + " |", "|---" * (len(RETRIEVAL_KEYS) + 1) + "|"]
    for key, label in RETRIEVAL_ROWS.items():
        if key in metrics:
            lines.append(f"| {label} | " + " | ".join(_fmt(metrics[key].get(k)) for k in RETRIEVAL_KEYS) + " |")
    return lines


def image_table(columns: dict[str, dict[str, Any]]) -> list[str]:
    """Rows = what is compared, one column group per model run (FPDM, TruePose)."""
    names = list(columns)
    head = "| | " + " | ".join(f"{n} {k}" for n in names for k in IMAGE_KEYS) + " |"
    lines = [head, "|---" * (1 + len(names) * len(IMAGE_KEYS)) + "|"]
    for key, label in IMAGE_ROWS.items():
        if any(key in m for m in columns.values()):
            cells = [_fmt(columns[n].get(key, {}).get(k)) for n in names for k in IMAGE_KEYS]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def _grids(run_dir: Path, metrics: dict[str, Any], out_dir: Path) -> list[str]:
    found = [run_dir / metrics["grid"]] if isinstance(metrics.get("grid"), str) else sorted(run_dir.glob("*.png"))
    return [f"![{p.stem}]({os.path.relpath(p, out_dir)})" for p in found if p.exists()]


def write_report(outputs: Path, out: Path, data_root: Path | None = None, started: float | None = None) -> str:
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# pgpis demo report", "",
             "Embedded default: synthetic DeepFashion written by `pgpis data synth`, tiny model presets, CPU.", ""]
    if data_root is not None and (data_root / ".pgpis-synthetic").exists():
        summary = json.loads((data_root / ".pgpis-synthetic").read_text())
        lines += ["Dataset: " + ", ".join(f"{k} {v}" for k, v in summary.items() if k.endswith(("identities", "pairs", "images"))), ""]
    preview = outputs / "preview.png"
    if preview.exists():
        lines += [f"Preview of the data (source | target pose | source parsing | target): ![preview]({os.path.relpath(preview, out.parent)})", ""]

    lines += ["## Stage 1: Image-Pose Fusion retrieval (synthetic test gallery)", ""]
    ipf = _load(outputs / "ipf" / "metrics.json")
    lines += retrieval_table(ipf) if ipf else ["Not run (`make train-ipf`)."]
    lines.append("")

    lines += ["## Stage 2: pose transfer (synthetic test split)", ""]
    runs = {name: m for name, m in (("FPDM", _load(outputs / "ldm" / "metrics.json")),
                                    ("TruePose", _load(outputs / "truepose" / "metrics.json"))) if m}
    if runs:
        lines += image_table(runs) + [""]
        for name, sub in (("FPDM", "ldm"), ("TruePose", "truepose")):
            path = outputs / sub / "metrics.json"
            if name in runs and started is not None and path.stat().st_mtime < started:
                target = "make train-ldm" if sub == "ldm" else "make train-truepose"
                lines += [f"Note: the {name} column comes from an earlier run ({path} predates this demo); "
                          f"`{target}` refreshes it.", ""]
        lines.append("`fg_psnr` is the PSNR inside the target's parsing foreground (the person).")
        lines.append("")
        for name, sub in (("FPDM", "ldm"), ("TruePose", "truepose")):
            if name in runs:
                grids = _grids(outputs / sub, runs[name], out.parent)
                if grids:
                    lines += [f"### {name} samples", "", *grids, ""]
    else:
        lines += ["Not run (`make train-ldm`).", ""]
    if started is not None:
        lines += [f"Wall time of the demo: {(time.time() - started) / 60:.1f} min.", ""]
    text = "\n".join(lines)
    out.write_text(text)
    return text


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="pgpis report", description="Write the demo report from the stages' metrics files.")
    p.add_argument("--outputs", type=Path, default=Path("outputs"))
    p.add_argument("--out", type=Path, default=Path("outputs/demo/report.md"))
    p.add_argument("--data-root", type=Path, default=None)
    p.add_argument("--started", type=Path, default=None, help="file holding the demo's start time (seconds since epoch)")
    args = p.parse_args(argv)
    started = float(args.started.read_text().strip()) if args.started and args.started.exists() else None
    text = write_report(args.outputs, args.out, args.data_root, started)
    print(text)
    print(f"\nreport written to {args.out}")
    return 0
