"""The one way an image enters pgpis (pgpis.images.load_rgb / as_rgb): orientation, colour modes, refusals."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from oriented_photos import ORIENTATIONS, asymmetric_photo, save_oriented
from pgpis.images import BACKGROUND, MIN_SIDE, as_rgb, load_rgb
from pgpis.errors import DataFormatError


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_every_exif_orientation_reads_upright(tmp_path: Path, orientation: int) -> None:
    upright = asymmetric_photo()
    path = save_oriented(upright, tmp_path / f"o{orientation}.png", orientation)
    assert np.array_equal(np.asarray(load_rgb(path)), np.asarray(upright))
    with Image.open(path) as im:  # an image already open (an upload, a caller's PIL image) the same
        assert np.array_equal(np.asarray(as_rgb(im)), np.asarray(upright))


def test_a_sideways_jpeg_reads_upright(tmp_path: Path) -> None:
    upright = asymmetric_photo((96, 64))
    path = save_oriented(upright, tmp_path / "phone.jpg", 6)
    got = np.asarray(load_rgb(path), dtype=np.int16)
    assert got.shape == (96, 64, 3)
    assert np.abs(got - np.asarray(upright, dtype=np.int16)).mean() < 6  # JPEG's loss, not a turn


def test_applying_the_orientation_twice_changes_nothing(tmp_path: Path) -> None:
    path = save_oriented(asymmetric_photo(), tmp_path / "o6.png", 6)
    once = load_rgb(path)
    assert np.array_equal(np.asarray(as_rgb(once)), np.asarray(once))


def _saved(tmp_path: Path, image: Image.Image, name: str) -> Path:
    image.save(tmp_path / name)
    return tmp_path / name


def test_transparency_is_composited_on_white(tmp_path: Path) -> None:
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:8, :, 3] = 255  # top half opaque red, bottom half transparent
    got = np.asarray(load_rgb(_saved(tmp_path, Image.fromarray(rgba, "RGBA"), "a.png")))
    assert (got[:8] == (200, 0, 0)).all() and (got[8:] == BACKGROUND).all()
    la = np.stack([np.full((16, 16), 50, np.uint8), np.where(np.arange(16)[:, None] < 8, 255, 0).repeat(16, 1).astype(np.uint8)], -1)
    got = np.asarray(load_rgb(_saved(tmp_path, Image.fromarray(la, "LA"), "la.png")))
    assert (got[:8] == 50).all() and (got[8:] == 255).all()
    pal = Image.new("P", (16, 16), 1)
    pal.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    pal.paste(0, (0, 8, 16, 16))
    pal.info["transparency"] = 0
    got = np.asarray(load_rgb(_saved(tmp_path, pal, "p.png")))
    assert (got[:8] == (10, 20, 30)).all() and (got[8:] == BACKGROUND).all()


def test_sixteen_bit_greyscale_is_scaled_not_clipped(tmp_path: Path) -> None:
    arr = np.tile(np.array([0, 257 * 100, 65535], np.uint16), (16, 6))[:, :16]
    got = np.asarray(load_rgb(_saved(tmp_path, Image.fromarray(arr, "I;16"), "deep.png")))
    assert got.dtype == np.uint8 and got.shape == (16, 16, 3)
    assert set(np.unique(got)) == {0, 100, 255}


@pytest.mark.parametrize("mode", ["L", "1", "CMYK", "P"])
def test_other_modes_become_rgb(tmp_path: Path, mode: str) -> None:
    src = asymmetric_photo((16, 16)).convert(mode)
    got = load_rgb(_saved(tmp_path, src, "x.tif" if mode == "CMYK" else "x.png"))
    assert got.mode == "RGB" and got.size == (16, 16)
    assert np.array_equal(np.asarray(got), np.asarray(src.convert("RGB")))


def test_a_one_pixel_image_is_refused_with_the_file_and_fix(tmp_path: Path) -> None:
    path = _saved(tmp_path, Image.new("RGB", (1, 1)), "dot.png")
    with pytest.raises(DataFormatError) as err:
        load_rgb(path, what="source image")
    msg = str(err.value)
    assert str(path) in msg and "source image is 1x1 px" in msg and f"at least {MIN_SIDE} px" in msg
    with pytest.raises(DataFormatError, match="the upload.*1x1 px"):
        as_rgb(Image.new("RGB", (1, 1)), "the upload")


def test_an_image_smaller_than_the_model_input_is_refused(tmp_path: Path) -> None:
    path = _saved(tmp_path, Image.new("RGB", (40, 64)), "small.png")
    assert load_rgb(path, min_size=(64, 40)).size == (40, 64)
    with pytest.raises(DataFormatError, match=r"40x64 px \(w x h\), smaller than the model's 44x64 input.*at least 44x64"):
        load_rgb(path, min_size=(64, 44))
    with pytest.raises(DataFormatError, match="smaller than the model's 40x65 input"):  # either side
        load_rgb(path, min_size=(65, 40))


def test_unreadable_files_are_refused_with_the_file_and_fix(tmp_path: Path) -> None:
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not an image at all")
    with pytest.raises(DataFormatError, match=r"junk.jpg \[x\]: image does not decode \(UnidentifiedImageError.*Fix: "):
        load_rgb(junk, "x")
    whole = _saved(tmp_path, asymmetric_photo((64, 64)), "whole.png")
    cut = tmp_path / "cut.png"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(DataFormatError, match="cut.png: source image does not decode.*Fix: give another"):
        load_rgb(cut, what="source image", fix="give another")
    with pytest.raises(DataFormatError, match="missing.png: image file does not exist. Fix: check the path"):
        load_rgb(tmp_path / "missing.png")
    with pytest.raises(DataFormatError, match="is not a file"):
        load_rgb(tmp_path)
