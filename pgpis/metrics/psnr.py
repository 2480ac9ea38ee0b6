"""PSNR as the reference scripts compute it (skimage ``peak_signal_noise_ratio``, data_range 1).

Per image ``10 log10(data_range^2 / MSE)`` in float64, averaged over pairs by the
caller. (torchmetrics' functional PSNR keeps ``data_range`` in float32, which
moves results by ~1e-7 dB from skimage; this keeps them equal to rounding.)
"""
from __future__ import annotations

import torch


def psnr(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-image PSNR of [B, C, H, W] batches; identical images give +inf, as skimage."""
    if pred.shape != target.shape:
        raise ValueError(f"PSNR needs batches of equal shape, got {tuple(pred.shape)} and {tuple(target.shape)}")
    mse = (pred.to(torch.float64) - target.to(torch.float64)).pow(2).flatten(1).mean(dim=1)
    return 10.0 * torch.log10(float(data_range) ** 2 / mse)
