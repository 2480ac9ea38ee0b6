"""Pair metrics the callbacks log: SSIM, PSNR and foreground PSNR, DDP-exact, plus the two baselines.

Built on pgpis's own metric functions (:mod:`pgpis.metrics`) and its
:class:`~pgpis.metrics.states.IndexedValues` torchmetrics state, so a pair is
counted once whatever the number of ranks. Images are compared in [0, 1] at
the model's resolution:

* ``ssim``: Gaussian SSIM (Wang et al.: sigma 1.5, 11 taps, data range 1); the
  field's 51-px window does not fit the tiny preset's 32x24 images (use
  ``pgpis evaluate`` with a named protocol at the paper's sizes);
* ``psnr``: per-image PSNR, data range 1, averaged over pairs;
* ``fg_psnr``: PSNR over the target's parsing foreground (parsing != 0) only,
  i.e. the person, which a background-heavy image otherwise hides.

Baselines, the floors a pose-transfer model has to beat: ``copy_source`` (each
target replaced by its source image) and ``background_only`` (each target
replaced by a plain image of its background colour).
"""
from __future__ import annotations

import math
from typing import Mapping

import torch
from torch import Tensor

from pgpis.metrics.psnr import psnr
from pgpis.metrics.ssim import ssim_gaussian
from pgpis.metrics.states import IndexedValues

METRIC_NAMES = ("ssim", "psnr", "fg_psnr")
SSIM_DESCRIPTION = "Gaussian SSIM (sigma 1.5, 11 taps, data range 1) at the model resolution, images in [0, 1]"


def to01(images: Tensor) -> Tensor:
    """[-1, 1] -> [0, 1] (clamped)."""
    return (images.clamp(-1, 1) + 1) / 2


def foreground_psnr(pred01: Tensor, target01: Tensor, foreground: Tensor) -> Tensor:
    """Per-image PSNR over pixels where `foreground` [B, H, W] is True (NaN for an empty foreground)."""
    mask = foreground[:, None].to(torch.float64).expand_as(pred01)
    err = (pred01.to(torch.float64) - target01.to(torch.float64)).pow(2) * mask
    count = mask.flatten(1).sum(1)
    mse = err.flatten(1).sum(1) / count.clamp_min(1)
    out = 10.0 * torch.log10(1.0 / mse)
    return torch.where(count > 0, out, torch.full_like(out, math.nan))


def background_image(target: Tensor, parsing: Tensor | None) -> Tensor:
    """Each target replaced by a plain image of its background colour (median over parsing == 0, else the border)."""
    out = torch.empty_like(target)
    for i in range(target.shape[0]):
        pixels = target[i].flatten(1)  # [3, H*W]
        if parsing is not None and bool((parsing[i] == 0).any()):
            pixels = pixels[:, (parsing[i] == 0).flatten()]
        else:
            t = target[i]
            pixels = torch.cat([t[:, 0], t[:, -1], t[:, :, 0], t[:, :, -1]], dim=1)
        out[i] = pixels.median(dim=1).values[:, None, None]
    return out


def pair_scores(pred: Tensor, target: Tensor, parsing: Tensor | None) -> dict[str, Tensor]:
    """Per-pair metrics of images in [-1, 1] ([B, 3, H, W]); `parsing` [B, H, W] gives the foreground."""
    p01, t01 = to01(pred).to(torch.float64), to01(target).to(torch.float64)
    fg = (parsing != 0) if parsing is not None else torch.ones(target.shape[0], *target.shape[-2:], dtype=torch.bool)
    return {
        "ssim": ssim_gaussian(p01, t01, sigma=1.5, data_range=255.0),
        "psnr": psnr(p01, t01, 1.0),
        "fg_psnr": foreground_psnr(p01, t01, fg.to(p01.device)),
    }


class PairMetrics:
    """SSIM / PSNR / fg_psnr for several named prediction sets ("samples", "copy_source", ...)."""

    def __init__(self, sets: tuple[str, ...] = ("samples", "copy_source", "background_only")):
        self.states = {name: IndexedValues(METRIC_NAMES) for name in sets}

    def to(self, device: torch.device | str) -> "PairMetrics":
        self.states = {k: v.to(device) for k, v in self.states.items()}
        return self

    def update(self, name: str, index: Tensor, pred: Tensor, target: Tensor, parsing: Tensor | None) -> None:
        self.states[name].update(index, **pair_scores(pred, target, parsing))

    def update_baselines(self, index: Tensor, batch: Mapping[str, Tensor], target_key: str = "target") -> None:
        target, parsing = batch[target_key], batch.get("target_parsing")
        if "copy_source" in self.states:
            self.update("copy_source", index, batch["source"], target, parsing)
        if "background_only" in self.states:
            self.update("background_only", index, background_image(target, parsing), target, parsing)

    def update_empty(self) -> None:
        """A rank with no pairs still joins the gather."""
        for state in self.states.values():
            state.update_empty()

    def compute(self) -> dict[str, dict[str, float | None]]:
        """{set: {metric: mean over pairs}} (collective under DDP: call on every rank)."""
        out: dict[str, dict[str, float | None]] = {}
        for name, state in self.states.items():
            values = state.compute()
            out[name] = {}
            for m in METRIC_NAMES:
                v = values[m]
                v = v[torch.isfinite(v)]
                out[name][m] = float(v.mean()) if v.numel() else None
            out[name]["n_pairs"] = int(values["index"].numel())
        return out


def format_table(results: Mapping[str, Mapping[str, float | None]]) -> str:
    """A markdown table: one row per prediction set."""
    lines = ["| | SSIM | PSNR (dB) | fg PSNR (dB) |", "|---|---|---|---|"]
    for name, vals in results.items():
        cells = [f"{vals[m]:.4f}" if m == "ssim" and vals.get(m) is not None else
                 (f"{vals[m]:.2f}" if vals.get(m) is not None else "n/a") for m in METRIC_NAMES]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def bar_margins(results: Mapping[str, Mapping[str, float | None]]) -> dict[str, float]:
    """Issue 4's bar: samples vs the better baseline's SSIM, and vs copy-source PSNR / fg_psnr."""
    s, c, b = results["samples"], results["copy_source"], results["background_only"]
    return {
        "ssim_over_best_baseline": s["ssim"] - max(c["ssim"], b["ssim"]),
        "psnr_over_copy_source": s["psnr"] - c["psnr"],
        "fg_psnr_over_copy_source": s["fg_psnr"] - c["fg_psnr"],
    }
