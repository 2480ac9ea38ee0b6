"""Hand SSIM / Hand PE (pgpis.metrics.hands) against hand-computed values."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.metrics import structural_similarity

from pgpis.data.keypoints import LEFT_HAND_KNUCKLE, MISSING, RIGHT_HAND_KNUCKLE
from pgpis.metrics.hands import (
    HandKeypointEstimator,
    HandPE,
    HandSSIM,
    OracleHandEstimator,
    crop_origin,
    hand_ssim_values,
)

H, W = 260, 210


def _keypoints(left=(40.4, 70.6), right=(205.0, 258.0), scores=(0.9, 0.9)):
    kp = torch.full((133, 2), MISSING)
    sc = torch.zeros(133)
    for idx, xy, s in ((LEFT_HAND_KNUCKLE, left, scores[0]), (RIGHT_HAND_KNUCKLE, right, scores[1])):
        if xy is not None:
            kp[idx] = torch.tensor(xy)
            sc[idx] = s
    return kp, sc


def _images(seed: int, n: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    real = torch.rand(n, 3, H, W, generator=g, dtype=torch.float64)
    fake = (real + 0.15 * torch.randn(n, 3, H, W, generator=g, dtype=torch.float64)).clamp(0, 1)
    return fake.float(), real.float()


def _skimage_ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    return structural_similarity(a.double().numpy() * 255, b.double().numpy() * 255, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False, data_range=255.0, channel_axis=0)


def test_crop_origin_centres_and_clamps():
    assert crop_origin((100, 50), (H, W)) == (70, 20)
    assert crop_origin((40.4, 70.6), (H, W)) == (10, 41)
    assert crop_origin((10, 5), (H, W)) == (0, 0)
    assert crop_origin((205, 258), (H, W)) == (150, 200)
    assert crop_origin((29.5, 29.5), (H, W)) == (0, 0)
    with pytest.raises(ValueError, match="smaller than the 60x60"):
        crop_origin((10, 10), (50, 50))


def test_hand_ssim_matches_skimage_on_hand_cut_crops():
    fake, real = _images(0)
    kp, sc = _keypoints()
    values = hand_ssim_values(fake, real, kp[None], sc[None])
    left = _skimage_ssim(fake[0, :, 41:101, 10:70], real[0, :, 41:101, 10:70])
    right = _skimage_ssim(fake[0, :, 200:260, 150:210], real[0, :, 200:260, 150:210])
    np.testing.assert_allclose(values.double().numpy(), [left, right], atol=1e-5)


def test_hands_below_threshold_or_missing_are_skipped_and_mean_is_over_hands():
    fake, real = _images(1, n=3)
    kps, scs = zip(_keypoints(), _keypoints(scores=(0.9, 0.2)), _keypoints(left=None, right=(100, 100)))
    kp, sc = torch.stack(kps), torch.stack(scs)
    values = hand_ssim_values(fake, real, kp, sc)
    assert len(values) == 4  # 2 + 1 (right score 0.2) + 1 (left missing)
    expected = [_skimage_ssim(fake[0, :, 41:101, 10:70], real[0, :, 41:101, 10:70]),
                _skimage_ssim(fake[0, :, 200:260, 150:210], real[0, :, 200:260, 150:210]),
                _skimage_ssim(fake[1, :, 41:101, 10:70], real[1, :, 41:101, 10:70]),
                _skimage_ssim(fake[2, :, 70:130, 70:130], real[2, :, 70:130, 70:130])]
    metric = HandSSIM()
    metric.update(fake[:2], real[:2], kp[:2], sc[:2])
    metric.update(fake[2:], real[2:], kp[2:], sc[2:])
    assert float(metric.compute()) == pytest.approx(float(np.mean(expected)), abs=1e-5)


def test_hand_ssim_identity_and_no_hands():
    _, real = _images(2)
    kp, sc = _keypoints()
    metric = HandSSIM()
    metric.update(real, real, kp[None], sc[None])
    assert float(metric.compute()) == pytest.approx(1.0)
    empty = HandSSIM()
    empty.update(real, real, *(t[None] for t in _keypoints(scores=(0.0, 0.1))))
    assert math.isnan(float(empty.compute()))


def test_hand_pe_without_estimator_is_unavailable():
    fake, real = _images(3)
    metric = HandPE()
    metric.update(fake, real, *(t[None] for t in _keypoints()))
    assert not metric.available and "no hand-keypoint estimator configured" in metric.reason
    assert math.isnan(float(metric.compute()))
    assert metric.report()["hand_pe"].startswith("unavailable: no hand-keypoint estimator")


def _frames(video, ts):
    imgs = [torch.from_numpy(np.array(Image.open(video.frames[t]).convert("RGB"))).permute(2, 0, 1).float() / 255 for t in ts]
    return torch.stack(imgs)


def test_hand_pe_with_oracle_on_synthetic_phoenix(synthetic_phoenix_root):
    from pgpis.data.phoenix.layout import keypoints_with_missing, read_phoenix_index

    video = read_phoenix_index(synthetic_phoenix_root).videos["test"][0]
    oracle = OracleHandEstimator()
    for t in range(len(video)):
        oracle.add(_frames(video, [t])[0], video.keypoints[t])
    assert isinstance(oracle, HandKeypointEstimator)
    real_t, fake_t = [0, 1, 2, 3], [3, 4, 5, 0]  # "generated" = another frame of the same video
    real, fake = _frames(video, real_t), _frames(video, fake_t)
    gt = torch.from_numpy(keypoints_with_missing(video.keypoints[real_t], 0.3))
    metric = HandPE(oracle)
    metric.update(real, real, gt[..., :2], gt[..., 2])
    assert float(metric.compute()) == 0.0
    metric = HandPE(oracle)
    metric.update(fake, real, gt[..., :2], gt[..., 2])
    # by hand: per GT-present hand, |dx| + |dy| over its 21 points confidently seen on the real frame
    dists = []
    for r, f in zip(real_t, fake_t):
        for start, knuckle in ((91, LEFT_HAND_KNUCKLE), (112, RIGHT_HAND_KNUCKLE)):
            if video.keypoints[r, knuckle, 2] < 0.3:
                continue
            for j in range(start, start + 21):
                if video.keypoints[r, j, 2] >= 0.3:
                    dists.append(np.abs(video.keypoints[f, j, :2] - video.keypoints[r, j, :2]).sum())
    assert len(dists) > 0
    assert float(metric.compute()) == pytest.approx(float(np.mean(dists)), rel=1e-6)
    assert metric.report()["hand_pe"] == pytest.approx(float(np.mean(dists)), rel=1e-6)


def test_hand_pe_rejects_a_wrong_estimator_shape():
    fake, real = _images(4)
    metric = HandPE(lambda images: torch.zeros(len(images), 21, 3))
    with pytest.raises(ValueError, match=r"returned \[1, 21, 3\].*expected \[1, 42, 3\]"):
        metric.update(fake, real, *(t[None] for t in _keypoints()))
