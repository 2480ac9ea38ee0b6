"""Phoenix14T: keypoint containers, restricted unpickler, layout validation, protocols, DataModule, CLI."""
from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from pgpis.data.keypoints import COCO_WHOLEBODY_133, LEFT_HAND_KNUCKLE, MISSING
from pgpis.data.phoenix.keypoints import (
    RestrictedUnpickler,
    UnsafePickleError,
    convert_keypoints,
    read_keypoint_file,
)
from pgpis.data.phoenix.layout import (
    CORPUS,
    FRAME_SIZE,
    FRAMES_DIR,
    first_frame_pairs,
    keypoints_with_missing,
    read_phoenix_index,
    train_triplets,
)
from pgpis.errors import DataFormatError

KP_DIR = "keypoints"
CONTAINERS = {
    "pickle": ["keypoints/phoenix-2014t.keypoints.pkl"],
    "tensor-pickle": [f"keypoints/phoenix-2014t.{s}" for s in ("train", "dev", "test")],
    "npz": ["keypoints/phoenix-2014t.keypoints.npz"],
}
DEEPFASHION_KEYS = {"source", "target", "source_pose", "target_pose", "source_keypoints", "target_keypoints",
                    "source_name", "target_name", "identity", "pair_index"}


class _Exploit:
    """A pickle payload that would run a shell command when unpickled with plain pickle.load."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


# ------------------------------------------------------------------ containers and the unpickler
def test_all_containers_give_the_same_keypoints(synthetic_phoenix_root):
    loaded = {name: read_phoenix_index(synthetic_phoenix_root, keypoints=[synthetic_phoenix_root / p for p in paths])
              for name, paths in CONTAINERS.items()}
    ref = loaded["pickle"]
    for name, index in loaded.items():
        for split in ("train", "dev", "test"):
            assert [v.name for v in index.videos[split]] == [v.name for v in ref.videos[split]], name
            for a, b in zip(index.videos[split], ref.videos[split]):
                np.testing.assert_array_equal(a.keypoints, b.keypoints)
    counts = {s: len(v) for s, v in ref.videos.items()}
    assert counts == {"train": 4, "dev": 1, "test": 2}
    video = ref.videos["train"][0]
    assert video.keypoints.shape == (len(video.frames), 133, 3) and video.keypoints.dtype == np.float32
    # default discovery prefers the .npz when several containers sit in <root>/keypoints/
    assert [p.name for p in read_phoenix_index(synthetic_phoenix_root).keypoint_files] == ["phoenix-2014t.keypoints.npz"]


def test_restricted_unpickler_refuses_code_execution(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"test/x": {"keypoints": _Exploit(marker)}}))
    with pytest.raises(UnsafePickleError) as e:
        read_keypoint_file(evil)
    assert not marker.exists()
    msg = str(e.value)
    assert "evil.pkl" in msg and "system" in msg and "refused" in msg and "Fix:" in msg
    # builtins are refused too (eval / getattr are the classic gadget chains)
    gadget = pickle.dumps(eval)
    with pytest.raises(UnsafePickleError, match="builtins.eval"):
        RestrictedUnpickler(__import__("io").BytesIO(gadget), "inline").load()


def test_unsafe_pickle_is_refused_at_datamodule_setup(synthetic_phoenix_root, tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "keypoints.pkl"
    evil.write_bytes(pickle.dumps([{"name": "test/x", "keypoint": _Exploit(marker)}]))
    from pgpis.data.phoenix import PhoenixDataModule

    dm = PhoenixDataModule(root=str(synthetic_phoenix_root), keypoints=str(evil), num_workers=0)
    with pytest.raises(UnsafePickleError):
        dm.setup("fit")
    assert not marker.exists()


def test_tensor_pickle_and_gzip_are_read(tmp_path):
    arr = np.random.default_rng(0).random((3, 133, 3)).astype(np.float32)
    p = tmp_path / "phoenix-2014t.dev"
    import gzip

    p.write_bytes(gzip.compress(pickle.dumps([{"name": "dev/v", "keypoint": torch.from_numpy(arr), "gloss": "A B"}])))
    np.testing.assert_array_equal(read_keypoint_file(p)["dev/v"], arr)


def test_convert_keypoints_to_npz(synthetic_phoenix_root, tmp_path):
    out, n = convert_keypoints([synthetic_phoenix_root / p for p in CONTAINERS["tensor-pickle"]], tmp_path / "kp.npz")
    assert n == 7
    a = read_keypoint_file(out)
    b = read_keypoint_file(synthetic_phoenix_root / CONTAINERS["pickle"][0])
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    with np.load(out, allow_pickle=False) as z:
        assert all(z[k].shape[1:] == (133, 3) for k in z.files)


def test_bad_keypoint_shapes_are_listed(tmp_path):
    p = tmp_path / "kp.pkl"
    p.write_bytes(pickle.dumps({"train/a": {"keypoints": np.zeros((4, 17, 3))}, "train/b": {"other": 1}}))
    with pytest.raises(DataFormatError) as e:
        read_keypoint_file(p)
    assert len(e.value.problems) == 2
    assert "[4, 17, 3], expected [T, 133, 3]" in str(e.value) and "train/b" in str(e.value)


# ------------------------------------------------------------------ layout validation
def test_broken_copy_lists_every_problem(synthetic_phoenix_root, tmp_path):
    root = tmp_path / "broken"
    shutil.copytree(synthetic_phoenix_root, root)
    index = read_phoenix_index(root)
    first, second = index.videos["train"][0], index.videos["train"][1]
    shutil.rmtree(root / FRAMES_DIR / "train" / first.name)  # a missing frame folder
    (root / FRAMES_DIR / "train" / second.name / "images0002.png").unlink()  # a gap in the numbering
    corpus = root / CORPUS.format(split="dev")
    corpus.write_text(corpus.read_text() + "only|three|fields\n")  # a malformed row
    with pytest.raises(DataFormatError) as e:
        read_phoenix_index(root)
    text = str(e.value)
    assert len(e.value.problems) == 3
    assert "frame folder missing" in text and first.name in text
    assert "images0002.png missing" in text
    assert f"{corpus}:" in text and "3 fields, expected 7" in text


def test_frame_count_must_match_keypoints(synthetic_phoenix_root, tmp_path):
    root = tmp_path / "extra"
    shutil.copytree(synthetic_phoenix_root, root)
    video = read_phoenix_index(root).videos["test"][0]
    folder = root / FRAMES_DIR / "test" / video.name
    shutil.copy(folder / "images0001.png", folder / f"images{len(video) + 1:04d}.png")
    with pytest.raises(DataFormatError, match=rf"{len(video)} keypoint frames but {len(video) + 1} images"):
        read_phoenix_index(root)


def test_missing_keypoint_file_says_where_to_put_it(synthetic_phoenix_root, tmp_path):
    root = tmp_path / "nokp"
    shutil.copytree(synthetic_phoenix_root, root, ignore=shutil.ignore_patterns("keypoints"))
    with pytest.raises(DataFormatError, match="no keypoint file found.*--data.keypoints"):
        read_phoenix_index(root)


# ------------------------------------------------------------------ protocols
def test_train_triplets_are_seeded_and_within_one_video():
    lengths = [5, 40, 3]
    a = train_triplets(lengths, 2000, seed=3)
    assert a.shape == (2000, 3)
    np.testing.assert_array_equal(a, train_triplets(lengths, 2000, seed=3))
    assert not np.array_equal(a, train_triplets(lengths, 2000, seed=4))
    assert (a[:, 1] < np.take(lengths, a[:, 0])).all() and (a[:, 2] < np.take(lengths, a[:, 0])).all()
    share = np.bincount(a[:, 0], minlength=3) / 2000  # source frames uniform over all frames
    np.testing.assert_allclose(share, np.array(lengths) / sum(lengths), atol=0.04)


def test_first_frame_protocol_covers_every_frame():
    pairs = first_frame_pairs([3, 2])
    assert pairs.tolist() == [[0, 0, 0], [0, 0, 1], [0, 0, 2], [1, 0, 0], [1, 0, 1]]


def test_low_scores_and_empty_frames_become_missing():
    kp = np.zeros((2, 133, 3), np.float32)
    kp[1, :, :2] = 50.0
    kp[1, :, 2] = 0.9
    kp[1, 5, 2] = 0.1
    out = keypoints_with_missing(kp, 0.3)
    assert (out[0, :, :2] == MISSING).all()  # no detection: all zeros
    assert (out[1, 5, :2] == MISSING).all() and (out[1, 6, :2] == 50.0).all()


# ------------------------------------------------------------------ DataModule
@pytest.mark.parametrize("container", ["pickle", "npz"])
def test_datamodule_batches_have_deepfashion_keys(synthetic_phoenix_root, container):
    from pgpis.data.phoenix import PhoenixDataModule

    dm = PhoenixDataModule(root=str(synthetic_phoenix_root), keypoints=[str(synthetic_phoenix_root / p) for p in CONTAINERS[container]],
                           image_size=(128, 128), encoder_inputs={"dino": (64, 64)}, batch_size=4, num_workers=0,
                           train_pairs=24, seed=0)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == DEEPFASHION_KEYS | {"source_keypoint_scores", "target_keypoint_scores",
                                             "dino_source", "dino_target", "dino_target_pose"}
    assert batch["source"].shape == (4, 3, 128, 128) and batch["target_pose"].shape == (4, 3, 128, 128)
    assert batch["dino_target_pose"].shape == (4, 3, 64, 64)
    assert batch["target_keypoints"].shape == (4, 133, 2) and batch["target_keypoint_scores"].shape == (4, 133)
    assert batch["source"].min() >= -1 and batch["source"].max() <= 1
    kp = batch["target_keypoints"]
    present = (kp != MISSING).all(-1)
    assert (kp[present] <= 128).all()  # rescaled from 210x260 into the 128x128 frame
    assert ((batch["target_keypoint_scores"] >= 0.3) == present).all()
    videos = {v.name for v in dm.videos("train")}
    for s, t in zip(batch["source_name"], batch["target_name"]):
        assert s.rsplit("_images", 1)[0] == t.rsplit("_images", 1)[0] in videos  # same video
    assert len(dm.dataset("train")) == 24
    total_test = sum(len(v) for v in dm.videos("test"))
    assert len(dm.dataset("test")) == total_test
    assert len(dm.dataset("val")) == sum(len(v) for v in dm.videos("val"))


def test_pose_render_matches_target_keypoints(synthetic_phoenix_root):
    from pgpis.data.phoenix import PhoenixDataModule

    dm = PhoenixDataModule(root=str(synthetic_phoenix_root), image_size=(512, 512), num_workers=0)
    ds = dm.dataset("test")
    checked = 0
    for i in range(len(ds)):
        v, s, t = ds.triplets[i]
        raw = ds.videos[v].keypoints[t]
        sample = ds[i]
        pose = ((sample["target_pose"].permute(1, 2, 0) + 1) * 127.5).round().to(torch.uint8).numpy()
        if (raw == 0).all():  # a frame without a detection draws nothing
            assert pose.max() == 0 and (sample["target_keypoints"] == MISSING).all()
            continue
        if raw[LEFT_HAND_KNUCKLE, 2] >= 0.3:
            x, y = np.rint(sample["target_keypoints"][LEFT_HAND_KNUCKLE].numpy()).astype(int)
            assert tuple(pose[y, x]) == COCO_WHOLEBODY_133.joint_color(LEFT_HAND_KNUCKLE)
            checked += 1
        assert sample["source_name"].endswith("_images0001.png")
    assert checked > 5


def test_datamodule_with_two_workers(synthetic_phoenix_root):
    from pgpis.data.phoenix import PhoenixDataModule

    dm = PhoenixDataModule(root=str(synthetic_phoenix_root), image_size=(64, 64), batch_size=3, num_workers=2,
                           train_pairs=9, persistent_workers=False, max_eval_pairs=5)
    dm.setup("fit")
    assert sum(len(b["pair_index"]) for b in dm.train_dataloader()) == 9
    assert sorted(i for b in dm.test_dataloader() for i in b["pair_index"].tolist()) == list(range(5))


# ------------------------------------------------------------------ CLI
def test_cli_synth_check_convert(tmp_path, capsys):
    from pgpis.cli import main

    root = tmp_path / "phx"
    assert main(["data", "synth", "--dataset", "phoenix", "--out", str(root), "--signers", "2",
                 "--videos", "train=2,dev=1,test=1", "--frames", "4-5", "--keypoint-format", "tensor-pickle"]) == 0
    assert main(["data", "check", "--dataset", "phoenix", "--root", str(root)]) == 0
    assert "Phoenix14T (synthetic), OK" in capsys.readouterr().out
    out = tmp_path / "kp.npz"
    assert main(["data", "convert-keypoints", *map(str, sorted((root / KP_DIR).glob("phoenix-2014t.*"))), "--out", str(out)]) == 0
    assert len(np.load(out).files) == 4
    # break one frame: check exits non-zero naming it
    video = read_phoenix_index(root).videos["dev"][0]
    video.frames[0].write_bytes(b"not a png")
    capsys.readouterr()
    assert main(["data", "check", "--dataset", "phoenix", "--root", str(root)]) == 1
    err = capsys.readouterr().err
    assert "frame does not decode" in err and str(video.frames[0]) in err
    assert FRAME_SIZE == (260, 210)


def test_cli_synth_refuses_foreign_folder_and_replaces_old_synthetic(tmp_path, capsys):
    from pgpis.cli import main

    foreign = tmp_path / "real"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("my data")
    assert main(["data", "synth", "--dataset", "phoenix", "--out", str(foreign)]) == 1
    assert "no .pgpis-synthetic marker" in capsys.readouterr().err and not (foreign / "features").exists()
    root = tmp_path / "phx"
    small = ["--signers", "1", "--frames", "3-3"]
    assert main(["data", "synth", "--dataset", "phoenix", "--out", str(root), "--videos", "train=2,dev=1,test=1", *small]) == 0
    assert main(["data", "synth", "--dataset", "phoenix", "--out", str(root), "--videos", "train=1,dev=1,test=1", *small]) == 0
    assert len(list((root / FRAMES_DIR / "train").iterdir())) == 1  # no stale videos left behind
    assert main(["data", "preview", "--dataset", "phoenix", "--root", str(root), "--out", str(tmp_path / "grid.png"), "--rows", "2"]) == 0
    from PIL import Image

    assert Image.open(tmp_path / "grid.png").size == (3 * 210, 14 + 2 * 260)


def test_synthetic_writer_is_deterministic(tmp_path):
    from pgpis.data.phoenix.synthetic import write_synthetic_phoenix

    kw = dict(seed=5, signers=1, videos={"train": 1, "dev": 1, "test": 1}, frames=(3, 4))
    write_synthetic_phoenix(tmp_path / "a", **kw)
    write_synthetic_phoenix(tmp_path / "b", **kw)
    a, b = read_phoenix_index(tmp_path / "a"), read_phoenix_index(tmp_path / "b")
    for split in ("train", "dev", "test"):
        (va,), (vb,) = a.videos[split], b.videos[split]
        assert va.name == vb.name and np.array_equal(va.keypoints, vb.keypoints)
        assert all(fa.read_bytes() == fb.read_bytes() for fa, fb in zip(va.frames, vb.frames))
    hands = a.videos["train"][0].keypoints[:, 91:133]
    assert (np.diff(hands[..., :2], axis=0) != 0).any()  # the hands move


def test_train_flip_mirrors_images_and_swaps_hands(synthetic_phoenix_root):
    from pgpis.data.keypoints import flip_keypoints
    from pgpis.data.phoenix import PhoenixDataset

    video = read_phoenix_index(synthetic_phoenix_root).videos["train"][0]
    triplets = np.array([[0, 0, 1]])
    plain = PhoenixDataset([video], triplets, image_size=FRAME_SIZE)[0]
    flipped = PhoenixDataset([video], triplets, image_size=FRAME_SIZE, flip_prob=1.0)[0]
    assert torch.equal(flipped["target"], plain["target"].flip(-1))
    expected = flip_keypoints(plain["target_keypoints"].numpy(), FRAME_SIZE[1], COCO_WHOLEBODY_133)
    np.testing.assert_allclose(flipped["target_keypoints"].numpy(), expected, atol=1e-4)
    assert flipped["target_keypoint_scores"][LEFT_HAND_KNUCKLE] == plain["target_keypoint_scores"][121]
