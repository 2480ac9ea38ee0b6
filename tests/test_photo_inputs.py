"""A phone photo (pixels stored on their side + an EXIF Orientation tag) gives what the upright photo gives at every
entry point, and a bad input to `pgpis generate` / `pgpis app` gets pgpis's short error with the fix.

The photos are :func:`oriented_photos.asymmetric_photo` stored under each of the 8 orientation values; the checks
also show that the stored pixels, read without the tag, would give something else (so the tests can fail).
"""
from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from oriented_photos import ORIENTATIONS, asymmetric_photo, save_oriented
from pgpis.cli import main as pgpis_main
from pgpis.cli_errors import MAX_LINES
from pgpis.data import keypoints as kpt
from pgpis.inference import load_pipeline
from pose_stand_ins import standing_body

STEPS = 2
SIZE = (64, 48)  # (h, w): bigger than the tiny checkpoints' 32x24 input


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> dict:
    """{orientation: file} of one picture stored under every orientation, plus "stripped": orientation 6's pixels
    with no tag (what a reader that ignores the tag sees)."""
    folder = tmp_path_factory.mktemp("oriented")
    upright = asymmetric_photo(SIZE)
    files: dict = {o: save_oriented(upright, folder / f"o{o}.png", o) for o in ORIENTATIONS}
    with Image.open(files[6]) as im:
        Image.fromarray(np.asarray(im)).save(folder.parent / "stripped6.png")
    files["stripped"] = folder.parent / "stripped6.png"
    return files


@pytest.fixture(scope="module")
def pose_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pose") / "standing.json"
    path.write_text(json.dumps(standing_body(kpt.CFLD_FRAME).tolist()))
    return path


def test_pose_extract_reads_every_orientation_upright(photos, tmp_path):
    out = tmp_path / "pose"
    assert pgpis_main(["pose", "extract", str(photos[1].parent), str(photos["stripped"]), "--out", str(out),
                       "--format", "pcdms", "--estimator", "pose_stand_ins.Spot",
                       "--preview", str(tmp_path / "preview.png")]) == 0
    upright = (out / "o1.txt").read_text()
    for o in ORIENTATIONS:
        assert (out / f"o{o}.txt").read_text() == upright, f"orientation {o}"
    assert (out / "stripped6.txt").read_text() != upright  # the sideways pixels give another pose


def _generate(ckpt: Path, source: Path, pose: Path, out: Path) -> np.ndarray:
    assert pgpis_main(["generate", "--checkpoint", str(ckpt), "--source", str(source), "--pose", str(pose),
                       "--out", str(out), "--steps", str(STEPS), "--seed", "1", "--device", "cpu"]) == 0
    return np.asarray(Image.open(out))


@pytest.fixture(scope="module")
def upright_output(tiny_ldm_checkpoints, photos, pose_file, tmp_path_factory) -> np.ndarray:
    return _generate(tiny_ldm_checkpoints["fpdm"], photos[1], pose_file, tmp_path_factory.mktemp("gen") / "o1.png")


@pytest.mark.parametrize("orientation", [3, 6, 7])  # a half turn, a quarter turn, a turn + mirror; the API: all 8
def test_generate_source_gives_the_upright_output(tiny_ldm_checkpoints, photos, pose_file, tmp_path, orientation,
                                                  upright_output):
    out = _generate(tiny_ldm_checkpoints["fpdm"], photos[orientation], pose_file, tmp_path / "o.png")
    assert np.array_equal(out, upright_output)


@pytest.fixture(scope="module")
def fpdm(tiny_ldm_checkpoints):
    return load_pipeline(tiny_ldm_checkpoints["fpdm"], device="cpu")


def test_python_api_reads_a_phone_photo_upright(fpdm, photos, pose_file):
    pipe = fpdm

    def generate(source) -> np.ndarray:
        return np.asarray(pipe.generate(source, pose_file, steps=STEPS, seed=1))

    upright = generate(photos[1])
    for o in ORIENTATIONS[1:]:
        assert np.array_equal(generate(photos[o]), upright), f"orientation {o}"
    with Image.open(photos[6]) as im:  # a PIL image the caller opened, tag and all
        assert np.array_equal(generate(im), upright)
    assert not np.array_equal(generate(photos["stripped"]), upright)  # the sideways pixels give another image


def test_app_upload_is_read_upright_and_a_tiny_one_refused(fpdm, photos):
    from pgpis.app import generate as gen
    from pgpis.errors import DataFormatError

    def upload(image: Image.Image) -> Image.Image:
        return gen.resolve_source(fpdm, None, gen.Request(source_mode=gen.SOURCE_UPLOAD, source_image=image))[0]

    with Image.open(photos[1]) as upright, Image.open(photos[6]) as sideways:
        assert np.array_equal(np.asarray(upload(sideways)), np.asarray(upload(upright)))
    with pytest.raises(DataFormatError, match="the uploaded source photo: source photo is 1x1 px"):
        upload(Image.new("RGB", (1, 1)))


def _short_error(capsys, *needles: str) -> str:
    """stderr, checked to be pgpis's short form (no trace, at most MAX_LINES lines) holding every needle."""
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= MAX_LINES, err
    flat = " ".join(err.split())  # long temporary paths wrap the message
    for needle in needles:
        assert needle in flat, err
    return err


def test_generate_input_errors_are_short_and_say_the_fix(tiny_ldm_checkpoints, photos, pose_file, tmp_path, capsys):
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"\xff\xd8 not really a JPEG")
    dot, small = tmp_path / "dot.png", tmp_path / "small.png"
    Image.new("RGB", (1, 1)).save(dot)
    Image.new("RGB", (20, 40)).save(small)
    (tmp_path / "bad.csv").write_bytes(b"\xff\xfe binary")
    common = ["generate", "--checkpoint", str(tiny_ldm_checkpoints["fpdm"]), "--out", str(tmp_path / "x.png"),
              "--steps", "1", "--device", "cpu"]
    cases = [
        (["--source", str(tmp_path / "nowhere.jpg"), "--pose", str(pose_file)],
         ["nowhere.jpg: source image file does not exist", "fix: check the path"]),
        (["--source", str(junk), "--pose", str(pose_file)], ["junk.jpg: source image does not decode", "fix: "]),
        (["--source", str(dot), "--pose", str(pose_file)], ["dot.png: source image is 1x1 px", "fix: give a photo"]),
        (["--source", str(small), "--pose", str(pose_file)],
         ["small.png: source image is 20x40 px (w x h), smaller than the model's 24x32 input", "at least 24x32"]),
        (["--source", str(photos[1]), "--pose", str(tmp_path / "nowhere.txt")],
         ["nowhere.txt: target pose file does not exist", "fix: check the path"]),
        (["--source", str(photos[1]), "--pose", str(junk)], ["junk.jpg: target pose image does not decode", "fix: "]),
        (["--source", str(photos[1]), "--pose", str(tmp_path / "bad.csv")], ["bad.csv:1: not UTF-8 text", "fix: "]),
    ]
    for args, needles in cases:
        assert pgpis_main([*common, *args]) == 1, args
        _short_error(capsys, *needles)


def test_app_on_a_taken_port_says_so_and_which_port_to_pass(tiny_ldm_checkpoints, capsys):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert pgpis_main(["app", "--checkpoint", str(tiny_ldm_checkpoints["fpdm"]), "--port", str(port)]) == 1
    err = _short_error(capsys, f"port {port} on 127.0.0.1 is taken", "Fix: pass `--port ")
    assert "GRADIO_SERVER_PORT" not in err
