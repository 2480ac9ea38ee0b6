"""Keypoint specs, transforms, rendering and file formats (pgpis.data.keypoints)."""
from __future__ import annotations

import numpy as np
import pytest

from pgpis.data.keypoints import (
    CFLD_FRAME,
    COCO_WHOLEBODY_133,
    LEFT_HAND_KNUCKLE,
    MISSING,
    OPENPOSE_18,
    PCDMS_FRAME,
    RIGHT_HAND_KNUCKLE,
    cfld_to_pcdms_frame,
    flip_keypoints,
    format_cfld_keypoints,
    jitter_keypoints,
    missing_mask,
    parse_cfld_keypoints,
    pcdms_to_cfld_frame,
    read_pcdms_keypoints,
    render_pose,
    rescale_keypoints,
    write_pcdms_keypoints,
)
from pgpis.errors import DataFormatError

# A standing person in the 256x176 (h x w) CFLD frame, joints well apart; R-ear (16) missing.
STANDING = np.array([
    [88, 30], [88, 60], [60, 62], [50, 100], [44, 138], [116, 62], [126, 100], [132, 138],
    [70, 130], [68, 180], [66, 230], [106, 130], [108, 180], [110, 230], [80, 24], [96, 24],
    [-1, -1], [104, 28],
], dtype=np.float32)


def sided_pairs(spec):
    names = spec.names
    return [(i, names.index(n.replace("left", "right"))) for i, n in enumerate(names) if "left" in n]


@pytest.mark.parametrize("spec", [OPENPOSE_18, COCO_WHOLEBODY_133], ids=lambda s: s.name)
def test_spec_shapes(spec):
    assert len(spec.flip_permutation) == len(spec.names)
    assert len(spec.colors) >= len(spec.limbs)
    assert all(len(c) == 3 and all(0 <= v <= 255 for v in c) for c in spec.colors)


def test_openpose_spec_matches_design():
    assert OPENPOSE_18.limbs[0] == (1, 2) and OPENPOSE_18.limbs[-1] == (15, 17) and len(OPENPOSE_18.limbs) == 17
    assert OPENPOSE_18.colors[0] == (255, 0, 0) and OPENPOSE_18.colors[17] == (255, 0, 85)
    assert OPENPOSE_18.names[2] == "right_shoulder" and OPENPOSE_18.names[17] == "left_ear"


def test_wholebody_layout():
    s = COCO_WHOLEBODY_133
    assert len(s.names) == 133
    assert s.names[LEFT_HAND_KNUCKLE] == "left_middle_finger1" and s.names[RIGHT_HAND_KNUCKLE] == "right_middle_finger1"
    assert s.flip_permutation[LEFT_HAND_KNUCKLE] == RIGHT_HAND_KNUCKLE
    assert s.flip_permutation[23] == 23 + 16  # jaw end to jaw end
    assert s.flip_permutation[23 + 30] == 23 + 30  # nose tip stays
    hand_edges = [(a, b) for a, b in s.limbs if a >= 112 and b >= 112]
    assert len(hand_edges) == 20


@pytest.mark.parametrize("spec", [OPENPOSE_18, COCO_WHOLEBODY_133], ids=lambda s: s.name)
def test_flip_is_involution_and_swaps_sides(spec):
    rng = np.random.default_rng(0)
    kp = rng.uniform(0, 170, size=(spec.num_points, 2)).astype(np.float32)
    kp[3] = MISSING
    once = flip_keypoints(kp, 176, spec)
    np.testing.assert_allclose(flip_keypoints(once, 176, spec), kp, atol=1e-4)
    for left, right in sided_pairs(spec):
        if not missing_mask(kp)[right]:
            np.testing.assert_allclose(once[left], [175 - kp[right, 0], kp[right, 1]])
    assert missing_mask(once).sum() == 1 and missing_mask(once)[spec.flip_permutation[3]]


def test_flip_carries_scores():
    kp = np.zeros((133, 3), np.float32)
    kp[:, 2] = np.arange(133) / 133
    out = flip_keypoints(kp, 210, COCO_WHOLEBODY_133)
    assert out[LEFT_HAND_KNUCKLE, 2] == pytest.approx(RIGHT_HAND_KNUCKLE / 133)


def test_rescale_round_trip_keeps_missing():
    big = rescale_keypoints(STANDING, CFLD_FRAME, (512, 352))
    np.testing.assert_allclose(big[1], [176, 120])
    np.testing.assert_array_equal(big[16], [MISSING, MISSING])
    np.testing.assert_allclose(rescale_keypoints(big, (512, 352), CFLD_FRAME), STANDING, atol=1e-4)


def test_frame_conversion_round_trip():
    pc = cfld_to_pcdms_frame(STANDING)
    assert pc[0, 0] == 128 and pc[16, 0] == MISSING
    np.testing.assert_allclose(pcdms_to_cfld_frame(pc), STANDING)
    assert PCDMS_FRAME == (256, 256) and CFLD_FRAME == (256, 176)


def test_jitter_moves_present_points_only():
    out = jitter_keypoints(STANDING, 2.0, np.random.default_rng(1))
    np.testing.assert_array_equal(out[16], [MISSING, MISSING])
    assert 0 < np.abs(out[~missing_mask(STANDING)] - STANDING[~missing_mask(STANDING)]).max() < 12
    np.testing.assert_array_equal(out, jitter_keypoints(STANDING, 2.0, np.random.default_rng(1)))


@pytest.mark.parametrize("size", [CFLD_FRAME, (512, 352)])
def test_render_has_joint_colour_at_joint(size):
    kp = rescale_keypoints(STANDING, CFLD_FRAME, size)
    img = render_pose(kp, size)
    assert img.shape == (*size, 3) and img.dtype == np.uint8
    for j in np.flatnonzero(~missing_mask(kp)):
        x, y = np.rint(kp[j]).astype(int)
        assert tuple(img[y, x]) == OPENPOSE_18.colors[j], OPENPOSE_18.names[j]
    assert (img.reshape(-1, 3).max(1) == 0).mean() > 0.8  # black background


def test_render_strokes_scale_with_resolution():
    small = render_pose(STANDING, CFLD_FRAME)
    large = render_pose(rescale_keypoints(STANDING, CFLD_FRAME, (512, 352)), (512, 352))
    frac_small = (small.max(2) > 0).mean()
    frac_large = (large.max(2) > 0).mean()
    assert frac_large == pytest.approx(frac_small, rel=0.15)


def test_missing_out_of_frame_and_low_score_never_drawn():
    kp = STANDING.copy()
    kp[17] = [300, 28]  # outside a 176-wide frame
    scores = np.ones(18, np.float32)
    scores[4] = 0.1
    img = render_pose(kp, CFLD_FRAME, scores=scores)
    # R-wrist dropped by score: neither the joint colour nor its limb colour (3-4 uses colors[3]) at its pixel.
    assert tuple(img[138, 44]) != OPENPOSE_18.colors[4]
    assert not (img == np.array(OPENPOSE_18.colors[16], np.uint8)).all(2).any()  # limb (14,16) with missing R-ear
    assert not (img == np.array(OPENPOSE_18.colors[17], np.uint8)).all(2).any()  # L-ear out of frame
    empty = render_pose(np.full((18, 2), MISSING, np.float32), CFLD_FRAME)
    assert empty.max() == 0


def test_render_wholebody_hands_distinct():
    rng = np.random.default_rng(0)
    kp = np.full((133, 2), MISSING, np.float32)
    # Two spread hands: root, then 5 fingers of 4 points fanning upwards.
    for start, cx in ((91, 150.0), (112, 350.0)):
        kp[start] = [cx, 400]
        for f in range(5):
            for i in range(4):
                kp[start + 1 + 4 * f + i] = [cx - 60 + 30 * f, 360 - 18 * i]
    scores = np.ones(133, np.float32)
    img = render_pose(kp, (512, 512), COCO_WHOLEBODY_133, scores=scores)
    for j in (LEFT_HAND_KNUCKLE, RIGHT_HAND_KNUCKLE, 95, 132):
        x, y = kp[j].astype(int)
        assert tuple(img[y, x]) == COCO_WHOLEBODY_133.joint_color(j)
    # Between two neighbouring fingertips the background shows: fingers do not merge.
    assert img[306, 150 - 45].max() == 0
    face = kp.copy()
    face[23:91] = rng.uniform(200, 300, size=(68, 2))
    assert (render_pose(face, (512, 512), COCO_WHOLEBODY_133) == img).all()
    assert (render_pose(face, (512, 512), COCO_WHOLEBODY_133, draw_face=True) != img).any()


def test_cfld_format_round_trip():
    kp = STANDING.copy()
    kp[0] = [88.25, 30.5]
    y_json, x_json = format_cfld_keypoints(kp)
    assert y_json.startswith("[30.5, 60, ")
    np.testing.assert_array_equal(parse_cfld_keypoints(y_json, x_json), kp)


@pytest.mark.parametrize("y_json, what", [
    ("[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17]", "expected 18 keypoints, found 17"),
    ('[1, "a", 3]', "must be a list of numbers"),
    ("[1, 2,", "not a JSON list"),
])
def test_cfld_bad_rows_name_file_and_line(y_json, what):
    x_json = format_cfld_keypoints(STANDING)[1]
    with pytest.raises(DataFormatError) as e:
        parse_cfld_keypoints(y_json, x_json, file="fasion-resize-annotation-train.csv", line=7, item="a.jpg")
    assert what in str(e.value) and "fasion-resize-annotation-train.csv:7" in str(e.value)
    assert e.value.problems[0].line == 7


def test_pcdms_write_read_round_trip(tmp_path):
    kp = cfld_to_pcdms_frame(STANDING)
    kp[2] = [100.123, 62.5]
    p = tmp_path / "01_1_front.txt"
    write_pcdms_keypoints(p, kp)
    assert p.read_text().splitlines()[16] == "-1 -1"
    np.testing.assert_array_equal(read_pcdms_keypoints(p), kp)


def test_pcdms_bad_files(tmp_path):
    p = tmp_path / "short.txt"
    p.write_text("1 2\n" * 17)
    with pytest.raises(DataFormatError, match="expected 18 keypoints, found 17"):
        read_pcdms_keypoints(p)
    p.write_text("1 2\n" * 4 + "1 x\n" + "1 2\n" * 13)
    with pytest.raises(DataFormatError) as e:
        read_pcdms_keypoints(p)
    assert e.value.problems[0].line == 5 and "short.txt:5" in str(e.value)
    with pytest.raises(DataFormatError, match="cannot read"):
        read_pcdms_keypoints(tmp_path / "absent.txt")
