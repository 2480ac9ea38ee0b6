"""DeepFashion data layer through its public entry points: index, DataModule, `pgpis data`."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from pgpis.cli import main as pgpis_main
from pgpis.data.datamodule import UnpaddedDistributedSampler
from pgpis.data.deepfashion import DeepFashionDataModule
from pgpis.data.deepfashion.layout import (
    deepfashion_name,
    identity_of,
    name_to_pcdms_relpath,
    pcdms_relpath_to_name,
    read_deepfashion_index,
)
from pgpis.errors import DataFormatError


def _copy(root: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(root, dst)
    return dst


def test_names_round_trip():
    name = deepfashion_name("WOMEN", "Blouses_Shirts", 1, 2, 1, "front")
    assert name == "fashionWOMENBlouses_Shirtsid0000000102_1front.jpg"
    rel = name_to_pcdms_relpath(name)
    assert rel == "img/WOMEN/Blouses_Shirts/id_00000001/02_1_front.jpg"
    assert pcdms_relpath_to_name("./" + rel) == name
    assert identity_of(name) == "fashionWOMENBlouses_Shirtsid0000000102"


def test_both_layouts_yield_identical_samples(synthetic_root, synthetic_root_pcdms):
    kw = dict(image_size=(64, 44), encoder_inputs={"enc": (32, 32)}, parsing=True, num_workers=0, val_identities=2)
    a, b = DeepFashionDataModule(str(synthetic_root), **kw), DeepFashionDataModule(str(synthetic_root_pcdms), **kw)
    assert a.index is None
    for split in ("train", "val", "test"):
        assert a.pairs(split) == b.pairs(split)
    assert a.index.layout == "cfld" and b.index.layout == "pcdms"
    da, db = a.dataset("test"), b.dataset("test")
    for i in (0, len(da) - 1):
        sa, sb = da[i], db[i]
        assert sa.keys() == sb.keys()
        for k, v in sa.items():
            if isinstance(v, torch.Tensor):
                assert torch.equal(v, sb[k]), k
            else:
                assert v == sb[k], k


def test_sample_contract(synthetic_root):
    dm = DeepFashionDataModule(str(synthetic_root), image_size=(64, 44), encoder_inputs={"clip": (32, 32)},
                               parsing=True, num_workers=0, val_identities=2)
    s = dm.dataset("test")[0]
    assert s["source"].shape == (3, 64, 44) and s["target_pose"].shape == (3, 64, 44)
    assert s["source"].min() >= -1 and s["source"].max() <= 1
    assert s["clip_source"].shape == (3, 32, 32) and s["clip_target_pose"].shape == (3, 32, 32)
    assert s["source_keypoints"].shape == (18, 2) and s["target_parsing"].dtype == torch.long
    kp = s["target_keypoints"]
    present = (kp >= 0).all(dim=1)
    assert (kp[present, 0] < 44).all() and (kp[present, 1] < 64).all()
    assert s["identity"] == identity_of(s["source_name"]) == identity_of(s["target_name"])


def test_validation_holds_out_training_identities(synthetic_root):
    dm = DeepFashionDataModule(str(synthetic_root), num_workers=0, val_identities=3)
    ids = {split: {identity_of(s) for s, _ in dm.pairs(split)} for split in ("train", "val", "test")}
    assert len(ids["val"]) == 3
    assert not ids["val"] & ids["train"] and not ids["val"] & ids["test"] and not ids["train"] & ids["test"]


def test_flip_augmentation_is_joint(synthetic_root):
    plain = DeepFashionDataModule(str(synthetic_root), image_size=(64, 44), parsing=True, num_workers=0,
                                  val_identities=2, flip_prob=0.0)
    flip = DeepFashionDataModule(str(synthetic_root), image_size=(64, 44), parsing=True, num_workers=0,
                                 val_identities=2, flip_prob=1.0)
    a, b = plain.dataset("train")[0], flip.dataset("train")[0]
    assert a["source_name"] == b["source_name"]
    # the image is mirrored (bicubic resize commutes with a mirror up to rounding)
    assert torch.allclose(a["source"].flip(-1), b["source"], atol=2 / 127.5)
    # left/right joints swap: the flipped right shoulder is the mirrored left shoulder
    ka, kb = a["source_keypoints"].numpy(), b["source_keypoints"].numpy()
    if (ka[5] >= 0).all():
        assert abs(kb[2, 1] - ka[5, 1]) < 1e-3
    # parsing classes swap (LIP 14 Left-arm <-> 15 Right-arm)
    pa, pb = a["source_parsing"].flip(-1), b["source_parsing"]
    assert ((pa == 14) == (pb == 15)).float().mean() > 0.97


def test_dataloader_with_two_workers(synthetic_root):
    dm = DeepFashionDataModule(str(synthetic_root), image_size=(32, 24), batch_size=4, num_workers=2, val_identities=2,
                               keypoint_jitter=1.0, identity_pair_prob=0.2)
    batch = next(iter(dm.train_dataloader()))
    assert batch["source"].shape == (4, 3, 32, 24) and len(batch["source_name"]) == 4
    assert len(list(dm.val_dataloader())) > 0


def test_unpadded_sampler_sees_every_item_once():
    data = list(range(11))
    shards = [list(UnpaddedDistributedSampler(data, num_replicas=3, rank=r)) for r in range(3)]
    assert sorted(i for s in shards for i in s) == data


# ----------------------------------------------------------------------------- bad input
def _rewrite(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def _problems(root: Path, **kw) -> str:
    with pytest.raises(DataFormatError) as err:
        read_deepfashion_index(root, **kw)
    return str(err.value)


def test_pair_naming_a_missing_image(synthetic_root, tmp_path):
    root = _copy(synthetic_root, tmp_path)
    victim = sorted((root / "test_highres").iterdir())[0]
    victim.unlink()
    msg = _problems(root)
    assert victim.name in msg and "image file is missing" in msg and "Fix:" in msg


def test_malformed_annotation_row_and_wrong_keypoint_count(synthetic_root, tmp_path):
    root = _copy(synthetic_root, tmp_path)
    ann = root / "fasion-resize-annotation-train.csv"
    lines = ann.read_text().splitlines()
    name2 = lines[2].split(":")[0]
    lines[1] = lines[1].replace(":", ";", 1)  # malformed row
    ys, xs = lines[2].split(":")[1:]
    ys = "[" + ",".join(ys.strip("[]").split(",")[:17]) + "]"  # 17 points
    lines[2] = f"{name2}:{ys}:{xs}"
    ann.write_text("\n".join(lines) + "\n")
    msg = _problems(root)
    assert f"{ann}:2" in msg and f"{ann}:3" in msg
    assert "18" in msg and "17" in msg


def test_undecodable_image(synthetic_root, tmp_path):
    root = _copy(synthetic_root, tmp_path)
    victim = sorted((root / "train_highres").iterdir())[0]
    victim.write_bytes(b"this is not a jpeg")
    msg = _problems(root)
    assert victim.name in msg and "does not decode" in msg


def test_missing_parsing_map_when_requested(synthetic_root, tmp_path):
    root = _copy(synthetic_root, tmp_path)
    victim = sorted((root / "parsing").iterdir())[0]
    victim.unlink()
    read_deepfashion_index(root, parsing=False)  # fine when parsing is not requested
    msg = _problems(root, parsing=True)
    assert victim.name in msg and "parsing" in msg


def test_unknown_layout(tmp_path):
    (tmp_path / "something.txt").write_text("x")
    msg = _problems(tmp_path)
    assert "neither the CFLD layout" in msg and "something.txt" in msg


def test_pcdms_missing_pose_file(synthetic_root_pcdms, tmp_path):
    root = _copy(synthetic_root_pcdms, tmp_path)
    victim = sorted((root / "pose").rglob("*.txt"))[0]
    victim.unlink()
    assert "keypoint file missing" in _problems(root)


# ----------------------------------------------------------------------------- CLI
def test_data_check_accepts_both_layouts_and_rejects_broken(synthetic_root, synthetic_root_pcdms, tmp_path, capsys):
    assert pgpis_main(["data", "check", "--dataset", "deepfashion", "--root", str(synthetic_root), "--parsing"]) == 0
    assert "CFLD layout" in capsys.readouterr().out
    assert pgpis_main(["data", "check", "--root", str(synthetic_root_pcdms)]) == 0
    assert "PCDMS layout" in capsys.readouterr().out
    root = _copy(synthetic_root, tmp_path)
    for victim in sorted((root / "test_highres").iterdir())[:2]:
        victim.unlink()
    assert pgpis_main(["data", "check", "--root", str(root)]) == 1
    err = capsys.readouterr().err
    assert err.count("image file is missing") == 2


def test_data_preview_writes_grid(synthetic_root, tmp_path):
    out = tmp_path / "grid.png"
    assert pgpis_main(["data", "preview", "--root", str(synthetic_root), "--out", str(out), "--rows", "3",
                       "--size", "64x44", "--min-cell-height", "0"]) == 0
    from PIL import Image

    im = Image.open(out)
    assert im.size == (4 * 44, 14 + 3 * 64)
    assert np.asarray(im).std() > 10
    # by default 64 px cells are upscaled x3 (nearest) to >= 192 px: the same pixels in 3x3 blocks, header unscaled
    big = tmp_path / "big.png"
    assert pgpis_main(["data", "preview", "--root", str(synthetic_root), "--out", str(big), "--rows", "3",
                       "--size", "64x44"]) == 0
    up = Image.open(big)
    assert up.size == (3 * 4 * 44, 14 + 3 * 3 * 64)
    cells = np.asarray(im.convert("RGB"))[14:]
    np.testing.assert_array_equal(np.asarray(up.convert("RGB"))[14:], cells.repeat(3, 0).repeat(3, 1))


def test_fit_print_config(capsys):
    with pytest.raises(SystemExit) as exit_:
        pgpis_main(["fit", "--data", "pgpis.data.deepfashion.DeepFashionDataModule", "--print_config"])
    assert exit_.value.code in (0, None)
    out = capsys.readouterr().out
    assert "DeepFashionDataModule" in out and "image_size" in out


def test_cached_views_give_identical_samples(synthetic_root):
    """cache_views only memoises: with flips, jitter and identity pairs the samples are bitwise the same."""
    kw = dict(image_size=(32, 24), encoder_inputs={"clip": (64, 64)}, parsing=True, num_workers=0, val_identities=2,
              flip_prob=0.5, keypoint_jitter=2.0, identity_pair_prob=0.2)
    samples = []
    for cache in (False, True):
        torch.manual_seed(0)
        ds = DeepFashionDataModule(str(synthetic_root), cache_views=cache, **kw).dataset("train")
        samples.append([ds[i % 8] for i in range(32)])  # every pair four times: cache hits
    assert len(ds.cache) > 0
    for plain, cached in zip(*samples):
        assert plain.keys() == cached.keys()
        for key, value in plain.items():
            assert torch.equal(value, cached[key]) if torch.is_tensor(value) else value == cached[key], key
