"""The review page against a real Orthanc in headless Chromium: open a study from the PACS, see its
result, save a read and send the results back; the SR in Orthanc carries the read."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pneumonia.pacs.config import load_config
from pneumonia.pacs.dicomweb import PacsClient
from pneumonia.pacs.results import read_report
from tests import test_browser
from tests.dicom_factory import make_dicom
from tests.pacs_studies import PacsStudy, add, grey, load
from tests.test_browser import WAIT_MS, running_app, settle

pytestmark = pytest.mark.browser
SCREENSHOT = Path("/tmp/pacs_review.png")
SEARCH_SCREENSHOT = Path("/tmp/pacs_search.png")


@pytest.fixture(scope="module")
def pacs_app(orthanc, tmp_path_factory):
    """The app with PNEUMONIA_PACS_URL pointing at the test Orthanc."""
    saved = os.environ.get("PNEUMONIA_PACS_URL")
    os.environ["PNEUMONIA_PACS_URL"] = orthanc.dicomweb_url
    try:
        with running_app(tmp_path_factory.mktemp("pacs-app")) as url:
            yield url
    finally:
        if saved is None:
            os.environ.pop("PNEUMONIA_PACS_URL", None)
        else:
            os.environ["PNEUMONIA_PACS_URL"] = saved


browser = test_browser.browser  # the headless-Chromium fixture, shared with tests/test_browser.py


def test_open_a_study_from_the_pacs_read_it_and_send_the_results(pacs_app, browser, orthanc, samples):
    study = PacsStudy("ACC-BROWSER-1", "PID-BROWSER-1", "1.2.826.0.1.3680043.8.498.777001", "20240301")
    pneumonia = next(p for p in samples if p.name.startswith("PNEUMONIA"))
    add(study, make_dicom(grey(pneumonia), bits=8, age="003Y", sex="F", view="PA"), "DX", "child")
    load(orthanc, study)
    (sop,) = study.instances
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    page.goto(pacs_app)
    page.get_by_text("Open from PACS").first.wait_for(timeout=WAIT_MS)
    page.get_by_label("Reader (your name or initials; unverified)", exact=True).fill("Dr Test")
    page.get_by_label("Accession number", exact=True).fill("ACC-BROWSER-1")
    page.get_by_role("button", name="Search the PACS").click()
    page.get_by_role("button", name="Open the chosen studies").wait_for(timeout=WAIT_MS)
    settle(page)
    page.screenshot(path=str(SEARCH_SCREENSHOT))
    assert "ACC-BROWSER-1" in _row_with(page, "ACC-BROWSER-1")  # the found study, ready to open
    page.get_by_role("button", name="Open the chosen studies").click()
    page.get_by_text("Pneumonia probability").wait_for(timeout=WAIT_MS)
    settle(page)
    page.get_by_text("Agree", exact=True).first.click()
    page.get_by_label("Comment (optional; no patient identifiers)", exact=True).fill("consolidation right lower zone")
    page.get_by_role("button", name="Save review").click()
    page.get_by_role("button", name="Send results to PACS").wait_for(timeout=WAIT_MS)
    page.get_by_role("button", name="Send results to PACS").click()
    page.get_by_text("Stored in the study").wait_for(timeout=WAIT_MS)
    settle(page)
    assert page.locator('[data-testid="stException"]').count() == 0
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    page.close()

    client = PacsClient(load_config({}, url=orthanc.dicomweb_url))
    reports = [
        read_report(
            client.web.retrieve_instance(study.study_uid, series["0020000E"]["Value"][0], inst["00080018"]["Value"][0])
        )
        for series in client.web.search_for_series(study.study_uid, search_filters={"Modality": "SR"})
        for inst in client.web.search_for_instances(study.study_uid, series["0020000E"]["Value"][0])
    ]
    (report,) = reports
    assert report["codes"]["Reader agrees with the AI result"] == "Yes"
    assert report["texts"]["Comment"] == "consolidation right lower zone"
    assert report["references"] == [sop] and 0 <= report["probability"] <= 1


# ------------------------------------------------------------------ a reading shift (issue 24)
SHIFT_FILMS = 10


@pytest.fixture(scope="module")
def shift_app(tmp_path_factory, samples):
    """Its own Orthanc holding today's ten pediatric CR studies (the first patient with a prior; the
    third already scored by the DICOM node), and the app pointing at it."""
    from datetime import date, timedelta

    from pneumonia.core.decode import load_xray
    from pneumonia.pacs.browse import send_results
    from pneumonia.pacs.results import Finding
    from pneumonia.serving.metadata import read_metadata
    from pneumonia.serving.model import DEFAULT_MODEL_DIR
    from tests.pacs_studies import day_of_studies
    from tests.servers.orthanc import running_orthanc

    day = date.today()
    tmp = tmp_path_factory.mktemp("shift")
    studies = day_of_studies(
        samples, day.strftime("%Y%m%d"), SHIFT_FILMS, "SHIFT", (day - timedelta(days=300)).strftime("%Y%m%d")
    )
    with running_orthanc(tmp / "orthanc") as server:
        for study in studies:
            load(server, study)
        client = PacsClient(load_config({}, url=server.dicomweb_url))
        scored = next(iter(studies[2].instances.values()))
        node = Finding(read_metadata(DEFAULT_MODEL_DIR).version, "balanced", 0.5, probability=0.88, label="PNEUMONIA")
        send_results(client, scored, node, load_xray(scored, "x.dcm").full_pixels(), None)
        saved = os.environ.get("PNEUMONIA_PACS_URL")
        os.environ["PNEUMONIA_PACS_URL"] = server.dicomweb_url
        try:
            with running_app(tmp) as url:
                yield url, tmp, studies
        finally:
            if saved is None:
                os.environ.pop("PNEUMONIA_PACS_URL", None)
            else:
                os.environ["PNEUMONIA_PACS_URL"] = saved


_OPEN_FILM = """() => {
  const gd = [...document.querySelectorAll('.js-plotly-plot')].find(
    g => g.layout && g.layout.meta && g.layout.meta.xray_viewer);
  return gd ? gd.layout.meta.xray_viewer : null;
}"""
_CELLS = """() => [...document.querySelectorAll('[data-testid=stMain] [data-testid=stDataFrame] [role=row]')].map(
  r => [...r.querySelectorAll('[role=gridcell]')].map(c => c.innerText).join(' | '))"""


def _row_with(page, text: str) -> str:
    """The text of the first table row (of any table on the page) holding ``text``, once there is one."""
    page.wait_for_function(f"t => ({_CELLS})().some(r => r.includes(t))", arg=text, timeout=WAIT_MS)
    return next(r for r in page.evaluate(_CELLS) if text in r)


def _open_film(page) -> str:
    page.wait_for_function(f"({_OPEN_FILM})() !== null", timeout=WAIT_MS)
    return page.evaluate(_OPEN_FILM)


@contextlib.contextmanager
def both_cores_busy():
    """Two processes spinning on the CPU for as long as the block runs (this test's own, stopped after)."""
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        yield
    finally:
        for proc in busy:
            proc.kill()
            proc.wait()


def _round_of_presses(page, key: str, start: str) -> str:
    """Press ``key`` SHIFT_FILMS times 120 ms apart (a full round); the film the page ends on."""
    for _ in range(SHIFT_FILMS):
        page.keyboard.press(key)
        page.wait_for_timeout(120)  # the reader's rhythm, not a wait for the page
    try:
        page.wait_for_function(f"s => ({_OPEN_FILM})() === s", arg=start, timeout=WAIT_MS)
    except Exception:
        settle(page)
    return page.evaluate(_OPEN_FILM)


def _timed_steps(page, start: str) -> list[float]:
    """Seconds from a J press to the next film in the viewer, for a round of presses (then back at start)."""
    seen, times = start, []
    for _ in range(SHIFT_FILMS):
        settle(page)
        t = time.perf_counter()
        page.keyboard.press("j")
        page.wait_for_function(
            f"s => {{ const f = ({_OPEN_FILM})(); return f !== null && f !== s; }}", arg=seen, timeout=WAIT_MS
        )
        times.append(round(time.perf_counter() - t, 2))
        seen = page.evaluate(_OPEN_FILM)
    assert seen == start
    return times


def test_a_shift_today_whose_film_no_lost_keys_and_a_prior(shift_app, browser):
    """Today's studies in one view with accession, patient, status and the node's probability; select
    all opens them; J ten times 120 ms apart with ten films and both cores busy ends on the film it
    started from, and so does K; the page never shows a connection error; the first patient's prior
    opens beside today's film; no identifier reaches the server log or the audit trail."""
    url, tmp, studies = shift_app
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    page.goto(url)
    first = _row_with(page, "SHIFT-001")  # today's list, without a search
    assert "unread" in first and "Rivera, Mia" in first and "08:00" in first and "2 years" in first, first
    scored = _row_with(page, "SHIFT-003")
    assert "AI result in PACS" in scored and "| 88 |" in scored, scored  # the node's probability (88%), unopened
    page.get_by_label("Reader (your name or initials; unverified)", exact=True).fill("Ada Reader")
    settle(page)
    clicked = time.perf_counter()
    page.get_by_role("button", name="Open the chosen studies").click()
    page.get_by_text("Pneumonia probability").first.wait_for(timeout=WAIT_MS)
    timings = {"open_10_studies_to_first_probability_s": round(time.perf_counter() - clicked, 2)}
    page.get_by_text(f"Worklist ({SHIFT_FILMS} scored of {SHIFT_FILMS})").wait_for(timeout=WAIT_MS)
    page.get_by_text("Rivera, Mia · ID SHIFT-PID-001").first.wait_for(timeout=WAIT_MS)  # the film's header
    row = _row_with(page, "SHIFT-002")  # the worklist row: accession, patient, age and sex, time, view
    assert "Okafor, Noah" in row and "male" in row and "08:20" in row and "AP" in row, row
    page.get_by_role("heading", name="Review chest x-rays").click()  # nothing focused that takes keys
    start = _open_film(page)
    timings["j_step_s"] = _timed_steps(page, start)
    with both_cores_busy():  # presses move the film: three J to the fourth study, three K back
        for key, lands in (("j", "accession SHIFT-004"), ("k", "accession SHIFT-001")):
            for _ in range(3):
                page.keyboard.press(key)
                page.wait_for_timeout(120)
            page.get_by_text(lands).first.wait_for(timeout=WAIT_MS)
    page.wait_for_function(f"s => ({_OPEN_FILM})() === s", arg=start, timeout=WAIT_MS)  # its film, drawn
    ends = {}
    with both_cores_busy():
        for key in ("j", "k"):
            ends[key] = _round_of_presses(page, key, start)
    assert ends == {"j": start, "k": start}, ends
    body = page.locator("body").inner_text()
    assert "Connection error" not in body and "ForwardMsg" not in body
    settle(page)
    page.get_by_text("Priors: 1 earlier chest study of this patient").click()
    page.get_by_role("button", name="Open beside today's film").click()
    page.get_by_text("Prior: ").first.wait_for(timeout=WAIT_MS)
    page.get_by_text("Prior window (width)").wait_for(timeout=WAIT_MS)
    settle(page)
    assert page.locator('[data-testid="stException"]').count() == 0
    page.screenshot(path=str(Path("/tmp/pacs_shift.png")), full_page=True)
    page.close()
    Path("/tmp/pacs_shift_timings.json").write_text(json.dumps(timings))  # measured, not asserted
    log = (tmp / "streamlit.log").read_text()
    for who in ("SHIFT-0", "Rivera", "SHIFT-PID"):
        assert who not in log


_TITLE_UNDER_TOOLBAR = """() => {
  const bar = document.querySelector('.js-plotly-plot .modebar');
  const title = [...document.querySelectorAll('.js-plotly-plot .annotation-text')].find(
    t => t.textContent.includes('Heatmap overlay'));
  if (!bar || !title) return null;
  const a = bar.getBoundingClientRect(), b = title.getBoundingClientRect();
  return !(a.right < b.left || b.right < a.left || a.bottom < b.top || b.bottom < a.top);
}"""


_PANELS = """() => [...document.querySelectorAll('.js-plotly-plot image')].map(i => {
  const r = i.getBoundingClientRect(); return [Math.round(r.width), Math.round(r.height)]; })"""


def _equal_panels_after_a_double_click(page) -> None:
    """Zoom, then double-click to reset: the two panels come back the same shape (the overlay panel was
    stretched to the full width)."""
    from tests.test_browser import _wait_for_view, _zoom_in

    settle(page)  # the film drawn after the last change: no new chart replaces the one zoomed
    _zoom_in(page)
    page.locator(".js-plotly-plot .nsewdrag").first.dblclick()
    _wait_for_view(page, "v.x1 - v.x0 > 0.99")  # the whole film again
    page.wait_for_function(
        f"() => {{ const p = ({_PANELS})(); return p.length >= 2 && p.every("  # the film twice, the heatmap
        "q => Math.abs(q[0] - p[0][0]) <= 2 && Math.abs(q[1] - p[0][1]) <= 2); }",
        timeout=WAIT_MS,
    )


def test_window_level_by_right_drag_invert_and_no_title_under_the_toolbar(shift_app, browser):
    """A right-button drag on the film sets window and level (the sliders follow and the film is drawn
    again); "Invert" swaps black and white; the chart's toolbar covers no panel title."""
    from tests.test_browser import _viewer_image_href, _wait_for_new_image

    url, _, _ = shift_app
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    page.goto(url)
    _row_with(page, "SHIFT-001")
    page.get_by_role("button", name="Open the chosen studies").click()
    before = _viewer_image_href(page)
    settle(page)
    drag = page.locator(".js-plotly-plot .nsewdrag").first
    drag.scroll_into_view_if_needed()
    box = drag.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down(button="right")
    page.mouse.move(x - 60, y - 30, steps=4)
    page.mouse.move(x - 120, y - 60, steps=4)
    page.get_by_test_id("window-level-drag").wait_for(timeout=WAIT_MS)  # the values beside the pointer
    page.mouse.up(button="right")
    page.wait_for_function(  # the sliders follow: window 256 -> 180, level 128 -> 166
        "() => { const v = [...document.querySelectorAll('[data-testid=stSliderThumbValue]')].map(t => t.innerText);"
        " return v.includes('180') && v.includes('166'); }",
        timeout=WAIT_MS,
    )
    dragged = _wait_for_new_image(page, before)
    _equal_panels_after_a_double_click(page)
    page.get_by_text("Invert", exact=True).click()
    _wait_for_new_image(page, dragged)
    page.locator(".js-plotly-plot .nsewdrag").first.hover()
    page.wait_for_function(f"({_TITLE_UNDER_TOOLBAR})() !== null", timeout=WAIT_MS)
    assert page.evaluate(_TITLE_UNDER_TOOLBAR) is False
    assert page.locator('[data-testid="stException"]').count() == 0
    page.close()
