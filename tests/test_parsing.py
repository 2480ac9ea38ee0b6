"""Parsing label sets, PNG reading, flip and category masks (pgpis.data.parsing)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from pgpis.data.keypoints import MISSING
from pgpis.data.parsing import (
    ATR,
    CIHP,
    DEFAULT_KEYPOINT_CATEGORIES,
    LIP,
    categories_for_keypoints,
    category_mask,
    flip_parsing,
    read_parsing,
    resize_parsing,
)
from pgpis.errors import DataFormatError


def test_label_sets_match_design():
    assert len(LIP.classes) == 20 and LIP.classes[5] == "Upper-clothes" and LIP.classes[19] == "Right-shoe"
    assert len(ATR.classes) == 18 and ATR.classes[8] == "Belt" and ATR.classes[17] == "Scarf"
    assert len(CIHP.classes) == 20 and CIHP.classes[10] == "Torso-skin" and CIHP.classes[14] == "Left-arm"
    assert set(LIP.flip_pairs) == {(14, 15), (16, 17), (18, 19)}
    assert set(ATR.flip_pairs) == {(9, 10), (12, 13), (14, 15)}


def _half_arms(h=8, w=6):
    arr = np.zeros((h, w), np.uint8)
    arr[:, :3] = 14  # Left-arm on the image's left half
    arr[0, 0] = 5
    return arr


@pytest.mark.parametrize("label_set", [LIP, ATR, CIHP], ids=lambda s: s.name)
def test_flip_parsing_involution_and_swaps(label_set):
    rng = np.random.default_rng(0)
    arr = rng.integers(0, label_set.num_classes, size=(9, 7)).astype(np.uint8)
    np.testing.assert_array_equal(flip_parsing(flip_parsing(arr, label_set), label_set), arr)
    left = label_set.classes.index("Left-arm")
    right = label_set.classes.index("Right-arm")
    one = np.zeros((4, 5), np.uint8)
    one[:, 0] = left
    flipped = flip_parsing(one, label_set)
    assert (flipped[:, 4] == right).all() and (flipped[:, :4] == 0).all()


def test_flip_parsing_torch_matches_numpy():
    arr = _half_arms()
    t = flip_parsing(torch.from_numpy(arr).long(), LIP)
    assert t.dtype == torch.long
    np.testing.assert_array_equal(t.numpy(), flip_parsing(arr, LIP))


def test_read_parsing_palette_png(tmp_path):
    arr = _half_arms()
    im = Image.fromarray(arr, mode="P")
    im.putpalette([v for i in range(256) for v in (i * 10 % 256, i * 40 % 256, i * 90 % 256)])
    im.save(tmp_path / "p.png")
    out = read_parsing(tmp_path / "p.png")
    assert out.dtype == np.uint8 and out.shape == (8, 6)
    np.testing.assert_array_equal(out, arr)


def test_read_parsing_rejects_rgb_and_out_of_range(tmp_path):
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(DataFormatError) as e:
        read_parsing(tmp_path / "rgb.png")
    assert "rgb.png" in str(e.value) and "RGB image" in str(e.value) and "class indices" in str(e.value)
    Image.fromarray(np.full((4, 4), 19, np.uint8), mode="L").save(tmp_path / "atr.png")
    with pytest.raises(DataFormatError, match=r"values \[19\] are outside the ATR label set"):
        read_parsing(tmp_path / "atr.png", ATR)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataFormatError, match="cannot decode"):
        read_parsing(tmp_path / "broken.png")


def test_resize_parsing_is_nearest():
    arr = _half_arms()
    big = resize_parsing(arr, (16, 12))
    assert set(np.unique(big)) == set(np.unique(arr))
    np.testing.assert_array_equal(resize_parsing(big, (8, 6)), arr)


def test_categories_for_keypoints():
    kp = np.full((18, 2), MISSING, np.float32)
    assert categories_for_keypoints(kp) == set()
    kp[7] = [10, 10]  # L-wrist
    assert categories_for_keypoints(kp) == {"Left-arm", "Glove", "Upper-clothes", "Coat"}
    kp[13] = [10, 200]
    assert {"Left-shoe", "Socks"} <= categories_for_keypoints(kp)
    assert categories_for_keypoints(kp, table={13: ("Hat",)}) == {"Hat"}
    assert set(DEFAULT_KEYPOINT_CATEGORIES) == set(range(18))


def test_category_mask_merges_sides_and_skips_unknown():
    arr = np.array([[14, 15, 5], [9, 0, 10]], np.uint8)
    np.testing.assert_array_equal(category_mask(arr, {"Left-arm"}, LIP), [[True, True, False], [False, False, False]])
    np.testing.assert_array_equal(category_mask(arr, {"Left-arm"}, LIP, merge_left_right=False),
                                  [[True, False, False], [False, False, False]])
    # "Torso-skin" is CIHP-only; LIP's slot 10 is Jumpsuits.
    assert not category_mask(arr, {"Torso-skin", "Belt"}, LIP).any()
    assert category_mask(arr, {"Torso-skin"}, CIHP)[1, 2]
    t = category_mask(torch.from_numpy(arr).long(), {"Upper-clothes", "Pants"}, LIP)
    assert t.dtype == torch.bool and t.tolist() == [[False, False, True], [True, False, False]]
