"""The review page's "Open from PACS" view run headless with AppTest against a real Orthanc: hidden
without a PACS, a search lists the study with its age, sex and views, opening it yields its images;
a query that finds nothing and a PACS that is down are said in words."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from tests.pacs_studies import load, mixed_study
from tests.servers.orthanc import free_port

TIMEOUT = 120


def view_script():
    import streamlit as st

    from pages import pacs_views

    items = pacs_views.open_from_pacs()
    st.write(f"PACS items: {len(items)}")


def run_view(monkeypatch, url: str | None) -> AppTest:
    if url is None:
        monkeypatch.delenv("PNEUMONIA_PACS_URL", raising=False)
    else:
        monkeypatch.setenv("PNEUMONIA_PACS_URL", url)
    monkeypatch.delenv("PNEUMONIA_PACS_CONFIG", raising=False)
    monkeypatch.setenv("PNEUMONIA_PACS_RETRIES", "1")
    at = AppTest.from_function(view_script, default_timeout=TIMEOUT).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def search(at: AppTest, accession: str = "", patient: str = "") -> AppTest:
    at.text_input[0].input(accession)
    at.text_input[1].input(patient)
    next(b for b in at.button if b.label == "Search the PACS").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_no_pacs_configured_shows_no_pacs_view(monkeypatch):
    at = run_view(monkeypatch, None)
    assert not at.expander and "PACS items: 0" in at.markdown[0].value


def test_search_lists_the_study_and_opens_its_chest_images(monkeypatch, orthanc, samples):
    study = load(orthanc, mixed_study(samples, "ACC-VIEW-1"))
    at = search(run_view(monkeypatch, orthanc.dicomweb_url), accession="ACC-VIEW-1")
    table = at.dataframe[0].value
    assert list(table["Accession"]) == ["ACC-VIEW-1"] and list(table["Images"]) == [6]  # CR/DX only, no CT
    assert table["Age"][0] and table["Views"][0] == "AP, LL, PA"
    next(b for b in at.button if b.label == "Open the chosen studies").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert "PACS items: 6" in at.markdown[-1].value
    assert len(study.chest()) == 6


def test_a_search_that_finds_nothing_says_so(monkeypatch, orthanc):
    at = search(run_view(monkeypatch, orthanc.dicomweb_url), accession="NOTHING-HERE")
    assert any("No chest radiographs (CR or DX) found" in i.value for i in at.info)


def test_a_pacs_that_is_down_is_said_in_words(monkeypatch):
    at = search(run_view(monkeypatch, f"http://127.0.0.1:{free_port()}/dicom-web"), accession="X")
    assert any("cannot be reached" in e.value and "PNEUMONIA_PACS_URL" in e.value for e in at.error)
