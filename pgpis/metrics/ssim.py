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

skimage filters the whole image with reflected borders and then averages only
the pixels at least ``(win - 1) // 2`` from the border, where the window lies
fully inside the image. A *valid* filtering computes exactly those pixels,
so we run it batched in torch (float64) instead of a per-image scipy loop.
"""
from __future__ import annotations

import torch

K1, K2 = 0.01, 0.03
GAUSSIAN_TRUNCATE = 3.5  # skimage's value for gaussian_weights=True


def uniform_kernel(win_size: int) -> torch.Tensor:
    """1-D box window of odd length `win_size` (scipy ``uniform_filter``)."""
    if win_size % 2 != 1 or win_size < 1:
        raise ValueError(f"SSIM win_size must be a positive odd number, got {win_size}")
    return torch.full((win_size,), 1.0 / win_size, dtype=torch.float64)


def gaussian_kernel(sigma: float, truncate: float = GAUSSIAN_TRUNCATE) -> torch.Tensor:
    """1-D normalised Gaussian with scipy's radius ``int(truncate * sigma + 0.5)``."""
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def _filter_axis(x: torch.Tensor, k: torch.Tensor, dim: int) -> torch.Tensor:
    """Valid 1-D filtering along `dim`: box windows by cumulative sums, others by shifted sums.

    (float64 depthwise conv2d has no fast CPU kernel: a 51-tap window took
    seconds per image; these are plain vectorised ops and equally exact.)
    """
    n = k.numel()
    out_len = x.shape[dim] - n + 1
    if bool(torch.all(k == k[0])):
        c = torch.cumsum(x, dim=dim)
        zero = torch.zeros_like(c.narrow(dim, 0, 1))
        c = torch.cat([zero, c], dim=dim)
        return (c.narrow(dim, n, out_len) - c.narrow(dim, 0, out_len)) * k[0]
    acc = x.narrow(dim, 0, out_len) * k[0]
    for i in range(1, n):
        acc = acc + x.narrow(dim, i, out_len) * k[i]
    return acc


def _filter_valid(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Separable filtering of [..., H, W] keeping only the pixels whose window lies inside the image."""
    return _filter_axis(_filter_axis(x, k, -2), k, -1)


def ssim_map_mean(
    pred: torch.Tensor,
    target: torch.Tensor,
    kernel: torch.Tensor,
    data_range: torch.Tensor | float,
    sample_covariance: bool,
) -> torch.Tensor:
    """Per-image mean SSIM of [B, C, H, W] images (channels averaged, as skimage's channel_axis)."""
    if pred.shape != target.shape or pred.ndim != 4:
        raise ValueError(f"SSIM needs two [B, C, H, W] batches of equal shape, got {tuple(pred.shape)} and {tuple(target.shape)}")
    win = kernel.numel()
    if min(pred.shape[-2:]) < win:
        raise ValueError(f"SSIM window {win} is larger than the images ({pred.shape[-2]}x{pred.shape[-1]}); use a larger report size")
    x, y = pred.to(torch.float64), target.to(torch.float64)
    k = kernel.to(device=x.device)
    cov_norm = win * win / (win * win - 1) if sample_covariance else 1.0
    ux, uy, uxx, uyy, uxy = _filter_valid(torch.stack([x, y, x * x, y * y, x * y]), k)
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    r = torch.as_tensor(data_range, dtype=torch.float64, device=x.device).reshape(-1, 1, 1, 1)
    c1, c2 = (K1 * r) ** 2, (K2 * r) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.mean(dim=(1, 2, 3))


def ssim_window(pred01: torch.Tensor, target01: torch.Tensor, win_size: int = 51) -> torch.Tensor:
    """The field's "SSIM": uniform `win_size` window, sample covariance, images in [0, 1], data_range 1."""
    return ssim_map_mean(pred01, target01, uniform_kernel(win_size), 1.0, sample_covariance=True)


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
    return ssim_map_mean(x, y, gaussian_kernel(sigma), rng, sample_covariance=False)
