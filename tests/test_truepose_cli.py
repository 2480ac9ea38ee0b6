"""`pgpis fit` on experiments/tiny/truepose.yaml (and its ablations): one step, then DDIM inference + metrics."""
import json
from pathlib import Path

import pytest
import yaml

from pgpis.cli import main

CONFIG = Path(__file__).parent.parent / "experiments" / "tiny" / "truepose.yaml"


def _shrunk_config(tmp: Path, root: Path, denoiser_overrides: dict) -> Path:
    """The tiny experiment, cut to one step on the test fixture's data, writing under `tmp`."""
    cfg = yaml.safe_load(CONFIG.read_text())
    cfg["model"]["init_args"]["denoiser"]["init_args"].update(denoiser_overrides)
    cfg["model"]["init_args"]["sampler"]["init_args"]["num_inference_steps"] = 2
    cfg["data"]["init_args"].update(root=str(root), batch_size=4, eval_batch_size=4, num_workers=0,
                                    max_eval_pairs=4, val_identities=2)
    inference = next(c for c in cfg["trainer"]["callbacks"] if c["class_path"].endswith("DDIMInference"))
    inference["init_args"].update(output_dir=str(tmp / "samples"), metrics_path=str(tmp / "metrics.json"),
                                  grid_path=str(tmp / "grid.png"), batch_size=4)
    cfg["trainer"].update(max_steps=1, logger=False, enable_progress_bar=False, enable_model_summary=False,
                          limit_val_batches=0, default_root_dir=str(tmp),
                          callbacks=[{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                                      "init_args": {"dirpath": str(tmp / "ckpt"), "save_last": True, "save_top_k": 0}},
                                     inference])
    path = tmp / "truepose.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize("overrides", [
    {},  # the paper's model
    pytest.param({"fusion": "reference", "caa": False}, marks=pytest.mark.slow),  # B2
    pytest.param({"caa": False}, marks=pytest.mark.slow),  # B3
    pytest.param({"fusion": "reference"}, marks=pytest.mark.slow),  # B4
    pytest.param({"source_features": "clip", "source_pose": False, "source_parsing": False},
                 marks=pytest.mark.slow),  # B1: no SourceNet to condition
])
def test_tiny_experiment_fits_samples_and_scores(tmp_path, synthetic_root, overrides):
    assert main(["fit", "--config", str(_shrunk_config(tmp_path, synthetic_root, overrides))]) == 0
    assert (tmp_path / "ckpt" / "last.ckpt").is_file()
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert {"samples", "copy_source"} <= set(metrics)
    assert len(list((tmp_path / "samples").glob("*_to_*.png"))) == 4
    assert (tmp_path / "grid.png").is_file()


def test_paper_experiment_parses():
    cfg = yaml.safe_load((CONFIG.parent.parent / "deepfashion" / "truepose.yaml").read_text())
    den = cfg["model"]["init_args"]["denoiser"]["init_args"]
    assert den["unet"]["pretrained"] == "stable-diffusion-v1-5/stable-diffusion-v1-5"
    assert cfg["model"]["init_args"]["lr"] == 1.0e-5 and cfg["trainer"]["max_epochs"] == 50
    assert cfg["model"]["init_args"]["sampler"]["init_args"]["num_inference_steps"] == 35
    assert cfg["model"]["init_args"]["guidance"]["init_args"]["scale"] == 3.5
    assert cfg["data"]["init_args"]["image_size"] == [512, 352]
    with pytest.raises(SystemExit) as exit_info:  # LightningCLI resolves every class_path and key
        main(["fit", "--config", str(CONFIG.parent.parent / "deepfashion" / "truepose.yaml"), "--print_config"])
    assert exit_info.value.code in (0, None)
