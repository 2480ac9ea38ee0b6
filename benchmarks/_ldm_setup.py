"""Shared set-up of the LDM benchmarks: the embedded default's FPDM (experiments/tiny/fpdm.yaml) with random weights.

The UNet, DINOv2 and image sizes are read from the tiny experiment, so the benchmarks time the model
`make demo` trains. The stage-1 export is replaced by a freshly built fusion model of the same
architecture (experiments/tiny/ipf.yaml's encoder preset, random weights): no `make train-ipf` needed.
"""
from __future__ import annotations

from pathlib import Path

import torch
import yaml

from pgpis.diffusion import PixelUnshuffleFirstStage, Sampler
from pgpis.models.combiner import Combiner
from pgpis.models.encoders import build_image_encoder
from pgpis.models.fpdm import FPDMDenoiser
from pgpis.models.fusion import FusionModel
from pgpis.stages.fusion_ldm import FusionLDM

REPO = Path(__file__).resolve().parents[1]


def _init_args(path: str, *keys: str) -> dict:
    node = yaml.safe_load((REPO / path).read_text())
    for key in keys:
        node = node[key]
    return node


def tiny_fpdm(batch_size: int, steps: int = 10, seed: int = 0):
    """(model, batch) of the tiny FPDM experiment's architecture and input sizes, random weights and inputs."""
    torch.manual_seed(seed)
    den_cfg = _init_args("experiments/tiny/fpdm.yaml", "model", "init_args", "denoiser", "init_args")
    data_cfg = _init_args("experiments/tiny/fpdm.yaml", "data", "init_args")
    ipf_encoder = _init_args("experiments/tiny/ipf.yaml", "model", "init_args", "encoder")
    encoder = build_image_encoder(ipf_encoder, "experiments/tiny/ipf.yaml: model.init_args.encoder")
    fusion = FusionModel(encoder, Combiner(encoder.embed_dim, dropout=0.1))
    den = FPDMDenoiser(unet=den_cfg["unet"], source_encoder=den_cfg["source_encoder"], fusion="ipf",
                       fusion_model=fusion, downsample_factor=den_cfg["downsample_factor"],
                       frozen_cache_size=den_cfg.get("frozen_cache_size", 0))
    model = FusionLDM(den, PixelUnshuffleFirstStage(2),
                      noise_scheduler={"prediction_type": "sample", "beta_schedule": "squaredcos_cap_v2"},
                      sampler=Sampler("DDIMScheduler", steps))
    g = torch.Generator().manual_seed(seed)
    img = lambda size: torch.rand((batch_size, 3, *size), generator=g) * 2 - 1  # noqa: E731
    size, views = tuple(data_cfg["image_size"]), data_cfg["encoder_inputs"]
    batch = {"target": img(size), "target_pose": img(size), "source": img(size),
             "dino_source": img(tuple(views["dino"])), "clip_source": img(tuple(views["clip"])),
             "clip_target_pose": img(tuple(views["clip"])), "pair_index": torch.arange(batch_size)}
    return model, batch


def median_time(fn, repeats: int) -> float:
    import statistics
    import time

    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)
