"""The reading room's speed as a reader meets it, in headless Chromium against a server started cold:

- first probability: seconds from starting ``streamlit run app.py`` to the first probability on screen
  (the page opened as soon as the server answers, one sample uploaded at once);
- ten listed: seconds from uploading ten 2000x2000 x-rays to their worklist on screen;
- sidebar change: seconds from choosing another operating point in that batch to the new threshold on
  screen (median of several changes);
- J/K step: seconds from pressing J to the next film's name, and to its film in the viewer, on screen
  (timed in the page by a mutation observer; median of several steps);
- viewer change: seconds from an opacity change to the re-drawn overlay (median);
- your data: seconds to compute a 20-image site's figures, and to re-weigh them for a prevalence change
  (in process, the page's own functions).

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


_WATCH = """() => { window.__seen = []; new MutationObserver(() => {
  const h = [...document.querySelectorAll('h3')].map(e => e.innerText).join('|');
  if (h !== window.__h) { window.__h = h; window.__seen.push(['name', performance.now()]); }
  const i = document.querySelector('.js-plotly-plot image'); const href = i ? i.getAttribute('href') : '';
  if (href && href !== window.__href) { window.__href = href; window.__seen.push(['film', performance.now()]); }
  const gd = document.querySelector('.js-plotly-plot');
  const heat = gd && gd.data ? gd.data.find(t => t.type === 'heatmap') : null;
  const o = heat ? heat.opacity : null;
  if (o !== window.__o) { window.__o = o; window.__seen.push(['overlay', performance.now()]); }
}).observe(document.body, {subtree: true, childList: true, attributes: true}); }"""


def timed_steps(page, press, kind: str, n: int) -> list[float]:
    """Seconds from each key press (``press()``) until the first ``kind`` change the page shows."""
    out = []
    for _ in range(n):
        page.evaluate("() => { window.__seen.length = 0; }")
        t0 = page.evaluate("() => performance.now()")
        press()
        after = f"t0 => window.__seen.filter(s => s[0] === '{kind}' && s[1] > t0)"  # this press's, not a late one
        page.wait_for_function(f"t0 => ({after})(t0).length > 0", arg=t0, timeout=tb.WAIT_MS)
        page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=tb.WAIT_MS)
        seen = page.evaluate(f"t0 => ({after})(t0).map(s => s[1])", t0)
        out.append((seen[0] - t0) / 1000)
    return out


def your_data_figures() -> dict:
    """A 20-image site's figures and a prevalence change, with the page's functions, in process."""
    import numpy as np
    import pandas as pd

    from pneumonia.insight.site_validation import validate
    from pneumonia.serving.metadata import read_metadata

    meta = read_metadata(ROOT / "models")
    truth = np.arange(20) % 2
    prob = np.clip(0.3 + 0.45 * truth + np.random.default_rng(0).normal(0, 0.2, 20), 0.001, 0.999)
    names = [f"{'PNEUMONIA' if t else 'NORMAL'}/person{i}_bacteria_{i}.jpeg" for i, t in enumerate(truth)]
    results = pd.DataFrame({"file": names, "status": "scored", "probability": prob, "gate_ok": True, "truth": truth})
    t = time.perf_counter()
    sv = validate(results, meta.operating_points, meta.default_operating_point, meta.version)
    figures = time.perf_counter() - t
    t = time.perf_counter()
    sv.at_prevalence(0.12)
    return {
        "your_data_20_images_figures_s": round(figures, 3),
        "your_data_prevalence_change_s": round(time.perf_counter() - t, 4),
    }


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
                changes.append(change_operating_point(page, label, f"{points[name]['threshold']:.1%}"))
            page.evaluate(_WATCH)
            page.get_by_role("heading", name="Review chest x-rays").click()  # the keys go to the page
            steps_name = timed_steps(page, lambda: page.keyboard.press("j"), "name", args.changes)
            steps_film = timed_steps(page, lambda: page.keyboard.press("j"), "film", args.changes)
            slider = page.get_by_role("slider", name="Opacity")
            slider.focus()
            opacity = timed_steps(page, lambda: slider.press("ArrowRight"), "overlay", min(args.changes, 5))
        browser.close()
    figures = {
        "first_probability_after_server_start_s": round(first_probability, 2),
        "ten_2000px_xrays_listed_after_upload_s": round(ten_listed, 2),
        "sidebar_change_rerender_median_s": round(statistics.median(changes), 2),
        "sidebar_change_rerender_all_s": [round(c, 2) for c in changes],
        "j_step_next_name_median_s": round(statistics.median(steps_name), 2),
        "j_step_next_film_median_s": round(statistics.median(steps_film), 2),
        "j_step_next_film_all_s": [round(c, 2) for c in steps_film],
        "opacity_change_overlay_median_s": round(statistics.median(opacity), 2),
        **your_data_figures(),
    }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
