"""`pgpis pose extract`: photos, folders and videos to PCDMs / CFLD / Phoenix keypoint files pgpis reads.

The synthetic people are drawn, not photographed, so the round trips use a stand-in estimator of known output
(:class:`pgpis.pose.testing.TableEstimator` keyed by each image's pixels, loaded by class path with its table as
a JSON option, as a user's own estimator is loaded); one test runs the real mediapipe backend on a real photo.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pgpis.cli import main as pgpis_main
from pgpis.data import keypoints as kpt
from pgpis.data.deepfashion.layout import read_deepfashion_index
from pgpis.pose.media import read_image
from pgpis.pose.testing import image_key

TABLE = "pgpis.pose.testing.TableEstimator"


@pytest.fixture(scope="module")
def pcdms_copy(tmp_path_factory) -> Path:
    """A small synthetic DeepFashion in the PCDMs layout (3 identities x 2 poses), made by `pgpis data synth`."""
    root = tmp_path_factory.mktemp("df_pcdms")
    assert pgpis_main(["data", "synth", "--dataset", "deepfashion", "--out", str(root), "--identities", "3",
                       "--poses", "2", "--layout", "pcdms", "--workers", "1"]) == 0
    return root


@pytest.fixture(scope="module")
def cfld_copy(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("df_cfld")
    assert pgpis_main(["data", "synth", "--dataset", "deepfashion", "--out", str(root), "--identities", "3",
                       "--poses", "2", "--layout", "cfld", "--workers", "1"]) == 0
    return root


def _table(root: Path, skip: set[str] = frozenset()) -> tuple[str, dict[str, np.ndarray]]:
    """(JSON table for TableEstimator: pixel hash -> the image's true keypoints in its own pixels, the truth in the
    256x176 frame by canonical name); images named in `skip` are left out (the stand-in finds nobody there)."""
    index = read_deepfashion_index(root, check_images="none")
    table, truth = {}, {}
    for name, path in index.image_paths.items():
        rgb = read_image(path)
        kp = index.keypoints[name]
        truth[name] = kp
        if name not in skip:
            table[image_key(rgb)] = kpt.rescale_keypoints(kp, kpt.CFLD_FRAME, rgb.shape[:2]).tolist()
    return json.dumps(table), truth


def _extract(*args: str) -> int:
    return pgpis_main(["pose", "extract", *args])


def test_pcdms_round_trip_check_and_datamodule(pcdms_copy, tmp_path, capsys):
    """Extract over img/, replace pose/ with the result: `pgpis data check` accepts it, the DataModule renders it."""
    root = tmp_path / "copy"
    shutil.copytree(pcdms_copy, root)
    index = read_deepfashion_index(root, check_images="none")
    nobody = sorted(index.image_paths)[0]
    table, truth = _table(root, skip={nobody})
    out, grid = tmp_path / "pose_new", tmp_path / "grid.png"
    rc = _extract(str(root / "img"), "--out", str(out), "--format", "pcdms", "--estimator", TABLE,
                  "--estimator-option", f"table={table}", "--preview", str(grid))
    captured = capsys.readouterr().out
    assert rc == 0, captured
    n = len(index.image_paths)
    assert f"{n} image(s)" in captured and f"{n} written, 0 kept" in captured
    assert "no person: 1 file(s)" in captured and index.image_paths[nobody].name in captured
    # the tree mirrors img/ exactly as the dataset's own pose/ tree does
    mirror = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.txt"))
    assert mirror == sorted(p.relative_to(root / "pose").as_posix() for p in (root / "pose").rglob("*.txt"))
    record = json.loads((out / "pose-extract.json").read_text())
    assert record["estimator"] == "table" and record["format"] == "pcdms" and record["inputs"]["images"] == n
    assert record["no_person"] == [str(index.image_paths[nobody])]
    shutil.rmtree(root / "pose")
    shutil.move(str(out), str(root / "pose"))
    assert pgpis_main(["data", "check", "--dataset", "deepfashion", "--root", str(root)]) == 0
    capsys.readouterr()
    again = read_deepfashion_index(root)
    for name, kp in truth.items():
        if name == nobody:
            assert kpt.missing_mask(again.keypoints[name]).all()  # written all-missing, not skipped
        else:
            np.testing.assert_allclose(again.keypoints[name], kp, atol=0.011)  # 0.01 px written precision
    from pgpis.data.deepfashion import DeepFashionDataModule

    dm = DeepFashionDataModule(str(root), image_size=(64, 44), num_workers=0, val_identities=1)
    for split in ("train", "test"):
        data = dm.dataset(split)
        for i in range(len(data)):
            sample = data[i]
            present = ~kpt.missing_mask(sample["target_keypoints"].numpy())
            assert (sample["target_pose"] > -1).any() == present.any(), sample["target_name"]
    with Image.open(grid) as im:
        assert im.width > 0 and np.asarray(im.convert("L")).std() > 5


def test_resume_keeps_written_files_and_redoes_damaged_ones(pcdms_copy, tmp_path, capsys):
    table, _ = _table(pcdms_copy)
    out = tmp_path / "pose"
    args = [str(pcdms_copy / "img"), "--out", str(out), "--format", "pcdms", "--estimator", TABLE,
            "--estimator-option", f"table={table}"]
    assert _extract(*args) == 0
    files = sorted(out.rglob("*.txt"))
    first = {p: p.read_text() for p in files}
    files[0].unlink()
    files[1].write_text("12 3")  # cut short by a kill
    capsys.readouterr()
    assert _extract(*args) == 0
    assert f"2 written, {len(files) - 2} kept" in capsys.readouterr().out
    assert {p: p.read_text() for p in files} == first
    # another estimator would mix two estimators' keypoints in one folder: refused, --overwrite starts over
    other = [a if a != TABLE else "pose_stand_ins.Nobody" for a in args[:-2]]
    assert _extract(*other) == 1
    assert "resuming would mix" in capsys.readouterr().err
    assert _extract(*other, "--overwrite") == 0
    assert f"no person: {len(files)} file(s)" in capsys.readouterr().out
    assert all(kpt.missing_mask(kpt.read_pcdms_keypoints(p)).all() for p in files)


def test_cfld_round_trip(cfld_copy, tmp_path, capsys):
    """Each split's *_highres folder -> its annotation CSV; the copy with the new CSVs passes `pgpis data check`."""
    root = tmp_path / "copy"
    shutil.copytree(cfld_copy, root)
    table, truth = _table(root)
    for split in ("train", "test"):
        ann = root / f"fasion-resize-annotation-{split}.csv"
        old = {ln.split(":")[0] for ln in ann.read_text().splitlines()[1:]}
        ann.unlink()
        assert _extract(str(root / f"{split}_highres"), "--out", str(ann), "--format", "cfld", "--estimator", TABLE,
                        "--estimator-option", f"table={table}") == 0
        lines = ann.read_text().splitlines()
        assert lines[0] == "name:keypoints_y:keypoints_x" and {ln.split(":")[0] for ln in lines[1:]} == old
        assert (root / f"fasion-resize-annotation-{split}.pose-extract.json").is_file()
    assert pgpis_main(["data", "check", "--dataset", "deepfashion", "--root", str(root)]) == 0
    again = read_deepfashion_index(root)
    for name, kp in truth.items():
        np.testing.assert_allclose(again.keypoints[name], kp, atol=0.011)
    # resumable row by row: a second run keeps every row
    capsys.readouterr()
    assert _extract(str(root / "test_highres"), "--out", str(root / "fasion-resize-annotation-test.csv"),
                    "--format", "cfld", "--estimator", TABLE, "--estimator-option", f"table={table}") == 0
    assert "0 written" in capsys.readouterr().out


def test_pcdms_img_paths_get_canonical_cfld_names(pcdms_copy, tmp_path):
    table, truth = _table(pcdms_copy)
    out = tmp_path / "annotation.csv"
    assert _extract(str(pcdms_copy / "img"), "--out", str(out), "--format", "cfld", "--estimator", TABLE,
                    "--estimator-option", f"table={table}") == 0
    names = {ln.split(":")[0] for ln in out.read_text().splitlines()[1:]}
    assert names == set(truth)  # fashionWOMEN...jpg, as the CFLD annotation names them


def _clip(path: Path, frames: int = 3, size=(96, 64)) -> Path:
    import imageio.v3 as iio

    h, w = size
    rng = np.random.default_rng(0)
    iio.imwrite(path, rng.integers(0, 255, (frames, h, w, 3), dtype=np.uint8), duration=100, loop=0)
    return path


def test_videos_to_npz_and_pcdms_frames(tmp_path, capsys):
    """A video -> Phoenix's {name: [T, 133, 3]} (the Phoenix reader reads it); in pcdms, one file per frame."""
    from pgpis.data.phoenix.keypoints import read_keypoint_files

    from pose_stand_ins import standing_body

    clips = tmp_path / "clips"
    clips.mkdir()
    _clip(clips / "a.gif", 3)
    (clips / "signer").mkdir()  # a folder of frames, Phoenix's own layout, is one video too
    for i in range(2):
        Image.fromarray(np.full((96, 64, 3), 40 * i, np.uint8)).save(clips / "signer" / f"images{i + 1:04d}.png")
    out = tmp_path / "keypoints"
    assert _extract(str(clips), "--out", str(out), "--format", "npz", "--estimator", "pose_stand_ins.Standing",
                    "--preview", str(tmp_path / "grid.png")) == 0
    assert "1 video(s), 3 frame(s)" in capsys.readouterr().out
    arrays = read_keypoint_files(sorted(out.glob("*.npz")))
    assert sorted(arrays) == ["a", "signer"] and arrays["a"].shape == (3, 133, 3) and arrays["signer"].shape[0] == 2
    body = kpt.rescale_keypoints(standing_body((96, 64)), (96, 64), (260, 210))
    np.testing.assert_allclose(arrays["a"][0, 0, :2], body[0], atol=0.01)  # nose: COCO 0 = OpenPose 0
    np.testing.assert_allclose(arrays["a"][0, 5, :2], body[5], atol=0.01)  # left shoulder: COCO 5 = OpenPose 5
    np.testing.assert_allclose(arrays["a"][0, 112, :2], body[4], atol=0.01)  # right hand root at the right wrist
    assert (arrays["a"][0, 17:91] == 0).all()  # feet and face not found: zeros, as Phoenix writes them
    assert (tmp_path / "grid.png").is_file()
    frames = tmp_path / "frames"
    assert _extract(str(clips / "a.gif"), "--out", str(frames), "--format", "pcdms",
                    "--estimator", "pose_stand_ins.Standing") == 0
    assert sorted(p.relative_to(frames).as_posix() for p in frames.rglob("*.txt")) == [
        "a/frame0001.txt", "a/frame0002.txt", "a/frame0003.txt"]


def test_unreadable_files_are_named_and_do_not_stop_the_rest(tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("a.png", "c.png"):
        Image.fromarray(np.full((40, 30, 3), 128, np.uint8)).save(folder / name)
    (folder / "b.jpg").write_bytes(b"not a jpeg")
    (folder / "d.mp4").write_bytes(b"not a video")
    out = tmp_path / "pose"
    assert _extract(str(folder), "--out", str(out), "--format", "pcdms", "--estimator", "pose_stand_ins.Standing") == 1
    captured = capsys.readouterr()
    assert "cannot read" in captured.err and "b.jpg" in captured.err and "d.mp4" in captured.err
    assert "2 written" in captured.out and "failed: 2" in captured.out
    assert sorted(p.name for p in out.rglob("*.txt")) == ["a.txt", "c.txt"]
    record = json.loads((out / "pose-extract.json").read_text())
    assert len(record["failed"]) == 2


def test_bad_command_lines_are_named(tmp_path, capsys):
    img = tmp_path / "a.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(img)
    assert _extract(str(tmp_path / "missing"), "--out", str(tmp_path / "o"), "--format", "pcdms") == 1
    assert "no such file or folder" in capsys.readouterr().err
    assert _extract(str(img), "--out", str(tmp_path / "o"), "--format", "cfld",
                    "--estimator", "pose_stand_ins.Standing") == 1
    assert ".csv" in capsys.readouterr().err
    assert _extract(str(img), "--out", str(tmp_path / "o"), "--format", "pcdms", "--estimator", "no_such.Estimator") == 1
    assert "no_such" in capsys.readouterr().err
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.jpg")  # a.png and a.jpg: both a.txt
    assert _extract(str(tmp_path), "--out", str(tmp_path / "o"), "--format", "pcdms") == 1
    assert "would write the same output 'a'" in capsys.readouterr().err


def test_mediapipe_on_a_real_photo(tmp_path, capsys):
    """The default backend end to end on scikit-image's astronaut (a real photo): nose and shoulders written."""
    from skimage import data

    photo, cat = tmp_path / "astronaut.png", tmp_path / "chelsea.png"
    Image.fromarray(data.astronaut()).save(photo)
    Image.fromarray(data.chelsea()).save(cat)  # a cat: no person, written all-missing
    out, grid = tmp_path / "pose", tmp_path / "preview.png"
    assert _extract(str(photo), str(cat), "--out", str(out), "--format", "pcdms", "--preview", str(grid)) == 0
    assert "no person: 1 file(s)" in capsys.readouterr().out
    assert kpt.missing_mask(kpt.read_pcdms_keypoints(out / "chelsea.txt")).all()
    kp = kpt.pcdms_to_cfld_frame(kpt.read_pcdms_keypoints(out / "astronaut.txt"))  # 256x176 frame
    nose, neck, r_sh, l_sh = kp[0], kp[1], kp[2], kp[5]
    assert not kpt.missing_mask(np.stack([nose, neck, r_sh, l_sh])).any()
    # the 512x512 photo maps to the 176x256 frame by plain scaling: face at about x 0.4-0.5 of the width, top fifth
    assert 50 < nose[0] < 100 and 20 < nose[1] < 80, nose
    assert r_sh[0] < nose[0] < l_sh[0]  # facing the camera: the person's right shoulder on the image's left
    assert nose[1] < neck[1] and abs(r_sh[1] - l_sh[1]) < 30
    assert json.loads((out / "pose-extract.json").read_text())["estimator"].startswith("mediapipe")
    with Image.open(grid) as im:
        assert im.size[0] >= 2 * 256 and im.size[1] >= 256


def test_phoenix_frame_folders_round_trip(tmp_path, capsys):
    """Phoenix's frame folders -> one npz per video keyed '<split>/<video>': `pgpis data check` reads them as the
    dataset's keypoints, and the Phoenix DataModule renders them."""
    root = tmp_path / "phoenix"
    assert pgpis_main(["data", "synth", "--dataset", "phoenix", "--out", str(root), "--signers", "1",
                       "--videos", "train=2,dev=1,test=1", "--frames", "3-4", "--keypoint-format", "npz"]) == 0
    shutil.rmtree(root / "keypoints")
    assert _extract(str(root / "features" / "fullFrame-210x260px"), "--out", str(root / "keypoints"),
                    "--format", "npz", "--estimator", "pose_stand_ins.Standing") == 0
    assert "4 written" in capsys.readouterr().out
    assert pgpis_main(["data", "check", "--dataset", "phoenix", "--root", str(root)]) == 0
    assert "0 frames without detection" in capsys.readouterr().out
    from pgpis.data.phoenix import PhoenixDataModule

    dm = PhoenixDataModule(str(root), image_size=(64, 52), num_workers=0, train_pairs=4)
    dm.setup("fit")
    sample = dm.dataset("test")[0]
    assert (sample["target_pose"] > -1).any()  # the stand-in's body is drawn
