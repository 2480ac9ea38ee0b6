"""Where the metric backbones' weight files are looked for (they cannot be downloaded here).

Each backbone is searched, in order, at: the explicit path (CLI flag / config
key), the environment variable, then the cache the owning library itself uses.
A miss raises :class:`pgpis.errors.MissingWeightsError` naming the file, where
it comes from and every place tried, so `pgpis evaluate` can report the metric
as unavailable and still compute the others.

| backbone | file | env var | library cache |
|---|---|---|---|
| LPIPS AlexNet (torchvision) | alexnet-owt-7be5be79.pth | PGPIS_ALEXNET_WEIGHTS | $TORCH_HOME/hub/checkpoints/ |
| clean-fid TF-Inception | inception-2015-12-05.pt | PGPIS_INCEPTION_WEIGHTS | /tmp/ (clean-fid's download folder) |
| torchvision Inception-v3 (legacy FID) | inception_v3_google-0cc3c7bd.pth | PGPIS_TORCHVISION_INCEPTION_WEIGHTS | $TORCH_HOME/hub/checkpoints/ |

The LPIPS linear heads ship inside the `lpips` package and need nothing.
"""
from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

from pgpis.errors import MissingWeightsError


@dataclass(frozen=True)
class WeightSpec:
    """One downloadable weight file and the places pgpis looks for it."""

    what: str
    filename: str
    url: str
    env: str
    cache_dir: str  # "torch_hub" or an absolute folder

    def cache_path(self) -> Path:
        if self.cache_dir == "torch_hub":
            import torch.hub

            return Path(torch.hub.get_dir()) / "checkpoints" / self.filename
        return Path(self.cache_dir) / self.filename

    def candidates(self, explicit: str | os.PathLike | None = None) -> list[tuple[str, Path]]:
        """(origin, path) pairs in search order."""
        found: list[tuple[str, Path]] = []
        if explicit:
            found.append(("explicit path", Path(explicit).expanduser()))
        if os.environ.get(self.env):
            found.append((f"${self.env}", Path(os.environ[self.env]).expanduser()))
        found.append(("library cache", self.cache_path()))
        return found

    def resolve(self, explicit: str | os.PathLike | None = None) -> Path:
        """First existing candidate; else MissingWeightsError listing the file and all places tried."""
        tried = self.candidates(explicit)
        for _, path in tried:
            if path.is_file():
                return path
        places = "; ".join(f"{origin}: {path}" for origin, path in tried)
        how = (f"Download {self.filename} from {self.url} on a machine with internet and either set "
               f"{self.env}=/path/to/{self.filename}, pass it explicitly, or copy it to {self.cache_path()}")
        raise MissingWeightsError(f"{self.what} weights ({self.filename})", places, how)


ALEXNET = WeightSpec(
    what="LPIPS AlexNet backbone",
    filename="alexnet-owt-7be5be79.pth",
    url="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    env="PGPIS_ALEXNET_WEIGHTS",
    cache_dir="torch_hub",
)
CLEAN_INCEPTION = WeightSpec(
    what="clean-fid TF-Inception (FID)",
    filename="inception-2015-12-05.pt",
    url="https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt",
    env="PGPIS_INCEPTION_WEIGHTS",
    cache_dir="./" if platform.system() == "Windows" else "/tmp",  # where clean-fid downloads it
)
TORCHVISION_INCEPTION = WeightSpec(
    what="torchvision Inception-v3 IMAGENET1K_V1 (legacy FID)",
    filename="inception_v3_google-0cc3c7bd.pth",
    url="https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth",
    env="PGPIS_TORCHVISION_INCEPTION_WEIGHTS",
    cache_dir="torch_hub",
)
