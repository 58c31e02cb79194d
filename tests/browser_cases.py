"""The web page in a real browser (Debian's chromium, headless, driven by playwright) against
`vidsynth serve` started as a user starts it, with the default weights. Run by
tests/test_serve_ray.py inside `unshare -n`.
The screenshot goes to a temporary directory, or to $VIDSYNTH_PAGE_SCREENSHOT (docs/serve-page.png
was made with VIDSYNTH_PAGE_SCREENSHOT=docs/serve-page.png)."""

from __future__ import annotations

import os
import shutil
import signal

import pytest
from serve_support import REPO, Serve, require_netns

require_netns()
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip("no chromium: apt-get install -y chromium", allow_module_level=True)
playwright = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed: pip install playwright"
)


PORT = 8341


@pytest.fixture(scope="module")
def url():
    """`vidsynth serve` as a user starts it: the default weights, replicas and Ray sizing."""
    server = Serve("--backend", "onnxruntime", "--port", str(PORT))
    try:
        yield server.wait_for("vidsynth serving ").split()[2]
        assert server.stop(signal.SIGINT, group=True) == 0, server.output()
    finally:
        server.kill()


def test_the_page_plays_a_generated_video(url, tmp_path):
    screenshot = REPO / os.environ.get("VIDSYNTH_PAGE_SCREENSHOT", str(tmp_path / "serve-page.png"))
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 640})
            page.goto(url + "/")
            page.wait_for_selector("#card dt:text('Training data')", timeout=60_000)
            assert "jumping jack (2)" in page.inner_text("#category")  # the config's category names
            page.select_option("#category", "2")
            page.fill("#seed", "7")
            page.fill("#frames", "32")
            page.click("#generate")
            page.wait_for_function(
                "() => { const v = document.getElementById('video'); "
                "return v.readyState >= 2 && v.videoWidth > 0; }",
                timeout=120_000,
            )
            first = page.evaluate("document.getElementById('video').currentTime")
            page.wait_for_timeout(1500)
            later = page.evaluate("document.getElementById('video').currentTime")
            assert later != first  # playing (it loops, so compare, not order)
            assert page.evaluate("document.getElementById('video').videoWidth") == 64
            page.wait_for_function(
                "() => document.getElementById('sheet').naturalWidth === 32 * 64", timeout=60_000
            )
            assert "32 frames" in page.inner_text("#status")
            page.screenshot(path=str(screenshot), full_page=True)
            assert screenshot.stat().st_size > 10_000
        finally:
            browser.close()
