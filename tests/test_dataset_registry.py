"""The dataset contract: the built-ins implement it alike, and `--dataset` finds a dataset by entry point too."""
from __future__ import annotations

import importlib
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from pgpis.cli import main
from pgpis.data import registry
from pgpis.data.contract import DatasetPackage
from pgpis.data.datamodule import PairDataModule
from pgpis.metrics.protocols import get_protocol

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize("name", ["deepfashion", "phoenix", "wpose"])
def test_builtin_datasets_implement_the_contract(name):
    dataset = registry.get_dataset(name)
    assert isinstance(dataset, DatasetPackage) and dataset.name == name
    module, _, cls = dataset.datamodule.rpartition(".")
    assert issubclass(getattr(importlib.import_module(module), cls), PairDataModule)
    assert dataset.default_protocol in {p.name for p in dataset.protocols()}
    assert get_protocol(dataset.default_protocol).name == dataset.default_protocol
    assert dataset.supports("check") and dataset.supports("evaluate") and dataset.supports("synth")


@pytest.mark.parametrize("argv", [
    ["--dataset", "phoenix", "--layout", "cfld"],      # a DeepFashion option
    ["--dataset", "wpose", "--signers", "3"],          # a Phoenix option
    ["--signers", "3"],                                # deepfashion (the default) has no Phoenix option either
])
def test_synth_parser_carries_only_the_chosen_datasets_options(argv, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["data", "synth", "--out", str(tmp_path / "out"), *argv])
    assert exit_.value.code == 2 and "unrecognized arguments" in capsys.readouterr().err


def test_a_command_the_dataset_lacks_is_named(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["data", "prepare", "--dataset", "phoenix", "--root", str(tmp_path)])
    assert "not available for --dataset phoenix" in capsys.readouterr().err


def test_an_entry_point_names_a_dataset_from_outside(monkeypatch, tmp_path, capsys):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    point = EntryPoint("mine", "folder_pairs:FolderPairs", registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda group: [point] if group == registry.ENTRY_POINT_GROUP else [])
    registry.get_dataset.cache_clear()
    try:
        assert "mine" in registry.available()
        assert main(["data", "check", "--dataset", "mine", "--root", str(tmp_path)]) == 1
        assert "images" in capsys.readouterr().err  # the example's own named problems
    finally:
        registry.get_dataset.cache_clear()


def test_a_class_that_is_no_dataset_is_refused(capsys):
    assert main(["data", "check", "--dataset", "pgpis.data.datamodule:PairDataModule", "--root", "."]) == 2
    assert "not a subclass of pgpis.data.contract.DatasetPackage" in capsys.readouterr().err
