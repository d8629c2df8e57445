"""Drive the running app in Debian's headless Chromium through Python playwright.

Starts ``streamlit run app.py`` on a free port, waits for /_stcore/health, uploads real x-rays.
Outside CI a missing Chromium skips these tests with how to install it; with CI=true it fails.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import encode
from tests.negatives import colour_photos

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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_app(tmp: Path):
    """``streamlit run app.py`` on a free port, yielding its URL once /_stcore/health answers."""
    port = _free_port()
    env = dict(
        os.environ,
        PNEUMONIA_AUDIT_DB=str(tmp / "audit.sqlite"),
        PNEUMONIA_SITE_POINTS=str(tmp / "site_operating_points.json"),
    )
    log = open(tmp / "streamlit.log", "w")  # noqa: SIM115 - closed in teardown
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "app.py",
            "--server.headless",
            "true",
            "--server.address",
            "127.0.0.1",
            "--server.port",
            str(port),
            "--browser.gatherUsageStats",
            "false",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            raise RuntimeError(f"the app did not start: {(tmp / 'streamlit.log').read_text()[-2000:]}")
        time.sleep(0.5)
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


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
    """Wait until Streamlit has finished the current run (its 'running' indicator is gone)."""
    page.wait_for_timeout(500)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=WAIT_MS)
    page.wait_for_timeout(500)


def test_upload_real_xray_shows_probability_and_heatmap(app_url, browser, pneumonia_sample, tmp_path):
    page = _open(browser, app_url)
    page.locator('input[type="file"]').set_input_files(str(pneumonia_sample))
    page.get_by_text("Pneumonia probability").wait_for(timeout=WAIT_MS)
    page.get_by_text("regions that raised the pneumonia score").wait_for(timeout=WAIT_MS)
    settle(page)
    value = page.locator('[data-testid="stMetricValue"]').first.inner_text()
    assert value.endswith("%") and 0 <= float(value.strip("<>%")) <= 100
    page.locator(".js-plotly-plot image").nth(1).wait_for(state="attached", timeout=WAIT_MS)
    assert page.locator(".js-plotly-plot image").count() >= 2  # original and overlay, in one viewer
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


def _viewer_image_href(page) -> str:
    return page.locator(".js-plotly-plot image").first.get_attribute("href") or ""


def test_window_level_changes_the_displayed_image(app_url, browser, pneumonia_sample):
    page = _open(browser, app_url)
    page.locator('input[type="file"]').set_input_files(str(pneumonia_sample))
    page.locator(".js-plotly-plot image").first.wait_for(state="attached", timeout=WAIT_MS)
    settle(page)
    before = _viewer_image_href(page)
    slider = page.get_by_role("slider", name="Window (width)")
    slider.focus()
    for _ in range(10):
        slider.press("ArrowLeft")  # narrower window: more contrast
    settle(page)
    page.wait_for_function(
        "before => document.querySelector('.js-plotly-plot image').getAttribute('href') !== before",
        arg=before,
        timeout=WAIT_MS,
    )
    assert _viewer_image_href(page).startswith("data:image/jpeg")
    _no_exception(page)
    page.close()


def test_keyboard_moves_through_the_worklist(app_url, browser, samples):
    page = _open(browser, app_url)
    picks = samples[:3]
    page.locator('input[type="file"]').set_input_files([str(p) for p in picks])
    page.get_by_text("Worklist (3 scored of 3)").wait_for(timeout=WAIT_MS)
    settle(page)
    names = {p.name for p in picks}

    def open_name() -> str:
        return next(h for h in page.locator("h3").all_inner_texts() if h.strip() in names).strip()

    def wait_until(condition) -> None:
        deadline = time.time() + 30
        while not condition() and time.time() < deadline:
            page.wait_for_timeout(200)
        assert condition(), open_name()

    first = open_name()
    page.get_by_role("heading", name="Review chest x-rays").click()  # focus the page, not an input
    page.keyboard.press("j")
    wait_until(lambda: open_name() != first)
    second = open_name()
    settle(page)
    page.keyboard.press("k")
    wait_until(lambda: open_name() == first)
    assert second != first
    _no_exception(page)
    page.close()


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
    assert page.get_by_text("Doe").count() == 0 and page.get_by_text("MRN-123456").count() == 0
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
        page.wait_for_timeout(1500)
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
    page.get_by_text("Download validation report (PDF)").wait_for(timeout=WAIT_MS)
    settle(page)
    _no_exception(page)
    assert page.locator(".js-plotly-plot").count() >= 2  # ROC with its band, calibration
    page.screenshot(path=str(tmp_path / "your_data.png"), full_page=True)
    page.close()
