"""`pgpis app` end to end in a real browser: Debian's headless Chromium driven by Playwright.

The app is set up as `pgpis app` sets it up (its parser and `build`) on the tiny checkpoints of the
session fixtures and served in the background on a free loopback port; the browser uploads a file,
picks a pose, clicks Generate and downloads the sample the page shows. A missing browser fails the
test with the install command (CI installs it in .ci/run). Screenshots go to the test's tmp dir,
and also to $PGPIS_SCREENSHOT_DIR when that is set.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from PIL import Image

from pgpis.app.screenshot import CHROMIUM, INSTALL_HINT  # no gradio or playwright import: the checks below say

GENERATE_MS = 180_000


def _require_browser_stack() -> None:
    """Fail (never skip) with the fix when the browser or a package is missing."""
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"the browser test needs Debian's Chromium at {CHROMIUM}: {INSTALL_HINT} (CI installs it in "
                    ".ci/run)")
    for module in ("gradio", "playwright"):
        try:
            __import__(module)
        except ImportError:
            pytest.fail(f"the browser test needs the Python package {module}: pip install -e '.[dev,app]' "
                        "(make install does)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve_app(checkpoint: Path, *extra: str) -> Iterator[str]:
    """`pgpis app --checkpoint CKPT ...` in this process, served in the background on a free port; yields its URL.

    The command's own parser and set-up (`pgpis.app.cli.build`), minus the blocking wait: no second
    interpreter importing torch and Gradio again.
    """
    from pgpis.app.cli import build, parser
    from pgpis.app.ui import launch

    port = _free_port()
    args = parser().parse_args(["--checkpoint", str(checkpoint), "--port", str(port), "--device", "cpu", *extra])
    demo = build(args)
    launch(demo, host=args.host, port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


@pytest.fixture
def browser_page(tmp_path: Path):
    """A fresh headless Chromium page (own empty profile), closed after the test."""
    _require_browser_stack()
    from playwright.sync_api import sync_playwright

    from pgpis.app.screenshot import open_browser

    with sync_playwright() as p:
        context = open_browser(p, tmp_path / "chromium-profile")
        try:
            yield context.new_page()
        finally:
            context.close()


def _shown_image(page, elem_id: str) -> Image.Image:
    """Download the image a Gradio Image component shows (the PNG the server sent)."""
    img = page.locator(f"#{elem_id} img").first
    src = img.get_attribute("src")
    assert src, f"#{elem_id} shows no image"
    response = page.request.get(src if src.startswith("http") else page.url.rstrip("/") + "/" + src.lstrip("/"))
    assert response.ok, f"GET {src}: {response.status}"
    return Image.open(io.BytesIO(response.body())).convert("RGB")


def _differs_from(sample: Image.Image, source_file: Path) -> float:
    """Mean absolute difference (0-255) between the sample and the source resized to the sample's size."""
    with Image.open(source_file) as im:
        source = np.asarray(im.convert("RGB").resize(sample.size, Image.NEAREST), dtype=np.float32)
    return float(np.abs(np.asarray(sample, dtype=np.float32) - source).mean())


def _screenshot(page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 0
    target = os.environ.get("PGPIS_SCREENSHOT_DIR")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, Path(target) / name)
    return path


def _generate(page) -> Image.Image:
    from playwright.sync_api import expect

    page.click("#generate")
    # the run's summary line ("fpdm: 3 steps, ..., seed 0, ..."); the progress text shown meanwhile has no seed
    expect(page.locator("#info")).to_contain_text("seed", timeout=GENERATE_MS)
    expect(page.locator("#sample img")).to_be_visible()
    return _shown_image(page, "sample")


def _test_pair(root: Path) -> tuple[str, str]:
    from pgpis.app.sources import load_catalog

    catalog = load_catalog(root, parsing=False)
    assert catalog.first_pair is not None
    return catalog.first_pair


def test_fpdm_upload_source_pick_pose_generate(browser_page, tiny_ldm_checkpoints, synthetic_root, tmp_path):
    """Upload a source photo, pick a test pose, generate: the page shows the rendered pose and a new image."""
    from playwright.sync_api import expect

    from pgpis.data.deepfashion.layout import read_deepfashion_index

    index = read_deepfashion_index(synthetic_root, splits=("test",), check_images="none")
    source_name, pose_name = _test_pair(synthetic_root)
    upload = tmp_path / "my_photo.jpg"  # an upload, not a dataset path: the app gets only the pixels
    shutil.copyfile(index.image_path(source_name), upload)
    page = browser_page
    with serve_app(tiny_ldm_checkpoints["fpdm"]) as url:
        page.goto(url)
        page.wait_for_selector("#generate")
        expect(page.locator("#w-source")).to_be_visible()  # FPDM's two cumulative guidance weights
        expect(page.locator("#w-fusion")).to_be_visible()
        page.get_by_label("Upload a photo").check()
        expect(page.locator("#source-upload")).to_be_visible()
        expect(page.locator("#parsing-upload")).to_be_hidden()  # FPDM reads no parsing map
        page.click("#generate")  # nothing uploaded yet: pgpis's message, no sample
        expect(page.get_by_text("upload a source photo").first).to_be_visible()
        expect(page.locator("#sample img")).to_have_count(0)
        page.set_input_files("#source-upload input[type=file]", str(upload))
        page.wait_for_selector("#source-upload img")
        page.locator("#pose-pick input").click()
        page.get_by_role("option", name=pose_name).click()
        sample = _generate(page)
        pose = _shown_image(page, "pose-render")
        info = page.locator("#info").inner_text()
        _screenshot(page, tmp_path, "screenshot.png")
    assert "fpdm" in info and "guidance 2/2" in info, info
    assert sample.height >= 256 and sample.size == pose.size  # shown upscaled, as the pose it was conditioned on
    assert np.asarray(sample).std() > 1.0, "the sample is a flat image"
    assert _differs_from(sample, upload) > 5.0, "the page shows the source, not a generated sample"


def test_truepose_test_source_keypoint_file_generate(browser_page, tiny_ldm_checkpoints, synthetic_root, tmp_path):
    """TruePose: a picked test source brings its parsing map; the target pose comes from an uploaded keypoint file."""
    from playwright.sync_api import expect

    from pgpis.app.generate import needs
    from pgpis.app.sources import load_catalog
    from pgpis.inference import load_pipeline

    need = needs(load_pipeline(tiny_ldm_checkpoints["truepose"], device="cpu"))
    assert need.parsing and need.target_keypoints
    catalog = load_catalog(synthetic_root, parsing=True)
    source_name, pose_name = catalog.first_pair
    keypoints = tmp_path / "target_pose.json"
    keypoints.write_text(json.dumps(catalog.keypoints(pose_name).tolist()))
    page = browser_page
    with serve_app(tiny_ldm_checkpoints["truepose"], "--root", str(synthetic_root)) as url:
        page.goto(url)
        page.wait_for_selector("#generate")
        expect(page.locator("#w-cfg")).to_be_visible()  # TruePose: one CFG scale
        expect(page.locator("#w-fusion")).to_have_count(0)
        page.get_by_label("Upload a photo").check()
        expect(page.locator("#parsing-upload")).to_be_visible()  # an uploaded source needs its parsing map
        source_pose = expect(page.locator("#source-pose-upload"))  # and its keypoints, if the config reads them
        source_pose.to_be_visible() if need.pose else source_pose.to_be_hidden()
        page.get_by_label("Test source", exact=True).check()
        expect(page.locator("#source-preview img")).to_be_visible()  # the picked source brings its parsing map
        page.get_by_label("Keypoint file").check()
        expect(page.locator("#pose-file")).to_be_visible()
        page.set_input_files("#pose-file input[type=file]", str(keypoints))
        expect(page.locator("#pose-file").get_by_label("target_pose.json")).to_be_visible()  # uploaded
        page.fill("#steps input[type=number]", "2")
        page.locator("#steps input[type=number]").press("Enter")
        sample = _generate(page)
        info = page.locator("#info").inner_text()
        _screenshot(page, tmp_path, "screenshot_truepose.png")
    assert "truepose: 2 steps" in info, info
    assert _differs_from(sample, catalog.image_path(source_name)) > 5.0, "the page shows the source"


def test_app_cli_missing_checkpoint_names_it(tmp_path, capsys):
    """A wrong --checkpoint ends before serving, with the pgpis message naming the path and the fix."""
    from pgpis.cli import main

    missing = tmp_path / "nowhere.ckpt"
    assert main(["app", "--checkpoint", str(missing)]) == 1
    err = capsys.readouterr().err
    assert str(missing) in err and "pgpis fit" in err, err


def test_app_cli_screenshot(tiny_ldm_checkpoints, tmp_path):
    """`pgpis app --screenshot PNG`: serve, click Generate once in headless Chromium, save the page, exit 0."""
    _require_browser_stack()
    from pgpis.cli import main

    out = tmp_path / "docs" / "app.png"
    assert main(["app", "--checkpoint", str(tiny_ldm_checkpoints["fpdm"]), "--port", str(_free_port()),
                 "--device", "cpu", "--screenshot", str(out)]) == 0
    with Image.open(out) as shot:
        assert shot.format == "PNG" and shot.width >= 1000 and shot.height >= 600, (shot.format, shot.size)


def test_fpdm_pose_from_a_photo(browser_page, tiny_ldm_checkpoints, synthetic_root, tmp_path):
    """'Pose from a photo': the uploaded photo's pose (a stand-in estimator of known output, by class path) is
    shown as the model sees it, then generated with; the shown pose is the render of the estimated keypoints."""
    from playwright.sync_api import expect

    from pgpis.app import generate as gen
    from pgpis.data import keypoints as kpt
    from pgpis.inference import load_pipeline, load_target_pose
    from pgpis.pose import formats as fmt
    from pose_stand_ins import standing_body

    photo = tmp_path / "dancer.png"  # someone else's photo; the stand-in reads only its size
    Image.fromarray(np.random.default_rng(3).integers(0, 255, (120, 100, 3), dtype=np.uint8)).save(photo)
    estimated = fmt.body_in_frame(standing_body((120, 100)), (120, 100), kpt.CFLD_FRAME, fit="contain")
    pipe = load_pipeline(tiny_ldm_checkpoints["fpdm"], device="cpu")
    expected = gen.render_pose(pipe, load_target_pose(estimated))
    page = browser_page
    with serve_app(tiny_ldm_checkpoints["fpdm"], "--root", str(synthetic_root),
                   "--estimator", "pose_stand_ins.Standing") as url:
        page.goto(url)
        page.wait_for_selector("#generate")
        expect(page.locator("#pose-photo")).to_be_hidden()  # the test pose is the default choice
        page.get_by_label("Pose from a photo").check()
        expect(page.locator("#pose-photo")).to_be_visible()
        expect(page.locator("#pose-retarget")).to_be_visible()
        page.click("#generate")  # no photo yet: pgpis's message
        expect(page.get_by_text("upload a photo to take the pose from").first).to_be_visible()
        before = page.evaluate("() => { const i = document.querySelector('#pose-render img');"
                               " return i ? i.getAttribute('src') : null; }")  # none: the choice cleared it
        page.set_input_files("#pose-photo input[type=file]", str(photo))
        page.wait_for_selector("#pose-photo img")
        page.wait_for_function("(old) => { const i = document.querySelector('#pose-render img');"
                               " return i !== null && i.getAttribute('src') !== old; }", arg=before,
                               timeout=GENERATE_MS)
        preview = _shown_image(page, "pose-render")  # shown on upload, before any Generate
        sample = _generate(page)
        pose = _shown_image(page, "pose-render")
        _screenshot(page, tmp_path, "screenshot_pose_photo.png")
    assert np.array_equal(np.asarray(preview), np.asarray(expected.convert("RGB"))), "not the estimated pose"
    assert np.array_equal(np.asarray(pose), np.asarray(preview)), "generated with another pose than shown"
    assert np.asarray(sample).std() > 1.0


def test_truepose_from_a_single_uploaded_photo(browser_page, tiny_ldm_checkpoints, synthetic_root, tmp_path):
    """TruePose with nothing but an uploaded photo and a target pose: the parsing map comes from the parser named
    on the command line (a tiny SCHP-like ONNX model), the source keypoints from the stand-in estimator; the page
    says which made them. A failure shows its whole message in the status box and leaves the pose panel as it was.
    The screenshot is docs/images/app_truepose_photo.png (PGPIS_SCREENSHOT_DIR=docs/images)."""
    from playwright.sync_api import expect

    from parser_models import export_schp_like
    from pgpis.app.sources import load_catalog

    pytest.importorskip("onnxruntime")
    onnx = export_schp_like(tmp_path / "parsing_lip.onnx")
    catalog = load_catalog(synthetic_root, parsing=False)
    source_name, pose_name = catalog.first_pair
    upload = tmp_path / "my_photo.jpg"  # only the pixels: no parsing map, no keypoints
    shutil.copyfile(catalog.image_path(source_name), upload)
    page = browser_page
    with serve_app(tiny_ldm_checkpoints["truepose"], "--root", str(synthetic_root), "--parser-option",
                   f"model={onnx}", "--estimator", "pose_stand_ins.Standing") as url:
        page.goto(url)
        page.wait_for_selector("#generate")
        page.get_by_label("Upload a photo").check()
        expect(page.locator("#parsing-upload")).to_contain_text("optional: made by schp-lip")
        page.set_input_files("#source-upload input[type=file]", str(upload))
        page.wait_for_selector("#source-upload img")
        page.locator("#pose-pick input").click()
        page.get_by_role("option", name=pose_name).click()
        expect(page.locator("#pose-render img")).to_be_visible()
        page.fill("#steps input[type=number]", "2")
        page.locator("#steps input[type=number]").press("Enter")
        sample = _generate(page)
        info = page.locator("#info").inner_text()
        _screenshot(page, tmp_path, "app_truepose_photo.png")
        page.get_by_label("Keypoint file").check()  # a keypoint file that does not parse: said in full, in place
        broken = tmp_path / "broken.json"
        broken.write_text("{not json")
        page.set_input_files("#pose-file input[type=file]", str(broken))
        expect(page.locator("#info")).to_contain_text("Could not generate", timeout=GENERATE_MS)
        expect(page.locator("#pose-render")).not_to_contain_text("Error")
    assert "truepose: 2 steps" in info and "parsing map by schp-lip:parsing_lip" in info, info
    assert "keypoints by standing-stand-in" in info or "keypoints" not in info
    assert np.asarray(sample).std() > 1.0
    assert _differs_from(sample, upload) > 5.0, "the page shows the source, not a generated sample"
