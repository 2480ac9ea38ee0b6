"""IQA / IAA plumbing: the scorer subprocess, the means, the Ground Truth row, and every "unavailable" reason.

No Q-Align model exists here, so the subprocess route is exercised with a stand-in worker
(tests/qalign_standin_worker.py, run by sys.executable) that speaks the same JSON-lines
protocol and scores an image by its mean brightness; the shipped worker is run for real
for what it reports when the model, its environment or the opt-in are missing.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pgpis.metrics.quality import (HUB_ID, QUALITY_METRICS, QAlignSettings, QAlignWorker, QualityUnavailable,
                                   QualityWorkerError, QualityWorkerTimeout, quality_table, requested, score_quality)
from pgpis.metrics.quality.settings import WORKER, ambient

STANDIN = Path(__file__).with_name("qalign_standin_worker.py")


def standin(**kw) -> QAlignSettings:
    return QAlignSettings(python=sys.executable, worker=str(STANDIN), trust_remote_code=True, **kw)


def q(m: float) -> float:
    return 1 + 4 * m / 255


def a(m: float) -> float:
    return 5 - 4 * m / 255


@pytest.fixture()
def images(tmp_path):
    """Generated images of brightness 51, 102, 153 and ground truth 204, 204 (same file twice), 255, 24x16."""
    def write(name: str, value: int, size=(16, 24)) -> Path:
        p = tmp_path / name
        Image.fromarray(np.full((*size, 3), value, np.uint8)).save(p)
        return p

    gen = [write(f"g{v}.png", v) for v in (51, 102, 153)]
    gt_a, gt_b = write("t204.png", 204, size=(48, 32)), write("t255.png", 255, size=(48, 32))
    return gen, [gt_a, gt_a, gt_b]


def test_means_and_ground_truth_row_through_the_subprocess(images, tmp_path, monkeypatch):
    gen, gt = images
    log = tmp_path / "sent.txt"
    monkeypatch.setenv("QALIGN_STANDIN_LOG", str(log))
    res = score_quality(gen, gt, standin())
    assert res.metrics["iqa"] == pytest.approx(np.mean([q(51), q(102), q(153)]))
    assert res.metrics["iaa"] == pytest.approx(np.mean([a(51), a(102), a(153)]))
    # each distinct real image once: (204, 255), not (204, 204, 255)
    assert res.metrics["iqa_ground_truth"] == pytest.approx((q(204) + q(255)) / 2)
    assert res.metrics["iaa_ground_truth"] == pytest.approx((a(204) + a(255)) / 2)
    assert res.unavailable == {} and res.counts == {"generated": 3, "ground_truth": 2}
    assert res.backend == f"stand-in brightness scorer ({HUB_ID}) via {sys.executable}"
    assert log.read_text().split() == [str(p.resolve()) for p in (*gen, gt[0], gt[2])]  # batch size 1, in order


def test_prepare_gives_the_scored_pixels(images, tmp_path, monkeypatch):
    """The caller's `prepare` (the protocol's resize) is what the scorer sees, for both sets."""
    gen, gt = images
    seen = []

    def prepare(path: Path) -> np.ndarray:
        seen.append(path)
        return np.full((8, 8, 3), 0 if path in gen else 255, np.uint8)

    res = score_quality(gen, gt, standin(), prepare=prepare)
    assert res.metrics["iqa"] == pytest.approx(1.0) and res.metrics["iaa"] == pytest.approx(5.0)
    assert res.metrics["iqa_ground_truth"] == pytest.approx(5.0) and res.metrics["iaa_ground_truth"] == pytest.approx(1.0)
    assert seen == [*gen, gt[0], gt[2]]


def test_empty_ground_truth_is_named(images):
    res = score_quality(images[0], [], standin())
    assert res.metrics["iqa"] is not None and res.metrics["iqa_ground_truth"] is None
    assert res.unavailable == {"iqa_ground_truth": "no ground truth images to score",
                               "iaa_ground_truth": "no ground truth images to score"}


# --------------------------------------------------------------------------- unavailable, with the reason
def test_unconfigured_environment_says_how_to_make_one(images, monkeypatch):
    monkeypatch.delenv("PGPIS_QALIGN_PYTHON", raising=False)
    res = score_quality(*images, QAlignSettings.from_env())
    assert res.metrics == {k: None for k in QUALITY_METRICS}
    why = res.unavailable["iqa"]
    assert set(res.unavailable) == set(QUALITY_METRICS) and len(set(res.unavailable.values())) == 1
    for needle in ("own Python environment", "transformers 4.3x", "python -m venv qalign-env",
                   '"transformers==4.37.2"', "--qalign-python", "PGPIS_QALIGN_PYTHON", "--trust-remote-code",
                   "docs/iqa.md"):
        assert needle in why


def test_bad_python_and_missing_model_folder(images, tmp_path):
    res = score_quality(*images, QAlignSettings(python=str(tmp_path / "nope" / "python")))
    assert "is not an executable file" in res.unavailable["iaa"] and "nope" in res.unavailable["iaa"]
    res = score_quality(*images, standin(model=str(tmp_path / "one-align")))
    assert "does not exist" in res.unavailable["iqa"] and f"hf download {HUB_ID} --local-dir" in res.unavailable["iqa"]


def test_switched_off_is_a_reason_too(images):
    assert score_quality(*images, "not requested (--quality none)").unavailable["iaa_ground_truth"] == \
        "not requested (--quality none)"


def test_worker_that_says_unavailable(images, monkeypatch):
    monkeypatch.setenv("QALIGN_STANDIN_MODE", "unavailable")
    res = score_quality(*images, standin())
    assert res.unavailable["iqa"] == f"stand-in: {HUB_ID} is not here"


def test_shipped_worker_offline_without_model_env_or_opt_in(images, tmp_path, monkeypatch):
    """The real worker run by this (transformers 5) Python with an empty HF cache, offline: every gap named."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    res = score_quality(*images, QAlignSettings(python=sys.executable))
    why = res.unavailable["iqa"]
    assert f"{HUB_ID} is not in the Hugging Face cache" in why and str(tmp_path / "hf-home") in why
    assert f"hf download {HUB_ID}" in why and "HF_HUB_OFFLINE=1" in why
    assert "transformers 5." in why and '"transformers==4.37.2"' in why
    assert "pass --trust-remote-code" in why
    # a local copy and the opt-in: what is left is this environment's transformers
    folder = tmp_path / "one-align"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    why = score_quality(*images, QAlignSettings(python=sys.executable, model=str(folder),
                                                trust_remote_code=True)).unavailable["iaa"]
    assert "transformers 5." in why and "cache" not in why and "trust-remote-code" not in why


@pytest.mark.slow  # imports transformers in a subprocess (~10 s)
def test_local_folder_stands_in_for_the_hub_id(tmp_path):
    """The model's own __init__ loads its image processor / tokenizer by the hub id; a local copy must answer."""
    folder = tmp_path / "one-align"
    code = ("import sys, transformers; sys.path.insert(0, sys.argv[2]); import qalign_worker as w; "
            "transformers.CLIPImageProcessor(crop_size=123).save_pretrained(sys.argv[1]); "
            "w.redirect_hub_id(sys.argv[1]); "
            "print(transformers.CLIPImageProcessor.from_pretrained(w.HUB_ID).crop_size)")
    out = subprocess.run([sys.executable, "-c", code, str(folder), str(WORKER.parent)], capture_output=True,
                         text=True, timeout=120, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert "123" in out.stdout.strip().splitlines()[-1]


# --------------------------------------------------------------------------- a broken worker is a named error
@pytest.mark.parametrize("mode, needle", [
    ("crash-at-start", "exited (code 3) while pgpis was waiting to say it was ready"),
    ("crash-after-one", "exited (code 139) while pgpis was waiting to score"),
    ("garbage", "not a JSON protocol message"),
    ("noisy-stdout", "'Loading checkpoint shards: 100%'"),
    ("out-of-range", "quality score 7.5"),
    ("wrong-id", "answered request 1 while 0 was asked"),
])
def test_broken_worker_raises_a_named_error(images, monkeypatch, mode, needle):
    monkeypatch.setenv("QALIGN_STANDIN_MODE", mode)
    with pytest.raises(QualityWorkerError) as err:
        score_quality(*images, standin())
    assert needle in str(err.value) and "qalign_standin_worker.py" in str(err.value)
    if mode == "crash-at-start":
        assert "CUDA out of memory (stand-in)" in str(err.value)  # its stderr comes along


def test_silent_worker_times_out_and_is_killed(images, monkeypatch):
    monkeypatch.setenv("QALIGN_STANDIN_MODE", "hang")
    worker = QAlignWorker(standin(image_timeout_s=1.0))
    worker.start()
    proc = worker._proc
    with pytest.raises(QualityWorkerTimeout, match="gave no answer within 1 s while waiting to score"):
        worker.score(images[0][0])
    assert proc.poll() is not None  # killed, not left behind
    worker.close()


def test_worker_that_never_gets_ready_times_out(images, tmp_path):
    sleeper = tmp_path / "sleeper.py"
    sleeper.write_text("import time\ntime.sleep(60)\n")
    with pytest.raises(QualityWorkerTimeout, match="to say it was ready"):
        QAlignWorker(QAlignSettings(python=sys.executable, worker=str(sleeper), start_timeout_s=1.0)).start()


def test_unavailable_from_the_worker_is_not_an_error(monkeypatch):
    monkeypatch.setenv("QALIGN_STANDIN_MODE", "unavailable")
    with pytest.raises(QualityUnavailable, match="is not here"):
        QAlignWorker(standin()).start()


# --------------------------------------------------------------------------- settings and the table
def test_settings_from_env_and_flags(monkeypatch, tmp_path):
    monkeypatch.setenv("PGPIS_QALIGN_PYTHON", "/envs/qalign/bin/python")
    monkeypatch.setenv("PGPIS_QALIGN_TRUST_REMOTE_CODE", "1")
    monkeypatch.setenv("PGPIS_QALIGN_MODEL", str(tmp_path))
    s = QAlignSettings.from_env(device="cuda:1", python=None)
    assert (s.python, s.trust_remote_code, s.model, s.device) == ("/envs/qalign/bin/python", True, str(tmp_path), "cuda:1")
    assert ambient() == s.__class__.from_env()  # configured environment: `pgpis test` scores too
    with requested("not requested (--quality none)"):
        assert ambient() == "not requested (--quality none)"
    monkeypatch.delenv("PGPIS_QALIGN_PYTHON")
    assert ambient() is None


def test_quality_table_has_the_ground_truth_row():
    ours = ({"iqa": 3.91234, "iaa": 3.1, "iqa_ground_truth": 4.2, "iaa_ground_truth": None},
            {"iaa_ground_truth": "no ground truth images to score"})
    base = ({"iqa": None, "iaa": 2.0}, {"iqa": "worker failed"})
    table = quality_table({"TruePose": ours, "copy source": base}, "stand-in via /py")
    assert "| TruePose | 3.912 | 3.100 |\n| copy source | n/a | 2.000 |\n| Ground Truth | 4.200 | n/a |" in table
    assert "- n/a iaa_ground_truth (TruePose): no ground truth images to score" in table
    assert "- n/a iqa (copy source): worker failed" in table and "stand-in via /py" in table


def test_cli_flags_override_the_environment(monkeypatch):
    import argparse

    from pgpis.metrics.quality.cli import NOT_REQUESTED, add_quality_arguments, settings_from_args

    p = argparse.ArgumentParser()
    add_quality_arguments(p)
    monkeypatch.setenv("PGPIS_QALIGN_PYTHON", "/env/python")
    monkeypatch.setenv("PGPIS_QALIGN_DEVICE", "cuda:3")
    s = settings_from_args(p.parse_args(["--qalign-python", "/other/python", "--trust-remote-code",
                                         "--qalign-timeout", "7", "--qalign-backend", "pyiqa"]))
    assert (s.python, s.device, s.trust_remote_code, s.image_timeout_s, s.backend) == \
        ("/other/python", "cuda:3", True, 7.0, "pyiqa")
    assert settings_from_args(p.parse_args([])).trust_remote_code is False
    assert settings_from_args(p.parse_args(["--quality", "none"])) == NOT_REQUESTED


def test_shipped_worker_protocol_loop_keeps_stdout_clean(images, tmp_path):
    """The shipped worker's own main loop, with its model replaced by a constant scorer that
    prints to stdout the way loading libraries do: the noise goes to stderr, the protocol stays parseable."""
    wrapper = tmp_path / "wrapped_worker.py"
    wrapper.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(WORKER.parent)!r})\n"
        "import qalign_worker as w\n"
        "def load(args):\n"
        "    print('Loading checkpoint shards: 100%')\n"
        "    return (lambda path, task: {'quality': 2.5, 'aesthetics': 4.0}[task]), 'constant (' + args.model + ')'\n"
        "w.environment_problems = lambda args: []\n"
        "w.load_scorer = load\n"
        "sys.exit(w.main(sys.argv[1:]))\n")
    settings = QAlignSettings(python=sys.executable, worker=str(wrapper))
    res = score_quality(*images, settings)  # a stdout print during loading would be a protocol error here
    assert (res.metrics["iqa"], res.metrics["iaa"], res.metrics["iqa_ground_truth"]) == (2.5, 4.0, 2.5)
    assert res.backend == f"constant ({HUB_ID}) via {sys.executable}"
    with QAlignWorker(settings) as worker:
        with pytest.raises(QualityWorkerError, match="could not score"):
            worker.score(tmp_path / "missing.png", ("sharpness",))  # an unknown task: the worker names the error


# --------------------------------------------------------------------------- `pgpis evaluate`, every dataset
@pytest.fixture()
def offline_metric_weights(tmp_path, monkeypatch):
    """No LPIPS / FID weights anywhere pgpis looks, so these runs only pay for SSIM / PSNR and IQA / IAA."""
    import dataclasses

    import pgpis.metrics.fid as fid_mod
    from pgpis.metrics.weights import ALEXNET, CLEAN_INCEPTION

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    for spec in (ALEXNET, CLEAN_INCEPTION):
        monkeypatch.delenv(spec.env, raising=False)
    monkeypatch.setattr(fid_mod, "CLEAN_INCEPTION", dataclasses.replace(CLEAN_INCEPTION, cache_dir=str(tmp_path / "cf")))
    for var in ("PGPIS_QALIGN_PYTHON", "PGPIS_QALIGN_WORKER", "PGPIS_QALIGN_TRUST_REMOTE_CODE"):
        monkeypatch.delenv(var, raising=False)


def _expected(paths, size) -> tuple[float, float]:
    from pgpis.metrics.images import load_resized

    means = [float(load_resized(p, size).astype(np.float64).mean()) for p in paths]
    return float(np.mean([q(m) for m in means])), float(np.mean([a(m) for m in means]))


def _gray(folder: Path, pairs, size) -> Path:
    from pgpis.metrics.pairs import generated_name

    folder.mkdir()
    for s, t in pairs:
        Image.fromarray(np.full((*size, 3), 128, np.uint8)).save(folder / generated_name(s, t))
    return folder


def _evaluate(args, tmp_path):
    from pgpis.cli import main

    out = tmp_path / "metrics.json"
    code = main(["evaluate", *args, "--out", str(out), "--fid-real-cache", ""])
    return code, (json.loads(out.read_text()) if out.exists() else None)


def test_evaluate_deepfashion_scores_generated_and_ground_truth(synthetic_root, offline_metric_weights, tmp_path, capsys):
    from pgpis.data.deepfashion import read_deepfashion_index

    index = read_deepfashion_index(synthetic_root)
    pairs = index.pairs["test"][:6]  # with --allow-missing: only these are scored (keeps the test fast)
    gen = _gray(tmp_path / "gray", pairs, (256, 176))  # a "method" whose images are mid-gray: IQA q(128), IAA a(128)
    code, res = _evaluate(["--dataset", "deepfashion", "--root", str(synthetic_root), "--generated", str(gen),
                           "--allow-missing", "--name", "Gray", "--qalign-python", sys.executable, "--qalign-worker", str(STANDIN),
                           "--trust-remote-code"], tmp_path)
    assert code == 0
    iqa_gt, iaa_gt = _expected(sorted({index.image_path(t) for _, t in pairs}), (256, 176))
    m = res["metrics"]
    assert m["iqa"] == pytest.approx(q(128)) and m["iaa"] == pytest.approx(a(128))
    assert m["iqa_ground_truth"] == pytest.approx(iqa_gt) and m["iaa_ground_truth"] == pytest.approx(iaa_gt)
    assert not any(k in res["unavailable"] for k in QUALITY_METRICS) and 0 < m["ssim"] < 1
    assert res["quality_backend"] == f"stand-in brightness scorer ({HUB_ID}) via {sys.executable}"
    out = capsys.readouterr().out
    assert f"| Gray | {m['iqa']:.3f} | {m['iaa']:.3f} |" in out
    assert f"| Ground Truth | {m['iqa_ground_truth']:.3f} | {m['iaa_ground_truth']:.3f} |" in out


def test_evaluate_without_an_environment_reports_why(synthetic_root, offline_metric_weights, tmp_path, capsys):
    from pgpis.data.deepfashion import read_deepfashion_index

    gen = _gray(tmp_path / "gray", read_deepfashion_index(synthetic_root).pairs["test"][:2], (256, 176))
    code, res = _evaluate(["--root", str(synthetic_root), "--generated", str(gen), "--allow-missing"], tmp_path)
    assert code == 0 and res["metrics"]["ssim"] is not None
    assert all(res["metrics"][k] is None for k in QUALITY_METRICS) and res["quality_backend"] is None
    assert "--qalign-python" in res["unavailable"]["iqa_ground_truth"]
    out = capsys.readouterr().out
    assert "- n/a iqa, iaa, iqa_ground_truth, iaa_ground_truth: Q-Align needs its own Python environment" in out
    assert out.count("Q-Align needs its own Python environment") == 1  # under the IQA table, not the main one too


def test_a_crashed_worker_is_the_reason_and_the_other_metrics_stay(synthetic_root, tmp_path, monkeypatch):
    from pgpis.data.deepfashion import read_deepfashion_index
    from pgpis.metrics.evaluate import evaluate_folder

    monkeypatch.setenv("QALIGN_STANDIN_MODE", "crash-after-one")
    index = read_deepfashion_index(synthetic_root)
    pairs = index.pairs["test"][:3]
    gen = tmp_path / "copy"
    from pgpis.metrics.pairs import copy_source

    copy_source(pairs, index.image_path, gen, size=(256, 176))
    res = evaluate_folder(gen, pairs, index.image_path, "deepfashion-256x176", lpips_net=None, fid_extractor=None,
                          quality=standin())
    d = res.to_dict()
    assert d["metrics"]["psnr"] is not None and d["metrics"]["iqa"] is None and d["quality_backend"] is None
    why = d["unavailable"]["iqa"]
    assert why.startswith("the Q-Align worker failed:") and "exited (code 139)" in why and "Segmentation fault" in why
    # not requested: no IQA / IAA keys at all (the API default outside `pgpis evaluate`, no PGPIS_QALIGN_PYTHON)
    monkeypatch.delenv("PGPIS_QALIGN_PYTHON", raising=False)
    plain = evaluate_folder(gen, pairs, index.image_path, "deepfashion-256x176", lpips_net=None, fid_extractor=None)
    assert "iqa" not in plain.to_dict()["metrics"] and "quality_backend" not in plain.to_dict()


def test_evaluate_phoenix_scores_too(synthetic_phoenix_root, offline_metric_weights, tmp_path, capsys):
    from pgpis.data.phoenix.evaluate import read_phoenix_frames

    frames = read_phoenix_frames(synthetic_phoenix_root, "test")
    pairs = frames.pairs[:5]
    gen = _gray(tmp_path / "gray", pairs, (260, 210))
    code, res = _evaluate(["--dataset", "phoenix", "--root", str(synthetic_phoenix_root), "--generated", str(gen),
                           "--allow-missing", "--qalign-python", sys.executable, "--qalign-worker", str(STANDIN),
                           "--trust-remote-code"], tmp_path)
    assert code == 0 and res["n_pairs"] == 5
    iqa_gt, _ = _expected(sorted({frames.path(t) for _, t in pairs}), (260, 210))
    assert res["metrics"]["iqa"] == pytest.approx(q(128)) and res["metrics"]["iqa_ground_truth"] == pytest.approx(iqa_gt)
    assert res["metrics"]["ssim"] is not None and res["quality_backend"].endswith(f"via {sys.executable}")
    assert "| Ground Truth |" in capsys.readouterr().out


# --------------------------------------------------------------------------- torch.distributed
def _ddp_rank(rank: int, world: int, init_file: str, gen: list[str], gt: list[str], out: str, log: str) -> None:
    import os

    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    os.environ["QALIGN_STANDIN_LOG"] = f"{log}.{rank}"
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        res = score_quality(gen, gt, standin())
        Path(f"{out}.{rank}").write_text(json.dumps({"metrics": res.metrics, "counts": res.counts}))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # two processes importing torch
def test_two_ranks_give_the_single_process_means(images, tmp_path):
    import torch.multiprocessing as mp

    gen, gt = ([str(p) for p in ps] for ps in images)
    single = score_quality(gen, gt, standin())
    out, log = str(tmp_path / "res"), str(tmp_path / "sent")
    mp.spawn(_ddp_rank, args=(2, str(tmp_path / "init"), gen, gt, out, log), nprocs=2, join=True)
    for rank in (0, 1):
        got = json.loads(Path(f"{out}.{rank}").read_text())
        assert got["metrics"] == pytest.approx(single.metrics) and got["counts"] == single.counts
    sent = [Path(f"{log}.{r}").read_text().split() for r in (0, 1)]
    assert sorted(sent[0] + sent[1]) == sorted(str(Path(p).resolve()) for p in (*gen, gt[0], gt[2]))  # each once
    assert sent[0] and sent[1]  # both ranks scored a share
