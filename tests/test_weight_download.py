"""Metric weights online: downloaded into the owning library's cache, checked, refused when bad; offline: named error.

There is no network here: the libraries' download functions are replaced by stubs
that write small fake files, and the expected sha256 is computed from those bytes.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import pgpis.metrics.fid as fid_mod
import pgpis.metrics.lpips_net as lpips_mod
from pgpis.errors import MissingWeightsError
from pgpis.metrics.evaluate import evaluate_pairs
from pgpis.metrics.fid import CleanFidExtractor, TorchvisionInceptionExtractor
from pgpis.metrics.lpips_net import build_lpips
from pgpis.metrics.pairs import generated_name, match_generated
from pgpis.metrics.protocols import Protocol
from pgpis.metrics.weights import ALEXNET, CLEAN_INCEPTION, TORCHVISION_INCEPTION, WeightVerificationError

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.:FutureWarning")  # clean-fid's format is TorchScript

SPECS = (ALEXNET, CLEAN_INCEPTION, TORCHVISION_INCEPTION)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture()
def online(tmp_path, monkeypatch):
    """Online, TORCH_HOME and clean-fid's folder in tmp dirs, no weight env vars; returns the two cache folders."""
    for var in ("HF_HUB_OFFLINE", "PGPIS_OFFLINE") + tuple(s.env for s in SPECS):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    cf = tmp_path / "cleanfid"
    monkeypatch.setattr(fid_mod, "CLEAN_INCEPTION", dataclasses.replace(CLEAN_INCEPTION, cache_dir=str(cf)))
    return tmp_path / "torch" / "hub" / "checkpoints", cf


@pytest.fixture()
def torch_download(monkeypatch):
    """Replace torch.hub.download_url_to_file; `calls` records (url, dst, hash_prefix), `payload` what it writes."""
    state = {"calls": [], "payload": b""}

    def fake(url, dst, hash_prefix=None, progress=True):
        state["calls"].append((url, Path(dst), hash_prefix))
        Path(dst).write_bytes(state["payload"])  # ignores hash_prefix: pgpis must check the file itself

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake)
    return state


@pytest.fixture()
def cleanfid_download(monkeypatch):
    """Replace clean-fid's check_download_inception(fpath); records the folder it was asked to write into."""
    from cleanfid import downloads_helper

    state = {"calls": [], "payload": b""}

    def fake(fpath="./"):
        state["calls"].append(Path(fpath))
        out = Path(fpath) / "inception-2015-12-05.pt"
        out.write_bytes(state["payload"])
        return str(out)

    monkeypatch.setattr(downloads_helper, "check_download_inception", fake)
    return state


def alexnet_features_bytes() -> tuple[bytes, dict[str, torch.Tensor]]:
    """A torch.save'd AlexNet ``features.*`` state dict (random values, the real shapes)."""
    torch.manual_seed(3)
    shapes = {0: (64, 3, 11, 11), 3: (192, 64, 5, 5), 6: (384, 192, 3, 3), 8: (256, 384, 3, 3), 10: (256, 256, 3, 3)}
    state = {}
    for i, shape in shapes.items():
        state[f"features.{i}.weight"] = torch.randn(shape) * 0.01
        state[f"features.{i}.bias"] = torch.randn(shape[0]) * 0.01
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue(), state


class _TinyInception(torch.nn.Module):
    """Stands in for clean-fid's TorchScript Inception: a ``layers`` module giving [B, 2048]."""

    def __init__(self):
        super().__init__()
        self.layers = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(3, 2048))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def tiny_torchscript_bytes() -> bytes:
    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(_TinyInception().eval()), buf)
    return buf.getvalue()


def only_final_file(folder: Path, name: str) -> None:
    """The cache folder holds the final file and nothing half-written beside it."""
    assert sorted(p.name for p in folder.iterdir()) == [name]


# --------------------------------------------------------------------------- torchvision files (torch hub cache)
def test_alexnet_downloads_into_torch_hub_cache_and_is_used(online, torch_download, monkeypatch):
    hub, _ = online
    data, state = alexnet_features_bytes()
    torch_download["payload"] = data
    spec = dataclasses.replace(ALEXNET, sha256=sha256(data)[:8])  # the published prefix, for our fake bytes
    monkeypatch.setattr(lpips_mod, "ALEXNET", spec)

    net = build_lpips()

    [(url, dst, prefix)] = torch_download["calls"]
    assert url == "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth" and prefix == spec.sha256
    assert dst.parent.parent == hub  # written beside the final file, then moved
    assert (hub / "alexnet-owt-7be5be79.pth").read_bytes() == data
    only_final_file(hub, "alexnet-owt-7be5be79.pth")
    assert torch.equal(getattr(net.net.slice1, "0").weight, state["features.0.weight"])
    assert torch.equal(getattr(net.net.slice5, "10").bias, state["features.10.bias"])
    build_lpips()  # now a cache hit: no second download
    assert len(torch_download["calls"]) == 1


@pytest.mark.parametrize("spec", [ALEXNET, TORCHVISION_INCEPTION], ids=lambda s: s.filename)
def test_torchvision_file_failing_its_checksum_is_refused_and_not_cached(online, torch_download, spec):
    hub, _ = online
    torch_download["payload"] = b"<html>a proxy's error page</html>"
    with pytest.raises(WeightVerificationError) as err:
        spec.resolve()
    msg = str(err.value)
    assert spec.filename in msg and spec.url in msg and spec.env in msg
    assert f"expected sha256 starting {spec.sha256}" in msg and sha256(torch_download["payload"]) in msg
    assert isinstance(err.value, MissingWeightsError)  # so `pgpis evaluate` reports the metric as unavailable
    assert list(hub.iterdir()) == []


def test_torch_hubs_own_hash_error_becomes_the_named_error(online, monkeypatch):
    hub, _ = online
    got = "f" * 64

    def torch_like(url, dst, hash_prefix=None, progress=True):  # what torch.hub does on a mismatch
        raise RuntimeError(f'invalid hash value (expected "{hash_prefix}", got "{got}")')

    monkeypatch.setattr(torch.hub, "download_url_to_file", torch_like)
    with pytest.raises(WeightVerificationError, match=f"got {got}") as err:
        TorchvisionInceptionExtractor()
    assert "inception_v3_google-0cc3c7bd.pth" in str(err.value)
    assert list(hub.iterdir()) == []


def test_failed_download_is_a_missing_weights_error_with_the_url(online, monkeypatch):
    hub, _ = online

    def no_network(url, dst, hash_prefix=None, progress=True):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    with pytest.raises(MissingWeightsError) as err:
        build_lpips()
    assert not isinstance(err.value, WeightVerificationError)
    msg = str(err.value)
    assert "Downloading https://download.pytorch.org/models/alexnet-owt-7be5be79.pth failed" in msg
    assert "name resolution" in msg and "PGPIS_ALEXNET_WEIGHTS" in msg
    assert list(hub.iterdir()) == []


def test_a_named_missing_file_is_reported_not_replaced_by_a_download(online, torch_download, tmp_path):
    with pytest.raises(MissingWeightsError, match="my-alexnet.pth"):
        build_lpips(tmp_path / "my-alexnet.pth")
    assert torch_download["calls"] == []


# --------------------------------------------------------------------------- clean-fid's TF-Inception (its folder)
def test_clean_fid_inception_downloads_into_clean_fids_folder_and_is_used(online, cleanfid_download):
    _, cf = online
    cleanfid_download["payload"] = tiny_torchscript_bytes()
    ext = CleanFidExtractor.inception()
    [folder] = cleanfid_download["calls"]
    assert folder.parent == cf  # clean-fid's own downloader, into a scratch folder beside the final file
    only_final_file(cf, "inception-2015-12-05.pt")
    feats = ext.features(torch.zeros(2, 3, 299, 299))
    assert feats.shape == (2, 2048)


def test_clean_fid_inception_that_does_not_load_is_refused_and_not_cached(online, cleanfid_download):
    _, cf = online
    cleanfid_download["payload"] = b"\x00" * 64  # a cut transfer
    with pytest.raises(WeightVerificationError) as err:
        CleanFidExtractor.inception()
    msg = str(err.value)
    assert "inception-2015-12-05.pt" in msg and "TorchScript" in msg and "PGPIS_INCEPTION_WEIGHTS" in msg
    assert list(cf.iterdir()) == []


def test_clean_fid_inception_with_a_pinned_checksum_is_checked(online, cleanfid_download, monkeypatch):
    _, cf = online
    data = tiny_torchscript_bytes()
    cleanfid_download["payload"] = data
    pinned = dataclasses.replace(fid_mod.CLEAN_INCEPTION, sha256=sha256(data))
    assert pinned.resolve() == cf / "inception-2015-12-05.pt"
    (cf / "inception-2015-12-05.pt").unlink()
    with pytest.raises(WeightVerificationError, match="expected sha256 starting 0000"):
        dataclasses.replace(pinned, sha256="0000").resolve()
    assert list(cf.iterdir()) == []


def test_spec_url_is_the_one_clean_fid_downloads():
    from cleanfid import downloads_helper

    assert CLEAN_INCEPTION.url == downloads_helper.inception_url


# --------------------------------------------------------------------------- offline
@pytest.mark.parametrize("var", ["HF_HUB_OFFLINE", "PGPIS_OFFLINE"])
def test_offline_gives_the_named_error_without_a_download(online, torch_download, cleanfid_download, monkeypatch, var):
    hub, cf = online
    monkeypatch.setenv(var, "1")
    for build, name in ((build_lpips, "alexnet-owt-7be5be79.pth"),
                        (TorchvisionInceptionExtractor, "inception_v3_google-0cc3c7bd.pth"),
                        (CleanFidExtractor.inception, "inception-2015-12-05.pt")):
        with pytest.raises(MissingWeightsError) as err:
            build()
        msg = str(err.value)
        assert name in msg and "Offline" in msg and "library cache" in msg
    assert torch_download["calls"] == [] and cleanfid_download["calls"] == []
    assert not hub.exists() and not cf.exists()


def test_evaluate_reports_lpips_unavailable_when_the_download_is_refused(online, torch_download, tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "pairs"
    (root / "images").mkdir(parents=True)
    (root / "gen").mkdir()
    pairs = [(f"s{i}.png", f"t{i}.png") for i in range(2)]
    for s, t in pairs:
        Image.fromarray(rng.integers(0, 255, (64, 56, 3), dtype=np.uint8)).save(root / "images" / t)
        Image.fromarray(rng.integers(0, 255, (64, 56, 3), dtype=np.uint8)).save(root / "gen" / generated_name(s, t))
    torch_download["payload"] = b"truncated"
    m = match_generated(root / "gen", pairs, lambda n: root / "images" / n)
    metrics, unavailable = evaluate_pairs(m.found, Protocol("test-64x56", (64, 56), "small"), fid_extractor=None)
    assert metrics["lpips"] is None and metrics["ssim"] is not None
    assert "alexnet-owt-7be5be79.pth" in unavailable["lpips"] and "expected sha256 starting 7be5be79" in unavailable["lpips"]
