"""`pgpis animate`: pose-sequence clips from a tiny FPDM trained by `pgpis fit` on synthetic Phoenix."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pgpis.cli import main as pgpis_main
from pgpis.errors import DataFormatError
from pgpis.inference import animate as anim

PHOENIX_IMAGE_SIZE = [32, 24]  # (h, w): 16x12 PixelUnshuffle(2) latents for the tiny UNet


@pytest.fixture(scope="module")
def phoenix_fpdm(tmp_path_factory, synthetic_phoenix_root: Path) -> Path:
    """A tiny FPDM checkpoint: `pgpis fit` for two steps on synthetic Phoenix (whole-body poses)."""
    from inference_fixtures import _fit, _module, _trainer, write_fusion_export

    base = tmp_path_factory.mktemp("phoenix_fpdm")
    fusion = write_fusion_export(base / "ipf" / "fusion_model")
    config = {"seed_everything": 0,
              "model": _module("pgpis.stages.fusion_ldm.FusionLDM", "pgpis.models.fpdm.FPDMDenoiser",
                               {"source_encoder": {"preset": "tiny", "size": [32, 32]}, "fusion": "ipf",
                                "fusion_model": str(fusion)}),
              "data": {"class_path": "pgpis.data.phoenix.PhoenixDataModule",
                       "init_args": {"root": str(synthetic_phoenix_root), "image_size": PHOENIX_IMAGE_SIZE,
                                     "encoder_inputs": {"dino": [32, 32], "clip": [64, 64]}, "batch_size": 4,
                                     "num_workers": 0, "persistent_workers": False, "train_pairs": 16}},
              "trainer": _trainer(base / "ldm")}
    return _fit(config, base / "fpdm.yaml")


@pytest.fixture(scope="module")
def test_video(synthetic_phoenix_root: Path) -> tuple[str, Path, Path]:
    """(key, first frame, keypoint .npz) of the first synthetic test video."""
    from pgpis.data.phoenix import read_phoenix_index

    index = read_phoenix_index(synthetic_phoenix_root, splits=("test",))
    video = index.videos["test"][0]
    npz = next((synthetic_phoenix_root / "keypoints").glob("*.npz"))
    return f"test/{video.name}", video.frames[0], npz


def test_cli_writes_a_gif_from_the_trained_model(phoenix_fpdm, test_video, tmp_path, capsys):
    key, source, npz = test_video
    out, frames_dir = tmp_path / "clip.gif", tmp_path / "frames"
    rc = pgpis_main(["animate", "--checkpoint", str(phoenix_fpdm), "--source", str(source), "--poses", str(npz),
                     "--video", key, "--out", str(out), "--max-frames", "5", "--steps", "2", "--batch-size", "3",
                     "--frames-dir", str(frames_dir), "--device", "cpu"])
    assert rc == 0 and "wrote" in capsys.readouterr().out
    with Image.open(out) as gif:
        assert gif.size == (PHOENIX_IMAGE_SIZE[1], PHOENIX_IMAGE_SIZE[0])
        # GIF stores identical consecutive frames once with their durations summed (a 2-step model may draw two
        # poses alike), so the clip's length is counted in frame durations, not stored frames
        durations = []
        for i in range(gif.n_frames):
            gif.seek(i)
            durations.append(gif.info["duration"])
        assert sum(durations) == 5 * round(1000 / 25)  # five frames at the default 25 fps
    assert sorted(p.name for p in frames_dir.iterdir()) == [f"frame{i:04d}.png" for i in range(1, 6)]


def test_noise_is_fixed_across_frames(phoenix_fpdm, test_video):
    """The same pose gives the same frame wherever it falls in the clip (and across batches); a new seed differs."""
    key, source, npz = test_video
    pipe, data = anim.load_for_animation(phoenix_fpdm, device="cpu")
    assert data["image_size"] == PHOENIX_IMAGE_SIZE
    poses, _ = anim.sequence_poses(anim.read_pose_sequence(npz, key)[:2])
    seq = [poses[0], poses[1], poses[0], poses[0]]
    frames = anim.animate_frames(pipe, source, seq, seed=3, batch_size=3, steps=2, progress=False)
    arrays = [np.asarray(f).astype(int) for f in frames]
    assert np.array_equal(arrays[0], arrays[2])  # same batch
    assert np.abs(arrays[0] - arrays[3]).max() <= 2  # another batch of another size: float rounding only
    other = np.asarray(anim.animate_frames(pipe, source, seq[:1], seed=4, batch_size=1, steps=2, progress=False)[0])
    assert np.abs(arrays[0] - other.astype(int)).mean() > 10  # a new seed is a new noise


def test_undetected_frames_hold_the_previous_pose_and_low_scores_are_missing():
    rng = np.random.default_rng(0)
    seq = np.concatenate([rng.uniform(10, 200, (3, 133, 2)), np.full((3, 133, 1), 0.9)], axis=-1).astype(np.float32)
    seq[0, 100, 2] = 0.1  # one low-score knuckle
    seq[1] = 0.0  # no detection
    poses, held = anim.sequence_poses(seq)
    assert held == 1 and poses[1] is poses[0]
    assert (poses[0].keypoints[100] == -1).all() and (poses[2].keypoints[100] != -1).all()
    assert np.asarray(poses[0].render((64, 48))).shape == (64, 48, 3)


def test_pose_files(tmp_path, test_video):
    key, _, npz = test_video
    with pytest.raises(DataFormatError, match="--video"):
        anim.read_pose_sequence(npz)  # several videos: must say which
    with pytest.raises(DataFormatError, match="no pose sequence named"):
        anim.read_pose_sequence(npz, "test/nope")
    assert anim.read_pose_sequence(npz, key.split("/", 1)[1]).shape[1:] == (133, 3)  # the bare video name works
    op = tmp_path / "openpose.npy"
    np.save(op, np.full((4, 18, 2), 5.0, np.float32))
    seq = anim.read_pose_sequence(op)
    assert seq.shape == (4, 18, 3) and (seq[..., 2] == 1).all()
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((4, 20, 2), np.float32))
    with pytest.raises(DataFormatError, match=r"\[4, 20, 2\]"):
        anim.read_pose_sequence(bad)


def test_gif_writer_and_mp4_without_a_backend(tmp_path, monkeypatch, capsys):
    frames = [Image.new("RGB", (21, 26), (i * 40, 0, 0)) for i in range(4)]
    out = anim.write_clip(frames, tmp_path / "c.gif", fps=25)
    with Image.open(out) as gif:
        assert gif.n_frames == 4 and gif.info["duration"] == 40
    monkeypatch.setattr(anim, "mp4_backend", lambda: None)
    with pytest.raises(RuntimeError, match="imageio-ffmpeg"):
        anim.write_clip(frames, tmp_path / "c.mp4")
    rc = pgpis_main(["animate", "--checkpoint", "x", "--source", "y", "--poses", "z", "--out", str(tmp_path / "c.mp4")])
    assert rc == 2 and "imageio-ffmpeg" in capsys.readouterr().err


@pytest.mark.skipif(anim.mp4_backend() is None, reason="no imageio-ffmpeg / av installed")
def test_mp4_writer(tmp_path):
    frames = [Image.new("RGB", (21, 26), (i * 40, 0, 0)) for i in range(4)]
    out = anim.write_clip(frames, tmp_path / "c.mp4", fps=25)
    assert out.stat().st_size > 0
