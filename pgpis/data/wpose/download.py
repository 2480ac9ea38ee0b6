"""`pgpis data download-wpose`: fetch WPose's web images and preprocess them as UniHuman does.

UniHuman (CVPR 2024) publishes the annotations (``wpose.zip``: ``image_urls.txt``, ``bbox.txt``,
``test_pairs.txt``, ``test_data.pkl``, ``parsing/``, ``densepose/``) but not the images: its
``get_wpose_data.py`` downloads each URL and then, per ``bbox.txt`` line ``name left top right bottom``
(integers), crops the raw image ``array[top:bottom, left:right]`` (numpy slicing: a box past the border is
clipped), scales it so the longer side is ``min(1024, longer side)`` (new size ``round(h * r)`` x
``round(w * r)``), resizes with PIL bicubic and saves it as ``images/<name>``. :func:`preprocess` is that
step; the parsing maps in ``parsing/`` have exactly the size it produces (UniHuman's own sanity check, and
``pgpis data check --dataset wpose``). Differences, on purpose: the image is converted to RGB first (a
palette or alpha image would otherwise be saved with its mode), and a failed download is reported by name
instead of skipped.

Offline, every fetch fails; :meth:`DownloadReport.offline_help` says what to fetch and from where.
"""
from __future__ import annotations

import io
import os
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from pgpis.atomic import atomic_write
from pgpis.data.wpose.layout import BBOX, IMAGE_URLS, IMAGES_DIR, read_bboxes, read_image_urls
from pgpis.errors import DataFormatError, Problem

MAX_SIDE = 1024
USER_AGENT = "Mozilla/5.0"  # get_wpose_data.py's header (some hosts refuse urllib's default agent)
ANNOTATIONS = ("UniHuman's wpose.zip (https://github.com/adobe-research/UniHuman, section 'Data Preparation': "
               "image_urls.txt, bbox.txt, test_pairs.txt, test_data.pkl, parsing/, densepose/)")
Fetch = Callable[[str, float], bytes]


def fetch_url(url: str, timeout: float = 30.0) -> bytes:
    """The bytes at ``url`` (http, https or file), with UniHuman's User-Agent."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (URLs from the dataset file)
        return response.read()


def preprocess(image: Image.Image, box: tuple[float, float, float, float], max_side: int = MAX_SIDE) -> Image.Image:
    """UniHuman's WPose preprocessing: crop to ``box`` (left, top, right, bottom), longer side to at most
    ``max_side``, PIL bicubic."""
    left, top, right, bottom = (int(v) for v in box)
    arr = np.asarray(image.convert("RGB"))[max(top, 0):max(bottom, 0), max(left, 0):max(right, 0)]
    if arr.size == 0:
        raise ValueError(f"the box ({left}, {top}, {right}, {bottom}) lies outside the {image.width}x{image.height} image")
    h, w = arr.shape[:2]
    ratio = min(max_side, max(h, w)) / max(h, w)
    new_h, new_w = round(h * ratio), round(w * ratio)
    return Image.fromarray(arr).resize((new_w, new_h), resample=Image.BICUBIC)


@dataclass
class DownloadReport:
    root: Path
    written: int = 0
    kept: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (name, why)
    urls: dict[str, str] = field(default_factory=dict)

    def offline_help(self) -> str:
        """What to fetch, and from where, when the downloads failed (no internet, dead links)."""
        sample = ", ".join(f"{self.urls.get(n, '?')} -> {IMAGES_DIR}/{n}" for n, _ in self.failed[:3])
        return (f"{len(self.failed)} image(s) could not be fetched here (no internet, or the link is dead). On a machine "
                f"with internet run `pgpis data download-wpose --root {self.root}` (the URLs are in "
                f"{self.root / IMAGE_URLS}, e.g. {sample}) and copy {IMAGES_DIR}/ back; the annotations come from "
                f"{ANNOTATIONS}. Pairs whose images stay missing are named by `pgpis data check --dataset wpose`.")


def download_wpose(root: str | os.PathLike, *, fetch: Fetch = fetch_url, overwrite: bool = False, timeout: float = 30.0,
                   max_side: int = MAX_SIDE, log: Callable[[str], None] | None = None) -> DownloadReport:
    """Fetch every image of ``image_urls.txt`` that has a ``bbox.txt`` box, preprocess it, write ``images/<name>``.

    ``fetch(url, timeout) -> bytes`` is injectable (tests use local files). Existing images are kept unless
    ``overwrite``. Failures (download, decode, box) are collected in the report, never silently skipped.
    """
    root = Path(root)
    problems: list[Problem] = []
    for required in (IMAGE_URLS, BBOX):
        if not (root / required).exists():
            problems.append(Problem(str(root / required), "missing", f"unzip {ANNOTATIONS} into {root}"))
    if problems:
        raise DataFormatError(problems)
    urls = read_image_urls(root / IMAGE_URLS, problems)
    boxes = read_bboxes(root / BBOX, problems)
    problems += [Problem(str(root / BBOX), "no box for this image of image_urls.txt", "use the bbox.txt of the same "
                         "release", item=n) for n in urls if n not in boxes]
    if problems:
        raise DataFormatError(problems)
    report = DownloadReport(root, urls=urls)
    out_dir = root / IMAGES_DIR
    out_dir.mkdir(exist_ok=True)
    for k, (name, url) in enumerate(urls.items()):
        path = out_dir / name
        if path.exists() and not overwrite:
            report.kept += 1
            continue
        try:
            data = fetch(url, timeout)
        except Exception as err:  # URLError, HTTPError, timeouts, refused connections ...
            report.failed.append((name, f"download failed ({type(err).__name__}: {err})"))
            continue
        try:
            with Image.open(io.BytesIO(data)) as im:
                image = preprocess(im, boxes[name], max_side)
        except Exception as err:  # not an image, truncated, a box outside it
            report.failed.append((name, f"cannot preprocess the download ({type(err).__name__}: {err})"))
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda f: image.save(f, format=Image.registered_extensions()[path.suffix.lower()]))
        report.written += 1
        if log and (k + 1) % 100 == 0:
            log(f"{k + 1}/{len(urls)} images")
    return report
