"""In-loop paired metrics (SSIM x2, PSNR, LPIPS) as a torchmetrics Metric for Lightning.

Batches in [-1, 1] are quantised to uint8 and PIL-bicubic resized to the
protocol's report size, i.e. exactly what `pgpis evaluate` reads back from the
PNGs written with :func:`pgpis.metrics.images.tensor_to_uint8`; with the batch
targets at the report size (PIL bicubic, as the DataModule makes them) the
numbers equal the folder evaluation. Per-pair values are kept with their pair
index and gathered across ranks, so DDP gives the single-process numbers and
counts each pair once (pass the batch's ``pair_index``).
"""
from __future__ import annotations

import torch

from pgpis.metrics.images import resize_pil, stack01, tensor_to_uint8
from pgpis.metrics.lpips_net import lpips_distance
from pgpis.metrics.protocols import Protocol, get_protocol
from pgpis.metrics.psnr import psnr
from pgpis.metrics.ssim import ssim_gaussian, ssim_window
from pgpis.metrics.states import IndexedValues


class PairedImageMetrics(IndexedValues):
    """``update(generated, target, pair_index)``; ``compute()`` -> {"ssim", "ssim_gaussian", "psnr"[, "lpips"]} means."""

    def __init__(self, protocol: str | Protocol, lpips_net: torch.nn.Module | None = None, **kwargs):
        names = ["ssim", "ssim_gaussian", "psnr"] + (["lpips"] if lpips_net is not None else [])
        super().__init__(names, **kwargs)
        self.protocol = get_protocol(protocol)
        self._lpips = [lpips_net] if lpips_net is not None else []  # in a list: not a submodule, not in checkpoints

    def update(self, generated: torch.Tensor, target: torch.Tensor, pair_index: torch.Tensor) -> None:  # type: ignore[override]
        p = self.protocol
        gen = [resize_pil(tensor_to_uint8(g), p.size) for g in generated]
        tgt = [resize_pil(tensor_to_uint8(t), p.size) for t in target]
        g01, t01 = stack01(gen), stack01(tgt)
        values = {
            "ssim": ssim_window(g01, t01, p.ssim_win_size),
            "ssim_gaussian": ssim_gaussian(g01, t01, p.ssim_gaussian_sigma, p.ssim_gaussian_data_range),
            "psnr": psnr(g01, t01, p.psnr_data_range),
        }
        if self._lpips:
            values["lpips"] = lpips_distance(self._lpips[0], g01.float(), t01.float())
        super().update(pair_index, **values)

    def compute(self) -> dict[str, torch.Tensor]:
        per_pair = super().compute()
        return {k: v.mean() for k, v in per_pair.items() if k != "index"}
