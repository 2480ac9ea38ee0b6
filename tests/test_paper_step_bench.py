"""benchmarks/bench_paper_step_gpu.py, the prepared GPU run of issue #22 part 5, wired end to end on the CPU.

On the tiny presets (the paper's need a GPU): every method and mode runs a real optimizer step, the store
mode's frozen networks are removed (calling one raises, so a step that still ran one fails here), and the
JSON carries the figures the GPU run reports. Timings on the CPU mean nothing and are not asserted.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_tiny_steps_online_and_from_the_store_on_the_cpu(tmp_path):
    out = tmp_path / "steps.json"
    run = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_paper_step_gpu.py"), "--tiny",
                          "--device", "cpu", "--steps", "1", "--warmup", "0", "--variants", "base", "ckpt+b2",
                          "--peak-tflops", "1", "--json", str(out)],
                         capture_output=True, text=True, cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1"},
                         timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert {(r["method"], r["mode"], r["variant"]) for r in rows} == {
        (m, mode, v) for m in ("fpdm", "truepose") for mode in ("online", "store") for v in ("base", "ckpt+b2")}
    for r in rows:
        assert "error" not in r, r
        assert r["model_tflop_per_step"] > 0 and r["s_per_step"] > 0 and 0 < r["mfu"]
        assert r["batch"] == (2 if r["variant"] == "ckpt+b2" else 4)
    by = {(r["method"], r["mode"], r["variant"]): r for r in rows}
    flops = {(m, mode): by[(m, mode, "base")]["model_tflop_per_step"] for m, mode, _ in by}
    assert flops[("fpdm", "store")] < flops[("fpdm", "online")]  # tiny DINOv2 and IPF stored
    # tiny TruePose trains its CLIP and its first stage is a pixel unshuffle (no FLOPs): nothing to save
    assert flops[("truepose", "store")] == pytest.approx(flops[("truepose", "online")])
