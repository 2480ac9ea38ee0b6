"""Checkpoints cannot run code, and damaged files say which file and what to do (issue 19, items 1 and 5).

A crafted ``.ckpt`` is a genuine `pgpis fit` checkpoint with one more key whose unpickling would create a
file (``pathlib.Path.touch`` / ``os.system("touch ...")``): every entry point must refuse it with
UnsafeCheckpointError and create nothing, unless ``--trust-checkpoint`` is given.
"""
from __future__ import annotations

import json
import os
import pathlib
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from pgpis.cli import main
from pgpis.errors import DamagedFileError, DataFormatError, MissingWeightsError, UnsafeCheckpointError
from pgpis.inference.pipeline import load_pipeline


class Touch:
    """Unpickles as ``Path(marker).touch()``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (pathlib.Path(self.marker),)


class Shell:
    """Unpickles as ``os.system("touch marker")``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _genuine(tiny_ldm_checkpoints) -> Path:
    return Path(tiny_ldm_checkpoints["truepose"])


def _craft(genuine: Path, out: Path, *payloads) -> Path:
    ckpt = torch.load(genuine, map_location="cpu", weights_only=True)
    ckpt["extra"] = list(payloads)
    torch.save(ckpt, out)
    return out


def _cli_error(argv: list[str], capsys, error: type[Exception]) -> str:
    """The message `pgpis ...` gives: the named error raised, or (when the CLI formats errors) printed with rc != 0."""
    try:
        rc = main(argv)
    except error as err:
        return str(err)
    assert rc != 0, f"{argv} succeeded"
    return capsys.readouterr().err


def _fit_config(genuine: Path, out: Path) -> Path:
    """A `pgpis fit` config that resumes `genuine` (its own model and data settings, no more steps to run)."""
    raw = torch.load(genuine, map_location="cpu", weights_only=True)

    def section(hp: dict) -> dict:
        hp = {k: v for k, v in hp.items() if k != "_instantiator"}
        return {"class_path": hp.pop("_class_path"), "init_args": hp}

    config = {"model": section(raw["hyper_parameters"]), "data": section(raw["datamodule_hyper_parameters"]),
              "trainer": {"accelerator": "cpu", "max_steps": int(raw["global_step"]), "logger": False,
                          "enable_progress_bar": False, "enable_model_summary": False, "limit_val_batches": 0,
                          "enable_checkpointing": False, "default_root_dir": str(out)}}
    path = out / "resume.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def crafted(tmp_path, tiny_ldm_checkpoints):
    """(crafted checkpoint, the two files its unpickling would create)."""
    markers = tmp_path / "touched", tmp_path / "shell"
    return _craft(_genuine(tiny_ldm_checkpoints), tmp_path / "shared.ckpt", Touch(markers[0]), Shell(markers[1])), markers


def _assert_refused(message: str, ckpt: Path) -> None:
    assert str(ckpt) in message and "refused" in message
    assert "--trust-checkpoint" in message and "pgpis export" in message


# --------------------------------------------------------------------------- item 1: safe loading
def test_genuine_checkpoint_is_plain_data(tiny_ldm_checkpoints):
    """What `pgpis fit` writes loads with torch's bare weights-only unpickler (no allowlist needed)."""
    for name in ("fpdm", "truepose"):
        ckpt = torch.load(tiny_ldm_checkpoints[name], map_location="cpu", weights_only=True)
        assert ckpt["hyper_parameters"]["_class_path"].startswith("pgpis.stages.")
        assert isinstance(ckpt["datamodule_hyper_parameters"]["image_size"], list)


def test_crafted_checkpoint_is_refused_by_the_api(crafted):
    ckpt, markers = crafted
    with pytest.raises(UnsafeCheckpointError) as err:
        load_pipeline(ckpt)
    _assert_refused(str(err.value), ckpt)
    assert not any(m.exists() for m in markers)


def test_crafted_checkpoint_is_refused_by_generate_export_animate(crafted, tmp_path, capsys):
    ckpt, markers = crafted
    out = tmp_path / "out"
    for argv in (["generate", "--checkpoint", str(ckpt), "--source", "a.jpg", "--pose", "b.txt",
                  "--out", str(out / "x.png")],
                 ["export", str(ckpt), str(out)],
                 ["animate", "--checkpoint", str(ckpt), "--source", "a.png", "--poses", str(tmp_path / "p.npz"),
                  "--out", str(out / "c.gif")]):
        if argv[0] == "animate":
            import numpy as np

            np.savez(tmp_path / "p.npz", keypoints=np.zeros((2, 18, 3), np.float32))
        _assert_refused(_cli_error(argv, capsys, UnsafeCheckpointError), ckpt)
    assert not any(m.exists() for m in markers) and not out.exists()


@pytest.mark.parametrize("subcommand", ["fit", "validate"])
def test_crafted_checkpoint_is_refused_by_ckpt_path(crafted, tmp_path, tiny_ldm_checkpoints, capsys, subcommand):
    ckpt, markers = crafted
    config = _fit_config(_genuine(tiny_ldm_checkpoints), tmp_path / "run")
    message = _cli_error([subcommand, "--config", str(config), "--ckpt_path", str(ckpt)], capsys, UnsafeCheckpointError)
    _assert_refused(message, ckpt)
    assert not any(m.exists() for m in markers)


def test_genuine_checkpoint_resumes_and_trust_flag_opts_out(tmp_path, tiny_ldm_checkpoints, capsys):
    """`pgpis fit --ckpt_path` resumes a genuine checkpoint weights-only; a crafted (harmless, in tmp) one runs only
    with --trust-checkpoint."""
    genuine = _genuine(tiny_ldm_checkpoints)
    config = _fit_config(genuine, tmp_path / "run")
    assert main(["fit", "--config", str(config), "--ckpt_path", str(genuine)]) == 0
    marker = tmp_path / "trusted"
    own = _craft(genuine, tmp_path / "own.ckpt", Touch(marker))
    _assert_refused(_cli_error(["fit", "--config", str(config), "--ckpt_path", str(own)], capsys,
                               UnsafeCheckpointError), own)
    assert not marker.exists()
    assert main(["fit", "--config", str(config), "--ckpt_path", str(own), "--trust-checkpoint"]) == 0
    assert marker.exists()
    assert "trust" not in (tmp_path / "run" / "config.yaml").read_text()  # the opt-out is never saved with the run


def test_trust_checkpoint_loads_own_file_in_the_api(tmp_path, tiny_ldm_checkpoints):
    marker = tmp_path / "trusted"
    own = _craft(_genuine(tiny_ldm_checkpoints), tmp_path / "own.ckpt", Touch(marker))
    with pytest.raises(UnsafeCheckpointError):
        load_pipeline(own)
    assert not marker.exists()
    pipe = load_pipeline(own, trust_checkpoint=True, device="cpu")
    assert marker.exists() and pipe.kind == load_pipeline(_genuine(tiny_ldm_checkpoints), device="cpu").kind


# --------------------------------------------------------------------------- item 5: damaged files
def _cut(src: Path, dst: Path, keep: float) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * keep)])
    return dst


def test_damaged_checkpoint_says_which_file(tmp_path, tiny_ldm_checkpoints, capsys):
    genuine = _genuine(tiny_ldm_checkpoints)
    data = genuine.read_bytes()
    middle = len(data) // 2
    (tmp_path / "zeroed.ckpt").write_bytes(data[:64] + bytes(4032) + data[4096:])  # over the pickle
    (tmp_path / "flipped.ckpt").write_bytes(data[:middle] + b"\x7f" * 64 + data[middle + 64:])  # inside a tensor
    (tmp_path / "empty.ckpt").write_bytes(b"")
    (tmp_path / "text.ckpt").write_text("not a checkpoint")
    cases = {_cut(genuine, tmp_path / "half.ckpt", 0.5): "truncated or corrupted",
             tmp_path / "zeroed.ckpt": "data.pkl fails its CRC-32 check",
             tmp_path / "flipped.ckpt": "fails its CRC-32 check", tmp_path / "empty.ckpt": "the file is empty",
             tmp_path / "text.ckpt": "truncated or corrupted"}
    for path, what in cases.items():
        with pytest.raises(DamagedFileError, match=what) as err:
            load_pipeline(path)
        assert str(path) in str(err.value) and "download it again" in str(err.value)
    config = _fit_config(genuine, tmp_path / "run")
    message = _cli_error(["fit", "--config", str(config), "--ckpt_path", str(tmp_path / "half.ckpt")], capsys,
                         DamagedFileError)
    assert "half.ckpt" in message and "truncated or corrupted" in message


@pytest.fixture
def export_folder(tmp_path_factory, tiny_ldm_checkpoints) -> Path:
    out = tmp_path_factory.mktemp("export") / "tp"
    assert main(["export", str(_genuine(tiny_ldm_checkpoints)), str(out)]) == 0
    return out


def test_damaged_export_folder_says_which_file(tmp_path, export_folder):
    meta = json.loads((export_folder / "pipeline.json").read_text())
    weights = meta["weights"][0]

    def broken(name: str, damage) -> Path:
        folder = tmp_path / name
        shutil.copytree(export_folder, folder)
        damage(folder)
        return folder

    cases = [
        (broken("no_unet_cfg", lambda f: (f / "unet" / "config.json").unlink()), MissingWeightsError, "unet/config.json"),
        (broken("cut_meta", lambda f: _cut(f / "pipeline.json", f / "pipeline.json", 0.5)), DamagedFileError,
         "pipeline.json"),
        (broken("no_key", lambda f: (f / "pipeline.json").write_text(json.dumps({**meta, "weights": None}))),
         DataFormatError, r"\[weights\]"),
        (broken("no_weights", lambda f: (f / weights).unlink()), MissingWeightsError, weights),
        (broken("cut_weights", lambda f: _cut(f / weights, f / weights, 0.5)), DamagedFileError, weights),
        (broken("zero_header", lambda f: (f / weights).write_bytes(b"\xff" * 64 + (f / weights).read_bytes()[64:])),
         DamagedFileError, weights),
    ]
    for folder, error, where in cases:
        with pytest.raises(error, match=where) as err:
            load_pipeline(folder)
        assert "pgpis export" in str(err.value), str(err.value)
        if error is DamagedFileError:
            assert "truncated or corrupted" in str(err.value) or "not valid JSON" in str(err.value)


def test_damaged_fusion_model_safetensors(tmp_path, tiny_ldm_checkpoints):
    from pgpis.models.fusion import WEIGHTS_NAME, load_fusion_model

    folder = tmp_path / "fusion_model"
    shutil.copytree(tiny_ldm_checkpoints["fusion_model"], folder)
    _cut(folder / WEIGHTS_NAME, folder / WEIGHTS_NAME, 0.3)
    with pytest.raises(DamagedFileError, match=WEIGHTS_NAME) as err:
        load_fusion_model(folder)
    assert "re-export" in str(err.value)


def test_damaged_pretrained_folder_names_the_file(tmp_path):
    """A truncated weights file in a local model folder (an export's clip_encoder/, vae/...) is damaged, not missing."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from pgpis.models.encoders import CLIPImageEncoder

    config = CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                              image_size=32, patch_size=8, projection_dim=8)
    CLIPVisionModelWithProjection(config).save_pretrained(tmp_path / "clip")
    weights = tmp_path / "clip" / "model.safetensors"
    _cut(weights, weights, 0.5)
    with pytest.raises(DamagedFileError, match="model.safetensors") as err:
        CLIPImageEncoder.from_pretrained(str(tmp_path / "clip"))
    assert "truncated or corrupted" in str(err.value)


def test_ckpt_path_last_is_checked_too(tmp_path, tiny_ldm_checkpoints, capsys):
    """`--ckpt_path last` (what a requeued job resumes from) is resolved by Lightning; the file it picks is checked."""
    genuine = _genuine(tiny_ldm_checkpoints)
    config = yaml.safe_load(_fit_config(genuine, tmp_path / "run").read_text())
    config["trainer"].update(enable_checkpointing=True, callbacks=[{
        "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
        "init_args": {"dirpath": str(tmp_path / "run" / "checkpoints"), "save_last": True, "save_top_k": 0}}])
    (tmp_path / "last.yaml").write_text(yaml.safe_dump(config))
    marker = tmp_path / "touched"
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    last = _craft(genuine, tmp_path / "run" / "checkpoints" / "last.ckpt", Touch(marker))
    message = _cli_error(["fit", "--config", str(tmp_path / "last.yaml"), "--ckpt_path", "last"], capsys,
                         UnsafeCheckpointError)
    _assert_refused(message, last)
    assert not marker.exists()
