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
    env = dict(os.environ, PNEUMONIA_AUDIT_DB=str(tmp / "audit.sqlite"))
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
    assert page.locator('[data-testid="stImage"] img').count() >= 2  # original and overlay
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
