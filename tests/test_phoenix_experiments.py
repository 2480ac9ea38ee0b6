"""The Phoenix experiment overlays compose with the DeepFashion presets they build on (LightningCLI --config a --config b)."""
from __future__ import annotations

import pytest
import yaml

from pgpis.cli import main as pgpis_main

PAIRS = {
    "tiny_ipf": ("experiments/tiny/ipf.yaml", "experiments/tiny/phoenix_ipf.yaml"),
    "tiny_fpdm": ("experiments/tiny/fpdm.yaml", "experiments/tiny/phoenix_fpdm.yaml"),
    "paper_ipf": ("experiments/deepfashion/ipf.yaml", "experiments/phoenix/ipf.yaml"),
    "paper_fpdm": ("experiments/deepfashion/fpdm.yaml", "experiments/phoenix/fpdm.yaml"),
}


def resolved(base: str, overlay: str, capsys) -> dict:
    with pytest.raises(SystemExit) as exit_:
        pgpis_main(["fit", "--config", base, "--config", overlay, "--print_config"])
    assert exit_.value.code in (0, None)
    return yaml.safe_load(capsys.readouterr().out)


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_overlay_switches_the_data_and_keeps_the_model(name, capsys):
    base, overlay = PAIRS[name]
    cfg = resolved(base, overlay, capsys)
    with open(base) as f:
        base_cfg = yaml.safe_load(f)
    data = cfg["data"]["init_args"]
    assert cfg["data"]["class_path"] == "pgpis.data.phoenix.PhoenixDataModule"
    assert "val_identities" not in data and "parsing" not in data  # DeepFashion-only settings dropped
    assert cfg["model"]["class_path"] == base_cfg["model"]["class_path"]
    assert "phoenix" in cfg["trainer"]["default_root_dir"]
    if name.startswith("paper"):
        assert data["train_pairs"] == 100_000 and data["image_size"] == [512, 512]
    if name == "paper_fpdm":
        assert cfg["trainer"]["max_epochs"] == 20
    if name.endswith("fpdm"):
        den = cfg["model"]["init_args"]["denoiser"]["init_args"]
        assert den["fusion_model"] == "outputs/ipf_phoenix/fusion_model"
        assert den["unet"] == base_cfg["model"]["init_args"]["denoiser"]["init_args"]["unet"] or name == "paper_fpdm"
