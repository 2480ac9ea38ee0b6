"""WPose: the reader on synthetic and hand-built copies, CIHP->LIP, fit-and-pad, prepare/check/synth through the CLI,
the download preprocessing on local files, the protocols, and `pgpis test` of a tiny TruePose checkpoint on it."""
from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from pgpis.cli import main
from pgpis.data.parsing import CIHP, LIP, write_parsing_png
from pgpis.data.wpose.fit import PAD_RGB, Fit, fit_image, fit_labels
from pgpis.data.wpose.layout import read_wpose_index, write_keypoint_file
from pgpis.data.wpose.parsing import CIHP_TO_LIP, cihp_to_lip
from pgpis.errors import DataFormatError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wpose_root(tmp_path_factory) -> Path:
    """Synthetic WPose (2 people x 2 images, longer side <= 64 px) with the generator's keypoints prepared."""
    root = tmp_path_factory.mktemp("wpose") / "wpose"
    assert main(["data", "synth", "--dataset", "wpose", "--out", str(root), "--identities", "2", "--poses", "2",
                 "--max-side", "64"]) == 0
    assert main(["data", "prepare", "--dataset", "wpose", "--root", str(root), "--use-synthetic-keypoints"]) == 0
    return root


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _messages(err: DataFormatError) -> list[str]:
    return [str(p) for p in err.problems]


# --------------------------------------------------------------------------- synthetic copy, CLI
def test_synthetic_copy_has_the_real_layout_and_varied_images(wpose_root):
    for f in ("image_urls.txt", "bbox.txt", "test_pairs.txt", "test_data.pkl", "images", "parsing", "keypoints"):
        assert (wpose_root / f).exists(), f
    index = read_wpose_index(wpose_root, check_images="decode")
    assert len(index.pairs) == 4 and len(index.names()) == 4 and index.is_synthetic
    sizes = set(index.image_sizes.values())
    assert len({round(h / w, 2) for h, w in sizes}) > 1, f"aspect ratios do not vary: {sizes}"
    assert all(max(s) <= 64 for s in sizes)
    labels = np.array(Image.open(index.parsing_path(index.names()[0])))
    assert labels.shape == index.image_sizes[index.names()[0]]
    assert (labels == CIHP.index("Torso-skin")).any()  # the visible neck, CIHP's class LIP lacks
    image = np.asarray(Image.open(index.image_path(index.names()[0])).convert("RGB"))
    background = image[labels == 0]
    assert background.std(axis=0).mean() > 20, "the background is not cluttered"
    kp = index.keypoints[index.names()[0]]
    assert kp.origin == "synthetic-generator" and "not an estimate" in kp.estimator


def test_check_names_missing_keypoints_then_passes_after_prepare(tmp_path, capsys):
    root = tmp_path / "w"
    assert main(["data", "synth", "--dataset", "wpose", "--out", str(root), "--identities", "1", "--poses", "2",
                 "--max-side", "48"]) == 0
    assert main(["data", "check", "--dataset", "wpose", "--root", str(root)]) == 1
    err = capsys.readouterr().err
    assert "keypoints missing" in err and "synthetic_0000_0.json" in err and "pgpis data prepare --dataset wpose" in err
    assert main(["data", "prepare", "--dataset", "wpose", "--root", str(root), "--use-synthetic-keypoints"]) == 0
    assert "generator's own keypoints" in capsys.readouterr().out
    assert main(["data", "check", "--dataset", "wpose", "--root", str(root)]) == 0
    assert "2 pairs" in capsys.readouterr().out


def test_prepare_runs_the_estimator_once_and_records_it(tmp_path, wpose_root):
    from pgpis.data.wpose.prepare import prepare_keypoints
    from pgpis.pose.testing import FixedEstimator

    root = _copy(wpose_root, tmp_path / "w")
    shutil.rmtree(root / "keypoints")
    body = np.full((18, 3), -1.0, np.float32)
    body[:, 2] = 0
    body[1] = (10, 12, 0.9)
    est = FixedEstimator(body=body, name="fixed-test")
    report = prepare_keypoints(root, est)
    assert (report.written, report.kept, report.not_found) == (4, 0, 0) and est.calls == 4
    data = json.loads((root / "keypoints" / "synthetic_0000_0.json").read_text())
    assert data["estimator"] == "fixed-test" and data["origin"] == "estimator" and data["body"][1] == [10, 12, 0.9]
    assert prepare_keypoints(root, est).kept == 4 and est.calls == 4  # once: the same estimator's files are kept
    nobody = FixedEstimator(body=None, name="blind")
    assert prepare_keypoints(root, nobody).not_found == 4
    with pytest.raises(DataFormatError) as info:
        read_wpose_index(root)
    assert "blind found no person" in str(info.value)


def test_use_synthetic_keypoints_is_refused_on_a_copy_that_is_not_synthetic(tmp_path, wpose_root, capsys):
    root = _copy(wpose_root, tmp_path / "w")
    (root / ".pgpis-synthetic").unlink()
    assert main(["data", "prepare", "--dataset", "wpose", "--root", str(root), "--use-synthetic-keypoints"]) == 1
    assert "needs a synthetic copy" in capsys.readouterr().err


# --------------------------------------------------------------------------- hand-built edge cases
def test_reader_names_missing_image_size_mismatch_absent_pair_image_and_malformed_line(tmp_path, wpose_root):
    root = _copy(wpose_root, tmp_path / "w")
    names = read_wpose_index(root).names()
    (root / "images" / names[0]).unlink()  # a missing image (its pairs name an absent image)
    parsing = root / "parsing" / f"{Path(names[1]).stem}.png"
    write_parsing_png(parsing, np.zeros((7, 5), np.uint8))  # wrong size
    lines = (root / "test_pairs.txt").read_text().splitlines()
    lines.insert(1, f"{names[2]} {names[3]} extra")  # malformed: three fields, line 2
    (root / "test_pairs.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError) as info:
        read_wpose_index(root)
    text = _messages(info.value)
    assert any(f"test_pairs.txt:2" in m and "malformed pair line" in m for m in text), text
    assert any(f"names '{names[0]}', which is not in images/" in m and "test_pairs.txt:1" in m for m in text), text
    assert any("parsing map is 5x7" in m and names[1] in m for m in text), text
    # the CLI lists the same problems and exits 1
    assert main(["data", "check", "--dataset", "wpose", "--root", str(root)]) == 1


def test_pairs_file_forms_header_commas_and_paths(tmp_path, wpose_root):
    root = _copy(wpose_root, tmp_path / "w")
    names = read_wpose_index(root).names()
    (root / "test_pairs.txt").write_text(f"source,target\n# a comment\n\n./images/{names[0]}, {names[1]}\n"
                                         f"{names[1]}\t{names[0]}\r\n")
    index = read_wpose_index(root)
    assert index.pairs == [(names[0], names[1]), (names[1], names[0])]


def test_pairs_from_the_pickle_when_there_is_no_pairs_file(tmp_path, wpose_root):
    root = _copy(wpose_root, tmp_path / "w")
    names = read_wpose_index(root).names()
    (root / "test_pairs.txt").unlink()
    records = [{"source": f"ood_test_reposing/images/{names[0]}", "target": f"ood_test_reposing/images/{names[1]}",
                "source pose": None, "seg": f"ood_test_reposing/parsing/{Path(names[0]).stem}.png", "prompt": "a person"}]
    (root / "test_data.pkl").write_bytes(pickle.dumps(records, protocol=2))
    index = read_wpose_index(root)
    assert index.pairs == [(names[0], names[1])] and index.pair_source == "test_data.pkl"
    # a dict of per-image records is read too; a record path that names no file is a problem
    (root / "test_pairs.txt").write_text(f"{names[0]} {names[1]}\n")
    (root / "test_data.pkl").write_bytes(pickle.dumps({names[0]: {"densepose": "densepose/missing.png"}}))
    with pytest.raises(DataFormatError, match="densepose/missing.png"):
        read_wpose_index(root)


class _Touch:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_malicious_pickle_is_refused_without_running(tmp_path, wpose_root, capsys):
    root = _copy(wpose_root, tmp_path / "w")
    marker = tmp_path / "pwned"
    (root / "test_data.pkl").write_bytes(pickle.dumps([{"source": "a.png", "target": "b.png", "x": _Touch(marker)}]))
    from pgpis.data.phoenix.keypoints import UnsafePickleError

    with pytest.raises(UnsafePickleError) as info:
        read_wpose_index(root)
    assert not marker.exists()
    assert "refused without running it" in str(info.value) and "test_data.pkl" in str(info.value)
    assert main(["data", "check", "--dataset", "wpose", "--root", str(root)]) == 1
    assert not marker.exists() and "system" in capsys.readouterr().err


# --------------------------------------------------------------------------- parsing and fit
def test_cihp_to_lip_table():
    assert CIHP_TO_LIP[CIHP.index("Torso-skin")] == LIP.index("Upper-clothes")
    for i in range(CIHP.num_classes):
        if CIHP.classes[i] != "Torso-skin":
            assert CIHP_TO_LIP[i] == i and CIHP.classes[i] == LIP.classes[i]
    labels = np.array([[0, 10, 13], [19, 5, 10]], np.uint8)
    assert cihp_to_lip(labels).tolist() == [[0, 5, 13], [19, 5, 5]]
    assert LIP.index("Jumpsuits") not in cihp_to_lip(np.arange(20, dtype=np.uint8))
    assert cihp_to_lip(labels, {10: 0}).tolist() == [[0, 0, 13], [19, 5, 0]]  # the table is overridable


def test_fit_and_pad_against_a_hand_computed_example():
    # a 30x10 (w x h) image into 40x20 (h x w): scale min(40/10, 20/30) = 2/3 -> content 20x7 (w x h),
    # top = (40 - 7) // 2 = 16, left = 0
    image = Image.new("RGB", (30, 10), (200, 30, 40))
    out, fit = fit_image(image, (40, 20))
    assert (fit.content_h, fit.content_w, fit.top, fit.left) == (7, 20, 16, 0)
    arr = np.asarray(out)
    assert arr.shape == (40, 20, 3)
    assert (arr[:16] == PAD_RGB).all() and (arr[23:] == PAD_RGB).all() and (arr[16:23] == (200, 30, 40)).all()
    kp = fit.keypoints(np.array([[15.0, 5.0], [-1.0, -1.0]]))
    assert kp.tolist() == [[10.0, 5 * 0.7 + 16], [-1.0, -1.0]]
    labels = fit_labels(np.full((10, 30), 7, np.uint8), (40, 20))
    assert (labels[16:23] == 7).all() and (labels[:16] == 0).all() and (labels[23:] == 0).all()
    # same aspect ratio: a plain resize, no pad
    assert Fit.of((512, 352), (256, 176)) == Fit((512, 352), (256, 176), 256, 176, 0, 0)


# --------------------------------------------------------------------------- download
def test_download_crops_and_resizes_like_unihuman(tmp_path, capsys):
    raw = tmp_path / "raw"
    raw.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (1300, 1800, 3), dtype=np.uint8)).save(raw / "big.png")
    Image.fromarray(rng.integers(0, 255, (90, 60, 3), dtype=np.uint8)).save(raw / "small.png")
    root = tmp_path / "wpose"
    root.mkdir()
    (root / "image_urls.txt").write_text(f"{(raw / 'big.png').as_uri()}\t1.png\n{(raw / 'small.png').as_uri()}\t2.png\n"
                                         f"{(raw / 'gone.png').as_uri()}\t3.png\n")
    (root / "bbox.txt").write_text("1.png 100 50 1700 1250\n2.png 10 20 50 90\n3.png 0 0 10 10\n")
    assert main(["data", "download-wpose", "--root", str(root)]) == 1  # 3.png cannot be fetched
    captured = capsys.readouterr()
    assert "3.png" in captured.err and "gone.png" in captured.err and "wpose.zip" in captured.err
    big = Image.open(root / "images" / "1.png")
    assert big.size == (1024, 768)  # crop 1600x1200, longer side to 1024
    expected = Image.fromarray(np.asarray(Image.open(raw / "big.png"))[50:1250, 100:1700]).resize((1024, 768), Image.BICUBIC)
    assert np.array_equal(np.asarray(big), np.asarray(expected))
    small = np.asarray(Image.open(root / "images" / "2.png"))
    assert np.array_equal(small, np.asarray(Image.open(raw / "small.png"))[20:90, 10:50])  # under 1024: same pixels

    from pgpis.data.wpose.download import download_wpose

    def offline(url, timeout):
        raise OSError("no network")

    report = download_wpose(root, fetch=offline)
    assert report.kept == 2 and [n for n, _ in report.failed] == ["3.png"] and "no network" in report.failed[0][1]


# --------------------------------------------------------------------------- DataModule, protocols, pgpis test
def test_datamodule_gives_the_deepfashion_batch_keys(wpose_root, synthetic_root):
    from pgpis.data.deepfashion import DeepFashionDataModule
    from pgpis.data.wpose import WPoseDataModule

    kwargs = dict(image_size=(32, 24), encoder_inputs={"clip": (32, 32)}, parsing=True, num_workers=0)
    dm = WPoseDataModule(root=str(wpose_root), **kwargs)
    sample = dm.dataset("test")[0]
    reference = DeepFashionDataModule(root=str(synthetic_root), val_identities=2, **kwargs).dataset("test")[0]
    assert set(sample) == set(reference)
    for key in ("source", "target_pose", "target_parsing", "clip_target_pose", "target_keypoints"):
        assert sample[key].shape == reference[key].shape and sample[key].dtype == reference[key].dtype, key
    assert int(sample["target_parsing"].max()) < LIP.num_classes and 10 not in sample["target_parsing"].unique()
    with pytest.raises(DataFormatError, match="test-only"):
        dm.dataset("train")


def test_protocols_are_listed(capsys):
    assert main(["evaluate", "--list-protocols"]) == 0
    out = capsys.readouterr().out
    assert "`wpose-512x352`" in out and "`wpose-256x176`" in out
    wpose = [line for line in out.splitlines() if "h x w), resize to fit" in line]
    assert len(wpose) == 2 and all("no FID" in line and "FID network" not in line for line in wpose)


def test_evaluate_copy_source_on_synthetic_wpose(tmp_path, wpose_root):
    out = tmp_path / "metrics.json"
    code = main(["evaluate", "--dataset", "wpose", "--root", str(wpose_root), "--generated", str(tmp_path / "copy"),
                 "--protocol", "wpose-256x176", "--make-copy-source", "--out", str(out), "--pose-estimator", "none"])
    assert code == 0
    result = json.loads(out.read_text())
    assert result["protocol"] == "wpose-256x176" and result["n_pairs"] == 4
    assert -1 < result["metrics"]["ssim"] < 1 and result["metrics"]["psnr"] > 3  # other backgrounds: low
    for k in ("lpips", "pck@0.05", "iqa", "iaa"):  # unavailable here, each with its reason
        assert result["metrics"][k] is not None or result["unavailable"][k], k
    assert "fid" not in result["metrics"]


def test_pgpis_test_of_tiny_truepose_on_synthetic_wpose(tmp_path, wpose_root, tiny_ldm_checkpoints):
    from pgpis.data.wpose.protocols import WPOSE_METRICS

    overlay = {"data": {"init_args": {"root": str(wpose_root), "num_workers": 0, "persistent_workers": False}},
               "model": {"init_args": {"sampler": {"init_args": {"num_inference_steps": 2}}}},
               "trainer": {"enable_progress_bar": False, "callbacks": [
                   {"class_path": "pgpis.callbacks.inference.DDIMInference",
                    "init_args": {"output_dir": str(tmp_path / "samples"), "batch_size": 4,
                                  "metrics_path": str(tmp_path / "metrics.json"), "grid_path": None}},
                   {"class_path": "pgpis.data.wpose.callback.WPoseEvaluation",
                    "init_args": {"protocol": "wpose-256x176", "pose_estimator": "pgpis.pose.testing.FixedEstimator"}}]}}
    path = tmp_path / "overlay.yaml"
    path.write_text(yaml.safe_dump(overlay))
    assert main(["test", "--config", str(REPO / "experiments" / "tiny" / "truepose.yaml"),
                 "--config", str(REPO / "experiments" / "wpose" / "test.yaml"), "--config", str(path),
                 "--ckpt_path", str(tiny_ldm_checkpoints["truepose"])]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["samples"]["n_pairs"] == 4 and len(list((tmp_path / "samples").glob("*_to_*.png"))) == 4
    rows = metrics["wpose"]
    assert set(rows) == {"generated", "ground_truth"}
    gen, gt = rows["generated"], rows["ground_truth"]
    assert gen["protocol"] == "wpose-256x176" and gen["n_pairs"] == 4
    for row in (gen, gt):
        for k in WPOSE_METRICS:  # a number, or the reason it is missing
            assert row["metrics"][k] is not None or row["unavailable"].get(k), (k, row)
    assert -1 <= gen["metrics"]["ssim"] <= 1 and gen["metrics"]["psnr"] > 0  # a 2-step model: any SSIM
    assert gen["metrics"]["pck@0.1"] is not None and gt["metrics"]["pck@0.1"] is not None  # FixedEstimator: all missing
    assert gt["unavailable"]["ssim"].startswith("not defined for the ground truth")
