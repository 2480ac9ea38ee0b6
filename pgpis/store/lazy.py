"""A frozen encoder that training from a store never builds, but sampling may (built on first call).

Training from a store reads the encoder's outputs from disk, so the network is not constructed (no memory,
no start-up time). Sampling and evaluation stay online: the first batch without stored tensors builds it
from its config, loads the weights the store was written with (``<store>/weights/<part>.safetensors``, so a
randomly initialised tiny-preset encoder is the same one) and checks their digest. The build runs under a
forked RNG, so it draws nothing from the training run's random stream.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import torch
from torch import Tensor, nn

from pgpis.store.errors import StoreMismatchError
from pgpis.store.manifest import read_manifest, short, state_digest


class LazyFrozen:
    """Calls the frozen module built by `build` (see the module docstring); not an ``nn.Module`` on purpose:
    it is no submodule of the denoiser, so its weights are in no checkpoint and no optimiser."""

    def __init__(self, build: Callable[[], nn.Module], store: str | Path, part: str):
        self._build, self.store, self.part = build, str(store), part
        self.module: Optional[nn.Module] = None

    @property
    def built(self) -> bool:
        return self.module is not None

    def materialize(self, device: torch.device | str = "cpu") -> nn.Module:
        if self.module is None:
            from safetensors.torch import load_file

            record = read_manifest(self.store).parts[self.part]
            with torch.random.fork_rng(devices=[]):
                module = self._build()
            if record.weights_file:
                module.load_state_dict(load_file(str(Path(self.store) / record.weights_file)))
            digest = state_digest(module)
            if digest != record.weights_digest:
                raise StoreMismatchError(self.store, [f"weights digest of {self.part} differs: store "
                                                      f"{short(record.weights_digest)} vs model {short(digest)}"])
            self.module = module.requires_grad_(False).eval()
        return self.module.to(device)

    def __call__(self, *inputs: Tensor) -> Tensor:
        return self.materialize(inputs[0].device)(*inputs)

    def state_dict(self) -> dict[str, Tensor]:
        """The frozen weights (the built module's, else the store's weights file, read without building it)."""
        if self.module is not None:
            return {k: v.detach().cpu() for k, v in self.module.state_dict().items()}
        from safetensors.torch import load_file

        record = read_manifest(self.store).parts[self.part]
        if not record.weights_file:
            raise StoreMismatchError(self.store, [f"{self.part} has no weights file in the store"])
        return load_file(str(Path(self.store) / record.weights_file))


def lazy_frozen(model: nn.Module) -> dict[str, LazyFrozen]:
    """State-dict prefix -> :class:`LazyFrozen` for every frozen network under `model` that a store replaced
    (e.g. ``denoiser.source_encoder.``)."""
    out: dict[str, LazyFrozen] = {}
    for name, sub in model.named_modules():
        for attr, value in vars(sub).items():
            if isinstance(value, LazyFrozen):
                out[f"{name}.{attr}." if name else f"{attr}."] = value
    return out


def stored_parts(store: str | Path | None) -> dict[str, list[int]]:
    """Part name -> per-key shape for the parts `store` holds ({} without a store)."""
    if store is None:
        return {}
    return {name: list(rec.shape) for name, rec in read_manifest(store).parts.items()}
