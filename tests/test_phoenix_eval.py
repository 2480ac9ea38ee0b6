"""The phoenix-260x210 protocol on synthetic Phoenix, against values computed by hand (numpy + skimage)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.metrics import structural_similarity

from pgpis.cli import main as pgpis_main
from pgpis.data.keypoints import LEFT_HAND_KNUCKLE, RIGHT_HAND_KNUCKLE
from pgpis.errors import DataFormatError
from pgpis.metrics.fid import CleanFidExtractor
from pgpis.metrics.hands import NO_ESTIMATOR, OracleHandEstimator
from pgpis.metrics.pairs import generated_name
from pgpis.data.phoenix.evaluate import copy_first_frame, evaluate_phoenix, read_phoenix_frames
from pgpis.metrics.protocols import get_protocol


@pytest.fixture(scope="module")
def frames(synthetic_phoenix_root: Path):
    return read_phoenix_frames(synthetic_phoenix_root, "test")


@pytest.fixture(scope="module")
def baseline_dir(frames, tmp_path_factory) -> Path:
    return copy_first_frame(frames, tmp_path_factory.mktemp("copy_first"))


def rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def hand_reference(frames, pairs) -> tuple[float, int]:
    """Hand SSIM by hand: 60x60 numpy crops at the rounded GT knuckles, clamped, skimage Gaussian SSIM."""
    values = []
    for src, tgt in pairs:
        kp = frames.keypoints(tgt)
        gen, real = rgb(frames.path(src)), rgb(frames.path(tgt))
        for k in (LEFT_HAND_KNUCKLE, RIGHT_HAND_KNUCKLE):
            x, y, score = kp[k]
            if score < 0.3:
                continue
            x0 = min(max(int(np.floor(x + 0.5)) - 30, 0), 210 - 60)
            y0 = min(max(int(np.floor(y + 0.5)) - 30, 0), 260 - 60)
            a, b = gen[y0:y0 + 60, x0:x0 + 60].astype(np.float64), real[y0:y0 + 60, x0:x0 + 60].astype(np.float64)
            values.append(structural_similarity(a, b, channel_axis=2, gaussian_weights=True, sigma=1.5,
                                                use_sample_covariance=False, data_range=255))
    return float(np.mean(values)), len(values)


def test_protocol_is_registered():
    p = get_protocol("phoenix-260x210")
    assert p.size == (260, 210) and p.extra["dataset"] == "phoenix" and p.extra["hand_crop"] == 60
    assert {"ssim", "hand_ssim", "hand_pe", "fid"} <= set(p.extra["metrics"])


def test_pairs_follow_the_first_frame_protocol(frames, synthetic_phoenix_root):
    from pgpis.data.phoenix import PhoenixDataModule

    dm = PhoenixDataModule(root=str(synthetic_phoenix_root), image_size=(64, 64), num_workers=0)
    assert frames.pairs == dm.pairs("test")  # the names inference writes are the names evaluation expects
    assert all(s.endswith("_images0001.png") and s.split("_images")[0] == t.split("_images")[0] for s, t in frames.pairs)


def test_copy_first_frame_matches_hand_computed_values(frames, baseline_dir):
    res = evaluate_phoenix(None, "test", baseline_dir, frames=frames, fid_extractor=None, hand_estimator=None)
    ssim_ref = np.mean([structural_similarity(rgb(frames.path(s)).astype(np.float64) / 255,
                                              rgb(frames.path(t)).astype(np.float64) / 255,
                                              win_size=51, data_range=1, channel_axis=2) for s, t in frames.pairs])
    hand_ref, n_hands = hand_reference(frames, frames.pairs)
    assert n_hands > 0 and res.n_pairs == len(frames.pairs)
    assert res.metrics["ssim"] == pytest.approx(ssim_ref, abs=1e-9)
    assert res.metrics["hand_ssim"] == pytest.approx(hand_ref, abs=1e-9)
    assert 0 < res.metrics["hand_ssim"] < res.metrics["ssim"] < 1  # moving hands: the hands differ most
    assert res.metrics["hand_pe"] is None and res.unavailable["hand_pe"] == NO_ESTIMATOR
    d = res.to_dict()
    assert "lpips" not in d["metrics"] and "lpips" not in d["unavailable"]
    assert d["protocol"] == "phoenix-260x210" and d["metrics"]["hand_ssim"] == res.metrics["hand_ssim"]


def test_hand_pe_with_an_oracle_estimator(frames, baseline_dir):
    oracle = OracleHandEstimator()
    for name in frames.frames:
        oracle.add(rgb(frames.path(name)), frames.keypoints(name))
    res = evaluate_phoenix(None, "test", baseline_dir, frames=frames, fid_extractor=None, hand_estimator=oracle)
    dists = []
    for src, tgt in frames.pairs:
        fake, real = frames.keypoints(src), frames.keypoints(tgt)
        for k, hand in ((LEFT_HAND_KNUCKLE, slice(91, 112)), (RIGHT_HAND_KNUCKLE, slice(112, 133))):
            if real[k, 2] < 0.3:
                continue
            ok = real[hand, 2] >= 0.3
            dists += list(np.abs(fake[hand, :2] - real[hand, :2]).sum(-1)[ok])
    assert res.metrics["hand_pe"] == pytest.approx(float(np.mean(dists)), rel=1e-6) and res.metrics["hand_pe"] > 0
    assert "hand_pe" not in res.unavailable


def test_ground_truth_scores_perfectly_and_fid_test_is_zero(frames, tmp_path):
    gen = tmp_path / "gt"
    gen.mkdir()
    for s, t in frames.pairs:
        shutil.copy(frames.path(t), gen / generated_name(s, t))

    class Features(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:  # 0-255 [B, 3, 299, 299] -> [B, 6]
            x = x / 255.0
            return torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3))], dim=1)

    ext = CleanFidExtractor(Features(), name="phoenix-test", dim=6)
    res = evaluate_phoenix(None, "test", gen, frames=frames, fid_extractor=ext, hand_estimator=None)
    assert res.metrics["ssim"] == pytest.approx(1.0) and res.metrics["hand_ssim"] == pytest.approx(1.0)
    assert res.metrics["fid_test"] == pytest.approx(0.0, abs=1e-6)  # the generated set *is* the real test set
    assert res.metrics["fid"] is not None and res.metrics["fid"] > 0  # against the training frames


def test_missing_files_are_listed(frames, baseline_dir, tmp_path):
    gen = tmp_path / "partial"
    shutil.copytree(baseline_dir, gen)
    gone = generated_name(*frames.pairs[3])
    (gen / gone).unlink()
    with pytest.raises(DataFormatError, match=gone):
        evaluate_phoenix(None, "test", gen, frames=frames, fid_extractor=None, hand_estimator=None)
    res = evaluate_phoenix(None, "test", gen, frames=frames, fid_extractor=None, allow_missing=True, hand_estimator=None)
    assert res.missing == [gone] and res.n_pairs == len(frames.pairs) - 1


def test_evaluate_cli_prints_model_and_baseline_rows(synthetic_phoenix_root, frames, baseline_dir, tmp_path, capsys):
    out = tmp_path / "metrics.json"
    rc = pgpis_main(["evaluate", "--dataset", "phoenix", "--root", str(synthetic_phoenix_root), "--split", "test",
                     "--generated", str(baseline_dir), "--protocol", "phoenix-260x210", "--out", str(out),
                     "--baseline-out", str(tmp_path / "baseline"), "--fid-real-cache", "",
                     "--inception-weights", str(tmp_path / "no-such-inception.pt")])
    assert rc == 0
    table = capsys.readouterr().out
    assert "| Hand SSIM |" in table and "| copy first frame |" in table
    data = json.loads(out.read_text())
    assert data["protocol"] == "phoenix-260x210" and data["metrics"]["hand_ssim"] > 0
    # Hand PE by default with mediapipe's hands: a number, or (drawn synthetic hands) null with what it found
    assert data["hand_pe"]["estimator"].startswith("mediapipe-") and data["hand_pe"]["gt_hands"] > 0
    assert data["metrics"]["hand_pe"] is not None or data["hand_pe"]["estimator"] in data["unavailable"]["hand_pe"]
    assert data["metrics"]["fid"] is None and "inception" in data["unavailable"]["fid"].lower()
    assert len(list((tmp_path / "baseline").iterdir())) == len(frames.pairs)


def test_evaluate_cli_unknown_split_is_a_clear_error(synthetic_phoenix_root, tmp_path, capsys):
    rc = pgpis_main(["evaluate", "--dataset", "phoenix", "--root", str(synthetic_phoenix_root), "--split", "nope",
                     "--generated", str(tmp_path), "--out", str(tmp_path / "m.json")])
    assert rc == 2 and "nope" in capsys.readouterr().err
