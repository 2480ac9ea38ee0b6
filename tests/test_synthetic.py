"""The synthetic DeepFashion writer: determinism, splits, parsing/keypoint agreement, identity vs pose."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pgpis.data.deepfashion import synthetic as S
from pgpis.data.keypoints import MISSING
from pgpis.data.deepfashion.layout import SYNTHETIC_MARKER, identity_of, read_deepfashion_index
from pgpis.data.parsing import LIP, read_parsing
from pgpis.errors import DataFormatError

SMALL = dict(identities=6, poses=3)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _load(index, name: str) -> tuple[np.ndarray, np.ndarray]:
    image = np.asarray(Image.open(index.image_path(name)).convert("RGB"))
    return image, read_parsing(index.parsing_path(name))


def _at(labels: np.ndarray, point: np.ndarray) -> int:
    x, y = (int(round(v)) for v in point)
    return int(labels[y, x])


def test_same_seed_same_bytes_whatever_workers(tmp_path):
    a = S.write_synthetic_deepfashion(tmp_path / "a", seed=3, workers=1, **SMALL)
    b = S.write_synthetic_deepfashion(tmp_path / "b", seed=3, workers=2, **SMALL)
    c = S.write_synthetic_deepfashion(tmp_path / "c", seed=4, workers=1, **SMALL)
    assert a == b
    fa, fb, fc = _files(tmp_path / "a"), _files(tmp_path / "b"), _files(tmp_path / "c")
    assert fa == fb
    assert fa != fc


def test_counts_splits_and_pairs(tmp_path):
    summary = S.write_synthetic_deepfashion(tmp_path, seed=0, test_fraction=0.34, **SMALL)
    assert (summary["train_identities"], summary["test_identities"]) == (4, 2)
    assert (summary["train_images"], summary["test_images"]) == (12, 6)
    assert (summary["train_pairs"], summary["test_pairs"]) == (4 * 3 * 2, 2 * 3 * 2)
    assert (tmp_path / SYNTHETIC_MARKER).exists()
    index = read_deepfashion_index(tmp_path, parsing=True, check_images="decode")
    ids = {s: {identity_of(n) for n in index.split_images(s)} for s in ("train", "test")}
    assert len(ids["train"]) == 4 and len(ids["test"]) == 2
    assert not ids["train"] & ids["test"]
    for split, pairs in index.pairs.items():
        assert len(set(pairs)) == len(pairs)
        assert all(s != t and identity_of(s) == identity_of(t) for s, t in pairs)
        assert all(index.image_split[n] == split for pair in pairs for n in pair)


def test_images_keypoints_and_parsing_agree(synthetic_root):
    index = read_deepfashion_index(synthetic_root, parsing=True)
    for name, kp in index.keypoints.items():
        image, labels = _load(index, name)
        assert image.shape[:2] == labels.shape == (256, 176)
        assert set(np.unique(labels)) <= set(range(LIP.num_classes))
        present = kp[:, 0] != MISSING
        assert np.array_equal(kp[present], np.rint(kp[present]))  # integer coordinates round-trip both layouts
        assert (kp[present] >= 0).all() and (kp[present, 0] <= 175).all() and (kp[present, 1] <= 255).all()
        # the shoulder joint lies in the upper garment or in that side's arm (LIP Left-* = OpenPose L-*)
        assert _at(labels, kp[2]) in (S.UPPER, S.ARM["R"])
        assert _at(labels, kp[5]) in (S.UPPER, S.ARM["L"])
        for ankle, side in ((10, "R"), (13, "L")):
            if present[ankle]:
                assert _at(labels, kp[ankle]) == S.SHOE[side]
        # the background is the one documented colour
        bg = labels == S.BG
        assert np.abs(image[bg].astype(int) - S.BACKGROUND_RGB).mean() < 3


def test_front_views_show_face_and_garment(synthetic_root):
    index = read_deepfashion_index(synthetic_root, parsing=True)
    fronts = [n for n in index.keypoints if n.endswith("front.jpg")]
    assert len(fronts) >= 24
    mids = []
    for name in fronts:
        kp = index.keypoints[name]
        _, labels = _load(index, name)
        assert (kp[[0, 14, 15]] != MISSING).all()
        assert _at(labels, kp[0]) == S.FACE
        mid = (kp[1] + (kp[8] + kp[11]) / 2) / 2  # middle of the neck - mid-hip segment
        mids.append(_at(labels, mid))
    # the chest is the upper garment, unless a forearm crosses in front of it
    assert set(mids) <= {S.UPPER, S.ARM["R"], S.ARM["L"]}
    assert mids.count(S.UPPER) >= 0.8 * len(mids)


def test_back_views_hide_the_face(synthetic_root):
    index = read_deepfashion_index(synthetic_root, parsing=True)
    backs = [n for n in index.keypoints if n.endswith("back.jpg")]
    assert backs, "the fixture data should hold back views"
    for name in backs:
        kp = index.keypoints[name]
        _, labels = _load(index, name)
        assert (kp[[0, 14, 15]] == MISSING).all()
        assert (kp[[16, 17]] != MISSING).all()  # ears are seen from behind
        head = (kp[16] + kp[17]) / 2
        assert _at(labels, head) == S.HAIR


def test_identity_is_carried_by_colours_pose_by_keypoints(synthetic_root):
    """Nearest neighbour on mean garment/trouser/hair colours finds the same identity (retrieval is possible)."""
    index = read_deepfashion_index(synthetic_root, parsing=True)
    names = sorted(index.keypoints)
    feats = []
    for name in names:
        image, labels = _load(index, name)
        parts = []
        for classes in ((S.UPPER,), (S.PANTS, S.SKIRT), (S.HAIR,)):
            m = np.isin(labels, classes)
            parts.append(image[m].mean(0) if m.any() else np.full(3, np.nan))
        feats.append(np.concatenate(parts))
    f = np.asarray(feats)
    dist = np.nanmean(np.abs(f[:, None] - f[None]), -1)
    np.fill_diagonal(dist, np.inf)
    ids = np.array([identity_of(n) for n in names])
    assert (ids[dist.argmin(1)] == ids).mean() >= 0.95
    # and within one identity the pose really changes
    by_id: dict[str, list[np.ndarray]] = {}
    for name in names:
        by_id.setdefault(identity_of(name), []).append(index.keypoints[name])
    for kps in by_id.values():
        assert all(not np.array_equal(kps[0], k) for k in kps[1:])


def test_same_identity_same_colours_different_identity_differs():
    rng = np.random.default_rng(0)
    people = [S.sample_appearance(rng) for _ in range(2)]
    colours = []
    for app in people:
        for _ in range(3):
            pose = S.sample_pose(rng, "front")
            image, labels = S.render_person(app, pose.points, "front", (256, 176), None, behind=pose.behind)
            garment = np.asarray(image)[labels == S.UPPER]
            colours.append({tuple(c) for c in np.unique(garment, axis=0)})
    assert colours[0] == colours[1] == colours[2]
    assert colours[3] == colours[4] == colours[5]
    assert colours[0] != colours[3]
    assert S.sample_appearance(np.random.default_rng(5)) == S.sample_appearance(np.random.default_rng(5))


def test_hidden_wrist_is_missing_and_not_drawn_over_the_body():
    rng = np.random.default_rng(1)
    app = S.sample_appearance(rng)
    for view in ("front", "back"):
        pose = next(p for p in (S.sample_pose(rng, view) for _ in range(500)) if p.behind)
        _, labels = S.render_person(app, pose.points, view, (256, 176), None, behind=pose.behind)
        for wrist in pose.behind:
            assert (pose.keypoints[wrist] == MISSING).all()
            side = "R" if wrist == 4 else "L"
            assert _at(labels, pose.points[wrist]) != S.ARM[side]


def test_out_of_frame_points_are_missing():
    rng = np.random.default_rng(2)
    poses = [S.sample_pose(rng, "front") for _ in range(300)]
    cropped = [p for p in poses if p.points[[10, 13], 1].max() > 255]
    assert cropped, "some poses should have the feet cropped at the bottom"
    for p in cropped:
        assert all((p.keypoints[j] == MISSING).all() for j in (10, 13) if p.points[j, 1] > 255)


def test_other_sizes_scale_the_drawing_not_the_keypoints(tmp_path):
    rng = np.random.default_rng(3)
    app, pose = S.sample_appearance(rng), S.sample_pose(rng, "front")
    image, labels = S.render_person(app, pose.points, "front", (512, 352), None, behind=pose.behind)
    assert image.size == (352, 512) and labels.shape == (512, 352)
    assert _at(labels, pose.points[0] * 2) == S.FACE
    S.write_synthetic_deepfashion(tmp_path, identities=2, poses=2, size=(128, 88), parsing=False, workers=1)
    index = read_deepfashion_index(tmp_path)
    name = next(iter(index.keypoints))
    assert Image.open(index.image_path(name)).size == (88, 128)
    assert index.keypoints[name][:, 1].max() > 128  # keypoints stay in the 256x176 frame (knees are low in it)
    assert not (tmp_path / "parsing").exists()


def test_layouts_hold_the_same_keypoints(synthetic_root, synthetic_root_pcdms):
    a, b = read_deepfashion_index(synthetic_root), read_deepfashion_index(synthetic_root_pcdms)
    assert a.keypoints.keys() == b.keypoints.keys()
    assert all(np.array_equal(a.keypoints[n], b.keypoints[n]) for n in a.keypoints)
    assert a.pairs == b.pairs


@pytest.mark.parametrize("kwargs, word", [
    (dict(identities=1), "identities"),
    (dict(poses=1), "poses"),
    (dict(test_fraction=1.0), "test_fraction"),
    (dict(size=(8, 8)), "size"),
])
def test_bad_arguments_are_named(tmp_path, kwargs, word):
    with pytest.raises(ValueError, match=word):
        S.write_synthetic_deepfashion(tmp_path, **kwargs)


def test_refuses_a_folder_with_other_data_and_replaces_its_own(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "fasion-resize-pairs-train.csv").write_text("from,to\n")
    with pytest.raises(DataFormatError, match="not empty"):
        S.write_synthetic_deepfashion(tmp_path / "real", identities=2, poses=2, workers=1)
    S.write_synthetic_deepfashion(tmp_path / "own", identities=4, poses=2, workers=1)
    S.write_synthetic_deepfashion(tmp_path / "own", identities=2, poses=2, workers=1)
    assert len(list((tmp_path / "own").rglob("*.jpg"))) == 4  # no stale images from the larger first run


def test_render_person_needs_the_full_skeleton():
    rng = np.random.default_rng(4)
    pose = S.sample_pose(rng, "back")
    with pytest.raises(ValueError, match="full 18-point skeleton"):
        S.render_person(S.sample_appearance(rng), pose.keypoints, "back")
