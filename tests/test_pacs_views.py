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


# ------------------------------------------------------------------ a reading shift (issue 24)
def review_page(monkeypatch, url: str) -> AppTest:
    from pathlib import Path

    monkeypatch.setenv("PNEUMONIA_PACS_URL", url)
    monkeypatch.delenv("PNEUMONIA_PACS_CONFIG", raising=False)
    page = Path(__file__).resolve().parent.parent / "pages" / "review.py"
    at = AppTest.from_file(str(page), default_timeout=240).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_the_page_starts_on_todays_studies_and_opens_them_all_with_whose_film_it_is(monkeypatch, orthanc, samples):
    """Today's studies listed at once with status, time, accession and patient; "select all" opens them
    in one click; the worklist, the film's header, the read form and the priors say whose film it is;
    the audit trail and the default CSV hold no identifier."""
    from datetime import date, timedelta

    from pneumonia.audit import AuditLog
    from tests.pacs_studies import day_of_studies

    day = date.today()
    studies = day_of_studies(
        samples, day.strftime("%Y%m%d"), 3, "TODAY", (day - timedelta(days=400)).strftime("%Y%m%d")
    )
    for study in studies:
        load(orthanc, study)
    at = review_page(monkeypatch, orthanc.dicomweb_url)
    listed = at.dataframe[0].value
    assert list(listed["Accession"]) == ["TODAY-001", "TODAY-002", "TODAY-003"]  # today's, by time; not the prior
    assert list(listed["Status"]) == ["unread"] * 3 and listed["Patient"][0] == "Rivera, Mia"
    assert at.checkbox(key="pacs_select_all").value
    next(b for b in at.button if b.label == "Open the chosen studies").click().run()
    assert not at.exception, [e.value for e in at.exception]
    worklist = next(d.value for d in at.dataframe if "accession" in d.value.columns)
    assert {"TODAY-001", "TODAY-002", "TODAY-003"} == set(worklist["accession"])
    assert "Rivera, Mia" in set(worklist["patient"]) and worklist["study_time"].str.startswith(day.isoformat()).all()
    header = " ".join(m.value for m in at.markdown)
    assert "TODAY\\-00" in header  # the film's header line (Markdown-literal)
    accession = next(t for t in at.text_input if t.label.startswith("Accession or study reference"))
    assert accession.value.startswith("TODAY-00")
    if accession.value == "TODAY-001":  # the first patient has a prior
        assert any("Priors: 1 earlier chest study" in e.label for e in at.expander)
    at.radio(key="pacs_order").set_value("AI probability").run()
    assert not at.exception, [e.value for e in at.exception]
    from pages.identity import TYPED_READER_KEY

    at.text_input(key=TYPED_READER_KEY).input("Ada Reader").run()
    form = next(r for r in at.radio if r.label == "Do you agree with the model?")
    form.set_value("Agree")
    next(b for b in at.button if b.label == "Save review").click().run()
    assert not at.exception, [e.value for e in at.exception]
    audit = AuditLog().to_csv()
    audit = audit.decode() if isinstance(audit, bytes) else audit
    assert "TODAY" not in audit and "Rivera" not in audit and len(AuditLog().recent(10)) == 1
    # a refresh finds a new arrival and keeps the open films, the open film and the read; the read study
    # now says "read here"
    shown = next(t for t in at.text_input if t.label.startswith("Accession or study reference")).value
    later = day_of_studies(samples, day.strftime("%Y%m%d"), 4, "TODAY")[3]
    load(orthanc, later)
    next(b for b in at.button if b.label == "Refresh").click().run()
    assert not at.exception, [e.value for e in at.exception]
    listed = at.dataframe[0].value.set_index("Accession")
    assert "TODAY-004" in listed.index and listed.loc[shown, "Status"] == "read here"
    assert next(t for t in at.text_input if t.label.startswith("Accession or study reference")).value == shown
    assert len(next(d.value for d in at.dataframe if "accession" in d.value.columns)) == 3
