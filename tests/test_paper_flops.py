"""benchmarks/bench_paper_flops.py --json: the FLOP budget's keys and its arithmetic, on a reduced problem.

The benchmark builds the paper presets from their YAML on the meta device; its run time is per operator,
not per pixel, so the reduced sizes here only keep the numbers small. The full-size figures are in
docs/benchmarks.md (``make bench``).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def budget() -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_paper_flops.py"), "--json",
                          "--size", "128", "88", "--dino", "126", "--regions", "3"],
                         capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)  # one JSON object and nothing else on stdout


def test_json_has_the_issue_keys_nested_by_model(budget):
    for model in ("fpdm", "truepose"):
        for key in ("online_ratio", "store_ratio", "sampling_speedup", "tflop"):
            assert key in budget[model], (model, key)
    assert budget["settings"]["size"] == [128, 88]


@pytest.mark.parametrize("model", ["fpdm", "truepose"])
def test_the_store_removes_exactly_the_stored_frozen_parts(budget, model):
    r = budget[model]
    tflop = r["tflop"]
    assert 1.0 < r["store_all_frozen_ratio"] <= r["store_ratio"] < r["online_ratio"]
    assert set(r["stored"]) <= set(r["frozen"])
    stored, frozen = sum(tflop[k] for k in r["stored"]), sum(tflop[k] for k in r["frozen"])
    assert 0 < stored <= frozen
    assert tflop["step_online"] - tflop["step_store"] == pytest.approx(stored, rel=1e-9)
    assert tflop["step_online"] - tflop["step_store_all_frozen"] == pytest.approx(frozen, rel=1e-9)
    assert r["sampling_speedup"] > 1.0 and r["naive_tflop"] > r["pgpis_tflop"]


def test_fpdm_frozen_parts_and_truepose_two_vae_encodes(budget):
    assert set(budget["fpdm"]["frozen"]) == {"vae_encode_target", "dinov2_source", "ipf_clip_source_pose"}
    assert budget["fpdm"]["stored"] == budget["fpdm"]["frozen"]  # the feature store holds all three
    assert budget["truepose"]["stored"] == budget["truepose"]["frozen"]  # latents and the frozen CLIP's outputs
    assert budget["truepose"]["store_ratio"] < budget["truepose"]["store_latents_only_ratio"]
    tp = budget["truepose"]["tflop"]
    assert tp["vae_encode_source"] == tp["vae_encode_target"] > 0
    assert budget["truepose"]["branches"] == 2 and budget["fpdm"]["branches"] == 3
