"""Shared set-up of the LDM benchmarks: the tiny FPDM preset's shapes with random weights and inputs."""
from __future__ import annotations

import torch

from pgpis.diffusion import PixelUnshuffleFirstStage, Sampler
from pgpis.models.fpdm import FPDMDenoiser
from pgpis.stages.fusion_ldm import FusionLDM


def tiny_fpdm(batch_size: int, image_size=(32, 32), steps: int = 10, seed: int = 0):
    """(model, batch): experiments/tiny/fpdm.yaml's architecture; fusion = frozen tiny CLIP (no IPF export needed)."""
    torch.manual_seed(seed)
    den = FPDMDenoiser(unet={"preset": "cpu-small", "in_channels": 12, "out_channels": 12},
                       source_encoder={"preset": "tiny", "size": [64, 64]}, fusion="clip",
                       clip_encoder={"backend": "clip", "preset": "tiny"}, downsample_factor=2)
    model = FusionLDM(den, PixelUnshuffleFirstStage(2),
                      noise_scheduler={"prediction_type": "sample", "beta_schedule": "squaredcos_cap_v2"},
                      sampler=Sampler("DDIMScheduler", steps))
    g = torch.Generator().manual_seed(seed)
    img = lambda size: torch.rand((batch_size, 3, *size), generator=g) * 2 - 1  # noqa: E731
    batch = {"target": img(image_size), "target_pose": img(image_size), "source": img(image_size),
             "dino_source": img((64, 64)), "clip_source": img((64, 64)), "pair_index": torch.arange(batch_size)}
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
