"""FID feature extractors (clean-fid standard, torchvision legacy), Fréchet distance, real-set cache.

An extractor turns one report-size uint8 image into the tensor its network
wants (`preprocess`, CPU, per image) and a batch of those into features
(`features`). The Fréchet distance and the mean/covariance estimate are
clean-fid's (``np.cov``, scipy ``sqrtm``), so "FID" here is clean-fid's number.

Real-set statistics are cached as ``.npz`` files whose name contains a hash of
protocol + extractor (incl. its weight file) + every real file's path, size and
mtime: adding, removing or touching an image yields a new key, never a stale hit.
"""
from __future__ import annotations

import abc
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from pgpis.atomic import atomic_write
from pgpis.metrics.protocols import Protocol
from pgpis.metrics.weights import CLEAN_INCEPTION, TORCHVISION_INCEPTION


class FeatureExtractor(abc.ABC):
    """Base: `preprocess` one uint8 HWC image, `features` of a stacked batch -> [B, dim] float64."""

    name: str = "base"
    dim: int = 2048
    weights_id: str = ""  # identifies the weights in cache keys

    @abc.abstractmethod
    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        """CPU tensor for one report-size uint8 [H, W, 3] image."""

    @abc.abstractmethod
    def features(self, batch: torch.Tensor) -> torch.Tensor:
        """[B, dim] float64 CPU features of a stack of `preprocess` outputs."""

    def to(self, device: str | torch.device) -> "FeatureExtractor":
        return self

    def cache_id(self) -> str:
        return f"{self.name}[{self.weights_id}]"


def _file_id(path: Path) -> str:
    st = path.stat()
    return f"{path.name}:{st.st_size}:{st.st_mtime_ns}"


class CleanFidExtractor(FeatureExtractor):
    """clean-fid's "clean" mode: PIL-bicubic (float) resize to 299, then `model_fn` on 0-255 input.

    `model_fn` is clean-fid's TF-Inception by default; any callable with the same
    contract as clean-fid's ``custom_feat_extractor`` can be passed instead.
    """

    def __init__(self, model_fn: Callable[[torch.Tensor], torch.Tensor], *, name: str, dim: int, weights_id: str = ""):
        from cleanfid.resize import build_resizer

        self.model_fn, self.name, self.dim, self.weights_id = model_fn, name, dim, weights_id
        self._resize = build_resizer("clean")
        self.device = torch.device("cpu")

    @classmethod
    def inception(cls, weights: str | os.PathLike | None = None) -> "CleanFidExtractor":
        """clean-fid's TF-Inception (inception-2015-12-05.pt): a local file, else (online) a verified download."""
        from cleanfid.inception_torchscript import InceptionV3W

        path = CLEAN_INCEPTION.resolve(weights)
        folder = path.parent
        if path.name != CLEAN_INCEPTION.filename:  # InceptionV3W wants <folder>/inception-2015-12-05.pt
            folder = Path(tempfile.mkdtemp(prefix="pgpis-inception-"))
            (folder / CLEAN_INCEPTION.filename).symlink_to(path.resolve())
        model = InceptionV3W(str(folder), download=False, resize_inside=False).eval()
        ext = cls(model, name="clean-fid-inception", dim=2048, weights_id=_file_id(path))
        ext.module = model
        return ext

    def to(self, device: str | torch.device) -> "CleanFidExtractor":
        self.device = torch.device(device)
        if isinstance(getattr(self, "module", None), torch.nn.Module):
            self.module.to(self.device)
        elif isinstance(self.model_fn, torch.nn.Module):
            self.model_fn.to(self.device)
        return self

    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        # exactly cleanfid.utils.ResizeDataset: float32 resize, ToTensor without rescaling
        return torch.from_numpy(np.ascontiguousarray(self._resize(image).transpose(2, 0, 1)))

    @torch.no_grad()
    def features(self, batch: torch.Tensor) -> torch.Tensor:
        return self.model_fn(batch.to(self.device)).detach().cpu().to(torch.float64)


class TorchvisionInceptionExtractor(FeatureExtractor):
    """The legacy PIDM/CFLD/FPDM FID network: torchvision Inception-v3 (IMAGENET1K_V1) pool features.

    Reproduces their ``forward_inception``: [0, 1] input, bilinear resize to 299,
    torchvision's ``transform_input`` formula, blocks up to the global average pool.
    (Their loop also dropped the last incomplete batch; we use every image.)
    """

    name = "torchvision-inception-v3"

    def __init__(self, weights: str | os.PathLike | None = None, *, module: torch.nn.Module | None = None):
        if module is None:
            from torchvision.models import inception_v3

            path = TORCHVISION_INCEPTION.resolve(weights)  # local file, else (online) a verified download
            net = inception_v3(weights=None, aux_logits=True, init_weights=False)
            net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            self.weights_id = _file_id(path)
        else:
            net, self.weights_id = module, "in-memory"
        self.blocks = torch.nn.Sequential(
            net.Conv2d_1a_3x3, net.Conv2d_2a_3x3, net.Conv2d_2b_3x3, torch.nn.MaxPool2d(3, 2),
            net.Conv2d_3b_1x1, net.Conv2d_4a_3x3, torch.nn.MaxPool2d(3, 2),
            net.Mixed_5b, net.Mixed_5c, net.Mixed_5d, net.Mixed_6a, net.Mixed_6b, net.Mixed_6c,
            net.Mixed_6d, net.Mixed_6e, net.Mixed_7a, net.Mixed_7b, net.Mixed_7c,
            torch.nn.AdaptiveAvgPool2d((1, 1)),
        ).eval().requires_grad_(False)
        self.device = torch.device("cpu")

    def to(self, device: str | torch.device) -> "TorchvisionInceptionExtractor":
        self.device = torch.device(device)
        self.blocks.to(self.device)
        return self

    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).to(torch.float32) / 255.0

    @torch.no_grad()
    def features(self, batch: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(batch.to(self.device), size=(299, 299), mode="bilinear")
        x = torch.cat([
            x[:, 0:1] * (0.229 / 0.5) + (0.485 - 0.5) / 0.5,
            x[:, 1:2] * (0.224 / 0.5) + (0.456 - 0.5) / 0.5,
            x[:, 2:3] * (0.225 / 0.5) + (0.406 - 0.5) / 0.5,
        ], dim=1)
        return self.blocks(x).flatten(1).cpu().to(torch.float64)


def build_extractor(protocol: Protocol, weights: str | os.PathLike | None = None) -> FeatureExtractor:
    """The protocol's FID network (weights: local, else downloaded online; MissingWeightsError when neither)."""
    if protocol.fid_extractor == "clean":
        return CleanFidExtractor.inception(weights)
    if protocol.fid_extractor == "torchvision":
        return TorchvisionInceptionExtractor(weights)
    raise ValueError(f"protocol '{protocol.name}': unknown fid_extractor '{protocol.fid_extractor}'")


# --------------------------------------------------------------------------- statistics
@dataclass(frozen=True)
class GaussianStats:
    """Mean and covariance of a feature set (clean-fid's estimator)."""

    mu: np.ndarray
    sigma: np.ndarray
    n: int

    @classmethod
    def of(cls, feats: np.ndarray) -> "GaussianStats":
        if feats.shape[0] < 2:
            raise ValueError(f"FID needs at least 2 images to estimate a covariance, got {feats.shape[0]}")
        return cls(np.mean(feats, axis=0), np.cov(feats, rowvar=False), int(feats.shape[0]))


def frechet_distance(a: GaussianStats, b: GaussianStats) -> float:
    """clean-fid's Fréchet distance (scipy sqrtm, eps retry on singular products)."""
    from cleanfid.fid import frechet_distance as _fd

    return float(_fd(a.mu, a.sigma, b.mu, b.sigma))


def real_stats_key(protocol: Protocol, extractor: FeatureExtractor, files: Sequence[Path]) -> str:
    """Hash of protocol settings, extractor identity and each file's path/size/mtime (sorted)."""
    entries = []
    for f in sorted(Path(p).resolve() for p in files):
        st = f.stat()
        entries.append([str(f), st.st_size, st.st_mtime_ns])
    blob = json.dumps({"protocol": protocol.as_dict(), "extractor": extractor.cache_id(), "files": entries},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def cache_file(cache_dir: Path, protocol: Protocol, extractor: FeatureExtractor, files: Sequence[Path]) -> Path:
    return Path(cache_dir) / f"{protocol.name}-{extractor.name}-{real_stats_key(protocol, extractor, files)[:24]}.npz"


def load_stats(path: Path) -> GaussianStats | None:
    if not path.is_file():
        return None
    with np.load(path) as z:
        return GaussianStats(z["mu"], z["sigma"], int(z["n"]))


def save_stats(path: Path, stats: GaussianStats) -> None:
    """Atomic write (temp file + rename) so a concurrent reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda fh: np.savez(fh, mu=stats.mu, sigma=stats.sigma, n=stats.n))
