"""Temporally consistent sampling (shared noise, cross-frame attention) in the API, `pgpis animate` and `pgpis test`."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

from pgpis.cli import main as pgpis_main
from pgpis.models.video import VideoSampling, anchor_rows, chunks
from pgpis.inference import animate as anim
from pgpis.models.attention import CaptureProcessor
from pgpis.models.cross_frame import CrossFrameUnavailable, cross_frame_attention
from test_animate import phoenix_fpdm, test_video  # noqa: F401 - the tiny Phoenix FPDM fixtures


def test_chunks_put_the_anchor_frames_in_front():
    first = VideoSampling(cross_frame="first", max_frames=3)
    assert chunks(6, first) == [([0, 1, 2], 0), ([0, 3, 4], 1), ([0, 5], 1)]
    prev = VideoSampling(cross_frame="previous", max_frames=3)
    assert chunks(5, prev) == [([0, 1, 2], 0), ([2, 3, 4], 1)]
    assert chunks(5, VideoSampling(max_frames=2)) == [([0, 1], 0), ([2, 3], 0), ([4], 0)]
    both = VideoSampling(cross_frame="first+previous", max_frames=3)
    assert chunks(5, both) == [([0, 1, 2], 0), ([0, 2, 3], 2), ([0, 3, 4], 2)]
    assert anchor_rows([0, 2, 3], both) == [[0, 0, 0], [0, 1, 1]]  # frame 2's previous is not in the chunk: itself
    with pytest.raises(ValueError, match="cross_frame must be one of"):
        VideoSampling(cross_frame="last")


def test_a_frame_that_is_its_own_anchor_attends_as_before():
    torch.manual_seed(0)
    attn = Attention(16, heads=2, dim_head=8)
    attn.set_processor(AttnProcessor2_0())
    x = torch.randn(6, 5, 16)  # 2 guidance branches x 3 frames, 5 tokens each
    plain = attn(x)
    with cross_frame_attention(attn, [[0, 1, 2]], batch=3) as layers:
        assert layers == 1
        same = attn(x)
    assert torch.allclose(plain, same, atol=1e-6) and type(attn.processor) is AttnProcessor2_0  # restored
    with cross_frame_attention(attn, [[0, 0, 0]], batch=3):
        anchored = attn(x)
    assert torch.allclose(anchored[[0, 3]], plain[[0, 3]], atol=1e-6)  # the first frame of each branch unchanged
    assert not torch.allclose(anchored[[1, 2, 4, 5]], plain[[1, 2, 4, 5]], atol=1e-3)  # the others see frame 0
    attn.set_processor(CaptureProcessor("attn1"))  # a processor that does more than attend (as TruePose's) is kept
    with pytest.raises(CrossFrameUnavailable, match="no self-attention layer with a plain"):
        with cross_frame_attention(attn, [[0, 0, 0]], batch=3):
            pass


def _frames(pipe, source, poses, **kw) -> list[np.ndarray]:
    return [np.asarray(f).astype(int) for f in anim.animate_frames(pipe, source, poses, seed=3, steps=2,
                                                                   progress=False, **kw)]


def test_api_options_on_the_tiny_phoenix_fpdm(phoenix_fpdm, test_video):  # noqa: F811
    key, source, npz = test_video
    pipe, _ = anim.load_for_animation(phoenix_fpdm, device="cpu")
    poses, _ = anim.sequence_poses(anim.read_pose_sequence(npz, key)[:5])
    shared = _frames(pipe, source, poses, batch_size=5)
    cross = _frames(pipe, source, poses, batch_size=5, video=VideoSampling(shared_noise=True, cross_frame="first"))
    assert np.abs(shared[0] - cross[0]).max() <= 1  # the anchor frame is plain sampling's
    assert max(np.abs(a - b).mean() for a, b in zip(shared[1:], cross[1:])) > 0  # the others attend to it
    chunked = _frames(pipe, source, poses, batch_size=2, video=VideoSampling(shared_noise=True, cross_frame="first"))
    assert max(np.abs(a - b).max() for a, b in zip(cross, chunked)) <= 2  # chunks with the anchor in front: same clip
    same_pose = [poses[0]] * 3
    frame_wise = _frames(pipe, source, same_pose, batch_size=3, video=VideoSampling(shared_noise=False))
    assert np.abs(frame_wise[0] - frame_wise[1]).mean() > 1  # a fresh noise per frame
    assert all(np.array_equal(f, _frames(pipe, source, same_pose, batch_size=3)[0])
               for f in _frames(pipe, source, same_pose, batch_size=3))  # shared noise: one pose, one frame


def test_animate_cli_cross_frame_and_clip_metrics(phoenix_fpdm, test_video, tmp_path, capsys):  # noqa: F811
    key, source, npz = test_video
    frames_dir, metrics = tmp_path / "frames", tmp_path / "clip.json"
    assert pgpis_main(["animate", "--checkpoint", str(phoenix_fpdm), "--source", str(source), "--poses", str(npz),
                       "--video", key, "--out", str(tmp_path / "clip.gif"), "--max-frames", "4", "--steps", "2",
                       "--cross-frame", "previous", "--frames-dir", str(frames_dir), "--temporal-metrics",
                       str(metrics), "--device", "cpu"]) == 0
    data = json.loads(metrics.read_text())
    assert data["video_sampling"]["cross_frame"] == "previous" and data["video_sampling"]["shared_noise"] is True
    assert data["temporal"]["settings"]["frame_pairs"] == 3 and data["temporal"]["samples"]["warping_error"] >= 0
    assert data["temporal"]["settings"]["flow_computed_on"] == "the scored frames"
    out = tmp_path / "folder.json"  # the same frames as a folder, scored by pgpis evaluate
    assert pgpis_main(["evaluate", "--frames", str(frames_dir), "--out", str(out)]) == 0
    assert json.loads(out.read_text())["temporal"]["samples"] == data["temporal"]["samples"]
    (frames_dir / "frame0002.png").unlink()
    assert pgpis_main(["evaluate", "--frames", str(frames_dir), "--out", str(out)]) == 2
    assert "frame0002.png is missing" in capsys.readouterr().err


@pytest.mark.parametrize("options", [{"shared_noise": True}, {"shared_noise": True, "cross_frame": "first"}])
def test_pgpis_test_writes_temporal_metrics_for_each_option(phoenix_fpdm, tmp_path, options):  # noqa: F811
    config = phoenix_fpdm.parents[2] / "fpdm.yaml"
    out = tmp_path / "samples"
    args = ["test", "--config", str(config), "--ckpt_path", str(phoenix_fpdm),
            "--trainer.callbacks+=pgpis.callbacks.inference.DDIMInference",
            "--trainer.callbacks.output_dir", str(out), "--trainer.callbacks.metrics_path", str(tmp_path / "m.json"),
            "--trainer.callbacks.grid_path", str(tmp_path / "grid.png"), "--trainer.callbacks.flow", "farneback"]
    args += [f"--trainer.callbacks.video.{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in options.items()]
    assert pgpis_main(args) == 0
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["settings"]["video_sampling"]["shared_noise"] is True
    assert m["settings"]["video_sampling"]["cross_frame"] == options.get("cross_frame")
    t = m["temporal"]
    assert t["settings"]["sequences"] == 2 and "Farneback" in t["settings"]["flow"]  # the two synthetic test videos
    assert t["samples"]["warping_error"] is not None and t["ground_truth"]["warping_error"] is not None
    assert t["samples"]["tof"] is not None and t["ground_truth"]["tof"] == 0.0
    assert len(list(out.glob("*.png"))) == m["settings"]["n_pairs"]
