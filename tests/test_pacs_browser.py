"""The review page against a real Orthanc in headless Chromium: open a study from the PACS, see its
result, save a read and send the results back; the SR in Orthanc carries the read."""

from __future__ import annotations

import os
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
    assert page.get_by_text("1 image(s)").count() >= 1  # the found study, ready to open
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
