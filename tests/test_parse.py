"""`pgpis parse` and the human-parsing front end, offline, with tiny SCHP-like ONNX models the tests export.

The models (tests/parser_models.py) have SCHP's inputs and outputs and colour-coded logits, so the checks below
pin SCHP's preprocessing (BGR order, the aspect-preserving crop and the warp back, the fusion output) and the
written maps are the ones `pgpis data check --parsing` and TruePose read.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from parser_models import BLUE, RED, export_schp_like, two_colour_person
from pgpis.cli import main
from pgpis.data.parsing import ATR, LIP, read_parsing

pytest.importorskip("onnxruntime")
pytest.importorskip("cv2")

UPPER, PANTS = LIP.index("Upper-clothes"), LIP.index("Pants")


@pytest.fixture(scope="module")
def schp_models(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("schp_models")
    return {"lip": export_schp_like(tmp / "parsing_lip.onnx", "lip"),
            "atr": export_schp_like(tmp / "parsing_atr.onnx", "atr")}


def _expected(h: int, w: int, split: float = 0.5) -> np.ndarray:
    out = np.full((h, w), PANTS, np.uint8)
    out[: int(round(h * split))] = UPPER
    return out


@pytest.mark.parametrize("size", [(120, 80), (64, 150), (97, 97)])
@pytest.mark.parametrize("dataset", ["lip", "atr"])
def test_schp_preprocessing_and_mapping(schp_models, dataset, size):
    """A red top over a blue bottom comes back as Upper-clothes over Pants at the image's size, the border where it
    is, for portrait, landscape and square photos: BGR input, SCHP's crop and its inverse, the fusion output; ATR's
    classes arrive as their LIP namesakes."""
    from pgpis.parsing import load_parser, parse_lip

    h, w = size
    with load_parser(f"schp-{dataset}", model=str(schp_models[dataset])) as parser:
        assert parser.input_size == ((473, 473) if dataset == "lip" else (512, 512))
        labels = parse_lip(parser, two_colour_person(h, w, split=0.3))
    expected = _expected(h, w, split=0.3)
    assert labels.shape == (h, w) and labels.dtype == np.uint8
    assert (labels != expected).mean() < 2.0 / h, "the border moved: crop or warp back differs from SCHP's"


def test_atr_to_lip_table_is_documented():
    """Every ATR class maps to the LIP class of the same name, except the two docs/parsing.md names."""
    from pgpis.parsing.labels import NEAREST_LIP, to_lip_table

    table = to_lip_table(ATR)
    for i, name in enumerate(ATR.classes):
        want = name if name in LIP.classes else NEAREST_LIP["atr"][name]
        assert LIP.classes[table[i]] == want, name
    assert {ATR.classes[i] for i in range(ATR.num_classes) if ATR.classes[i] not in LIP.classes} == {"Belt", "Bag"}
    docs = (Path(__file__).parents[1] / "docs" / "parsing.md").read_text()
    assert "Belt" in docs and "Bag" in docs


def test_parse_dataset_maps_pass_data_check(schp_models, synthetic_root, tmp_path, capsys):
    """`pgpis parse --dataset deepfashion --root R` writes a map for every image where `data check --parsing` looks;
    a re-run keeps them all; another parser is refused instead of mixing the two."""
    root = tmp_path / "df"
    shutil.copytree(synthetic_root, root)
    shutil.rmtree(root / "parsing")
    assert main(["data", "check", "--dataset", "deepfashion", "--root", str(root), "--parsing"]) != 0
    option = ["--parser-option", f"model={schp_models['lip']}"]
    preview = tmp_path / "preview.png"
    assert main(["parse", "--dataset", "deepfashion", "--root", str(root), *option, "--preview", str(preview)]) == 0
    assert main(["data", "check", "--dataset", "deepfashion", "--root", str(root), "--parsing"]) == 0
    maps = sorted((root / "parsing").glob("*.png"))
    assert maps and all(Image.open(p).mode == "P" for p in maps)
    record = json.loads((root / "parsing" / "parse.json").read_text())
    assert record["parser"] == "schp-lip:parsing_lip" and record["written"] == len(maps) and record["failed"] == []
    assert record["classes"] == list(LIP.classes)
    with Image.open(preview) as grid:
        assert grid.width > 256 and grid.height >= 256
    capsys.readouterr()
    assert main(["parse", "--dataset", "deepfashion", "--root", str(root), *option]) == 0
    assert f"0 written, {len(maps)} kept" in capsys.readouterr().out
    other = ["--parser", "schp-atr", "--parser-option", f"model={schp_models['atr']}"]
    assert main(["parse", "--dataset", "deepfashion", "--root", str(root), *other]) != 0
    assert "written with parser 'schp-lip:parsing_lip'" in capsys.readouterr().err


def test_parse_files_folders_videos(schp_models, tmp_path, capsys):
    """Folders mirror their tree, videos give one map per frame, a broken file is named and the rest is written."""
    photos = tmp_path / "photos"
    (photos / "nested").mkdir(parents=True)
    Image.fromarray(two_colour_person(90, 60)).save(photos / "nested" / "a.jpg", quality=98)
    (photos / "broken.png").write_bytes(b"not a png")
    frames = [Image.fromarray(two_colour_person(64, 48, split=s)) for s in (0.3, 0.6)]
    clip = tmp_path / "clip.gif"
    frames[0].save(clip, save_all=True, append_images=frames[1:], duration=100)
    out = tmp_path / "maps"
    option = ["--parser-option", f"model={schp_models['lip']}"]
    assert main(["parse", str(photos), str(clip), "--out", str(out), *option]) == 1
    captured = capsys.readouterr()
    assert "broken.png" in captured.err and "1 written" not in captured.out
    labels = read_parsing(out / "nested" / "a.png")
    assert labels.shape == (90, 60) and (labels != _expected(90, 60)).mean() < 0.03
    for t, split in ((1, 0.3), (2, 0.6)):
        frame = read_parsing(out / "clip" / f"frame{t:04d}.png")
        assert frame.shape == (64, 48) and (frame != _expected(64, 48, split)).mean() < 0.05


class OwnParser:
    """A user's parser by class path: ATR labels, mapped to LIP by pgpis."""

    name = "own-atr"
    label_set = "atr"

    def parse(self, rgb):
        out = np.zeros(np.asarray(rgb).shape[:2], np.uint8)
        out[:, : out.shape[1] // 2] = ATR.index("Belt")
        return out


class WrongShape:
    name = "wrong-shape"

    def parse(self, rgb):
        return np.zeros((3, 3), np.uint8)


def test_class_path_parser_and_its_errors(tmp_path):
    from pgpis.parsing import InvalidParser, InvalidParsing, ParserUnavailable, load_parser, parse_lip

    labels = parse_lip(load_parser("test_parse.OwnParser"), np.zeros((10, 8, 3), np.uint8))
    assert (labels[:, :4] == PANTS).all() and (labels[:, 4:] == 0).all()  # Belt -> Pants
    with pytest.raises(InvalidParsing, match=r"shape \[3, 3\].*\[10, 8\]"):
        parse_lip(load_parser("test_parse.WrongShape"), np.zeros((10, 8, 3), np.uint8))
    with pytest.raises(InvalidParser, match="cannot import module"):
        load_parser("no_such_module.Parser")
    with pytest.raises(ParserUnavailable, match="unknown parser 'schp'"):
        load_parser("schp")
    with pytest.raises(InvalidParser, match="unknown option"):
        load_parser("schp-lip", modle="x.onnx")
    with pytest.raises(ParserUnavailable, match="does not exist"):
        load_parser("schp-lip", model=str(tmp_path / "missing.onnx"))


def test_offline_without_weights_names_the_download(monkeypatch, tmp_path, capsys):
    """No cached weights, HF_HUB_OFFLINE=1: a short named error with the `hf download` command, no traceback."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    photo = tmp_path / "p.png"
    Image.fromarray(two_colour_person(20, 10)).save(photo)
    assert main(["parse", str(photo), "--out", str(tmp_path / "out")]) != 0
    err = capsys.readouterr().err
    assert "hf download levihsu/OOTDiffusion checkpoints/humanparsing/parsing_lip.onnx" in err
    assert "Traceback" not in err and "docs/parsing.md" in err
