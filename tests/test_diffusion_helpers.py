"""A small conditional denoiser and batch for testing the diffusion core (not part of the package).

`TinyTestDenoiser` is a real diffusers ``UNet2DConditionModel`` (test-suite size)
with two condition groups: "pose" (the target pose image resized to the latent
grid, concatenated to the input) and "source" (source image patches -> tokens
for cross-attention). Dropped groups are zeroed per sample. It counts
``encode_conditions`` and ``forward`` calls so tests can check the sampler's
once-per-sample / one-call-per-step claims.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F
from diffusers import UNet2DConditionModel
from torch import Tensor, nn

from pgpis.diffusion.denoiser import ConditionalDenoiser, Conditions, KeepMask


class TinyTestDenoiser(ConditionalDenoiser):
    condition_groups = ("pose", "source")

    def __init__(self, latent_channels: int = 12, latent_size: int = 8, token_grid: int = 4, width: int = 32):
        super().__init__()
        self.latent_size, self.token_grid = latent_size, token_grid
        self.unet = UNet2DConditionModel(
            sample_size=latent_size,
            in_channels=latent_channels + 3,
            out_channels=latent_channels,
            block_out_channels=(width, 2 * width),
            layers_per_block=1,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            cross_attention_dim=32,
            attention_head_dim=8,
            norm_num_groups=8,
        )
        self.source_proj = nn.Linear(3, 32)
        self.encode_calls = 0
        self.forward_calls = 0

    def encode_conditions(self, batch: Mapping[str, Any], keep=None) -> Conditions:
        self.encode_calls += 1
        src, pose = batch["source"], batch["target_pose"]
        pose_small = F.avg_pool2d(pose, 2)  # resized to the latent grid in forward
        patches = F.adaptive_avg_pool2d(src, self.token_grid).flatten(2).transpose(1, 2)  # [B, g*g, 3]
        return {"pose": pose_small, "source": self.source_proj(patches)}

    def forward(self, noisy_latents: Tensor, timesteps: Tensor, conditions: Conditions, keep: KeepMask) -> Tensor:
        self.forward_calls += 1
        kp = keep["pose"].to(noisy_latents.dtype)[:, None, None, None]
        ks = keep["source"].to(noisy_latents.dtype)[:, None, None]
        pose = F.interpolate(conditions["pose"], size=noisy_latents.shape[-2:], mode="area") * kp
        x = torch.cat([noisy_latents, pose.to(noisy_latents.dtype)], dim=1)
        return self.unet(x, timesteps, encoder_hidden_states=conditions["source"] * ks).sample

    def enable_gradient_checkpointing(self) -> None:
        self.unet.enable_gradient_checkpointing()


def random_batch(batch_size: int = 2, size: tuple[int, int] = (16, 16), seed: int = 0) -> dict[str, Any]:
    g = torch.Generator().manual_seed(seed)
    img = lambda: torch.rand((batch_size, 3, *size), generator=g) * 2 - 1  # noqa: E731
    return {
        "source": img(),
        "target": img(),
        "target_pose": img(),
        "target_parsing": (torch.rand((batch_size, *size), generator=g) > 0.5).long(),
        "pair_index": torch.arange(batch_size),
        "source_name": [f"s{i}.jpg" for i in range(batch_size)],
        "target_name": [f"t{i}.jpg" for i in range(batch_size)],
    }


def test_tiny_denoiser_shapes():
    den = TinyTestDenoiser()
    batch = random_batch()
    cond = den.encode_conditions(batch)
    out = den(torch.randn(2, 12, 8, 8), torch.tensor([1, 500]), cond, den.all_kept(2, "cpu"))
    assert out.shape == (2, 12, 8, 8)


class RandomPairs(torch.utils.data.Dataset):
    """Deterministic random pairs with the DeepFashion batch keys the core and callbacks read."""

    def __init__(self, n: int = 8, size: tuple[int, int] = (16, 16), seed: int = 0):
        self.items = [random_batch(1, size, seed * 1000 + i) for i in range(n)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = {k: v[0] for k, v in self.items[i].items()}
        item["pair_index"] = i
        item["source_name"], item["target_name"] = f"src{i}.jpg", f"tgt{i}.jpg"
        return item


class RandomPairsDataModule(__import__("lightning").pytorch.LightningDataModule):
    """Unshuffled, so a resumed run sees the same batches as an uninterrupted one."""

    def __init__(self, n: int = 8, batch_size: int = 2, size: tuple[int, int] = (16, 16)):
        super().__init__()
        self.n, self.batch_size, self.size = n, batch_size, size

    def train_dataloader(self):
        return torch.utils.data.DataLoader(RandomPairs(self.n, self.size), batch_size=self.batch_size)

    def val_dataloader(self):
        return torch.utils.data.DataLoader(RandomPairs(4, self.size, seed=1), batch_size=self.batch_size)

    def test_dataloader(self):
        return torch.utils.data.DataLoader(RandomPairs(5, self.size, seed=2), batch_size=self.batch_size)


class RecordGuidance(__import__("lightning").pytorch.Callback):
    """Writes the module's guidance policy at setup to `path` (what a `pgpis validate/test` run samples with)."""

    def __init__(self, path: str):
        self.path = path

    def setup(self, trainer, pl_module, stage: str) -> None:
        from pathlib import Path

        Path(self.path).write_text(repr(pl_module.guidance))
