"""Tiny SCHP-like ONNX parsers of known output, exported by the tests (as tests/test_pose_backends.py builds rtmlib
models): same input (``[1, 3, S, S]``, BGR normalised with SCHP's mean/std) and outputs (``parsing``, ``fusion``,
``edge``; SCHP's logits at a quarter of the input) as the real exports, so pgpis's pre- and postprocessing run
unchanged.

The fusion logits (output 1, the ones SCHP uses) read colours: a red pixel is Upper-clothes, a blue one Pants
(ATR: their ATR indices), black (the warp's border) and anything else Background. A parser that fed RGB instead of
BGR would swap the two; one that took output 0 would see Hair everywhere. pytest puts tests/ on sys.path.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from pgpis.data.parsing import ATR, LIP

RED, BLUE = (220, 20, 20), (20, 20, 220)  # RGB


def export_schp_like(path: Path, dataset: str = "lip", size: int | None = None) -> Path:
    """Write the tiny model to `path` (input side `size`, default SCHP's 473 for LIP and 512 for ATR)."""
    import torch

    labels = LIP if dataset == "lip" else ATR
    size = size or (473 if dataset == "lip" else 512)
    n = labels.num_classes
    upper, pants, hair = (labels.index(c) for c in ("Upper-clothes", "Pants", "Hair"))

    class Schp(torch.nn.Module):
        def __init__(self):
            super().__init__()
            weight = torch.zeros(n, 3, 1, 1)
            bias = torch.full((n,), -10.0)
            bias[0] = 0.0  # background: beaten only by a clear red or blue
            weight[upper, 2, 0, 0] = 1.0  # BGR input: channel 2 is red
            weight[pants, 0, 0, 0] = 1.0  # channel 0 is blue
            bias[upper] = bias[pants] = -0.5
            self.fusion = torch.nn.Conv2d(3, n, 1)
            self.fusion.weight.data, self.fusion.bias.data = weight, bias
            self.pool = torch.nn.AvgPool2d(4)

        def forward(self, x):
            fusion = self.fusion(self.pool(x))
            parsing = torch.zeros_like(fusion)
            parsing[:, hair] = 1.0  # output 0 says "hair" everywhere: using it would be caught
            edge = torch.zeros_like(fusion[:, :2])
            return parsing, fusion, edge

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kwargs = dict(input_names=["input.1"], output_names=["parsing", "fusion", "edge"])
        try:
            torch.onnx.export(Schp(), (torch.zeros(1, 3, size, size),), str(path), dynamo=False, **kwargs)
        except TypeError:  # a torch without the TorchScript exporter
            torch.onnx.export(Schp(), (torch.zeros(1, 3, size, size),), str(path), **kwargs)
    return path


def two_colour_person(height: int, width: int, split: float = 0.5) -> np.ndarray:
    """RGB uint8: a red top (`split` of the height) over a blue bottom, on nothing else."""
    img = np.empty((height, width, 3), np.uint8)
    cut = int(round(height * split))
    img[:cut] = RED
    img[cut:] = BLUE
    return img
