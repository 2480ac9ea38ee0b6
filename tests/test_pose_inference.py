"""Poses from photos and videos at inference: retargeting, `generate --pose-image`, `animate --driving-video`,
`Pipeline.pose_from_image` / `PoseFromImage`, on the tiny checkpoints trained by `pgpis fit` (session fixtures).

The estimator is a stand-in of known output loaded by class path (tests/pose_stand_ins.py), as a user's own
estimator is, so the expected target pose is computed by hand and the image generated from the photo must equal
the image generated from that pose given as a keypoint file (same seed).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pgpis.cli import main as pgpis_main
from pgpis.data import keypoints as kpt
from pgpis.data.deepfashion.layout import read_deepfashion_index
from pgpis.errors import DataFormatError
from pgpis.pose import formats as fmt
from pgpis.pose.retarget import retarget_pose
from pose_stand_ins import STANDING, Nobody, Standing, standing_body

STEPS = 2
MISSING = kpt.MISSING


# --------------------------------------------------------------------------- retargeting, by hand
def _source() -> np.ndarray:
    """A source body in the 256x176 frame: the neck at (88, 60) and bones of known length."""
    s = np.full((18, 2), MISSING, np.float32)
    s[1] = (88, 60)
    s[2], s[3], s[4] = (70, 60), (70, 90), (70, 115)  # right arm: shoulder 18 px out, upper arm 30, forearm 25
    s[5], s[6], s[7] = (106, 60), (106, 90), (106, 115)
    s[8], s[9], s[10] = (78, 120), (78, 160), (78, 200)  # right hip (10, 60) from the neck, thigh 40, shin 40
    s[11], s[12], s[13] = (98, 120), (98, 160), (98, 200)
    s[0] = (88, 40)  # nose 20 above the neck
    return s


def test_doubled_limbs_are_rescaled_to_the_source_with_the_neck_fixed():
    src = _source()
    neck = np.array([120.0, 50.0], np.float32)
    drv = np.where(kpt.missing_mask(src)[:, None], MISSING, neck + 2 * (src - src[1])).astype(np.float32)
    drv[7] = MISSING  # the left wrist is not seen in the driving pose
    out = retarget_pose(drv, src)
    assert np.array_equal(out[1], neck)  # the neck stays where the driving pose has it
    # every bone is the source's length again: the source's shape, moved to the driving neck
    expected = np.where(kpt.missing_mask(src)[:, None], MISSING, src - src[1] + neck)
    expected[7] = MISSING  # missing stays missing
    np.testing.assert_allclose(out, expected, atol=1e-4)
    # by hand for the right arm: shoulder 18 px left of the neck, elbow 30 below it, wrist 25 below that
    np.testing.assert_allclose(out[2:5], [[102, 50], [102, 80], [102, 105]], atol=1e-4)
    # points the source lacks (eyes, ears) stay missing when the driving pose lacks them too
    assert kpt.missing_mask(out[14:]).all()


def test_a_point_below_a_missing_joint_hangs_from_the_nearest_present_one_with_the_overall_scale():
    src = _source()
    drv = np.where(kpt.missing_mask(src)[:, None], MISSING, 2 * src).astype(np.float32)
    drv[3] = MISSING  # right elbow not seen; the right wrist is
    out = retarget_pose(drv, src)
    # overall scale 0.5 (every bone halves): wrist = new shoulder + 0.5 * (driving wrist - driving shoulder)
    np.testing.assert_allclose(out[4], out[2] + 0.5 * (drv[4] - drv[2]), atol=1e-4)
    assert kpt.missing_mask(out[3:4]).all()


def test_a_clip_uses_one_scale_per_bone_so_a_foreshortened_limb_stays_short():
    src = _source()
    frame = np.where(kpt.missing_mask(src)[:, None], MISSING, 2 * src).astype(np.float32)
    short = frame.copy()
    short[4] = short[3] + 0.5 * (frame[4] - frame[3])  # frame 3: the right forearm points at the camera
    clip = np.stack([frame, frame, short])
    scores = np.concatenate([clip, np.ones((3, 18, 1), np.float32)], axis=-1)
    out = retarget_pose(scores, src)
    assert out.shape == (3, 18, 3) and (out[..., 2] == 1).all()  # scores carried along
    forearm = np.linalg.norm(out[:, 4, :2] - out[:, 3, :2], axis=-1)
    # median driving forearm 50 px -> scale 0.5: 25 px where the driving forearm is 50, 12.5 where it is 25
    np.testing.assert_allclose(forearm, [25, 25, 12.5], atol=1e-4)


# --------------------------------------------------------------------------- generate --pose-image
@pytest.fixture(scope="module")
def index(synthetic_root):
    return read_deepfashion_index(synthetic_root, check_images="none")


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    """Someone else's photo (its pixels do not matter to the stand-in), of another shape than DeepFashion's."""
    path = tmp_path_factory.mktemp("photos") / "dancer.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (120, 100, 3), dtype=np.uint8)).save(path)
    return path


def _expected(size: tuple[int, int]) -> np.ndarray:
    """The stand-in's pose in a photo of `size`, fitted (proportions kept, centred) in the 256x176 frame.

    Computed by hand, checked against the writer's float32 result, which is returned (the files written from it
    must hold the very numbers the estimator path produces)."""
    h, w = size
    scale = min(256 / h, 176 / w)
    by_hand = STANDING * np.array([w, h]) * scale + np.array([(176 - w * scale) / 2, (256 - h * scale) / 2])
    written = fmt.body_in_frame(standing_body(size), size, kpt.CFLD_FRAME, fit="contain")
    np.testing.assert_allclose(written, by_hand, atol=0.006)  # rounded to 0.01 px
    return written


def _generate(ckpt: Path, source: Path, out: Path, *args: str) -> np.ndarray:
    assert pgpis_main(["generate", "--checkpoint", str(ckpt), "--source", str(source), "--out", str(out),
                       "--steps", str(STEPS), "--seed", "5", "--device", "cpu", *args]) == 0
    return np.asarray(Image.open(out), dtype=np.int16)


def test_generate_pose_image_retargeted_equals_the_keypoints_as_a_file(tiny_ldm_checkpoints, index, photo, tmp_path,
                                                                      capsys):
    """--pose-image --retarget: the photo's pose with the source's bones, from the same estimator on the source
    photo (no --source-pose given); without --retarget the API test below checks the plain estimated pose."""
    ckpt = tiny_ldm_checkpoints["fpdm"]
    source = index.image_path(index.pairs["test"][0][0])
    expected = _expected((120, 100))
    with Image.open(source) as im:
        src_size = (im.height, im.width)
    src_body = fmt.body_in_frame(standing_body(src_size), src_size, kpt.CFLD_FRAME, fit="contain")
    (tmp_path / "retargeted.json").write_text(json.dumps(retarget_pose(expected, src_body).tolist()))
    retargeted = _generate(ckpt, source, tmp_path / "c.png", "--pose-image", str(photo), "--retarget",
                           "--estimator", "pose_stand_ins.Standing")
    assert "standing-stand-in, retargeted to the source" in capsys.readouterr().out  # the estimator is named
    assert np.array_equal(retargeted, _generate(ckpt, source, tmp_path / "d.png", "--pose",
                                                str(tmp_path / "retargeted.json")))
    assert not np.array_equal(retarget_pose(expected, src_body), expected)  # the photo's build is not the source's


def test_generate_pose_image_errors_are_named(tiny_ldm_checkpoints, index, photo, tmp_path, capsys):
    ckpt, source = tiny_ldm_checkpoints["fpdm"], index.image_path(index.pairs["test"][0][0])
    common = ["generate", "--checkpoint", str(ckpt), "--source", str(source), "--out", str(tmp_path / "x.png")]
    assert pgpis_main([*common, "--pose-image", str(photo), "--estimator", "pose_stand_ins.Nobody"]) == 1
    assert "found no person" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # one target pose only
        pgpis_main([*common, "--pose-image", str(photo), "--pose", str(photo)])
    with pytest.raises(SystemExit):
        pgpis_main([*common, "--pose", str(photo), "--retarget"])
    assert pgpis_main([*common, "--pose-image", str(tmp_path / "nowhere.jpg"),
                       "--estimator", "pose_stand_ins.Standing"]) == 1
    assert "nowhere.jpg" in capsys.readouterr().err


def test_pipeline_api_pose_from_image(tiny_ldm_checkpoints, index, photo):
    from pgpis.inference import PoseFromImage, load_pipeline

    pipe = load_pipeline(tiny_ldm_checkpoints["fpdm"], device="cpu")
    est = Standing()
    expected = _expected((120, 100))
    np.testing.assert_allclose(pipe.pose_from_image(photo, estimator=est), expected, atol=1e-4)
    src, tgt = index.pairs["test"][0]
    src_kp = index.keypoints[src]
    np.testing.assert_allclose(pipe.pose_from_image(Image.open(photo), estimator=est, retarget_to=src_kp),
                               retarget_pose(expected, src_kp), atol=1e-3)
    a = pipe.generate(index.image_path(src), PoseFromImage(photo, est), steps=STEPS, seed=2)
    b = pipe.generate(index.image_path(src), expected, steps=STEPS, seed=2)
    assert np.array_equal(np.asarray(a), np.asarray(b))
    # retarget=True takes the source's keypoints when given, here a list of two samples with one source
    many = pipe.generate(index.image_path(src), [PoseFromImage(photo, est, retarget=True), expected],
                         source_pose=src_kp, steps=STEPS, seed=2)
    ref = pipe.generate(index.image_path(src), [retarget_pose(expected, src_kp), expected], steps=STEPS, seed=2)
    assert all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(many, ref))
    with pytest.raises(DataFormatError, match="found no person"):
        pipe.pose_from_image(photo, estimator=Nobody())


# --------------------------------------------------------------------------- animate --driving-video
def _gif(path: Path, frames: int = 3, size=(120, 100)) -> Path:
    import imageio.v3 as iio

    rng = np.random.default_rng(2)
    iio.imwrite(path, rng.integers(0, 255, (frames, *size, 3), dtype=np.uint8), duration=100, loop=0)
    return path


def test_animate_driving_video_equals_the_estimated_sequence_as_a_file(tiny_ldm_checkpoints, index, tmp_path, capsys):
    ckpt = tiny_ldm_checkpoints["fpdm"]
    source = index.image_path(index.pairs["test"][0][0])
    clip = _gif(tmp_path / "dance.gif")
    seq = np.concatenate([np.stack([_expected((120, 100))] * 3), np.ones((3, 18, 1))], axis=-1).astype(np.float32)
    np.save(tmp_path / "poses.npy", seq)
    common = ["animate", "--checkpoint", str(ckpt), "--source", str(source), "--steps", str(STEPS), "--device", "cpu"]
    assert pgpis_main([*common, "--driving-video", str(clip), "--estimator", "pose_stand_ins.Standing",
                       "--out", str(tmp_path / "a.gif"), "--frames-dir", str(tmp_path / "a")]) == 0
    captured = capsys.readouterr()
    assert "3 poses (openpose18) from" in captured.err and "standing-stand-in" in captured.err
    assert "3 frames at 10 fps" in captured.out  # the driving clip's own rate (100 ms frames)
    assert pgpis_main([*common, "--poses", str(tmp_path / "poses.npy"), "--pose-frame", "256", "176",
                       "--out", str(tmp_path / "b.gif"), "--frames-dir", str(tmp_path / "b")]) == 0
    for i in (1, 2, 3):
        a, b = (np.asarray(Image.open(tmp_path / d / f"frame{i:04d}.png")) for d in "ab")
        assert np.array_equal(a, b), i
    with pytest.raises(SystemExit):
        pgpis_main([*common, "--driving-video", str(clip), "--poses", str(tmp_path / "poses.npy"),
                    "--out", str(tmp_path / "c.gif")])
    assert pgpis_main([*common, "--driving-video", str(tmp_path / "none.mp4"), "--out", str(tmp_path / "c.gif"),
                       "--estimator", "pose_stand_ins.Standing"]) == 2
    assert "none.mp4" in capsys.readouterr().err


def test_driving_sequences_for_both_skeletons_and_retargeting(tmp_path):
    from pgpis.inference.estimated_poses import frame_of, sequence_from_video, skeleton_of

    clip = _gif(tmp_path / "clip.gif", frames=2, size=(260, 210))
    body, empty = sequence_from_video(clip, Standing(), "openpose18", progress=False)
    assert body.shape == (2, 18, 3) and empty == 0
    np.testing.assert_allclose(body[0, :, :2], _expected((260, 210)), atol=0.011)
    whole, _ = sequence_from_video(clip, Standing(), "wholebody", progress=False)
    assert whole.shape == (2, 133, 3) and frame_of("wholebody") == (260, 210)
    np.testing.assert_allclose(whole[0, 0, :2], standing_body((260, 210))[0], atol=0.011)  # same frame size: as is
    src = _source()
    retargeted, _ = sequence_from_video(clip, Standing(), "openpose18", source_body=src, progress=False)
    np.testing.assert_allclose(retargeted, retarget_pose(body, src), atol=1e-4)
    with pytest.raises(DataFormatError, match="OpenPose-18"):
        sequence_from_video(clip, Standing(), "wholebody", source_body=src, progress=False)
    with pytest.raises(DataFormatError, match="no person"):
        sequence_from_video(clip, Nobody(), "openpose18", progress=False)
    assert skeleton_of({"_class_path": "pgpis.data.phoenix.PhoenixDataModule"}) == "wholebody"
    assert skeleton_of({"root": "x", "val_identities": 8}) == "openpose18"
