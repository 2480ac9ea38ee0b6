"""examples/folder_pairs: a fourth dataset from outside pgpis, used by class path only.

The folder (images/, keypoints/ as `pgpis pose extract --format pcdms` writes them, pairs.csv) is written from
the synthetic DeepFashion of the conftest fixtures; every step goes through the `pgpis` commands.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from pgpis.cli import main
from pgpis.data.deepfashion import read_deepfashion_index
from pgpis.metrics.pairs import generated_name
from pgpis.pose.keypoints import cfld_to_pcdms_frame, write_pcdms_keypoints

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
DATASET = "folder_pairs.FolderPairs"
PAIRS = 6


@pytest.fixture(autouse=True)
def _examples_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))


def write_folder(synthetic_root: Path, out: Path, n_pairs: int = PAIRS) -> list[tuple[str, str]]:
    """A user's folder from the synthetic DeepFashion test split: photos, PCDMs keypoint files, pairs.csv."""
    index = read_deepfashion_index(synthetic_root, check_images="none")
    pairs = index.pairs["test"][:n_pairs]
    (out / "images").mkdir(parents=True)
    (out / "keypoints").mkdir()
    for name in sorted({n for p in pairs for n in p}):
        shutil.copy(index.image_path(name), out / "images" / name)
        write_pcdms_keypoints(out / "keypoints" / f"{Path(name).stem}.txt", cfld_to_pcdms_frame(index.keypoints[name]))
    (out / "pairs.csv").write_text("source,target\n" + "".join(f"{s},{t}\n" for s, t in pairs))
    return pairs


def test_check_by_class_path_names_every_problem(synthetic_root, tmp_path, capsys):
    root = tmp_path / "mine"
    pairs = write_folder(synthetic_root, root)
    assert main(["data", "check", "--dataset", DATASET, "--root", str(root)]) == 0
    assert f"{len(pairs)} pairs" in capsys.readouterr().out

    (root / "keypoints" / f"{Path(pairs[0][0]).stem}.txt").unlink()
    with (root / "pairs.csv").open("a") as f:
        f.write("nobody.jpg," + pairs[0][1] + "\n")
    assert main(["data", "check", "--dataset", "folder_pairs.package:FolderPairs", "--root", str(root)]) == 1
    err = capsys.readouterr().err
    assert "2 problem(s)" in err
    assert "pgpis pose extract" in err and "image 'nobody.jpg' is not in images/" in err and f"pairs.csv:{len(pairs) + 2}" in err


def test_unknown_class_path_is_a_clear_error(tmp_path, capsys):
    assert main(["data", "check", "--dataset", "folder_pairs.NoSuchDataset", "--root", str(tmp_path)]) == 2
    assert "has no 'NoSuchDataset'" in capsys.readouterr().err


def test_evaluate_by_class_path_scores_the_named_files(synthetic_root, tmp_path, capsys):
    root = tmp_path / "mine"
    pairs = write_folder(synthetic_root, root)
    generated = tmp_path / "generated"
    generated.mkdir()
    for s, t in pairs:  # the targets themselves: SSIM 1, PSNR infinite -> capped, so check SSIM only
        shutil.copy(root / "images" / t, generated / generated_name(s, t))
    out = tmp_path / "metrics.json"
    assert main(["evaluate", "--dataset", DATASET, "--root", str(root), "--generated", str(generated),
                 "--out", str(out), "--fid-real-cache", ""]) == 0
    import json

    result = json.loads(out.read_text())
    assert result["protocol"] == "folder-pairs-256x176" and result["n_pairs"] == len(pairs)
    assert result["metrics"]["ssim"] == pytest.approx(1.0, abs=1e-4)


def test_datamodule_gives_the_pair_batch(synthetic_root, tmp_path):
    from folder_pairs import FolderPairsDataModule

    root = tmp_path / "mine"
    write_folder(synthetic_root, root)
    dm = FolderPairsDataModule(str(root), image_size=(32, 24), encoder_inputs={"dino": (32, 32)}, batch_size=2)
    batch = next(iter(dm.train_dataloader()))
    assert batch["source"].shape == (2, 3, 32, 24) and batch["target_pose"].shape == (2, 3, 32, 24)
    assert batch["source_keypoints"].shape == (2, 18, 2) and batch["dino_source"].shape == (2, 3, 32, 32)
    assert batch["source"].min() >= -1 and batch["source"].max() <= 1


@pytest.mark.slow
def test_fit_generate_evaluate_the_tiny_fpdm(synthetic_root, tiny_ldm_checkpoints, tmp_path):
    root = tmp_path / "mine"
    pairs = write_folder(synthetic_root, root)
    out = tmp_path / "run"
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(yaml.safe_dump({
        "model": {"init_args": {"denoiser": {"init_args": {"fusion_model": str(tiny_ldm_checkpoints["fusion_model"])}}}},
        "data": {"init_args": {"root": str(root)}},
        "trainer": {"max_steps": 2, "max_epochs": 1, "logger": False, "enable_progress_bar": False,
                    "limit_val_batches": 0, "limit_test_batches": 0, "default_root_dir": str(out),
                    "callbacks": [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                                   "init_args": {"dirpath": str(out / "checkpoints"), "save_last": True,
                                                 "save_top_k": 0}}]}}))
    assert main(["fit", "--config", str(REPO / "experiments/tiny/fpdm.yaml"),
                 "--config", str(EXAMPLES / "folder_pairs/fpdm.yaml"), "--config", str(overlay)]) == 0
    ckpt = out / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()

    generated = tmp_path / "generated"
    assert main(["generate", "--checkpoint", str(ckpt), "--pairs", str(root / "pairs.csv"), "--root", str(root),
                 "--dataset", DATASET, "--out", str(generated), "--steps", "2", "--device", "cpu"]) == 0
    assert sorted(p.name for p in generated.glob("*.png")) == sorted(generated_name(s, t) for s, t in pairs)
    metrics = tmp_path / "metrics.json"
    assert main(["evaluate", "--dataset", DATASET, "--root", str(root), "--generated", str(generated),
                 "--out", str(metrics), "--fid-real-cache", ""]) == 0
    assert f'"n_pairs": {len(pairs)}' in metrics.read_text()
