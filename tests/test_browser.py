"""Drive the running app in Debian's headless Chromium through Python playwright.

Starts ``streamlit run app.py`` on a free port, waits for /_stcore/health, uploads real x-rays.
Outside CI a missing Chromium skips these tests with how to install it; with CI=true it fails.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

from tests.helpers import encode
from tests.negatives import colour_photos
from tests.servers.process import free_port, running_streamlit

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-quic",
    "--no-first-run",
    "--disable-sync",
]
WAIT_MS = 120_000
pytestmark = pytest.mark.browser


@contextlib.contextmanager
def running_app(tmp: Path):
    """``streamlit run app.py`` on a free port, yielding its URL once /_stcore/health answers."""
    port = free_port()
    env = dict(
        os.environ,
        PNEUMONIA_AUDIT_DB=str(tmp / "audit.sqlite"),
        PNEUMONIA_SITE_POINTS=str(tmp / "site_operating_points.json"),
    )
    with running_streamlit(ROOT, tmp, port, env) as url:
        yield url


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    with running_app(tmp_path_factory.mktemp("app")) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} not found; install Debian's Chromium with: sudo apt-get install chromium"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _open(browser, url: str):
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    page.goto(url)
    page.get_by_text("Review chest x-rays").first.wait_for(timeout=WAIT_MS)
    return page


def _no_exception(page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0


def settle(page) -> None:
    """Wait until Streamlit has finished the current run (its 'running' indicator is gone). Callers first
    wait for what the user would see; this only lets a run that is still going finish."""
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=WAIT_MS)


def test_upload_real_xray_shows_probability_and_heatmap(app_url, browser, pneumonia_sample, tmp_path):
    page = _open(browser, app_url)
    page.locator('input[type="file"]').set_input_files(str(pneumonia_sample))
    page.get_by_text("Pneumonia probability").wait_for(timeout=WAIT_MS)
    page.get_by_text("regions that raised the pneumonia score").wait_for(timeout=WAIT_MS)
    settle(page)
    value = page.locator('[data-testid="stMetricValue"]').first.inner_text()
    assert value.endswith("%") and 0 <= float(value.strip("<>%")) <= 100
    # original and overlay, in one viewer (waited for: between two renders the chart is briefly empty)
    page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot image').length >= 2", timeout=WAIT_MS)
    _no_exception(page)
    page.screenshot(path=str(tmp_path / "review.png"), full_page=True)
    assert (tmp_path / "review.png").stat().st_size > 10_000
    page.close()


def test_refused_file_shows_its_reason(app_url, browser, tmp_path):
    photo = tmp_path / "holiday.jpg"
    photo.write_bytes(encode(colour_photos()[0], "JPEG"))
    page = _open(browser, app_url)
    page.locator('input[type="file"]').set_input_files(str(photo))
    page.get_by_text("Not scored").wait_for(timeout=WAIT_MS)
    assert page.get_by_text("colour image").count() >= 1
    assert page.get_by_text("Pneumonia probability").count() == 0
    _no_exception(page)
    page.screenshot(path=str(tmp_path / "refused.png"), full_page=True)
    page.close()


def test_batch_upload_shows_a_worklist(app_url, browser, samples, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    page = _open(browser, app_url)
    page.locator('input[type="file"]').set_input_files([str(p) for p in samples[:4]] + [str(broken)])
    page.get_by_text("Worklist (4 scored of 5)").wait_for(timeout=WAIT_MS)
    page.get_by_text("Export the worklist").click()
    page.get_by_text("Download worklist CSV").wait_for(timeout=WAIT_MS)
    settle(page)
    _no_exception(page)
    page.screenshot(path=str(tmp_path / "worklist.png"), full_page=True)
    page.close()


def test_eight_concurrent_sessions_get_their_own_results(app_url, browser, classifier, samples):
    """Eight browser sessions upload different x-rays at once to one server (one shared model):
    each sees the probability of its own image."""
    from pneumonia.insight.report import format_probability
    from pneumonia.serving.pipeline import score

    picks = samples[:8]
    results = score(classifier, [(p.name, p.read_bytes()) for p in picks], 0.5)
    expected = [format_probability(r.probability) for r in results]
    contexts = [browser.new_context(viewport={"width": 1200, "height": 900}) for _ in picks]
    pages = [c.new_page() for c in contexts]
    for page in pages:
        page.goto(app_url)
    for page, path in zip(pages, picks):
        page.locator('input[type="file"]').wait_for(state="attached", timeout=WAIT_MS)
        page.locator('input[type="file"]').set_input_files(str(path))  # no wait: the runs overlap
    for page, path, want in zip(pages, picks, expected):
        page.get_by_role("heading", name=path.name).wait_for(timeout=WAIT_MS)
        page.get_by_text("Pneumonia probability").wait_for(timeout=WAIT_MS)
        assert page.locator('[data-testid="stMetricValue"]').first.inner_text() == want
        _no_exception(page)
    for c in contexts:
        c.close()


@pytest.mark.parametrize(
    ("link", "heading"),
    [("Dataset", "The data set"), ("Model performance", "Model performance"), ("Model card", "Model card")],
)
def test_other_pages_render(app_url, browser, tmp_path, link, heading):
    page = _open(browser, app_url)
    page.get_by_role("link", name=link).click()
    page.get_by_role("heading", name=heading).first.wait_for(timeout=WAIT_MS)
    settle(page)
    _no_exception(page)
    page.screenshot(path=str(tmp_path / f"{link.replace(' ', '_')}.png"), full_page=True)
    page.close()


# ------------------------------------------------------------------ the reading room (issue 12)
def _dicom_file(tmp_path: Path, sample: Path, name: str, **tags) -> Path:
    from tests.dicom_factory import make_dicom
    from tests.helpers import gray_pixels

    path = tmp_path / name
    path.write_bytes(make_dicom(gray_pixels(sample), bits=8, **tags))
    return path


_HREF = (
    "() => { const i = document.querySelector('.js-plotly-plot image'); return i ? i.getAttribute('href') || '' : '' }"
)


def _viewer_image_href(page) -> str:
    """The viewer's image as shown now: waits for one (never the empty href of a chart between renders)."""
    page.wait_for_function(f"({_HREF})() !== ''", timeout=WAIT_MS)
    return page.evaluate(_HREF)


def _wait_for_new_image(page, before: str) -> str:
    """Wait until the viewer shows a different, non-empty image (a re-render passes through none)."""
    page.wait_for_function(
        f"before => {{ const h = ({_HREF})(); return h !== '' && h !== before; }}", arg=before, timeout=WAIT_MS
    )
    return page.evaluate(_HREF)


def test_window_level_changes_the_displayed_image(app_url, browser, pneumonia_sample):
    page = _open(browser, app_url)
    page.locator('input[type="file"]').set_input_files(str(pneumonia_sample))
    before = _viewer_image_href(page)
    slider = page.get_by_role("slider", name="Window (width)")
    slider.focus()
    for _ in range(10):
        slider.press("ArrowLeft")  # narrower window: more contrast
    assert _wait_for_new_image(page, before).startswith("data:image/jpeg")
    _no_exception(page)
    page.close()


# ------------------------------------------------------------------ the reading room, second pass (issue 20)
_VIEW = """() => {
  const gd = [...document.querySelectorAll('.js-plotly-plot')].find(
    g => g.layout && g.layout.meta && g.layout.meta.xray_viewer);
  if (!gd || !gd._fullLayout) return null;
  const m = gd.layout.meta, x = gd._fullLayout.xaxis.range, y = gd._fullLayout.yaxis.range;
  const box = gd.getBoundingClientRect();
  const heat = (gd.data || []).find(t => t.type === 'heatmap');
  return {image: m.xray_viewer, x0: (x[0] + 0.5) / m.width, x1: (x[1] + 0.5) / m.width,
          top: box.top, bottom: box.bottom, width: box.width, high: window.innerHeight,
          opacity: heat ? heat.opacity : null};
}"""


def _view(page) -> dict:
    page.wait_for_function(f"({_VIEW})() !== null", timeout=WAIT_MS)
    return page.evaluate(_VIEW)


def _wait_for_view(page, condition: str, arg=None) -> dict:
    """Wait until the viewer on screen satisfies ``condition`` (JS, given the view ``v`` and ``arg``)."""
    page.wait_for_function(
        f"arg => {{ const v = ({_VIEW})(); return v !== null && ({condition}); }}", arg=arg, timeout=WAIT_MS
    )
    return page.evaluate(_VIEW)


def _zoom_in(page) -> dict:
    """Zoom the viewer as a reader does: the mouse wheel over the film."""
    drag = page.locator(".js-plotly-plot .nsewdrag").first
    drag.scroll_into_view_if_needed()
    box = drag.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
    for _ in range(4):
        page.mouse.wheel(0, -120)
    return _wait_for_view(page, "v.x1 - v.x0 < 0.9")


def _same_zoom(v: dict, zoomed: dict) -> bool:
    return abs(v["x0"] - zoomed["x0"]) < 0.01 and abs(v["x1"] - zoomed["x1"]) < 0.01


def test_viewer_keeps_zoom_across_controls_and_j_k_and_keeps_the_film_in_view(app_url, browser, samples):
    """Zoom, then change opacity, window/level and the method, then J and K: the zoom stays and the film
    stays on the screen (issue 20, points 1 and 2)."""
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(app_url)
    page.locator('input[type="file"]').set_input_files([str(p) for p in samples[:3]])
    page.get_by_text("Worklist (3 scored of 3)").wait_for(timeout=WAIT_MS)
    first = _view(page)
    zoomed = _zoom_in(page)
    page.get_by_role("slider", name="Opacity").focus()
    page.keyboard.press("ArrowRight")
    v = _wait_for_view(page, "v.opacity !== null && Math.abs(v.opacity - 0.45) < 1e-6")
    v = _wait_for_view(page, "Math.abs(v.x0 - arg.x0) < 0.01 && Math.abs(v.x1 - arg.x1) < 0.01", zoomed)
    assert _same_zoom(v, zoomed)
    before = _viewer_image_href(page)
    page.get_by_role("slider", name="Level (centre)").focus()
    page.keyboard.press("ArrowRight")
    _wait_for_new_image(page, before)
    assert _same_zoom(_wait_for_view(page, "Math.abs(v.x0 - arg.x0) < 0.01", zoomed), zoomed)
    page.get_by_role("heading", name="Review chest x-rays").click()  # focus the page, not a slider
    for key in ("j", "k"):
        shown = _view(page)["image"]
        # the run that drew this film also prepares its neighbours; a key pressed while a run is still
        # going can be lost (open defect, see the closing note of stop 15): press once the page settled
        settle(page)
        page.keyboard.press(key)
        v = _wait_for_view(page, "v.image !== arg", shown)
        v = _wait_for_view(page, "Math.abs(v.x0 - arg.x0) < 0.01 && v.top >= 0 && v.bottom <= v.high + 1", zoomed)
        assert _same_zoom(v, zoomed), v
        assert v["top"] >= 0 and v["bottom"] <= v["high"] + 1, v  # the whole viewer on the screen
    assert _view(page)["image"] == first["image"]  # J then K: back to the first film
    _no_exception(page)
    page.close()


_GRID = "[data-testid=stMain] [data-testid=stDataFrame]"  # the worklist (the sidebar has a table too)
_GRID_ROWS = f"""() => [...document.querySelectorAll('{_GRID} [role=row]')].slice(1).map(
  r => [...r.querySelectorAll('[role=gridcell]')].map(c => c.innerText))"""
_GRID_HEADERS = f"() => [...document.querySelectorAll('{_GRID} [role=columnheader]')].map(h => h.innerText)"


def _grid_column(page, header: str) -> list[str]:
    headers = page.evaluate(_GRID_HEADERS)
    i = next(k for k, h in enumerate(headers) if h.strip().endswith(header))  # a sorted header gains an arrow
    return [row[i] for row in page.evaluate(_GRID_ROWS) if len(row) > i]


def test_worklist_sorts_probabilities_as_numbers_and_a_click_on_a_row_opens_it(app_url, browser, samples):
    """Issue 20, points 3 and 4: sorting by probability sorts numbers; clicking a cell of a row (not the
    checkbox) opens that film; ticking "include file names" keeps the export panel open."""
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(app_url)
    page.locator('input[type="file"]').set_input_files([str(p) for p in samples])
    page.get_by_text(f"Worklist ({len(samples)} scored of {len(samples)})").wait_for(timeout=WAIT_MS)
    page.wait_for_function(f"({_GRID_ROWS})().length >= {len(samples)}", timeout=WAIT_MS)
    grid = page.locator('[data-testid="stMain"] [data-testid="stDataFrame"]').first
    page.locator('[data-testid="stMain"] [data-testid="stDataFrame"] canvas').first.wait_for(timeout=WAIT_MS)
    _view(page)  # the film is on screen: the page has scrolled it into view, so it will not scroll again
    grid.scroll_into_view_if_needed()  # the worklist is above the film
    box = grid.bounding_box()
    row_height = box["height"] / (len(samples) + 1)
    headers = page.evaluate(_GRID_HEADERS)
    assert "Probability" in headers and "File" in headers
    column_x = _column_x("probability_percent")
    page.mouse.click(box["x"] + column_x, box["y"] + row_height / 2)  # sort ascending
    page.wait_for_function(
        f"() => {{ const v = ({_GRID_ROWS})().map(r => r[{headers.index('Probability')}]).filter(x => x !== '')"
        ".map(Number); return v.length > 1 && v.every((x, i) => i === 0 || v[i - 1] <= x); }",
        timeout=WAIT_MS,
    )
    values = [float(v) for v in _grid_column(page, "Probability") if v]
    assert values == sorted(values) and values[0] < 50 < values[-1], values
    files = _grid_column(page, "File")
    shown = _view(page)["image"]
    grid.scroll_into_view_if_needed()
    box = grid.bounding_box()
    page.mouse.click(box["x"] + column_x, box["y"] + row_height * 2.5)  # a cell of the second row
    page.get_by_role("heading", name=files[1]).wait_for(timeout=WAIT_MS)
    _wait_for_view(page, "v.image !== arg", shown)
    page.get_by_text("Export the worklist").click()
    page.get_by_text("Include file names in the CSV").click()
    page.get_by_text("Download worklist CSV").wait_for(timeout=WAIT_MS)
    assert page.get_by_role("checkbox", name="Include file names in the CSV").is_checked()
    page.get_by_text("Download worklist CSV").wait_for(state="visible", timeout=WAIT_MS)  # the panel stayed open
    _no_exception(page)
    page.close()


def _column_x(column: str) -> float:
    """The horizontal centre of a worklist column: the widths are the ones pages/widgets.py sets."""
    from pages.widgets import WORKLIST_COLUMNS

    order = ["open", "item", "thumbnail", "probability_percent"]
    widths = [WORKLIST_COLUMNS[c]["width"] for c in order[: order.index(column) + 1]]
    return sum(widths[:-1]) + widths[-1] / 2


def test_first_result_shows_the_film_at_1280x800_and_800_px(app_url, browser, pneumonia_sample):
    """Issue 20, point 5: the first result's film is on the screen at 1280x800; at 800 px the sidebar is
    folded, so the film is not squeezed."""
    for width, least_film in ((1280, 300), (800, 280)):
        context = browser.new_context(viewport={"width": width, "height": 800})
        page = context.new_page()
        page.goto(app_url)
        page.locator('input[type="file"]').set_input_files(str(pneumonia_sample))
        page.get_by_text("Pneumonia probability").wait_for(timeout=WAIT_MS)
        v = _wait_for_view(page, "v.top >= 0 && v.bottom <= v.high + 1")
        assert v["width"] / 2 >= least_film, v  # each of the two films side by side
        if width == 800:
            page.wait_for_function(
                "() => document.querySelector('[data-testid=stSidebar]').getBoundingClientRect().right <= 0",
                timeout=WAIT_MS,
            )
        _no_exception(page)
        context.close()


@pytest.mark.parametrize(
    ("tags", "words"),
    [({"age": "045Y", "sex": "M", "view": "PA"}, "not for adults"), ({"age": "004Y", "view": "LL"}, "lateral view")],
    ids=["adult", "lateral"],
)
def test_out_of_scope_dicom_is_not_scored(app_url, browser, normal_sample, tmp_path, tags, words):
    path = _dicom_file(tmp_path, normal_sample, "study.dcm", **tags)
    page = _open(browser, app_url)
    page.locator('input[type="file"]').set_input_files(str(path))
    page.get_by_text("Not scored").wait_for(timeout=WAIT_MS)
    settle(page)
    assert page.get_by_text(words).count() >= 1
    assert page.get_by_text("Pneumonia probability").count() == 0
    assert page.get_by_text("DICOM: Age").count() >= 1  # the non-identifying tags are shown
    # whose film it is: shown in the film's header (issue 24), as a PACS viewer shows it
    assert page.get_by_text("Doe, Jane · ID MRN-123456").count() >= 1
    _no_exception(page)
    page.close()


def test_nothing_is_fetched_from_outside_and_screens_fit_1280_and_800(app_url, browser, samples, tmp_path):
    """The page asks nothing of any other host (favicon and fonts are local); the batch and the open image
    render at both widths. Screenshots go to $SCREENSHOT_DIR when set, for looking at."""
    outside: list[str] = []
    page = browser.new_page(viewport={"width": 1280, "height": 2400})
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith((app_url, "data:", "blob:")) else None)
    page.goto(app_url)
    page.get_by_text("Review chest x-rays").first.wait_for(timeout=WAIT_MS)
    page.locator('input[type="file"]').set_input_files([str(p) for p in samples])
    page.get_by_text(f"Worklist ({len(samples)} scored of {len(samples)})").wait_for(timeout=WAIT_MS)
    page.locator(".js-plotly-plot image").first.wait_for(state="attached", timeout=WAIT_MS)
    settle(page)
    out = Path(os.environ.get("SCREENSHOT_DIR", tmp_path))
    out.mkdir(parents=True, exist_ok=True)
    for width in (1280, 800):
        page.set_viewport_size({"width": width, "height": 2400})
        page.wait_for_function(  # the viewer has been laid out again for this width
            "w => { const c = document.querySelector('.js-plotly-plot');"
            " return c !== null && c.getBoundingClientRect().right <= w; }",
            arg=width,
            timeout=WAIT_MS,
        )
        page.screenshot(path=str(out / f"review_{width}.png"))
        assert (out / f"review_{width}.png").stat().st_size > 10_000
    assert not outside, outside
    _no_exception(page)
    page.close()


# ------------------------------------------------------------------ your data (issue 11)
def test_your_data_view_shows_a_sites_results(app_url, browser, classifier, samples, tmp_path):
    """A site's results file uploaded on the performance page: ROC and calibration, the operating
    points on its images, the validation report."""
    import shutil

    from pneumonia.serving.archive.run import score_archive

    for p in samples:
        label = p.name.split("_")[0]
        (tmp_path / "site" / label).mkdir(parents=True, exist_ok=True)
        shutil.copy(p, tmp_path / "site" / label / p.name)
    score_archive(tmp_path / "site", tmp_path / "results.parquet", classifier=classifier)
    page = _open(browser, app_url)
    page.get_by_role("link", name="Model performance").click()
    page.get_by_text("Your data", exact=True).click()
    page.get_by_text("Upload a results file", exact=True).wait_for(timeout=WAIT_MS)
    page.locator('input[type="file"]').set_input_files(str(tmp_path / "results.parquet"))
    page.get_by_text("The shipped operating points on your images").wait_for(timeout=WAIT_MS)
    page.get_by_text("Download validation report for the board (PDF)").wait_for(timeout=WAIT_MS)
    settle(page)
    _no_exception(page)
    assert page.locator(".js-plotly-plot").count() >= 2  # ROC with its band, calibration
    page.screenshot(path=str(tmp_path / "your_data.png"), full_page=True)
    page.close()
