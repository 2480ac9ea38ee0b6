"""Parity of pgpis.metrics with the reference implementations (skimage, scipy, lpips, clean-fid)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import linalg
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from pgpis.errors import DataFormatError, MissingWeightsError
from pgpis.metrics.evaluate import evaluate_folder, evaluate_pairs, real_statistics
from pgpis.metrics.fid import CleanFidExtractor, GaussianStats, TorchvisionInceptionExtractor, cache_file, frechet_distance
from pgpis.metrics.images import load_resized
from pgpis.metrics.lpips_net import build_lpips, lpips_distance
from pgpis.metrics.pairs import copy_source, generated_name, match_generated
from pgpis.metrics.psnr import psnr
from pgpis.metrics.protocols import PROTOCOLS, Protocol, get_protocol
from pgpis.metrics.ssim import ssim_gaussian, ssim_window
from pgpis.metrics.weights import ALEXNET, CLEAN_INCEPTION, TORCHVISION_INCEPTION

SMALL = Protocol("test-64x56", (64, 56), "small test protocol")


def smooth_images(n: int, size: tuple[int, int], seed: int) -> np.ndarray:
    """uint8 [n, H, W, 3]: low-frequency structure plus noise, so SSIM is neither ~0 nor ~1."""
    rng = np.random.default_rng(seed)
    h, w = size
    coarse = rng.uniform(0, 255, (n, h // 8 + 1, w // 8 + 1, 3))
    up = np.stack([np.asarray(Image.fromarray(c.astype(np.uint8)).resize((w, h), Image.BICUBIC)) for c in coarse])
    return np.clip(up + rng.normal(0, 12, up.shape), 0, 255).astype(np.uint8)


def to01(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a).permute(0, 3, 1, 2).to(torch.float64) / 255.0


@pytest.fixture(scope="module")
def image_pair_set() -> tuple[np.ndarray, np.ndarray]:
    gt = smooth_images(3, (72, 60), seed=1)
    rng = np.random.default_rng(2)
    pred = np.clip(gt.astype(int) + rng.integers(-50, 50, gt.shape), 0, 255).astype(np.uint8)
    pred[1] = (pred[1] * 0.6 + 40).astype(np.uint8)  # range < 255: the two ssim_gaussian data ranges differ
    return pred, gt


# --------------------------------------------------------------------------- SSIM / PSNR
def test_ssim_window51_matches_skimage(image_pair_set):
    pred, gt = image_pair_set
    ours = ssim_window(to01(pred), to01(gt), 51)
    for i in range(len(gt)):
        ref = structural_similarity(gt[i] / 255.0, pred[i] / 255.0, data_range=1, win_size=51, channel_axis=2)
        assert abs(ours[i].item() - ref) < 1e-4
        assert abs(ours[i].item() - ref) < 1e-9  # in fact exact up to float64 rounding


@pytest.mark.parametrize("data_range", [None, 255.0])
def test_ssim_gaussian_matches_skimage(image_pair_set, data_range):
    pred, gt = image_pair_set
    ours = ssim_gaussian(to01(pred), to01(gt), sigma=1.5, data_range=data_range)
    for i in range(len(gt)):
        g, p = gt[i] / 255.0 * 255.0, pred[i] / 255.0 * 255.0
        rng = p.max() - p.min() if data_range is None else data_range  # reference scripts: generated range
        ref = structural_similarity(g, p, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                    channel_axis=2, data_range=rng)
        assert abs(ours[i].item() - ref) < 1e-4
        assert abs(ours[i].item() - ref) < 1e-9


def test_ssim_gaussian_data_range_follows_generated_image(image_pair_set):
    pred, gt = image_pair_set
    dyn = ssim_gaussian(to01(pred[1:2]), to01(gt[1:2]))
    fixed = ssim_gaussian(to01(pred[1:2]), to01(gt[1:2]), data_range=255.0)
    assert dyn.item() != pytest.approx(fixed.item(), abs=1e-4)


def test_ssim_rejects_images_smaller_than_window():
    x = torch.zeros(1, 3, 40, 40, dtype=torch.float64)
    with pytest.raises(ValueError, match="window 51"):
        ssim_window(x, x)


def test_psnr_matches_skimage(image_pair_set):
    pred, gt = image_pair_set
    ours = psnr(to01(pred), to01(gt), 1.0)
    for i in range(len(gt)):
        assert ours[i].item() == pytest.approx(peak_signal_noise_ratio(gt[i] / 255.0, pred[i] / 255.0, data_range=1), abs=1e-9)
    assert psnr(to01(gt[:1]), to01(gt[:1])).item() == float("inf")


def test_load_resized_is_pil_bicubic(tmp_path):
    img = smooth_images(1, (100, 70), seed=3)[0]
    Image.fromarray(img).save(tmp_path / "a.png")
    ref = np.asarray(Image.fromarray(img).resize((56, 64), Image.BICUBIC))
    np.testing.assert_array_equal(load_resized(tmp_path / "a.png", (64, 56)), ref)
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(DataFormatError, match="bad.png"):
        load_resized(tmp_path / "bad.png", (64, 56))


# --------------------------------------------------------------------------- Fréchet distance
def scipy_frechet(mu1, s1, mu2, s2) -> float:
    covmean = linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def test_frechet_distance_matches_scipy_on_known_gaussians():
    rng = np.random.default_rng(0)
    d = 6
    a = rng.normal(size=(d, d))
    cov1, cov2 = a @ a.T + np.eye(d), np.diag(rng.uniform(0.5, 2.0, d))
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    f1 = rng.multivariate_normal(mu1, cov1, size=4000)
    f2 = rng.multivariate_normal(mu2, cov2, size=4000)
    s1, s2 = GaussianStats.of(f1), GaussianStats.of(f2)
    ours = frechet_distance(s1, s2)
    assert ours == pytest.approx(scipy_frechet(s1.mu, s1.sigma, s2.mu, s2.sigma), rel=1e-9)
    # and close to the closed form of the true distributions
    assert ours == pytest.approx(scipy_frechet(mu1, cov1, mu2, cov2), rel=0.1)
    assert frechet_distance(s1, s1) == pytest.approx(0.0, abs=1e-6)


def test_gaussian_stats_need_two_images():
    with pytest.raises(ValueError, match="at least 2"):
        GaussianStats.of(np.zeros((1, 4)))


# --------------------------------------------------------------------------- LPIPS
def test_lpips_matches_lpips_package_with_random_backbone(image_pair_set):
    import lpips

    pred, gt = image_pair_set
    torch.manual_seed(0)
    ours_net = build_lpips(random_backbone=True)
    torch.manual_seed(0)
    ref_net = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False).eval()
    p, g = to01(pred).float(), to01(gt).float()
    ours = lpips_distance(ours_net, p, g)
    with torch.no_grad():
        ref = ref_net(p * 2 - 1, g * 2 - 1).reshape(-1)
    torch.testing.assert_close(ours, ref.double(), rtol=1e-6, atol=1e-7)
    assert (ours > 0).all()


def test_lpips_loads_alexnet_from_local_file(tmp_path, monkeypatch):
    from torchvision.models import alexnet

    torch.manual_seed(1)
    state = {k: v for k, v in alexnet(weights=None).state_dict().items() if k.startswith("features.")}  # lpips uses these
    path = tmp_path / "my-alexnet.pth"
    torch.save(state, path)
    monkeypatch.setenv("PGPIS_ALEXNET_WEIGHTS", str(path))
    net = build_lpips()
    assert torch.equal(getattr(net.net.slice1, "0").weight, state["features.0.weight"])
    assert torch.equal(getattr(net.net.slice5, "10").bias, state["features.10.bias"])


def test_missing_weights_name_the_expected_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    for spec in (ALEXNET, CLEAN_INCEPTION, TORCHVISION_INCEPTION):
        monkeypatch.delenv(spec.env, raising=False)
    with pytest.raises(MissingWeightsError) as err:
        build_lpips(tmp_path / "nope.pth")
    msg = str(err.value)
    assert "alexnet-owt-7be5be79.pth" in msg and "PGPIS_ALEXNET_WEIGHTS" in msg and "nope.pth" in msg
    with pytest.raises(MissingWeightsError, match="inception_v3_google-0cc3c7bd.pth"):
        TorchvisionInceptionExtractor()


# --------------------------------------------------------------------------- FID through clean-fid
class TinyFeatures(torch.nn.Module):
    """A small fixed network with clean-fid's custom_feat_extractor contract (0-255 input -> [B, D])."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 4, 9, stride=8)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=g) * 0.05)
            self.conv.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.conv(x / 255.0)).mean(dim=(2, 3))


def tiny_extractor() -> CleanFidExtractor:
    return CleanFidExtractor(TinyFeatures().eval(), name="tiny-test", dim=4)


def write_images(folder: Path, arrays: np.ndarray, names: list[str]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for a, n in zip(arrays, names):
        Image.fromarray(a).save(folder / n)
        paths.append(folder / n)
    return paths


@pytest.fixture(scope="module")
def paired_folder(tmp_path_factory):
    """10 (source, target) pairs at the SMALL report size, their generated images, and a real set."""
    root = tmp_path_factory.mktemp("paired")
    targets = write_images(root / "images", smooth_images(10, SMALL.size, seed=4), [f"t{i}.jpg" for i in range(10)])
    gen = smooth_images(10, SMALL.size, seed=5)
    pairs = [(f"s{i}.jpg", f"t{i}.jpg") for i in range(10)]
    write_images(root / "gen", gen, [generated_name(s, t) for s, t in pairs])
    real = write_images(root / "real", smooth_images(12, SMALL.size, seed=6), [f"r{i:02d}.png" for i in range(12)])
    return root, pairs, real


def test_missing_weights_leave_other_metrics_computed(paired_folder, tmp_path, monkeypatch):
    import dataclasses

    import pgpis.metrics.fid as fid_mod

    root, pairs, real = paired_folder
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    for spec in (ALEXNET, CLEAN_INCEPTION):
        monkeypatch.delenv(spec.env, raising=False)
    monkeypatch.setattr(fid_mod, "CLEAN_INCEPTION", dataclasses.replace(CLEAN_INCEPTION, cache_dir=str(tmp_path)))
    m = match_generated(root / "gen", pairs, lambda n: root / "images" / n)
    metrics, unavailable = evaluate_pairs(m.found, SMALL, {"fid": real, "fid_test": real})
    assert metrics["ssim"] is not None and metrics["ssim_gaussian"] is not None and metrics["psnr"] is not None
    assert metrics["lpips"] is None and "alexnet-owt-7be5be79.pth" in unavailable["lpips"]
    for name in ("fid", "fid_test"):
        assert metrics[name] is None and "inception-2015-12-05.pt" in unavailable[name]
        assert "PGPIS_INCEPTION_WEIGHTS" in unavailable[name]


def test_fid_matches_clean_fid_with_custom_feature_extractor(paired_folder):
    from cleanfid import fid as cfid

    root, pairs, real = paired_folder
    model = TinyFeatures().eval()
    ref = cfid.compute_fid(str(root / "gen"), str(root / "real"), mode="clean", custom_feat_extractor=model,
                           num_workers=0, batch_size=4, device=torch.device("cpu"), verbose=False)
    m = match_generated(root / "gen", pairs, lambda n: root / "images" / n)
    metrics, unavailable = evaluate_pairs(m.found, SMALL, {"fid": real, "fid_test": real[:5]}, batch_size=3,
                                          lpips_net=None, fid_extractor=tiny_extractor())
    assert metrics["fid"] == pytest.approx(ref, rel=1e-5)
    assert metrics["fid_test"] is not None and "fid" not in unavailable
    assert unavailable == {"lpips": "LPIPS disabled by the caller"}


def test_real_statistics_cache_is_keyed_by_exact_file_list(paired_folder, tmp_path, monkeypatch):
    _, _, real = paired_folder
    files = [tmp_path / p.name for p in real]
    for src, dst in zip(real, files):
        dst.write_bytes(src.read_bytes())
    ext, cache = tiny_extractor(), tmp_path / "cache"
    calls = []
    orig = ext.features
    monkeypatch.setattr(ext, "features", lambda b: calls.append(len(b)) or orig(b))
    first = real_statistics(files, SMALL, ext, batch_size=4, cache_dir=cache)
    n_calls = len(calls)
    again = real_statistics(list(reversed(files)), SMALL, ext, batch_size=4, cache_dir=cache)
    assert len(calls) == n_calls and np.array_equal(first.sigma, again.sigma)  # cache hit, order irrelevant
    assert len(list(cache.glob("*.npz"))) == 1
    fewer = real_statistics(files[:-1], SMALL, ext, batch_size=4, cache_dir=cache)
    assert len(calls) > n_calls and fewer.n == len(files) - 1  # a different list is a different key
    key_before = cache_file(cache, SMALL, ext, files)
    os.utime(files[0], ns=(1, 1))  # touched / replaced file -> new key
    assert cache_file(cache, SMALL, ext, files) != key_before
    assert cache_file(cache, PROTOCOLS["deepfashion-256x176"], ext, files).name.startswith("deepfashion-256x176-tiny-test-")


# --------------------------------------------------------------------------- folders, protocols, results
def test_missing_unexpected_and_allow_missing(paired_folder, tmp_path):
    root, pairs, _ = paired_folder
    gen = tmp_path / "gen"
    gen.mkdir()
    for s, t in pairs[:-2]:
        (gen / generated_name(s, t)).write_bytes((root / "gen" / generated_name(s, t)).read_bytes())
    (gen / "stray.png").write_bytes(b"x")
    image_path = lambda n: root / "images" / n  # noqa: E731
    with pytest.raises(DataFormatError) as err:
        evaluate_folder(gen, pairs, image_path, SMALL, lpips_net=None, fid_extractor=None)
    assert "s8_to_t8.png" in str(err.value) and "s9_to_t9.png" in str(err.value) and "--allow-missing" in str(err.value)
    res = evaluate_folder(gen, pairs, image_path, SMALL, allow_missing=True, lpips_net=None, fid_extractor=None)
    assert res.n_pairs == 8 and res.missing == ["s8_to_t8.png", "s9_to_t9.png"] and res.unexpected == ["stray.png"]
    d = res.to_dict()
    assert set(d["metrics"]) == {"ssim", "ssim_gaussian", "psnr", "lpips", "fid", "fid_test"}
    assert d["metrics"]["lpips"] is None and "lpips" in d["unavailable"]


def test_copy_source_baseline_and_identical_images(paired_folder, tmp_path):
    root, pairs, _ = paired_folder
    same = [(f"t{i}.jpg", f"t{i}.jpg") for i in range(3)]
    out = copy_source(same, lambda n: root / "images" / n, tmp_path / "copy", size=SMALL.size)
    assert sorted(p.name for p in out.iterdir()) == [f"t{i}_to_t{i}.png" for i in range(3)]
    res = evaluate_folder(out, same, lambda n: root / "images" / n, SMALL, lpips_net=None, fid_extractor=None)
    assert res.metrics["ssim"] == pytest.approx(1.0) and res.metrics["ssim_gaussian"] == pytest.approx(1.0)
    assert res.metrics["psnr"] is None and "non-finite" in res.unavailable["psnr"]  # infinite PSNR is not faked
    assert "| Method | FID | FID_test | LPIPS | SSIM |" in res.markdown_table("copy")


def test_protocol_presets_and_unknown_name():
    p = get_protocol("deepfashion-256x176")
    assert p.size == (256, 176) and p.fid_extractor == "clean" and p.ssim_win_size == 51
    assert get_protocol("deepfashion-512x352").size == (512, 352)
    assert get_protocol("deepfashion-256x176-legacy").fid_extractor == "torchvision"
    with pytest.raises(DataFormatError, match="deepfashion-256x176"):
        get_protocol("deepfashion-999")


def test_in_loop_metric_equals_folder_evaluation(paired_folder, tmp_path):
    from pgpis.metrics.images import tensor_to_uint8
    from pgpis.metrics.paired import PairedImageMetrics

    root, pairs, _ = paired_folder
    targets = torch.stack([torch.from_numpy(load_resized(root / "images" / t, SMALL.size)).permute(2, 0, 1) for _, t in pairs])
    targets = targets.float() / 127.5 - 1  # as the DataModule makes them
    gen = torch.from_numpy(smooth_images(len(pairs), SMALL.size, seed=9)).permute(0, 3, 1, 2).float() / 127.5 - 1
    gen = gen + 0.01 * torch.randn(gen.shape, generator=torch.Generator().manual_seed(0))  # off the uint8 grid
    out = tmp_path / "gen"
    out.mkdir()
    for (s, t), g in zip(pairs, gen):
        Image.fromarray(tensor_to_uint8(g)).save(out / generated_name(s, t))
    torch.manual_seed(0)
    net = build_lpips(random_backbone=True)
    folder = evaluate_folder(out, pairs, lambda n: root / "images" / n, SMALL, lpips_net=net, fid_extractor=None,
                             batch_size=4)
    metric = PairedImageMetrics(SMALL, lpips_net=net)
    metric.update(gen[6:], targets[6:], torch.arange(6, 10))  # order and batching do not matter
    metric.update(gen[:6], targets[:6], torch.arange(6))
    in_loop = {k: v.item() for k, v in metric.compute().items()}
    for k in ("ssim", "ssim_gaussian", "psnr"):
        assert in_loop[k] == folder.metrics[k]
    assert in_loop["lpips"] == pytest.approx(folder.metrics["lpips"], rel=1e-6)  # batch composition differs
    assert not any("lpips" in k or "net" in k for k in metric.state_dict())


@pytest.mark.slow
def test_torchvision_inception_reproduces_reference_forward():
    """Our legacy extractor equals the FPDM/PIDM forward_inception (in-place channel transform) on [0,1] input."""
    from torchvision.models import inception_v3

    torch.manual_seed(0)
    net = inception_v3(weights=None, aux_logits=True, init_weights=False).eval()
    ext = TorchvisionInceptionExtractor(module=net)
    img = smooth_images(1, (64, 56), seed=7)[0]
    x = ext.preprocess(img)[None]
    ours = ext.features(x)
    ref_in = torch.nn.functional.interpolate(x.clone(), size=(299, 299), mode="bilinear")
    ref_in[:, 0] = ref_in[:, 0] * (0.229 / 0.5) + (0.485 - 0.5) / 0.5
    ref_in[:, 1] = ref_in[:, 1] * (0.224 / 0.5) + (0.456 - 0.5) / 0.5
    ref_in[:, 2] = ref_in[:, 2] * (0.225 / 0.5) + (0.406 - 0.5) / 0.5
    with torch.no_grad():
        ref = ext.blocks(ref_in).flatten(1).double()
    assert ours.shape == (1, 2048)
    torch.testing.assert_close(ours, ref)
