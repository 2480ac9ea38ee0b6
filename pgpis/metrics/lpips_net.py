"""LPIPS (lpips package, AlexNet) with the backbone file resolved by :mod:`pgpis.metrics.weights`.

``lpips.LPIPS(net="alex")`` asks torchvision to download the ImageNet AlexNet
whatever the offline setting. We build it with ``pnet_rand=True`` (no download;
the linear heads still load from the package) and then copy the AlexNet
``features.*`` tensors from ``alexnet-owt-7be5be79.pth`` (a local file, else,
online, a sha256-verified download into torch hub's cache) into lpips'
``net.slice*`` modules.
"""
from __future__ import annotations

import os
import warnings

import torch

from pgpis.metrics.weights import ALEXNET


def _alexnet_to_lpips(alexnet_state: dict[str, torch.Tensor], net: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Map torchvision ``features.<i>.<p>`` keys onto lpips' ``slice<k>.<i>.<p>`` keys."""
    mapped = {}
    for key in net.state_dict():
        _, idx, param = key.split(".")
        src = f"features.{idx}.{param}"
        if src not in alexnet_state:
            raise KeyError(f"AlexNet weight file lacks '{src}' (is it torchvision's alexnet-owt-7be5be79.pth?)")
        mapped[key] = alexnet_state[src]
    return mapped


def build_lpips(weights: str | os.PathLike | None = None, *, random_backbone: bool = False) -> torch.nn.Module:
    """An eval-mode ``lpips.LPIPS(net='alex')``; MissingWeightsError when AlexNet can be neither found nor fetched.

    `random_backbone=True` keeps lpips' ``pnet_rand`` backbone (tests, benchmarks):
    the numbers are then only good for checking plumbing, never for reporting.
    """
    import lpips

    path = None if random_backbone else ALEXNET.resolve(weights)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(pretrained|weight enum).*", category=UserWarning)
        model = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False)
    if path is not None:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.net.load_state_dict(_alexnet_to_lpips(state, model.net))
    return model.eval().requires_grad_(False)


@torch.no_grad()
def lpips_distance(model: torch.nn.Module, pred01: torch.Tensor, target01: torch.Tensor) -> torch.Tensor:
    """Per-image LPIPS of [B, 3, H, W] images in [0, 1] (mapped to [-1, 1] as lpips expects)."""
    p = next(model.parameters())
    out = model(pred01.to(p.device, p.dtype), target01.to(p.device, p.dtype), normalize=True)
    return out.reshape(out.shape[0]).to(torch.float64).cpu()
