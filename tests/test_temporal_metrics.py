"""Temporal metrics (pgpis.metrics.temporal): hand-checked values on tiny clips, Phoenix wiring, DDP = one process."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from pgpis.cli import main as pgpis_main
from pgpis.data.phoenix.evaluate import copy_first_frame, phoenix_sequences, read_phoenix_frames
from pgpis.metrics.lpips_net import build_lpips
from pgpis.metrics.pairs import match_generated
from pgpis.metrics.temporal import (FrameSequence, consistent_mask, dis_flow, hand_mask, sequence_flows,
                                    temporal_metrics)

SHIFT = 2  # pixels per frame, to the left: frame t shows the texture at x + SHIFT * t
SIZE = (64, 80)


def texture(seed: int = 0) -> np.ndarray:
    """A smooth random texture (DIS tracks it to a fraction of a pixel)."""
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.random((SIZE[0] + 20, SIZE[1] + 40, 3)).astype(np.float32), (0, 0), 3)
    return ((noise - noise.mean()) * 4 * 255 + 128).clip(0, 255).astype(np.uint8)


def shifted_clip(n: int = 4, seed: int = 0) -> list[np.ndarray]:
    big = texture(seed)
    return [np.ascontiguousarray(big[10:10 + SIZE[0], SHIFT * t:SHIFT * t + SIZE[1]]) for t in range(n)]


def test_a_static_clip_scores_zero():
    clip = [shifted_clip(1)[0]] * 4
    res = temporal_metrics([FrameSequence("static", clip, clip)], SIZE)
    assert res.samples["warping_error"] == 0.0 and res.reference["warping_error"] == 0.0
    assert res.samples["tof"] == 0.0
    assert res.settings["flow"].startswith("opencv DIS") and res.settings["frame_pairs"] == 3


def test_a_shifted_clip_scores_what_the_shift_predicts():
    """Ground truth moves SHIFT px per frame; the 'samples' stay still. Warping the still frame by the ground truth's
    flow moves it by SHIFT, so the error is the mean of |I(x) - I(x + SHIFT)|^2 over the frame minus its border."""
    gt = shifted_clip()
    still = [gt[0]] * len(gt)
    res = temporal_metrics([FrameSequence("shift", still, gt)], SIZE)
    f = gt[0].astype(np.float64) / 255
    expected = ((f[:, SHIFT:] - f[:, :-SHIFT]) ** 2).sum(-1)[:, :-SHIFT].mean()  # x + SHIFT must stay inside
    assert res.samples["warping_error"] == pytest.approx(expected, rel=0.02)
    assert res.reference["warping_error"] < expected / 1000  # the ground truth follows its own flow
    assert res.samples["tof"] == pytest.approx(SHIFT, rel=0.02)  # still (0 px) vs the ground truth's SHIFT px
    # the flow found is the shift, and the column the previous frame cannot explain is masked
    b = dis_flow(gt[1], gt[0])
    mask = consistent_mask(b, dis_flow(gt[0], gt[1]))
    assert np.allclose(b[8:-8, 8:-8, 0], SHIFT, atol=0.05) and not mask[:, -SHIFT:].any() and mask[4:-4, 4:-SHIFT - 4].mean() > 0.99


def test_hand_warping_error_counts_only_the_hand_boxes():
    gt = shifted_clip()
    still = [gt[0]] * len(gt)
    hands = np.full((len(gt), 2, 2), np.nan)
    hands[:, 0] = (20.0, 30.0)  # left hand only, a 16x16 box at (12..27, 22..37)
    res = temporal_metrics([FrameSequence("hand", still, gt, hands)], SIZE, crop=16)
    f = gt[0].astype(np.float64) / 255
    err = ((f[:, SHIFT:] - f[:, :-SHIFT]) ** 2).sum(-1)
    assert res.samples["hand_warping_error"] == pytest.approx(err[22:38, 12:28].mean(), rel=0.03)
    box = hand_mask(hands[0], SIZE, 16)
    assert box.sum() == 256 and box[22, 12] and not box[21, 12]
    none = temporal_metrics([FrameSequence("no hand", still, gt, np.full((4, 2, 2), np.nan))], SIZE)
    assert none.samples["hand_warping_error"] is None and "no hand present" in none.unavailable["hand_warping_error"]


def test_tlp_compares_consecutive_lpips_with_the_ground_truth():
    torch.manual_seed(0)
    net = build_lpips(random_backbone=True)  # plumbing only: values are compared with the same network by hand
    gt = shifted_clip()
    still = [gt[0]] * len(gt)
    res = temporal_metrics([FrameSequence("tlp", still, gt)], SIZE, lpips_net=net)
    to01 = lambda xs: torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).float() / 255  # noqa: E731
    gt_lp = net(to01(gt[1:]), to01(gt[:-1]), normalize=True).flatten().double()
    assert res.samples["lpips_consecutive"] == pytest.approx(0.0, abs=1e-7)  # a still clip does not change
    assert res.samples["tlp"] == pytest.approx(float(gt_lp.mean()), rel=1e-5)
    assert res.reference["tlp"] == 0.0 and "tlp" not in res.unavailable


def test_without_reference_the_flow_comes_from_the_frames_and_only_warping_is_scored():
    clip = shifted_clip()
    res = temporal_metrics([FrameSequence("driving", clip)], SIZE)
    assert res.settings["flow_computed_on"] == "the scored frames"
    assert res.samples["warping_error"] < 1e-4 and "tof" not in res.samples


def test_phoenix_evaluate_reports_samples_and_ground_truth(synthetic_phoenix_root, tmp_path):
    frames = read_phoenix_frames(synthetic_phoenix_root, "test")
    copy = copy_first_frame(frames, tmp_path / "copy")
    out = tmp_path / "m.json"
    assert pgpis_main(["evaluate", "--dataset", "phoenix", "--root", str(synthetic_phoenix_root), "--split", "test",
                       "--generated", str(copy), "--out", str(out), "--fid-real-cache", "", "--pose-estimator",
                       "none", "--flow", "farneback"]) == 0
    temporal = json.loads(out.read_text())["temporal"]
    seqs = phoenix_sequences(match_generated(copy, frames.pairs, frames.path).found, frames, (260, 210))
    assert temporal["settings"]["sequences"] == len(seqs) == len({source for source, _ in frames.pairs})  # videos
    assert temporal["settings"]["frame_pairs"] == len(frames.pairs) - len(seqs)
    assert "Farneback" in temporal["settings"]["flow"]
    s, gt = temporal["samples"], temporal["ground_truth"]
    assert s["warping_error"] > gt["warping_error"] > 0 and s["hand_warping_error"] > gt["hand_warping_error"]
    assert s["tof"] > 0 and gt["tof"] == 0.0 and s["tlp"] is None and "alexnet" in temporal["unavailable"]["tlp"]


def _sequences() -> list[FrameSequence]:
    clips = [shifted_clip(n, seed) for n, seed in ((4, 0), (3, 1), (5, 2))]
    hands = [np.tile(np.array([[20.0, 30.0], [np.nan, np.nan]]), (len(c), 1, 1)) for c in clips]
    return [FrameSequence(f"v{i}", [c[0]] * len(c), c, h) for i, (c, h) in enumerate(zip(clips, hands))]


def _worker(rank: int, world: int, init_file: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        torch.manual_seed(0)
        res = temporal_metrics(_sequences(), SIZE, lpips_net=build_lpips(random_backbone=True), crop=16)
        Path(out, f"rank{rank}.json").write_text(json.dumps(res.to_dict()))
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_give_exactly_the_single_process_numbers(tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        single = temporal_metrics(_sequences(), SIZE, lpips_net=build_lpips(random_backbone=True), crop=16).to_dict()
    finally:
        torch.set_num_threads(threads)
    assert single["settings"]["frame_pairs"] == 9 and single["samples"]["tlp"] is not None
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    for r in range(2):  # rank 0 scored sequences 0 and 2, rank 1 sequence 1; each rank returns every pair's mean
        assert json.loads((tmp_path / f"rank{r}.json").read_text()) == json.loads(json.dumps(single))


def test_sequence_flows_match_frame_pairs():
    clip = shifted_clip(3)
    flows = sequence_flows(clip, dis_flow)
    assert len(flows) == 2 and flows[0][0].shape == (*SIZE, 2) and flows[0][1].dtype == bool


def test_a_driving_video_is_the_reference_of_a_clip_without_ground_truth(tmp_path):
    from PIL import Image

    from pgpis.metrics.clips import clip_metrics

    moving = shifted_clip(5)
    gif = tmp_path / "driving.gif"
    pictures = [Image.fromarray(f) for f in moving]
    pictures[0].save(gif, save_all=True, append_images=pictures[1:], duration=40, loop=0)
    flicker = [np.clip(f.astype(int) + (20 if t % 2 else -20), 0, 255).astype(np.uint8) for t, f in enumerate(moving)]
    res = clip_metrics(flicker, driving_video=gif)
    assert "driving video's own warping error" in res.settings["reference"]
    assert res.reference["warping_error"] < res.samples["warping_error"]  # the flickering clip scores worse
    assert res.samples["warping_error"] == pytest.approx(3 * (40 / 255) ** 2, rel=0.15)  # +-20 levels, 3 channels
