"""Pose accuracy (PCK, mean keypoint error) and Hand PE through a pose estimator, against hand-computed values."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from pgpis.data.keypoints import LEFT_HAND_KNUCKLE, MISSING, RIGHT_HAND_KNUCKLE
from pgpis.metrics.hand_estimators import NoHandsError, PoseHandEstimator
from pgpis.metrics.hands import HandKeypointEstimator, HandPE
from pgpis.metrics.pose_accuracy import PoseAccuracy, images_to_uint8
from pgpis.pose import PoseEstimate
from pgpis.pose.testing import FixedEstimator, TableEstimator


def _image(value: int, h: int, w: int) -> torch.Tensor:
    """A flat float image [3, H, W] in [0, 1] whose content (hence TableEstimator key) is `value`."""
    return torch.full((3, h, w), value / 255.0)


def _body(points: dict[int, tuple[float, ...]]) -> np.ndarray:
    body = np.full((18, 3), MISSING, np.float32)
    body[:, 2] = 0
    for j, p in points.items():
        body[j] = (*p, 1.0)[:3] if len(p) == 2 else p
    return body


def _target(points: dict[int, tuple[float, float]]) -> torch.Tensor:
    kp = torch.full((18, 2), MISSING)
    for j, p in points.items():
        kp[j] = torch.tensor(p)
    return kp


# image A (H=100: thresholds 5 px and 10 px) and image B (H=200: 10 px and 20 px), see the hand computation below
A_TARGET = {0: (10, 10), 1: (20, 20), 2: (30, 30), 3: (40, 40)}
A_EST = {0: (13, 14), 1: (20, 28), 3: (40, 52), 4: (50, 50), 5: (60, 60, 0.0)}  # 2 missed; 4 not in the target
B_TARGET = {0: (10, 10), 1: (50, 50), 2: (60, 60)}
B_EST = {0: (10, 19), 1: (50, 75)}


def _table() -> TableEstimator:
    table = TableEstimator(name="stand-in")
    table.add(images_to_uint8(_image(1, 100, 80)[None])[0], _body(A_EST))
    table.add(images_to_uint8(_image(2, 100, 80)[None])[0], PoseEstimate.nobody((100, 80)))
    table.add(images_to_uint8(_image(3, 200, 160)[None])[0], _body(B_EST))
    return table


def test_pck_and_mean_error_by_hand():
    metric = PoseAccuracy(_table())
    # batch 1, H=100: A (4 visible target points) and an image where nobody is found (2 visible points, both wrong)
    metric.update(torch.stack([_image(1, 100, 80), _image(2, 100, 80)]),
                  torch.stack([_target(A_TARGET), _target({0: (5, 5), 7: (50, 60)})]))
    # batch 2, H=200: thresholds scale with the image height
    metric.update(_image(3, 200, 160)[None], _target(B_TARGET)[None])
    # A: distances 5 (p0), 8 (p1), 12 (p3); p2 missed; p4 not in the target; p5 has score 0 (= missed)
    #    @5px: p0 -> 1; @10px: p0, p1 -> 2.   nobody: 2 visible, 0 correct.
    # B: distances 9 (p0), 25 (p1); p2 missed.  @10px: p0 -> 1; @20px: p0 -> 1.
    out = metric.compute()
    assert float(out["pck@0.05"]) == pytest.approx(2 / 9)
    assert float(out["pck@0.1"]) == pytest.approx(3 / 9)
    assert float(out["mean_error_px"]) == pytest.approx((5 + 8 + 12 + 9 + 25) / 5)
    report = metric.report()
    assert report["estimator"] == "stand-in" and "unavailable" not in report
    assert (report["n_images"], report["n_person_found"], report["n_target_points"], report["n_matched_points"]) \
        == (3, 2, 9, 5)


def test_thresholds_are_inclusive_and_configurable():
    est = FixedEstimator(body=_body({0: (10, 20), 1: (10, 30)}))
    metric = PoseAccuracy(est, thresholds=(0.1, 0.2, 0.5))
    metric.update(torch.zeros(1, 3, 100, 50), _target({0: (10, 10), 1: (10, 10)})[None])  # distances 10, 20
    out = metric.compute()
    assert [float(out[k]) for k in ("pck@0.1", "pck@0.2", "pck@0.5")] == [0.5, 1.0, 1.0]
    assert est.calls == 1


def test_no_visible_target_point_and_nothing_found():
    metric = PoseAccuracy(FixedEstimator(body=None))
    metric.update(torch.zeros(2, 3, 64, 48), torch.full((2, 18, 2), MISSING))
    assert math.isnan(float(metric.compute()["pck@0.1"]))
    assert metric.report()["pck@0.1"] is None and "no target keypoint" in metric.report()["unavailable"]
    metric.update(torch.zeros(1, 3, 64, 48), _target({3: (4, 4)})[None])
    rep = metric.report()
    assert rep["pck@0.1"] == 0.0 and rep["mean_error_px"] is None and "found none" in rep["unavailable"]


def test_without_estimator_it_is_unavailable_not_a_number():
    metric = PoseAccuracy(None, reason="mediapipe is not installed")
    metric.update(torch.zeros(1, 3, 64, 48), _target(A_TARGET)[None])
    rep = metric.report()
    assert not metric.available and rep["pck@0.1"] is None and rep["unavailable"] == "mediapipe is not installed"
    assert "no pose estimator configured" in PoseAccuracy().reason


def test_bad_target_shape_is_named():
    with pytest.raises(ValueError, match=r"\[B, 18, 2\+\]"):
        PoseAccuracy(FixedEstimator()).update(torch.zeros(1, 3, 8, 8), torch.zeros(1, 17, 2))


def _ddp_worker(rank: int, world: int, init_file: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        metric = PoseAccuracy(_table())
        if rank == 0:
            metric.update(torch.stack([_image(1, 100, 80), _image(2, 100, 80)]),
                          torch.stack([_target(A_TARGET), _target({0: (5, 5), 7: (50, 60)})]))
        else:
            metric.update(_image(3, 200, 160)[None], _target(B_TARGET)[None])
        Path(out, f"rank{rank}.json").write_text(json.dumps(metric.report()))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # ~13 s for two spawned processes on a shared CPU
def test_two_gloo_processes_sum_their_states(tmp_path):
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    for r in range(2):
        rep = json.loads((tmp_path / f"rank{r}.json").read_text())
        assert rep["pck@0.05"] == pytest.approx(2 / 9) and rep["pck@0.1"] == pytest.approx(3 / 9)
        assert rep["mean_error_px"] == pytest.approx(59 / 5) and rep["n_images"] == 3 and rep["n_person_found"] == 2


# --------------------------------------------------------------------------- Hand PE through the adapter
H, W = 260, 210


def _hands(offset: float, right_missing: bool = False) -> np.ndarray:
    """[2, 21, 3]: left hand points at (30 + j, 40 + 2j) + offset, right at (150 + j, 200 + j) + offset."""
    j = np.arange(21, dtype=np.float32)
    left = np.stack([30 + j + offset, 40 + 2 * j + offset, np.full(21, 0.9)], -1)
    right = np.stack([150 + j + offset, 200 + j + offset, np.full(21, 0.9)], -1)
    if right_missing:
        right = np.tile(np.float32([MISSING, MISSING, 0]), (21, 1))
    return np.stack([left, right]).astype(np.float32)


def test_adapter_gives_left_then_right_and_missing_as_score_zero():
    table = TableEstimator(name="hands-stand-in")
    real = _image(10, H, W)
    table.add(images_to_uint8(real[None])[0], PoseEstimate(_body({}), _hands(0, right_missing=True), False, (H, W)))
    adapter = PoseHandEstimator(table)
    assert isinstance(adapter, HandKeypointEstimator) and adapter.name == "hands-stand-in"
    out = adapter(real[None])
    assert out.shape == (1, 42, 3)
    np.testing.assert_allclose(out[0, :21].numpy(), _hands(0)[0])
    assert (out[0, 21:, :2] == MISSING).all() and (out[0, 21:, 2] == 0).all()
    nobody = adapter(_image(11, H, W)[None])  # unknown image: nobody found, every hand point missing
    assert (nobody[..., 2] == 0).all()


def test_adapter_refuses_a_body_only_estimator():
    with pytest.raises(NoHandsError, match="no hand keypoints"):
        PoseHandEstimator(FixedEstimator(body=_body({0: (1, 1)}), with_hands=False))(torch.zeros(1, 3, 8, 8))


def test_hand_pe_with_the_adapter_by_hand():
    real, fake = _image(20, H, W), _image(21, H, W)
    table = TableEstimator(name="hands-stand-in")
    table.add(images_to_uint8(real[None])[0], PoseEstimate(_body({}), _hands(0), False, (H, W)))
    table.add(images_to_uint8(fake[None])[0], PoseEstimate(_body({}), _hands(3), False, (H, W)))
    kp = torch.full((133, 2), MISSING)
    sc = torch.zeros(133)
    kp[LEFT_HAND_KNUCKLE], sc[LEFT_HAND_KNUCKLE] = torch.tensor([40.0, 60.0]), 0.9
    kp[RIGHT_HAND_KNUCKLE], sc[RIGHT_HAND_KNUCKLE] = torch.tensor([160.0, 210.0]), 0.2  # below 0.3: not counted
    metric = HandPE(PoseHandEstimator(table))
    metric.update(fake[None], real[None], kp[None], sc[None])
    # the left hand only (the right's ground-truth knuckle scores 0.2): every point off by (3, 3) -> L1 6 px
    assert float(metric.compute()) == pytest.approx(6.0)
    assert table.calls == 2


def test_hand_pe_leaves_points_missed_on_the_generated_frame_out_and_counts_them():
    real, fake = _image(30, H, W), _image(31, H, W)
    table = TableEstimator(name="hands-stand-in")
    table.add(images_to_uint8(real[None])[0], PoseEstimate(_body({}), _hands(0), False, (H, W)))
    table.add(images_to_uint8(fake[None])[0], PoseEstimate(_body({}), _hands(2, right_missing=True), False, (H, W)))
    kp, sc = torch.full((133, 2), MISSING), torch.zeros(133)
    for k, xy in ((LEFT_HAND_KNUCKLE, (40.0, 60.0)), (RIGHT_HAND_KNUCKLE, (160.0, 210.0))):
        kp[k], sc[k] = torch.tensor(xy), 0.9
    metric = HandPE(PoseHandEstimator(table))
    metric.update(fake[None], real[None], kp[None], sc[None])
    assert float(metric.compute()) == pytest.approx(4.0)  # the left hand, off by (2, 2); the right one not found
    assert metric.counts() == {"points": 21, "missed_on_generated": 21, "gt_hands": 2, "found_on_real": 2}
    assert metric.name == "hands-stand-in"


# --------------------------------------------------------------------------- in the DeepFashion evaluation
SMALL = "deepfashion-256x176"


def _dataset_estimator(index, size: tuple[int, int]) -> TableEstimator:
    """Knows every dataset image at the report size and answers with its own (rescaled) keypoints."""
    from pgpis.data.keypoints import CFLD_FRAME, rescale_keypoints
    from pgpis.metrics.images import load_resized

    table = TableEstimator(name="dataset-oracle")
    for name, kp in index.keypoints.items():
        if name in index.image_paths:
            table.add(load_resized(index.image_path(name), size), rescale_keypoints(kp, CFLD_FRAME, size))
    return table


def test_deepfashion_evaluation_reports_samples_copy_source_and_ground_truth(synthetic_root, tmp_path):
    from pgpis.data.deepfashion import evaluate_deepfashion, read_deepfashion_index
    from pgpis.data.keypoints import CFLD_FRAME, rescale_keypoints
    from pgpis.metrics.pairs import copy_source
    from pgpis.metrics.protocols import get_protocol

    protocol = get_protocol(SMALL)
    index = read_deepfashion_index(synthetic_root)
    pairs = index.pairs["test"]
    gen = copy_source(pairs, index.image_path, tmp_path / "copy", size=protocol.size)  # a "method" = copy-source
    res = evaluate_deepfashion(synthetic_root, "test", gen, SMALL, lpips_net=None, fid_extractor=None,
                               pose_estimator=_dataset_estimator(index, protocol.size), batch_size=7)
    pose = res.to_dict()["pose_accuracy"]
    assert pose["estimator"] == "dataset-oracle" and pose["frame"].startswith("256x176")
    gt = pose["ground_truth"]
    assert gt["pck@0.05"] == 1.0 and gt["mean_error_px"] == pytest.approx(0.0, abs=1e-6)
    assert gt["n_images"] == len(pairs) and gt["n_person_found"] == len(pairs)
    # copy-source by hand: the source's keypoints against the target's, in the report frame
    correct = {0.05: 0, 0.1: 0}
    visible, errors = 0, []
    for s, t in pairs:
        src, tgt = (rescale_keypoints(index.keypoints[n], CFLD_FRAME, protocol.size) for n in (s, t))
        for a, b in zip(src, tgt):
            if (b == MISSING).any():
                continue
            visible += 1
            if (a == MISSING).any():
                continue
            d = float(np.hypot(*(a - b)))
            errors.append(d)
            for th in correct:
                correct[th] += d <= th * 256
    cs = pose["copy_source"]
    assert cs["n_target_points"] == visible and cs["n_matched_points"] == len(errors)
    assert cs["pck@0.05"] == pytest.approx(correct[0.05] / visible) and cs["pck@0.1"] == pytest.approx(correct[0.1] / visible)
    assert cs["mean_error_px"] == pytest.approx(float(np.mean(errors)), abs=1e-5)
    assert pose["samples"] == cs  # the generated folder *is* copy-source
    assert "| ground truth (estimator ceiling) | 1.000 | 1.000 | 0.00 |" in res.markdown_table()


def test_evaluate_cli_pose_estimator_none_is_reported_unavailable(synthetic_root, tmp_path):
    from pgpis.cli import main
    from pgpis.metrics.pose_eval import DISABLED

    out = tmp_path / "metrics.json"
    assert main(["evaluate", "--root", str(synthetic_root), "--generated", str(tmp_path / "copy"), "--make-copy-source",
                 "--pose-estimator", "none", "--quality", "none", "--out", str(out), "--fid-real-cache", ""]) == 0
    pose = json.loads(out.read_text())["pose_accuracy"]
    assert pose["estimator"] is None and pose["unavailable"] == DISABLED
    assert all(pose[row]["pck@0.1"] is None for row in ("samples", "copy_source", "ground_truth"))


def test_evaluate_cli_estimator_by_class_path_with_options(synthetic_root, tmp_path, capsys):
    from pgpis.cli import main

    out = tmp_path / "metrics.json"
    body = json.dumps([[-1, -1]] * 18)  # an estimator that finds no point: every visible target point is wrong
    assert main(["evaluate", "--root", str(synthetic_root), "--generated", str(tmp_path / "copy"), "--make-copy-source",
                 "--pose-estimator", "pgpis.pose.testing.FixedEstimator", "--pose-estimator-option", f"body={body}",
                 "--quality", "none", "--out", str(out),
                 "--fid-real-cache", ""]) == 0
    pose = json.loads(out.read_text())["pose_accuracy"]
    assert pose["estimator"] == "fixed" and pose["samples"]["pck@0.1"] == 0.0
    assert pose["ground_truth"]["n_person_found"] == 0 and pose["ground_truth"]["mean_error_px"] is None
    assert "| samples | 0.000 | 0.000 | n/a | 0/24 |" in capsys.readouterr().out
    # a named estimator that cannot be built fails before any scoring, with its own message
    assert main(["evaluate", "--root", str(synthetic_root), "--generated", str(tmp_path / "copy"),
                 "--pose-estimator", "no.such.Estimator", "--quality", "none", "--out", str(tmp_path / "x.json")]) != 0
    assert not (tmp_path / "x.json").exists()


def test_evaluate_cli_uses_mediapipe_by_default(synthetic_root, tmp_path):
    """The default estimator on drawn synthetic people: real figures (not asserted), its name and counts."""
    pytest.importorskip("mediapipe")
    from pgpis.cli import main

    out = tmp_path / "metrics.json"
    assert main(["evaluate", "--root", str(synthetic_root), "--generated", str(tmp_path / "copy"), "--make-copy-source",
                 "--quality", "none", "--out", str(out), "--fid-real-cache", ""]) == 0
    pose = json.loads(out.read_text())["pose_accuracy"]
    assert pose["estimator"].startswith("mediapipe-") and "unavailable" not in pose
    gt, cs = pose["ground_truth"], pose["copy_source"]
    assert gt["n_images"] == 24 and gt["n_person_found"] > 0 and gt["pck@0.1"] is not None
    assert pose["samples"] == cs  # the same pixels give the same estimate


def test_phoenix_evaluate_cli_pose_estimator_none_keeps_hand_pe_unavailable(synthetic_phoenix_root, tmp_path):
    from pgpis.cli import main
    from pgpis.metrics.hand_estimators import DISABLED

    out = tmp_path / "metrics.json"
    assert main(["evaluate", "--dataset", "phoenix", "--root", str(synthetic_phoenix_root), "--generated",
                 str(tmp_path / "first"), "--make-copy-source", "--pose-estimator", "none", "--quality", "none",
                 "--out", str(out), "--fid-real-cache", ""]) == 0
    data = json.loads(out.read_text())
    assert data["metrics"]["hand_pe"] is None and data["unavailable"]["hand_pe"] == DISABLED
    assert data["hand_pe"]["estimator"] is None and data["metrics"]["hand_ssim"] is not None
