"""The reading room's speed as a reader meets it, in headless Chromium against a server started cold:

- first probability: seconds from starting ``streamlit run app.py`` to the first probability on screen
  (the page opened as soon as the server answers, one sample uploaded at once);
- ten listed: seconds from uploading ten 2000x2000 x-rays to their worklist on screen;
- sidebar change: seconds from choosing another operating point in that batch to the new threshold on
  screen (median of several changes).

python bench/reading_room.py [--changes 7]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import test_browser as tb  # noqa: E402 - after the path is set


def big_xrays(out: Path, n: int = 10, side: int = 2000) -> list[Path]:
    """``n`` sample x-rays upscaled to side x side PNGs, as a detector would export them."""
    import cv2

    samples = sorted((ROOT / "assets" / "samples").glob("*.jpeg"))
    paths = []
    for i in range(n):
        pixels = cv2.imread(str(samples[i % len(samples)]), cv2.IMREAD_GRAYSCALE)
        path = out / f"xray_{i:02d}.png"
        cv2.imwrite(str(path), cv2.resize(pixels, (side, side), interpolation=cv2.INTER_CUBIC))
        paths.append(path)
    return paths


def change_operating_point(page, label: str, threshold: str) -> float:
    """Pick an operating point in the sidebar; seconds until its threshold is on screen and the run is done."""
    page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first.click()
    option = page.get_by_role("option", name=label, exact=True)
    t = time.perf_counter()
    option.click()
    page.locator('[data-testid="stMetricValue"]', has_text=threshold).wait_for(timeout=tb.WAIT_MS)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=tb.WAIT_MS)
    return time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--changes", type=int, default=7)
    args = p.parse_args()
    from playwright.sync_api import sync_playwright

    from pneumonia.serving.metadata import read_metadata

    points = read_metadata(ROOT / "models").operating_points
    tmp = Path(tempfile.mkdtemp(prefix="bench"))
    batch = big_xrays(tmp)
    sample = sorted((ROOT / "assets" / "samples").glob("*.jpeg"))[5]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=tb.CHROMIUM, args=tb.CHROMIUM_ARGS)
        start = time.perf_counter()
        with tb.running_app(tmp) as url:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(url)
            page.locator('input[type="file"]').set_input_files(str(sample))
            page.get_by_text("Pneumonia probability").wait_for(timeout=tb.WAIT_MS)
            first_probability = time.perf_counter() - start
            tb.settle(page)
            t = time.perf_counter()
            page.locator('input[type="file"]').set_input_files([str(x) for x in batch])
            listed = re.compile(rf"Worklist \(\d+ scored of {len(batch) + 1}\)")  # the batch and the first sample
            page.get_by_text(listed).wait_for(timeout=tb.WAIT_MS)
            ten_listed = time.perf_counter() - t
            tb.settle(page)
            names = list(points)
            changes = []
            for i in range(args.changes):
                name = names[(i + 1) % len(names)]
                label = points[name]["label"].split(" (")[0]
                changes.append(change_operating_point(page, label, f"{points[name]['threshold']:.3f}"))
        browser.close()
    figures = {
        "first_probability_after_server_start_s": round(first_probability, 2),
        "ten_2000px_xrays_listed_after_upload_s": round(ten_listed, 2),
        "sidebar_change_rerender_median_s": round(statistics.median(changes), 2),
        "sidebar_change_rerender_all_s": [round(c, 2) for c in changes],
    }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
