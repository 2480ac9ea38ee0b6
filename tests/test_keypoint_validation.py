"""Hostile keypoints: NaN, inf, out-of-frame and stray negative values are named errors, parsers survive fuzzing.

Through the public entry points (`pgpis data check`, DataModule set-up) for both DeepFashion layouts and
Phoenix, on small synthetic copies written by `pgpis data synth` with one row corrupted; then hypothesis
fuzzes the CFLD annotation CSV, the PCDMs pose txt, Phoenix's containers and corpus CSV: every failure
must be a DataFormatError naming the file (and the line, or the video key for binary containers),
and nothing invalid may come back as data.
"""
from __future__ import annotations

import gzip
import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from pgpis.cli import main
from pgpis.data import keypoints as kpt
from pgpis.data.deepfashion.layout import CFLD_ANNOTATION, read_deepfashion_index
from pgpis.data.phoenix.keypoints import FRAME_SIZE as PHOENIX_FRAME
from pgpis.data.phoenix.keypoints import check_keypoint_array, read_keypoint_file
from pgpis.data.phoenix.layout import CORPUS, read_phoenix_index
from pgpis.errors import DataFormatError

# Deterministic in CI (same examples every run, nothing written to a .hypothesis database) and lean.
FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None, print_blob=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])

BAD = {"937": "y = 937", "NaN": "y is NaN"}


# ------------------------------------------------------------------ synthetic copies (via the CLI)
@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("kpv")
    common = ["--identities", "4", "--poses", "2"]
    assert main(["data", "synth", "--dataset", "deepfashion", "--out", str(out / "cfld"), *common]) == 0
    assert main(["data", "synth", "--dataset", "deepfashion", "--layout", "pcdms", "--out", str(out / "pcdms"), *common]) == 0
    assert main(["data", "synth", "--dataset", "phoenix", "--out", str(out / "phoenix"), "--signers", "2",
                 "--videos", "train=2,dev=1,test=1", "--frames", "4-5", "--keypoint-format", "npz"]) == 0
    return {"cfld": out / "cfld", "pcdms": out / "pcdms", "phoenix": out / "phoenix"}


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _corrupt_deepfashion(root: Path, layout: str, value: str) -> tuple[Path, int]:
    """Set the neck's y (point 1) of one training image to `value`; return (file, line) of the corrupted row."""
    if layout == "cfld":
        path = root / CFLD_ANNOTATION.format(split="train")
        lines = path.read_text().split("\n")
        name, ys, xs = lines[1].split(":")
        y = json.loads(ys)
        y[1] = "@"
        lines[1] = ":".join([name, json.dumps(y).replace('"@"', value), xs])
        path.write_text("\n".join(lines))
        return path, 2
    entry = json.loads((root / "train_pairs_data.json").read_text())[0]
    path = root / "pose" / Path(entry["source_image"][2:]).relative_to("img").with_suffix(".txt")
    lines = path.read_text().split("\n")
    lines[1] = f"{lines[1].split()[0]} {value}"
    path.write_text("\n".join(lines))
    return path, 2


@pytest.mark.parametrize("value", list(BAD))
@pytest.mark.parametrize("layout", ["cfld", "pcdms"])
def test_data_check_names_file_line_and_fix(synth, tmp_path, capsys, layout, value):
    root = _copy(synth[layout], tmp_path / layout)
    assert main(["data", "check", "--root", str(root), "--quick"]) == 0
    capsys.readouterr()
    path, line = _corrupt_deepfashion(root, layout, value)
    assert main(["data", "check", "--root", str(root), "--quick"]) == 1
    out = capsys.readouterr()
    assert "OK" not in out.out
    assert f"{path}:{line}" in out.err and BAD[value] in out.err and "point 1 (neck)" in out.err
    assert "Fix:" in out.err and "for a missing point" in out.err
    assert "1 problem(s)" in out.err  # the pairs using the image are not reported a second time


@pytest.mark.parametrize("value", list(BAD))
@pytest.mark.parametrize("layout", ["cfld", "pcdms"])
def test_deepfashion_datamodule_setup_refuses(synth, tmp_path, layout, value):
    from pgpis.data.deepfashion import DeepFashionDataModule

    root = _copy(synth[layout], tmp_path / layout)
    path, line = _corrupt_deepfashion(root, layout, value)
    dm = DeepFashionDataModule(root=str(root), num_workers=0, val_identities=1, check_images="none")
    with pytest.raises(DataFormatError) as e:
        dm.setup("fit")
    (problem,) = e.value.problems
    assert (problem.file, problem.line) == (str(path), line) and BAD[value] in problem.what and problem.fix


def _corrupt_phoenix(root: Path, value: float, container: str) -> tuple[Path, str]:
    """Put `value` into the y of a detected left wrist (frame 3) of one video; rewrite as `container`."""
    npz = root / "keypoints" / "phoenix-2014t.keypoints.npz"
    with np.load(npz) as z:
        arrays = {k: z[k] for k in z.files}
    name = sorted(arrays)[0]
    arrays[name][2, 9, 1:] = (value, 0.9)
    npz.unlink()
    if container == "npz":
        np.savez(npz, **arrays)
        return npz, name
    path = root / "keypoints" / "phoenix-2014t.keypoints.pkl"
    path.write_bytes(pickle.dumps({k: {"keypoints": v} for k, v in arrays.items()}))
    return path, name


@pytest.mark.parametrize("container", ["npz", "pickle"])
@pytest.mark.parametrize("value", list(BAD))
def test_phoenix_check_and_setup_refuse(synth, tmp_path, capsys, value, container):
    from pgpis.data.phoenix import PhoenixDataModule

    root = _copy(synth["phoenix"], tmp_path / "phoenix")
    path, name = _corrupt_phoenix(root, float(value), container)
    assert main(["data", "check", "--dataset", "phoenix", "--root", str(root), "--quick"]) == 1
    err = capsys.readouterr().err
    assert f"{path} [{name}]: frame 3, point 9 (left_wrist): {BAD[value]}" in err and "Fix:" in err
    with pytest.raises(DataFormatError) as e:
        PhoenixDataModule(root=str(root), num_workers=0, train_pairs=4).setup("fit")
    (problem,) = e.value.problems
    assert (problem.file, problem.item) == (str(path), name) and BAD[value] in problem.what


def test_phoenix_frame_is_the_keypoint_frame():
    from pgpis.data.phoenix.layout import FRAME_SIZE

    assert FRAME_SIZE == PHOENIX_FRAME == (260, 210)  # 210 wide x 260 high (docs/data-formats.md)


# ------------------------------------------------------------------ the shared check, at its edges
def _problems(x: float, y: float, frame=kpt.CFLD_FRAME, **kw) -> list:
    kp = np.full((18, 2), 50.0)
    kp[3] = (x, y)
    return kpt.validate_keypoints(kp, frame, file="f.csv", line=4, spec=kpt.OPENPOSE_18, **kw)


@pytest.mark.parametrize("x, y, ok", [
    (0, 0, True), (175, 255, True), (-1, -1, True), (-1, 40, True),  # -1 in either coordinate = missing
    (175 + kpt.KEYPOINT_TOLERANCE_PX, 255 + kpt.KEYPOINT_TOLERANCE_PX, True),  # the documented tolerance
    (178.01, 50, False), (50, 258.5, False), (50, 937, False), (-1, 937, False),
    (-2, 50, False), (-0.5, 50, False), (50, -1.0001, False),  # negatives other than the marker
    (np.nan, 50, False), (np.inf, 50, False), (50, -np.inf, False), (1e39, 50, False),
])
def test_validate_keypoints_edges(x, y, ok):
    found = _problems(x, y)
    assert (not found) == ok
    if not ok:
        assert found[0].line == 4 and "point 3 (right_elbow)" in found[0].what and found[0].fix


def test_validate_keypoints_without_marker_uses_scores():
    """Phoenix: low-score points may sit outside the frame (HRNet still outputs them); detected ones may not."""
    kp = np.zeros((2, 133, 2))
    scores = np.zeros((2, 133))
    kp[1, 15] = (100, 420)  # an ankle below the frame, score 0.05
    scores[1, 15] = 0.05
    assert kpt.validate_keypoints(kp, PHOENIX_FRAME, file="k.npz", scores=scores, missing=None) == []
    scores[1, 15] = 0.9
    (p,) = kpt.validate_keypoints(kp, PHOENIX_FRAME, file="k.npz", scores=scores, missing=None, spec=kpt.COCO_WHOLEBODY_133)
    assert "frame 2, point 15 (left_ankle): y = 420" in p.what
    kp[1, 15] = (-2, 10)  # within the tolerance on both sides when there is no marker
    assert kpt.validate_keypoints(kp, PHOENIX_FRAME, file="k.npz", scores=scores, missing=None) == []
    scores[0, 0] = np.nan
    assert "score = nan is not a finite" in kpt.validate_keypoints(kp, PHOENIX_FRAME, file="k.npz", scores=scores, missing=None)[0].what


def test_pcdms_point_in_the_padding_is_refused(tmp_path):
    """x = 39 in the 256x256 frame would become x = -1 (the missing marker) in the 176-wide image."""
    rows = ["100 60"] * 18
    rows[6] = "39 60"
    path = tmp_path / "pose.txt"
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(DataFormatError) as e:
        kpt.read_pcdms_keypoints(path)
    assert e.value.problems[0].line == 7 and "x = 39" in e.value.problems[0].what


# ------------------------------------------------------------------ fuzzing: CFLD annotation CSV
X_MAX, Y_MAX = 175 + kpt.KEYPOINT_TOLERANCE_PX, 255 + kpt.KEYPOINT_TOLERANCE_PX


def _coord(limit: float) -> st.SearchStrategy:
    good = st.one_of(st.integers(0, int(limit)), st.floats(0, limit), st.just(-1))
    bad = st.one_of(st.floats(limit, 1e300, exclude_min=True), st.floats(-1e300, -1e-6).filter(lambda v: v != -1),
                    st.integers(int(limit) + 1, 10**30), st.integers(-(10**30), -2),
                    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "9" * 400, "9" * 5000, '"3"', "true",
                                     "null", "[1]", "{}"]))
    return st.one_of(good.map(lambda v: (json.dumps(v), True)), bad.map(lambda v: (v if isinstance(v, str) else json.dumps(v), False)))


def _coord_list(limit: float) -> st.SearchStrategy:
    """(JSON text, valid?) of a keypoint column: 18 values mostly, sometimes another count or broken syntax."""
    def join(items):
        return "[" + ", ".join(t for t, _ in items) + "]", len(items) == 18 and all(ok for _, ok in items)
    lists = st.lists(_coord(limit), min_size=18, max_size=18) | st.lists(_coord(limit), min_size=0, max_size=20)
    broken = st.sampled_from(["[1, 2", "1, 2]", "[[[", "]", "", "[" * 5000 + "]" * 5000, "[1 2 3]", "nan", "{\"a\": 1}"])
    return lists.map(join) | broken.map(lambda t: (t, False))


_NO_NEWLINE = st.characters(blacklist_characters="\n\r", blacklist_categories=("Cs",))


@st.composite
def _cfld_file(draw) -> tuple[str, dict[int, bool]]:
    """An annotation CSV and, per line, whether it is valid (None: unknown garbage, must only not crash)."""
    header = draw(st.sampled_from(["name:keypoints_y:keypoints_x"] * 6 + ["name,keypoints_y,keypoints_x", "", "\ufeffname:keypoints_y:keypoints_x"]))
    lines, valid = [header], {}
    for i in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["row", "row", "row", "garbage", "columns", "blank"]))
        if kind == "row":
            (ys, y_ok), (xs, x_ok) = draw(_coord_list(Y_MAX)), draw(_coord_list(X_MAX))
            lines.append(f"img{i}.jpg:{ys}:{xs}")
            valid[len(lines)] = y_ok and x_ok
        elif kind == "columns":
            n = draw(st.sampled_from([1, 2, 4, 5]))
            lines.append(":".join([f"img{i}.jpg"] + ["[1]"] * (n - 1)))
            valid[len(lines)] = False
        elif kind == "garbage":
            lines.append(draw(st.text(_NO_NEWLINE, max_size=60)))
            valid[len(lines)] = None
        else:
            lines.append(" " * draw(st.integers(0, 3)))
    return "\n".join(lines) + draw(st.sampled_from(["", "\n", "\r\n"])), valid


@pytest.fixture(scope="module")
def bare_cfld_root(tmp_path_factory) -> Path:
    """A CFLD root with no pairs, so the only problems are the annotation's."""
    root = tmp_path_factory.mktemp("fuzz_cfld")
    (root / "train_highres").mkdir()
    (root / "fasion-resize-pairs-train.csv").write_text("from,to\n")
    return root


@FUZZ
@given(case=_cfld_file())
def test_fuzz_cfld_annotation(bare_cfld_root, case):
    text, valid = case
    path = bare_cfld_root / CFLD_ANNOTATION.format(split="train")
    path.write_text(text, encoding="utf-8")
    header_ok = text.split("\n")[0].rstrip("\r") == "name:keypoints_y:keypoints_x"
    try:
        index = read_deepfashion_index(bare_cfld_root, splits=("train",), check_images="none")
    except DataFormatError as e:
        assert all(p.file == str(path) and p.line is not None and p.fix for p in e.problems), e
        reported = {p.line for p in e.problems}
        assert {n for n, ok in valid.items() if ok is False} <= reported
        assert not {n for n, ok in valid.items() if ok} & reported
        assert header_ok or 1 in reported
        return
    assert header_ok and not any(ok is False for ok in valid.values())
    for kp in index.keypoints.values():  # nothing invalid comes back as data
        assert kp.dtype == np.float32 and kp.shape == (18, 2) and np.isfinite(kp).all()
        assert kpt.validate_keypoints(kp, kpt.CFLD_FRAME, file="-") == []


# ------------------------------------------------------------------ fuzzing: PCDMs pose txt
def _pcdms_value(lo: float, hi: float) -> st.SearchStrategy:
    good = st.one_of(st.integers(int(np.ceil(lo)), int(hi)).map(str), st.floats(lo, hi).map(repr), st.just("-1"))
    bad = st.one_of(st.floats(hi, 1e300, exclude_min=True).map(repr), st.floats(-1e300, lo, exclude_max=True).filter(lambda v: v != -1).map(repr),
                    st.sampled_from(["nan", "NaN", "inf", "-inf", "Infinity", "1e400", "9" * 400, "1_0", "\u0663", "0x10", "1e", "--1", "x"]))
    return st.one_of(good.map(lambda t: (t, True)), bad.map(lambda t: (t, False)))


@st.composite
def _pcdms_file(draw) -> tuple[bytes, bool | None]:
    """File bytes and whether they are a valid pose (None: unknown, must only not crash)."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=200)), None
    n = draw(st.sampled_from([18] * 8 + [0, 1, 17, 19]))
    lines, ok = [], n == 18
    for _ in range(n):
        kind = draw(st.sampled_from(["xy"] * 6 + ["garbage", "one", "three"]))
        if kind == "xy":
            (x, x_ok), (y, y_ok) = draw(_pcdms_value(40, 215 + kpt.KEYPOINT_TOLERANCE_PX)), draw(_pcdms_value(0, Y_MAX))
            lines.append(f"{x}{draw(st.sampled_from([' ', '  ', chr(9), ', ']))}{y}")
            ok = ok and x_ok and y_ok
        elif kind == "garbage":
            lines.append(draw(st.text(_NO_NEWLINE, max_size=30)))
            ok = None if ok is not False else False
        else:
            lines.append("100" if kind == "one" else "100 60 1")
            ok = False
    return ("\n".join(lines) + draw(st.sampled_from(["", "\n", "\n\n"]))).encode() + draw(st.sampled_from([b"", b"\xff\xfe"])), ok


@FUZZ
@given(case=_pcdms_file())
def test_fuzz_pcdms_pose_txt(tmp_path_factory, case):
    data, ok = case
    path = tmp_path_factory.getbasetemp() / "fuzz_pose.txt"
    path.write_bytes(data)
    if data.endswith(b"\xff\xfe"):
        ok = False
    try:
        kp = kpt.read_pcdms_keypoints(path)
    except DataFormatError as e:
        assert ok is not True, e
        assert all(p.file == str(path) and p.line is not None and p.fix for p in e.problems), e
        return
    assert ok is not False
    assert kp.dtype == np.float32 and kp.shape == (18, 2) and np.isfinite(kp).all()
    assert kpt.validate_keypoints(kpt.pcdms_to_cfld_frame(kp), kpt.CFLD_FRAME, file="-") == []


# ------------------------------------------------------------------ fuzzing: Phoenix containers
FAULTS = ["none", "none", "none", "nan", "inf", "y937", "score_nan", "huge_low_score", "shape", "dtype", "empty"]


@st.composite
def _video(draw) -> tuple[np.ndarray, bool]:
    """One video's array and whether it is valid."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    t = draw(st.integers(1, 4))
    h, w = PHOENIX_FRAME
    scores = np.where(rng.random((t, 133)) < 0.5, rng.uniform(0, 0.2, (t, 133)), rng.uniform(0.5, 1, (t, 133)))
    arr = np.stack([rng.uniform(-3, w + 2, (t, 133)), rng.uniform(-3, h + 2, (t, 133)), scores], -1)
    low = arr[..., 2] < kpt.CONFIDENT_SCORE
    arr[..., 1][low] = rng.uniform(-500, 800, int(low.sum()))  # undetected points may lie anywhere
    arr = arr.astype(draw(st.sampled_from([np.float32, np.float64, np.float16]))) if draw(st.booleans()) else arr.astype(np.float32)
    fault = draw(st.sampled_from(FAULTS))
    f, j = draw(st.integers(0, t - 1)), draw(st.integers(0, 132))
    if fault in ("nan", "inf"):
        arr[f, j, draw(st.integers(0, 2))] = np.nan if fault == "nan" else -np.inf
    elif fault == "y937":
        arr[f, j, 1:] = (937, 0.9)
    elif fault == "score_nan":
        arr[f, j, 2] = np.nan
    elif fault == "huge_low_score":
        arr = arr.astype(np.float64)
        arr[f, j] = (1e300, 1.0, 0.0)  # not representable in float32
    elif fault == "shape":
        arr = draw(st.sampled_from([arr[..., :2], arr[:, :17], arr[0], arr[None], np.zeros(())]))
    elif fault == "dtype":
        arr = draw(st.sampled_from([arr.astype(bool), arr.astype(np.complex64), arr.astype(str), arr.astype(object)]))
    elif fault == "empty":
        arr = arr[:0]
    if draw(st.booleans()) and arr.dtype.kind in "f":
        arr = arr.astype(np.float64)
    return arr, fault == "none"


def _container(videos: dict[str, np.ndarray], form: str):
    if form == "dict":
        return {k: {"keypoints": v} for k, v in videos.items()}
    if form == "plain":
        return dict(videos)
    if form == "tensor":
        return [{"name": k, "keypoint": torch.from_numpy(v) if v.dtype.kind in "fiub" else v} for k, v in videos.items()]
    return {k: {"other": 1} for k in videos}  # entries without arrays


@st.composite
def _phoenix_file(draw) -> tuple[str, bytes, dict[str, bool] | None]:
    suffix = draw(st.sampled_from([".npz", ".pkl", ".pkl.gz"]))
    kind = draw(st.sampled_from(["container"] * 7 + ["bytes", "truncated", "garbage_object", "random_array"]))
    if kind == "random_array":  # any dtype (bool, complex, datetime, bytes, ...) and small shape: never [T, 133, 3]
        arr = draw(hnp.arrays(hnp.scalar_dtypes(), hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5)))
        return ".pkl", pickle.dumps({"train/r": {"keypoints": arr}}), {"train/r": False}
    if kind == "bytes":
        return suffix, draw(st.binary(max_size=300)), None
    if kind == "garbage_object":
        obj = draw(st.sampled_from([1, "x", None, [1, 2], [{"no": "name"}], {}, [], {"a": [1, 2]}, {"a": {"keypoints": [[1.0]]}}]))
        return ".pkl", pickle.dumps(obj), None
    names = draw(st.lists(st.sampled_from(["train/a", "dev/b", "./test/c/", "test/c", "x"]), min_size=1, max_size=3, unique=True))
    drawn = {n: draw(_video()) for n in names}
    videos = {n: a for n, (a, _) in drawn.items()}
    valid = {n: ok for n, (_, ok) in drawn.items()}
    if suffix == ".npz":
        import io

        buf = io.BytesIO()
        np.savez(buf, **{n.replace("/", "_"): a for n, a in videos.items()})
        data = buf.getvalue()
        valid = {n.replace("/", "_"): ok for n, ok in valid.items()}
        if any(a.dtype.kind == "O" for a in videos.values()):
            valid = None  # an object array needs a pickle inside the .npz: refused for the whole file
    else:
        form = draw(st.sampled_from(["dict", "plain", "tensor", "noarray"]))
        try:
            data = pickle.dumps(_container(videos, form))
        except Exception:
            data = pickle.dumps(_container(videos, "dict"))
            form = "dict"
        if form == "noarray":
            valid = {n: False for n in valid}
        if suffix == ".pkl.gz":
            data = gzip.compress(data)
    if kind == "truncated":
        data, valid = data[: draw(st.integers(0, max(len(data) - 1, 0)))], None
    return suffix, data, valid


@FUZZ
@given(case=_phoenix_file())
def test_fuzz_phoenix_keypoint_containers(tmp_path_factory, case):
    suffix, data, valid = case
    path = tmp_path_factory.getbasetemp() / f"fuzz_keypoints{suffix}"
    path.write_bytes(data)
    try:
        found = read_keypoint_file(path)
    except DataFormatError as e:
        assert all(p.file == str(path) and p.fix for p in e.problems), e
        if valid is not None:
            # the two names "./test/c/" and "test/c" collide after normalising: one of them is reported
            collide = {"./test/c/", "test/c"} <= set(valid)
            assert not all(valid.values()) or collide, e
            bad = {n for n, ok in valid.items() if not ok}
            assert bad <= {p.item for p in e.problems}, e
        return
    assert valid is None or all(valid.values())
    for name, arr in found.items():  # nothing invalid comes back as data
        assert arr.dtype == np.float32 and arr.ndim == 3 and arr.shape[1:] == (133, 3)
        assert check_keypoint_array(arr, "-", name) == [] and np.isfinite(arr).all()


@st.composite
def _corpus(draw) -> bytes:
    header = "name|video|start|end|speaker|orth|translation"
    if draw(st.integers(0, 4)) == 0:
        return draw(st.binary(max_size=200))
    lines = [draw(st.sampled_from([header, header, header, "name,video", ""]))]
    for _ in range(draw(st.integers(0, 4))):
        lines.append(draw(st.one_of(st.text(_NO_NEWLINE, max_size=50),
                                    st.lists(st.text(st.characters(blacklist_characters="|\n\r", blacklist_categories=("Cs",)), max_size=8),
                                             min_size=1, max_size=9).map("|".join))))
    return "\n".join(lines).encode() + draw(st.sampled_from([b"", b"\n", b"\x80"]))


@pytest.fixture(scope="module")
def fuzz_phoenix_root(synth, tmp_path_factory) -> Path:
    return _copy(synth["phoenix"], tmp_path_factory.mktemp("fuzz_phoenix") / "phoenix")


@settings(FUZZ, max_examples=100)
@given(data=_corpus())
def test_fuzz_phoenix_corpus_csv(fuzz_phoenix_root, data):
    corpus = fuzz_phoenix_root / CORPUS.format(split="train")
    corpus.write_bytes(data)
    try:
        read_phoenix_index(fuzz_phoenix_root, splits=("train",))
    except DataFormatError as e:
        assert all(p.fix for p in e.problems)
        assert all(p.line is not None for p in e.problems if p.file == str(corpus)), e
