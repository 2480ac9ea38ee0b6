"""The keypoint mappings, the PoseEstimate contract, person selection, hand assignment and the stand-ins,
on hand-built arrays (no model)."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pgpis.errors import PgpisError
from pgpis.pose import InvalidEstimate, InvalidEstimator, InvalidImage, PoseEstimate, PoseEstimator
from pgpis.pose import mappings as M
from pgpis.pose.backends.mediapipe import assign_hands
from pgpis.pose.estimate import LEFT, RIGHT, missing_points
from pgpis.pose.selection import person_score, select_person
from pgpis.pose.testing import FixedEstimator, TableEstimator, image_key, make_estimate

MISS = [-1.0, -1.0, 0.0]


def _layout(n: int, seed: int = 0) -> np.ndarray:
    """[n, 3] distinct points: x = 10 i + 1, y = 1000 - 3 i, score from a generator."""
    i = np.arange(n, dtype=np.float32)
    scores = np.random.default_rng(seed).uniform(0.5, 1.0, n).astype(np.float32)
    return np.stack([10 * i + 1, 1000 - 3 * i, scores], axis=1)


@pytest.mark.parametrize("index,names", [(M.COCO17_TO_OPENPOSE18, M.COCO17_NAMES),
                                         (M.BLAZEPOSE33_TO_OPENPOSE18, M.BLAZEPOSE33_NAMES)])
def test_maps_pair_points_of_the_same_name_and_side(index, names):
    """Every OpenPose-18 point but the neck takes the source point of the same name: left stays left."""
    for i, name in enumerate(M.OPENPOSE18_NAMES):
        if name == "neck":
            assert index[i] == M.NECK
        else:
            assert names[index[i]] == name, (i, name)


@pytest.mark.parametrize("convert,n,shoulders", [(M.coco17_to_openpose18, 17, (5, 6)),
                                                 (M.blazepose33_to_openpose18, 33, (11, 12))])
def test_body_mapping_values_neck_and_missing(convert, n, shoulders):
    src = _layout(n)
    out = convert(src)
    assert out.shape == (18, 3) and out.dtype == np.float32
    index = M.COCO17_TO_OPENPOSE18 if n == 17 else M.BLAZEPOSE33_TO_OPENPOSE18
    for i, s in enumerate(index):
        if s != M.NECK:
            np.testing.assert_array_equal(out[i], src[s])
    left, right = src[shoulders[0]], src[shoulders[1]]
    np.testing.assert_allclose(out[1, :2], (left[:2] + right[:2]) / 2)
    assert out[1, 2] == pytest.approx(min(left[2], right[2]))  # the smaller shoulder score
    # person's right shoulder is OpenPose 2, left is 5
    np.testing.assert_array_equal(out[2], right)
    np.testing.assert_array_equal(out[5], left)

    src[shoulders[1]] = MISS  # a missing right shoulder: OpenPose 2 and the neck are missing, rest untouched
    out = convert(src)
    np.testing.assert_array_equal(out[2], MISS)
    np.testing.assert_array_equal(out[1], MISS)
    np.testing.assert_array_equal(out[5], left)


def test_keypoints_with_separate_scores_and_bad_shapes():
    kp = _layout(17)
    np.testing.assert_array_equal(M.coco17_to_openpose18(kp[:, :2], kp[:, 2]), M.coco17_to_openpose18(kp))
    with pytest.raises(ValueError, match=r"COCO-17: expected keypoints \[17, 2\]"):
        M.coco17_to_openpose18(kp[:16, :2], kp[:16, 2])
    with pytest.raises(ValueError, match="BlazePose-33"):
        M.blazepose33_to_openpose18(kp)


def test_clean_points_threshold_outside_and_nan():
    pts = np.array([[10, 10, 0.9], [10, 10, 0.4], [-3, 5, 0.9], [5, 100, 0.9], [np.nan, 1, 0.9], [99, 49, 0.5]],
                   np.float32)
    out = M.clean_points(pts, (50, 100), min_score=0.5)
    np.testing.assert_array_equal(out[0], pts[0])
    for i in (1, 2, 3, 4):
        np.testing.assert_array_equal(out[i], MISS)
    np.testing.assert_array_equal(out[5], pts[5])  # the last pixel is inside


def test_back_view_is_passed_through_as_reported():
    """On a back view BlazePose may label the shoulder on the image's left as the person's left. The mapping
    keeps what the estimator said (no silent 'fix'): OpenPose 5 (left shoulder) gets that point."""
    bp = np.tile(np.array([[50.0, 50.0, 0.9]], np.float32), (33, 1))
    bp[11] = (40, 60, 0.9)   # BlazePose left_shoulder, on the image's LEFT (a back view)
    bp[12] = (120, 60, 0.8)  # BlazePose right_shoulder, on the image's right
    out = M.blazepose33_to_openpose18(bp)
    np.testing.assert_array_equal(out[5], bp[11])
    np.testing.assert_array_equal(out[2], bp[12])
    assert out[5, 0] < out[2, 0]  # the reverse of a front view, kept
    np.testing.assert_allclose(out[1], (80, 60, 0.8))


def test_wholebody133_and_134():
    wb = _layout(133)
    body = M.wholebody133_to_openpose18(wb)
    np.testing.assert_array_equal(body, M.coco17_to_openpose18(wb[:17]))
    hands = M.wholebody133_hands(wb)
    np.testing.assert_array_equal(hands[LEFT], wb[91:112])
    np.testing.assert_array_equal(hands[RIGHT], wb[112:133])
    # rtmlib's to_openpose=True layout: neck inserted at 17, body 0-17 in OpenPose order
    wb134 = np.concatenate([body, wb[17:]], axis=0)
    assert wb134.shape == (134, 3)
    np.testing.assert_array_equal(M.wholebody134_to_wholebody133(wb134), wb)
    np.testing.assert_array_equal(M.wholebody134_to_openpose18(wb134), body)
    # back from OpenPose-18 (+ hands, + feet/face)
    np.testing.assert_array_equal(M.openpose18_to_wholebody133(body, hands, wb), wb)
    plain = M.openpose18_to_wholebody133(body)
    np.testing.assert_array_equal(plain[:17], wb[:17])
    assert (plain[17:, :2] == -1).all() and (plain[17:, 2] == 0).all()


def test_hand21_order():
    assert len(M.HAND21_NAMES) == 21 and M.HAND21_NAMES[0] == "wrist"
    assert M.HAND21_NAMES[1:5] == ("thumb1", "thumb2", "thumb3", "thumb4")
    assert M.HAND21_NAMES[17:] == ("pinky1", "pinky2", "pinky3", "pinky4")


# --- PoseEstimate ---------------------------------------------------------------------------------------

def test_pose_estimate_contract_and_wholebody():
    body = M.coco17_to_openpose18(_layout(17))
    hands = np.stack([_layout(21, 1), _layout(21, 2)])
    est = PoseEstimate(body, hands, True, (300, 400))
    assert est.body.dtype == np.float32 and not est.body.flags.writeable
    wb = est.wholebody()
    assert wb.shape == (133, 3) and wb.dtype == np.float32
    np.testing.assert_array_equal(wb[:17], _layout(17))
    np.testing.assert_array_equal(wb[91:112], hands[0])
    np.testing.assert_array_equal(wb[112:133], hands[1])
    assert (wb[17:91, :2] == -1).all()
    nobody = PoseEstimate.nobody((10, 20))
    assert not nobody.found and nobody.missing.all() and nobody.hands.shape == (2, 21, 3)
    assert PoseEstimate.nobody((10, 20), hands=False).hands is None
    # a half-marked missing point is normalised to (-1, -1, 0)
    b = body.copy()
    b[3] = (-1, 7, 0.4)
    np.testing.assert_array_equal(PoseEstimate(b, None, True, (300, 400)).body[3], MISS)


@pytest.mark.parametrize("kwargs,match", [
    (dict(body=np.zeros((17, 3))), r"body: expected shape \[18, 3\]"),
    (dict(hands=np.zeros((1, 21, 3))), r"hands: expected shape \[2, 21, 3\]"),
    (dict(body=np.full((18, 3), np.nan)), "NaN"),
    (dict(image_size=(0, 5)), "image_size"),
    (dict(found=False), "found=False but body has scored points"),
])
def test_pose_estimate_rejects_bad_values(kwargs, match):
    args = dict(body=np.ones((18, 3)), hands=None, found=True, image_size=(10, 10)) | kwargs
    with pytest.raises(InvalidEstimate, match=match) as info:
        PoseEstimate(**args)
    assert isinstance(info.value, PgpisError)


def test_images_are_checked():
    est = FixedEstimator()
    assert est.estimate(np.zeros((4, 5), np.uint8)).image_size == (4, 5)  # grey is accepted
    assert est.estimate(Image.new("RGBA", (7, 3))).image_size == (3, 7)
    with pytest.raises(InvalidImage, match="dtype float64"):
        est.estimate(np.zeros((4, 4, 3)))
    with pytest.raises(InvalidImage, match=r"shape \[4, 4, 2\]"):
        est.estimate(np.zeros((4, 4, 2), np.uint8))


# --- stand-ins ------------------------------------------------------------------------------------------

def test_fixed_estimator():
    body = np.full((18, 2), -1.0, np.float32)
    body[0], body[2] = (10, 20), (30, 40)
    est = FixedEstimator(body=body, name="fixed-test")
    assert isinstance(est, PoseEstimator) and est.name == "fixed-test"
    out = est.estimate_batch([Image.new("RGB", (50, 60)), np.zeros((8, 9, 3), np.uint8)])
    assert [o.image_size for o in out] == [(60, 50), (8, 9)] and est.calls == 2
    np.testing.assert_array_equal(out[0].body[0], (10, 20, 1))
    np.testing.assert_array_equal(out[0].body[1], MISS)
    assert out[0].found and out[0].hands.shape == (2, 21, 3)
    assert FixedEstimator(with_hands=False).estimate(np.zeros((2, 2, 3), np.uint8)).hands is None
    assert not FixedEstimator().estimate(np.zeros((2, 2, 3), np.uint8)).found
    with pytest.raises(InvalidEstimate):
        FixedEstimator(body=np.zeros((5, 2)))


def test_table_estimator_keys_by_decoded_pixels(tmp_path):
    a = Image.fromarray(np.arange(48, dtype=np.uint8).reshape(4, 4, 3))
    b = Image.new("RGB", (4, 4), (9, 9, 9))
    body = np.full((18, 2), -1.0)
    body[0] = (1, 2)
    table = TableEstimator.from_images([(a, body)])
    a.save(tmp_path / "a.png")
    assert image_key(Image.open(tmp_path / "a.png")) == image_key(a) == image_key(np.asarray(a))
    assert table.estimate(Image.open(tmp_path / "a.png")).body[0].tolist() == [1, 2, 1]
    assert not table.estimate(b).found and len(table.misses) == 1
    strict = TableEstimator(table.table, default="raise")
    with pytest.raises(KeyError, match="no entry for image"):
        strict.estimate(b)
    strict.add(b, make_estimate((4, 4), body))
    assert strict.estimate(b).found


# --- person selection -----------------------------------------------------------------------------------

def _person(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    body = missing_points(18)
    body[0] = (x0, y0, 0.9)
    body[13] = (x1, y1, 0.9)
    body[5] = ((x0 + x1) / 2, (y0 + y1) / 2, 0.9)
    return body


def test_select_largest_central():
    size = (200, 200)
    small_centre = _person(90, 90, 110, 110)
    big_edge = _person(0, 0, 60, 120)
    same_size_edge = _person(0, 80, 20, 100)
    assert select_person([small_centre, big_edge], size) == 1  # size first
    assert select_person([same_size_edge, small_centre], size) == 1  # then the centre
    assert person_score(missing_points(18), size) == 0.0
    assert select_person([], size) is None
    assert select_person([small_centre, big_edge], size, "first") == 0
    assert select_person([small_centre, big_edge], size, lambda bodies, sz: len(bodies) - 2) == 0
    with pytest.raises(InvalidEstimator, match="returned 5"):
        select_person([small_centre], size, lambda bodies, sz: 5)
    with pytest.raises(InvalidEstimator, match="unknown person-selection rule"):
        select_person([small_centre], size, "tallest")


# --- hand assignment (mediapipe) ------------------------------------------------------------------------

def _hand(x: float, y: float, score: float = 0.9) -> np.ndarray:
    pts = np.tile(np.array([[x, y, score]], np.float32), (21, 1))
    pts[1:, 1] -= 10  # fingers above the wrist
    return pts


def test_hands_go_to_the_nearest_body_wrist():
    wrists = np.array([[300.0, 400.0], [100.0, 400.0]])  # person's left wrist on the image's right (front view)
    near_left, near_right = _hand(305, 395), _hand(95, 410)
    # MediaPipe's labels are ignored when a body is found, whatever they say
    assert assign_hands([(near_right, "Right", 0.9), (near_left, "Right", 0.8)], wrists, (500, 500)) == [RIGHT, LEFT]
    assert assign_hands([(near_left, "Left", 0.9)], wrists, (500, 500)) == [LEFT]
    # both hands nearer the left wrist: jointly, the closer one keeps it
    a, b = _hand(290, 400), _hand(250, 400)
    assert assign_hands([(b, "x", 0.9), (a, "x", 0.9)], wrists, (500, 500)) == [RIGHT, LEFT]


def test_hands_without_a_body_use_the_flipped_label():
    """MediaPipe assumes a mirrored image: its 'Left' is the person's right on an ordinary photo."""
    h1, h2 = _hand(10, 20, 0.9), _hand(60, 20, 0.7)
    assert assign_hands([(h1, "Left", 0.9), (h2, "Right", 0.7)], None, (100, 100)) == [RIGHT, LEFT]
    # a clash: the more confident hand keeps its side, the other takes the free one
    assert assign_hands([(h2, "Left", 0.7), (h1, "Left", 0.9)], None, (100, 100)) == [LEFT, RIGHT]


def test_pose_estimates_compare_by_value():
    a = make_estimate((4, 4), np.ones((18, 2)))
    assert a == make_estimate((4, 4), np.ones((18, 2)))
    assert a != make_estimate((4, 5), np.ones((18, 2)))
    assert a != PoseEstimate.nobody((4, 4)) and a != "x"
