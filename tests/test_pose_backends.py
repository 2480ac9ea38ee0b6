"""The estimator backends through load_estimator: mediapipe on a real photo (skimage's astronaut), rtmlib's
plumbing with tiny ONNX models this test exports (SimCC pose head, YOLOX-with-NMS detector), its offline
error, and a user's estimator by class path."""
from __future__ import annotations

import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pgpis.pose import EstimatorUnavailable, InvalidEstimator, PoseEstimator, available_estimators, load_estimator
from pgpis.pose.mappings import COCO17_TO_OPENPOSE18, NECK

skimage_data = pytest.importorskip("skimage.data")

# BlazePose-33 pixel positions on skimage's 512x512 astronaut, measured with mediapipe 0.10.21 BlazePose-full
NOSE, RIGHT_EYE, LEFT_EYE = (223, 128), (205, 103), (249, 112)
LEFT_SHOULDER, RIGHT_SHOULDER = (306, 257), (113, 240)
TOL = 15.0


@pytest.fixture(scope="module")
def mediapipe_estimator():
    est = load_estimator("mediapipe")
    yield est
    est.close()


@pytest.fixture(scope="module")
def astronaut():
    return skimage_data.astronaut()


def test_mediapipe_on_the_astronaut(mediapipe_estimator, astronaut):
    est = mediapipe_estimator
    assert isinstance(est, PoseEstimator) and est.name.startswith("mediapipe-0.10.21:blazepose-full")
    out = est.estimate(astronaut)
    assert out.found and out.image_size == (512, 512)
    body = out.body
    for idx, where in ((0, NOSE), (14, RIGHT_EYE), (15, LEFT_EYE), (2, RIGHT_SHOULDER), (5, LEFT_SHOULDER)):
        assert np.hypot(*(body[idx, :2] - where)) < TOL, (idx, body[idx], where)
        assert body[idx, 2] > 0.9
    assert body[2, 0] < 200 < body[5, 0]  # OpenPose 2 = person's right shoulder, on the image's left
    np.testing.assert_allclose(body[1, :2], (body[2, :2] + body[5, :2]) / 2, atol=1e-4)
    assert body[1, 2] == pytest.approx(min(body[2, 2], body[5, 2]))
    # the photo ends at the waist: hips, knees and ankles are missing, never guessed
    assert (body[[8, 9, 10, 11, 12, 13], 0] == -1).all() and (body[[8, 9, 10, 11, 12, 13], 2] == 0).all()
    present = body[:, 0] >= 0
    assert (body[present, 2] >= 0.5).all()
    assert out.hands.shape == (2, 21, 3)
    assert out.wholebody().shape == (133, 3)
    # PIL in, same answer
    again = est.estimate(Image.fromarray(astronaut))
    np.testing.assert_allclose(again.body, body, atol=1e-3)


def test_mediapipe_without_a_person(mediapipe_estimator):
    images = [np.full((200, 300, 3), 128, np.uint8), skimage_data.coffee()]
    for out, im in zip(mediapipe_estimator.estimate_batch(images), images):
        assert not out.found and out.image_size == im.shape[:2]
        assert (out.body == [-1, -1, 0]).all() and (out.hands == [-1, -1, 0]).all()


def test_mediapipe_body_only_and_closed():
    with load_estimator("mediapipe", hands=False) as est:
        assert est.name == "mediapipe-0.10.21:blazepose-full"
        assert est.estimate(np.zeros((32, 32, 3), np.uint8)).hands is None
    with pytest.raises(EstimatorUnavailable, match="closed"):
        est.estimate(np.zeros((32, 32, 3), np.uint8))


def test_mediapipe_missing_is_a_named_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # `import mediapipe` now raises ImportError
    with pytest.raises(EstimatorUnavailable, match=r'pip install "pgpis\[pose\]"'):
        load_estimator("mediapipe")
    assert "pgpis[pose]" in available_estimators()["mediapipe"]


def test_names_and_options():
    assert available_estimators()["mediapipe"] is None
    with pytest.raises(EstimatorUnavailable, match="unknown estimator 'openpose'.*mediapipe"):
        load_estimator("openpose")
    with pytest.raises(InvalidEstimator, match=r"unknown option\(s\) \['complexity'\]"):
        load_estimator("mediapipe", complexity=2)


# --- rtmlib plumbing with exported models -----------------------------------------------------------------

POSE_W, POSE_H = 48, 64  # pose model input (w, h), aspect 0.75 like RTMPose's 192x256
DET = 64  # detector input (h = w)
IMAGE = 128  # test image side: the detector sees it at ratio 0.5
BOX_BIG, BOX_SMALL = (32.0, 16.0, 92.0, 96.0), (100.0, 96.0, 115.0, 116.0)  # image pixels, aspect 0.75


def _export(module, path: Path, shape: tuple[int, ...], outputs: list[str]) -> Path:
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(module, (torch.zeros(shape),), str(path), input_names=["input"],
                              output_names=outputs, dynamo=False)
        except TypeError:  # a torch without the TorchScript exporter
            torch.onnx.export(module, (torch.zeros(shape),), str(path), input_names=["input"], output_names=outputs)
    return path


def _pose_targets(k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per keypoint: its place in the pose model's input (px, py) and whether it is present."""
    i = np.arange(k)
    xy = np.stack([4 + (i * 7) % 40, 4 + (i * 5) % 56], axis=1).astype(np.float32)
    present = np.ones(k, bool)
    present[15] = False  # COCO left ankle: scored 0 by the model -> missing
    if k == 133:
        present[17:91] = False  # feet and face absent
    return xy, present


def _pose_model(tmp: Path, k: int) -> Path:
    """An RTMPose-like SimCC model: input [1,3,H,W]; simcc_x [1,K,2W], simcc_y [1,K,2H] peaking at each
    keypoint's chosen bin (value 0.9), all zero for an absent keypoint."""
    import torch

    xy, present = _pose_targets(k)
    sx, sy = torch.zeros(1, k, 2 * POSE_W), torch.zeros(1, k, 2 * POSE_H)
    for j in range(k):
        if present[j]:
            sx[0, j, int(2 * xy[j, 0])] = 0.9
            sy[0, j, int(2 * xy[j, 1])] = 0.9

    class SimCC(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("sx", sx)
            self.register_buffer("sy", sy)

        def forward(self, x):
            zero = x.mean() * 0
            return self.sx + zero, self.sy + zero

    return _export(SimCC(), tmp / f"pose{k}.onnx", (1, 3, POSE_H, POSE_W), ["simcc_x", "simcc_y"])


def _det_model(tmp: Path, boxes: list[tuple[float, ...]], scores: list[float], name: str) -> Path:
    """A YOLOX-with-NMS-like detector (as OpenMMLab's end2end.onnx): dets [1,N,5] (x1,y1,x2,y2,score) in
    the detector's input pixels, labels [1,N]."""
    import torch

    dets = torch.tensor([[[b / 2 for b in box] + [s] for box, s in zip(boxes, scores)]], dtype=torch.float32)

    class Det(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("dets", dets)

        def forward(self, x):
            zero = x.mean() * 0
            return self.dets + zero, torch.zeros(1, dets.shape[1], dtype=torch.int64) + zero.long()

    return _export(Det(), tmp / name, (1, 3, DET, DET), ["dets", "labels"])


def _expected(box: tuple[float, ...], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Where rtmlib puts each point for a box: padded 1.25x around the box centre (the box has the model's
    aspect already), model-input pixel -> image pixel."""
    xy, present = _pose_targets(k)
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    sw, sh = 1.25 * (box[2] - box[0]), 1.25 * (box[3] - box[1])
    out = np.stack([xy[:, 0] / POSE_W * sw + cx - sw / 2, xy[:, 1] / POSE_H * sh + cy - sh / 2], axis=1)
    return out, present


@pytest.fixture(scope="module")
def onnx_models(tmp_path_factory):
    pytest.importorskip("rtmlib")
    pytest.importorskip("onnxruntime")
    tmp = tmp_path_factory.mktemp("rtmlib_models")
    return {
        "pose133": _pose_model(tmp, 133),
        "pose17": _pose_model(tmp, 17),
        # the small person first: the detector's order is not what picks the person
        "det2": _det_model(tmp, [BOX_SMALL, BOX_BIG], [0.95, 0.9], "det2.onnx"),
        "det0": _det_model(tmp, [BOX_BIG], [0.1], "det0.onnx"),  # below rtmlib's 0.3: nobody
    }


def _rtmlib(models, pose: str, det: str, **kw):
    return load_estimator("rtmlib", pose=str(models[pose]), det=str(models[det]), det_input_size=(DET, DET),
                          pose_input_size=(POSE_W, POSE_H), **kw)


def _image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (IMAGE, IMAGE, 3), dtype=np.uint8)


def test_rtmlib_wholebody_end_to_end(onnx_models):
    est = _rtmlib(onnx_models, "pose133", "det2", offline=True)
    assert est.name.startswith("rtmlib-") and est.name.endswith(":wholebody:pose133")
    out = est.estimate(_image())
    assert out.found and out.image_size == (IMAGE, IMAGE)
    pts, present = _expected(BOX_BIG, 133)  # the larger, more central person
    for op, coco in enumerate(COCO17_TO_OPENPOSE18):
        if coco == NECK:
            continue
        if present[coco]:
            np.testing.assert_allclose(out.body[op, :2], pts[coco], atol=1e-3)
            assert out.body[op, 2] == pytest.approx(0.9)
        else:
            assert out.body[op].tolist() == [-1, -1, 0]
    np.testing.assert_allclose(out.body[1, :2], (pts[5] + pts[6]) / 2, atol=1e-3)
    np.testing.assert_allclose(out.hands[0, :, :2], pts[91:112], atol=1e-3)  # person's left hand
    np.testing.assert_allclose(out.hands[1, :, :2], pts[112:133], atol=1e-3)
    wb = out.wholebody()
    np.testing.assert_allclose(wb[:17][present[:17], :2], pts[:17][present[:17]], atol=1e-3)
    assert (wb[17:91, :2] == -1).all()
    np.testing.assert_allclose(wb[91:, :2], pts[91:], atol=1e-3)
    first = _rtmlib(onnx_models, "pose133", "det2", person="first").estimate(_image())
    small, _ = _expected(BOX_SMALL, 133)
    np.testing.assert_allclose(first.body[0, :2], small[0], atol=1e-3)


def test_rtmlib_body_and_nobody(onnx_models):
    est = _rtmlib(onnx_models, "pose17", "det2", kind="body")
    out = est.estimate(Image.fromarray(_image()))
    pts, _ = _expected(BOX_BIG, 17)
    assert out.hands is None and out.found
    np.testing.assert_allclose(out.body[2, :2], pts[6], atol=1e-3)  # OpenPose right shoulder = COCO 6
    none = _rtmlib(onnx_models, "pose17", "det0", kind="body").estimate(_image())
    assert not none.found and (none.body == [-1, -1, 0]).all()


def test_rtmlib_cuda_without_a_cuda_onnxruntime(onnx_models):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    with pytest.raises(EstimatorUnavailable, match="no CUDA provider.*onnxruntime-gpu"):
        _rtmlib(onnx_models, "pose17", "det2", kind="body", device="cuda")


def test_rtmlib_offline_without_the_model_file(tmp_path, monkeypatch):
    pytest.importorskip("rtmlib")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    with pytest.raises(EstimatorUnavailable) as info:
        load_estimator("rtmlib", mode="lightweight", offline=True)
    msg = str(info.value)
    assert "https://download.openmmlab.com/" in msg and str(cache) in msg and "det='path/to/model.onnx'" in msg
    monkeypatch.setenv("PGPIS_OFFLINE", "1")
    with pytest.raises(EstimatorUnavailable, match="PGPIS_OFFLINE=1"):
        load_estimator("rtmlib", kind="body")
    assert "not available offline" in available_estimators()["rtmlib"]
    with pytest.raises(EstimatorUnavailable, match="does not exist"):
        load_estimator("rtmlib", det=str(tmp_path / "nope.onnx"))
    with pytest.raises(InvalidEstimator, match="kind='hand'"):
        load_estimator("rtmlib", kind="hand")


def test_rtmlib_uses_a_cached_file_offline(onnx_models, tmp_path, monkeypatch):
    """A model already in rtmlib's cache (as its download leaves it: <zip stem>.onnx) loads offline."""
    import shutil

    from rtmlib import Wholebody

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("PGPIS_OFFLINE", "1")
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    url = Wholebody.MODE["lightweight"]["pose"]
    shutil.copy(onnx_models["pose133"], cache / (url.rsplit("/", 1)[1].split(".")[0] + ".onnx"))
    est = load_estimator("rtmlib", mode="lightweight", det=str(onnx_models["det2"]), det_input_size=(DET, DET),
                         pose_input_size=(POSE_W, POSE_H))
    assert "rtmw-dw-l-m" in est.name and est.estimate(_image()).found


# --- a user's own estimator by class path --------------------------------------------------------------

@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "my_pose_pkg").mkdir()
    (tmp_path / "my_pose_pkg" / "__init__.py").write_text("")
    (tmp_path / "my_pose_pkg" / "est.py").write_text(textwrap.dedent("""
        import numpy as np
        from pgpis.pose import PoseEstimate, PoseEstimator

        class Centre(PoseEstimator):
            def __init__(self, score=0.5):
                self.name = f"centre-{score}"
                self.score = score

            def estimate(self, image):
                h, w = np.asarray(image).shape[:2]
                body = np.tile([[w / 2, h / 2, self.score]], (18, 1))
                return PoseEstimate(body, None, True, (h, w))

        class NotAnEstimator:
            name = "x"
            def estimate(self, image):
                return None
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "my_pose_pkg.est"
    for mod in ("my_pose_pkg", "my_pose_pkg.est"):
        sys.modules.pop(mod, None)


def test_class_path_estimator(user_module):
    est = load_estimator(f"{user_module}.Centre", score=0.7)
    assert est.name == "centre-0.7"
    out = est.estimate_batch([np.zeros((10, 20, 3), np.uint8)])[0]
    np.testing.assert_allclose(out.body[0], (10, 5, 0.7))
    assert load_estimator(f"{user_module}:Centre").name == "centre-0.5"


@pytest.mark.parametrize("suffix,kwargs,match", [
    (".NotAnEstimator", {}, r"not a PoseEstimator \(missing: estimate_batch\).*subclass pgpis.pose.PoseEstimator"),
    (".Missing", {}, "has no attribute 'Missing'"),
    (".Centre", {"colour": 1}, r"options \['colour'\] do not fit its constructor"),
])
def test_class_path_errors(user_module, suffix, kwargs, match):
    with pytest.raises(InvalidEstimator, match=match):
        load_estimator(user_module + suffix, **kwargs)


def test_class_path_import_error():
    with pytest.raises(InvalidEstimator, match="cannot import module 'no_such_pkg_xyz'"):
        load_estimator("no_such_pkg_xyz.Estimator")


def test_native_log_filter_drops_only_known_noise(capfd):
    import os

    from pgpis.pose.backends._quiet import filtered_native_stderr

    with filtered_native_stderr():
        os.write(2, b"W0000 inference_feedback_manager.cc:114] Feedback manager requires ...\n")
        os.write(2, b"a real error\n")
    assert capfd.readouterr().err == "a real error\n"
