"""`pgpis app --screenshot OUT.png`: the page after one click on Generate, captured in headless Chromium.

For the docs picture (docs/images/app.png) from a real checkpoint, and the one place that knows how to start
Debian's Chromium here: Playwright drives the system browser (`executable_path`), since its own browser
download needs the internet; the flags keep Chromium from calling Google's hosts, which this network refuses.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Union

CHROMIUM = os.environ.get("PGPIS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
INSTALL_HINT = ("install Debian's Chromium (`apt-get update && apt-get install -y chromium`, as root) or point "
                "PGPIS_CHROMIUM at a Chromium binary; Playwright comes with pip install -e '.[dev]'")
VIEWPORT = {"width": 1280, "height": 900}


def open_browser(playwright: Any, profile_dir: Union[str, os.PathLike], executable: str = CHROMIUM):
    """A headless Chromium context with its own empty profile (`profile_dir`)."""
    if not Path(executable).is_file():
        raise FileNotFoundError(f"no Chromium at {executable}: {INSTALL_HINT}")
    return playwright.chromium.launch_persistent_context(str(profile_dir), executable_path=executable, headless=True,
                                                         args=CHROMIUM_ARGS, viewport=VIEWPORT)


def capture(url: str, out: Union[str, os.PathLike], *, executable: str = CHROMIUM, timeout_ms: int = 600_000) -> Path:
    """Open `url`, click Generate with the page's defaults, wait for the sample, save a full-page PNG to `out`."""
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError as err:
        raise ImportError(f"--screenshot needs Playwright: {INSTALL_HINT}") from err
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pgpis-chromium-") as profile, sync_playwright() as p:
        context = open_browser(p, profile, executable)
        try:
            page = context.new_page()
            page.goto(url)
            page.click("#generate")
            # the run's summary line ("... seed N ..."; the progress text shown meanwhile has no seed)
            expect(page.locator("#info")).to_contain_text("seed", timeout=timeout_ms)
            expect(page.locator("#sample img")).to_be_visible()
            page.screenshot(path=str(out), full_page=True)
        finally:
            context.close()
    return out


__all__ = ["capture", "open_browser", "CHROMIUM", "CHROMIUM_ARGS", "INSTALL_HINT"]
