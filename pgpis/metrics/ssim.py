"""SSIM in the two variants the pose-transfer papers report, matching scikit-image exactly.

The field's numbers come from ``skimage.metrics.structural_similarity`` called
two ways (PATN -> PISE -> PIDM -> CFLD -> FPDM evaluation scripts):

* ``ssim`` ("SSIM" in the tables): images in [0, 1], ``win_size=51``,
  ``data_range=1``, ``channel_axis=2``; skimage's defaults then give a
  *uniform* 51x51 window and the *sample* covariance (N / (N - 1)).
* ``ssim_gaussian`` ("SSIM_256" in PIDM/CFLD/FPDM code): images in 0-255,
  ``gaussian_weights=True, sigma=1.5, use_sample_covariance=False`` (Wang et
  al. 2004: 11-tap Gaussian, truncate 3.5) and
  ``data_range = generated.max() - generated.min()`` -- the reference scripts
  take the range from the generated image, not 255; pass ``data_range=255.0``
  for the textbook variant.

We call the same scipy.ndimage filters skimage uses (float64, reflected
borders, then the ``(win - 1) // 2`` border crop), once over the whole batch
and the five local moments stacked, instead of a per-image, per-channel loop.
(torch float64 conv2d has no fast CPU kernel: a 51-tap window took seconds per image.)
"""
from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from scipy.ndimage import gaussian_filter, uniform_filter

K1, K2 = 0.01, 0.03
GAUSSIAN_TRUNCATE = 3.5  # skimage's value for gaussian_weights=True
Window = Literal["uniform", "gaussian"]


def _filtered_stack(stack: np.ndarray, window: Window, win_size: int, sigma: float) -> np.ndarray:
    """skimage's local-mean filter over the last two axes of `stack`, cropped to the fully-covered pixels."""
    lead = (0,) * (stack.ndim - 2)
    if window == "uniform":
        out = uniform_filter(stack, size=(1,) * len(lead) + (win_size, win_size), mode="reflect")
    else:
        out = gaussian_filter(stack, sigma=lead + (sigma, sigma), truncate=GAUSSIAN_TRUNCATE, mode="reflect")
    pad = (win_size - 1) // 2
    return out[..., pad:out.shape[-2] - pad, pad:out.shape[-1] - pad]


def ssim_map_mean(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    window: Window,
    data_range: torch.Tensor | float,
    sample_covariance: bool,
    win_size: int = 7,
    sigma: float = 1.5,
) -> torch.Tensor:
    """Per-image mean SSIM of [B, C, H, W] images (channels averaged, as skimage's channel_axis).

    `data_range` is a scalar or one value per image.
    """
    if pred.shape != target.shape or pred.ndim != 4:
        raise ValueError(f"SSIM needs two [B, C, H, W] batches of equal shape, got {tuple(pred.shape)} and {tuple(target.shape)}")
    if window == "gaussian":
        win_size = 2 * int(GAUSSIAN_TRUNCATE * sigma + 0.5) + 1  # skimage's crop for gaussian_weights
    if win_size % 2 != 1 or win_size < 1:
        raise ValueError(f"SSIM win_size must be a positive odd number, got {win_size}")
    if min(pred.shape[-2:]) < win_size:
        raise ValueError(f"SSIM window {win_size} is larger than the images ({pred.shape[-2]}x{pred.shape[-1]}); use a larger report size")
    x = pred.detach().to("cpu", torch.float64).numpy()
    y = target.detach().to("cpu", torch.float64).numpy()
    ux, uy, uxx, uyy, uxy = _filtered_stack(np.stack([x, y, x * x, y * y, x * y]), window, win_size, sigma)
    n = win_size * win_size
    cov_norm = n / (n - 1) if sample_covariance else 1.0
    vx, vy, vxy = cov_norm * (uxx - ux * ux), cov_norm * (uyy - uy * uy), cov_norm * (uxy - ux * uy)
    r = torch.as_tensor(data_range, dtype=torch.float64).cpu().numpy().reshape(-1)
    r = np.broadcast_to(r, (x.shape[0],)).reshape(-1, 1, 1, 1)
    c1, c2 = (K1 * r) ** 2, (K2 * r) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return torch.from_numpy(s.mean(axis=(1, 2, 3)))


def ssim_window(pred01: torch.Tensor, target01: torch.Tensor, win_size: int = 51) -> torch.Tensor:
    """The field's "SSIM": uniform `win_size` window, sample covariance, images in [0, 1], data_range 1."""
    return ssim_map_mean(pred01, target01, window="uniform", win_size=win_size, data_range=1.0, sample_covariance=True)


def ssim_gaussian(
    pred01: torch.Tensor, target01: torch.Tensor, sigma: float = 1.5, data_range: float | None = None
) -> torch.Tensor:
    """Wang et al. SSIM on 0-255 (PIDM/CFLD/FPDM "SSIM_256"); `data_range` None = generated max - min.

    A constant generated image has range 0, for which skimage returns NaN; we use
    255 there so one blank output cannot turn the whole average into NaN.
    """
    x, y = pred01.to(torch.float64) * 255.0, target01.to(torch.float64) * 255.0
    if data_range is None:
        flat = x.flatten(1)
        rng = flat.amax(dim=1) - flat.amin(dim=1)
        rng = torch.where(rng > 0, rng, torch.full_like(rng, 255.0))
    else:
        rng = torch.full((x.shape[0],), float(data_range), dtype=torch.float64, device=x.device)
    return ssim_map_mean(x, y, window="gaussian", sigma=sigma, data_range=rng, sample_covariance=False)
