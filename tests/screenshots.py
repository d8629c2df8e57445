"""Screenshots of every page with real x-rays, for looking at the UI and for the README.

.venv/bin/python -m tests.screenshots OUT_DIR [--readme]   (--readme also writes assets/screenshot.png)
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from tests import test_browser as tb


def main(out: Path, readme: bool = False) -> None:
    import tempfile

    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    samples = sorted((tb.ROOT / "assets" / "samples").glob("*.jpeg"))

    with tb.running_app(Path(tempfile.mkdtemp(prefix="app"))) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=tb.CHROMIUM, args=tb.CHROMIUM_ARGS)
        page = tb._open(browser, url)
        page.locator('input[type="file"]').set_input_files(str(samples[5]))
        page.get_by_text("regions that raised the pneumonia score").wait_for(timeout=tb.WAIT_MS)
        tb.settle(page)
        page.screenshot(path=str(out / "review.png"))
        page.set_viewport_size({"width": 1400, "height": 3000})
        page.screenshot(path=str(out / "review_full.png"))
        page.set_viewport_size({"width": 1400, "height": 1100})
        page.locator('input[type="file"]').set_input_files([str(s) for s in samples])
        page.get_by_text("Worklist").first.wait_for(timeout=tb.WAIT_MS)
        tb.settle(page)
        page.screenshot(path=str(out / "worklist.png"))
        for width in (1280, 800):  # the widths the reading room is checked at
            page.set_viewport_size({"width": width, "height": 1700})
            page.locator(".js-plotly-plot image").first.wait_for(state="attached", timeout=tb.WAIT_MS)
            page.wait_for_timeout(2000)
            page.screenshot(path=str(out / f"worklist_{width}.png"))
        if readme:
            shutil.copyfile(out / "worklist_1280.png", tb.ROOT / "assets" / "screenshot.png")
        page.set_viewport_size({"width": 1400, "height": 1100})
        for link in ("Dataset", "Model performance", "Model card"):
            page.get_by_role("link", name=link).click()
            page.wait_for_timeout(1000)
            tb.settle(page)
            page.set_viewport_size({"width": 1400, "height": 5000})
            page.wait_for_timeout(1500)
            page.screenshot(path=str(out / f"{link.replace(' ', '_').lower()}.png"))
            page.set_viewport_size({"width": 1400, "height": 1100})
        browser.close()


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--readme"]
    main(Path(args[0] if args else "/tmp/screens"), readme="--readme" in sys.argv)
