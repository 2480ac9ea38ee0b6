"""`pgpis evaluate` end to end on the synthetic test split (copy-the-source baseline), weights absent."""
from __future__ import annotations

import dataclasses
import json

import pytest

import pgpis.metrics.fid as fid_mod
from pgpis.cli import main
from pgpis.data.deepfashion.layout import read_deepfashion_index
from pgpis.metrics.pairs import copy_source, generated_name
from pgpis.metrics.weights import ALEXNET, CLEAN_INCEPTION


@pytest.fixture()
def no_weights(tmp_path, monkeypatch):
    """No AlexNet / Inception anywhere pgpis looks (whatever this machine's caches hold)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    for spec in (ALEXNET, CLEAN_INCEPTION):
        monkeypatch.delenv(spec.env, raising=False)
    monkeypatch.setattr(fid_mod, "CLEAN_INCEPTION", dataclasses.replace(CLEAN_INCEPTION, cache_dir=str(tmp_path / "cf")))


@pytest.fixture(scope="module")
def copy_baseline(synthetic_root, tmp_path_factory):
    index = read_deepfashion_index(synthetic_root)
    return index, copy_source(index.pairs["test"], index.image_path, tmp_path_factory.mktemp("copy"), size=(256, 176))


def test_evaluate_copy_source_without_weights(synthetic_root, copy_baseline, no_weights, tmp_path, capsys):
    _, reference = copy_baseline
    gen, out = tmp_path / "copy", tmp_path / "metrics.json"
    code = main(["evaluate", "--dataset", "deepfashion", "--root", str(synthetic_root), "--split", "test",
                 "--generated", str(gen), "--protocol", "deepfashion-256x176", "--out", str(out),
                 "--fid-real-cache", str(tmp_path / "cache"), "--name", "Copy source", "--make-copy-source"])
    assert code == 0
    assert sorted(p.name for p in gen.iterdir()) == sorted(p.name for p in reference.iterdir())
    res = json.loads(out.read_text())
    assert res["protocol"] == "deepfashion-256x176" and res["n_pairs"] == 24
    assert set(res["metrics"]) == {"ssim", "ssim_gaussian", "psnr", "lpips", "fid", "fid_test",
                                   "iqa", "iaa", "iqa_ground_truth", "iaa_ground_truth"}  # IQA / IAA: test_quality.py
    m = res["metrics"]
    assert 0 < m["ssim"] < 1 and 0 < m["ssim_gaussian"] < 1 and 5 < m["psnr"] < 40
    assert m["lpips"] is None and "alexnet-owt-7be5be79.pth" in res["unavailable"]["lpips"]
    assert m["fid"] is None and m["fid_test"] is None
    assert "inception-2015-12-05.pt" in res["unavailable"]["fid"] and "PGPIS_INCEPTION_WEIGHTS" in res["unavailable"]["fid_test"]
    assert res["files"] == {"expected": 24, "missing": [], "unexpected": []}
    table = capsys.readouterr().out
    assert "| Method | FID | FID_test | LPIPS | SSIM | SSIM (gaussian) | PSNR |" in table
    assert f"| Copy source | n/a | n/a | n/a | {m['ssim']:.4f} | {m['ssim_gaussian']:.4f} | {m['psnr']:.3f} |" in table


def test_evaluate_reports_missing_files(synthetic_root, copy_baseline, tmp_path, capsys):
    index, gen = copy_baseline
    partial = tmp_path / "partial"
    partial.mkdir()
    pairs = index.pairs["test"]
    for s, t in pairs[1:]:
        (partial / generated_name(s, t)).write_bytes((gen / generated_name(s, t)).read_bytes())
    code = main(["evaluate", "--root", str(synthetic_root), "--generated", str(partial), "--out", str(tmp_path / "m.json")])
    assert code == 2
    err = capsys.readouterr().err
    assert generated_name(*pairs[0]) in err and "--allow-missing" in err
    assert not (tmp_path / "m.json").exists()


def test_evaluate_unknown_protocol(synthetic_root, copy_baseline, tmp_path, capsys):
    _, gen = copy_baseline
    code = main(["evaluate", "--root", str(synthetic_root), "--generated", str(gen), "--protocol", "nope",
                 "--out", str(tmp_path / "m.json")])
    assert code == 2 and "deepfashion-256x176" in capsys.readouterr().err


def test_list_protocols(capsys):
    assert main(["evaluate", "--list-protocols"]) == 0
    out = capsys.readouterr().out
    assert "`deepfashion-256x176`" in out and "`deepfashion-512x352-legacy`" in out and "SSIM window 51" in out
