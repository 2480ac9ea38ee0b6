"""TruePose from a source photo alone: the parsing map and the source keypoints are made by a parser and a pose
estimator (a tiny SCHP-like ONNX model and the stand-in estimator, both named on the command line as a user names
theirs), only for what the model reads, and the tools say which made them. What the user gives wins."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from parser_models import export_schp_like
from pgpis.cli import main
from pgpis.data.deepfashion.layout import read_deepfashion_index
from pgpis.inference import load_pipeline

pytest.importorskip("onnxruntime")
STEPS = 2
ESTIMATOR = "pose_stand_ins.Standing"


@pytest.fixture(scope="module")
def schp_onnx(tmp_path_factory):
    return export_schp_like(tmp_path_factory.mktemp("schp") / "parsing_lip.onnx")


@pytest.fixture(scope="module")
def sample(synthetic_root):
    index = read_deepfashion_index(synthetic_root, splits=("test",), check_images="none")
    src, tgt = index.pairs["test"][0]
    return index, src, tgt


def test_api_makes_what_the_model_reads_and_names_it(tiny_ldm_checkpoints, schp_onnx, sample):
    """Pipeline.generate with a photo and a target pose only equals the call given the same map and keypoints."""
    from pgpis.parsing import load_parser

    index, src, tgt = sample
    pipe = load_pipeline(tiny_ldm_checkpoints["truepose"], device="cpu")
    assert pipe.needs_parsing  # asked of the model, not of its class name
    parser = load_parser("schp-lip", model=str(schp_onnx))
    photo = index.image_path(src)
    alone = pipe.generate(photo, index.keypoints[tgt], steps=STEPS, parser=parser, source_estimator=ESTIMATOR)
    assert pipe.estimated["source_parsing"] == "schp-lip:parsing_lip"
    assert ("source_pose" in pipe.estimated) == pipe.needs_source_pose
    parsing = pipe.parse_source(photo, parser=parser)
    with Image.open(photo) as im:
        assert parsing.shape == (im.height, im.width) and parsing.max() < 20
    given = {"source_pose": pipe.source_keypoints(photo, estimator=ESTIMATOR)} if pipe.needs_source_pose else {}
    explicit = pipe.generate(photo, index.keypoints[tgt], steps=STEPS, source_parsing=parsing, **given)
    assert pipe.estimated == {}
    np.testing.assert_array_equal(np.asarray(alone), np.asarray(explicit))
    fpdm = load_pipeline(tiny_ldm_checkpoints["fpdm"], device="cpu")
    fpdm.generate(photo, index.keypoints[tgt], steps=STEPS, parser="no_such_module.Parser")  # FPDM loads no parser
    assert fpdm.estimated == {}


def test_generate_and_animate_from_a_photo_alone(tiny_ldm_checkpoints, schp_onnx, sample, tmp_path, capsys):
    index, src, tgt = sample
    ckpt = str(tiny_ldm_checkpoints["truepose"])
    (tmp_path / "target.json").write_text(json.dumps(index.keypoints[tgt].tolist()))
    makers = ["--parser-option", f"model={schp_onnx}", "--estimator", ESTIMATOR]
    assert main(["generate", "--checkpoint", ckpt, "--source", str(index.image_path(src)), "--pose",
                 str(tmp_path / "target.json"), *makers, "--steps", str(STEPS), "--out", str(tmp_path / "a.png")]) == 0
    err = capsys.readouterr().err
    assert "parsing map by schp-lip:parsing_lip" in err, err
    pipe = load_pipeline(ckpt, device="cpu")
    if pipe.needs_source_pose:
        assert "keypoints by standing-stand-in" in err
    with Image.open(tmp_path / "a.png") as out:
        assert out.size == (pipe.image_size[1], pipe.image_size[0])
    # a map the user gives is used as given: the parser is never built (this class path would fail)
    assert main(["generate", "--checkpoint", ckpt, "--source", str(index.image_path(src)), "--pose",
                 str(tmp_path / "target.json"), "--parsing", str(index.parsing_path(src)), "--parser",
                 "no_such_module.Parser", "--estimator", ESTIMATOR, "--steps", str(STEPS),
                 "--out", str(tmp_path / "b.png")]) == 0
    assert "parsing map by" not in capsys.readouterr().err
    poses = np.stack([index.keypoints[tgt], index.keypoints[src]]).astype(np.float32)
    np.save(tmp_path / "poses.npy", poses)
    assert main(["animate", "--checkpoint", ckpt, "--source", str(index.image_path(src)), "--poses",
                 str(tmp_path / "poses.npy"), "--pose-frame", "256", "176", *makers, "--steps", str(STEPS),
                 "--out", str(tmp_path / "clip.gif")]) == 0
    assert "parsing map by schp-lip:parsing_lip" in capsys.readouterr().err
    with Image.open(tmp_path / "clip.gif") as clip:
        assert clip.n_frames == 2


def test_without_weights_offline_says_how_to_get_them_or_give_the_map(tiny_ldm_checkpoints, sample, tmp_path,
                                                                      monkeypatch, capsys):
    index, src, tgt = sample
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    (tmp_path / "target.json").write_text(json.dumps(index.keypoints[tgt].tolist()))
    assert main(["generate", "--checkpoint", str(tiny_ldm_checkpoints["truepose"]), "--source",
                 str(index.image_path(src)), "--pose", str(tmp_path / "target.json"), "--estimator", ESTIMATOR,
                 "--steps", str(STEPS), "--out", str(tmp_path / "a.png")]) != 0
    err = capsys.readouterr().err
    assert "hf download levihsu/OOTDiffusion checkpoints/humanparsing/parsing_lip.onnx" in err and "Traceback" not in err
    assert not (tmp_path / "a.png").exists()
