"""A reading shift from a real Orthanc (issue 24), the library side: today's studies with whose they
are and when, in time or AI-probability order, results already in the PACS found by QIDO with the
node's probability, a patient's priors; the SR's reader as a DICOM person name, the SC at >= 1024 px
with the result burned in, the study's description kept; the PDF carries the study's accession and
the screen's colour scale; no identifier in the default CSV."""

from __future__ import annotations

import re
import zlib
from datetime import date, datetime

import numpy as np
import pytest

from pneumonia.core.decode import load_xray
from pneumonia.core.operating_points import ThresholdChoice
from pneumonia.insight.report import colour_scale_strip, pdf_report, worklist_csv
from pneumonia.pacs.browse import (
    find_chest_studies,
    last_day,
    look_up_results,
    order_studies,
    priors,
    send_results,
    since,
    today,
)
from pneumonia.pacs.config import load_config
from pneumonia.pacs.dicomweb import PacsClient, StudyQuery
from pneumonia.pacs.identity import film_identity, person_name_words
from pneumonia.pacs.results import (
    SC_MIN_SIDE,
    Finding,
    ReaderRead,
    heatmap_picture,
    person_name,
    read_report,
    result_objects,
)
from pneumonia.serving.gate import GateResult
from pneumonia.serving.results import ImageResult
from tests.pacs_studies import day_of_studies, load
from tests.test_pacs import stored_objects

DAY = "20250612"


@pytest.fixture(scope="module")
def shift(orthanc, samples):
    """Five studies of one day (the first patient with a prior of a year before) in the test Orthanc."""
    studies = day_of_studies(samples, DAY, 5, "SHIFT", prior_date="20240610")
    for study in studies:
        load(orthanc, study)
    return studies


@pytest.fixture(scope="module")
def pacs(orthanc) -> PacsClient:
    return PacsClient(load_config({}, url=orthanc.dicomweb_url))


def test_the_days_studies_say_whose_and_when(shift, pacs):
    day = date(2025, 6, 12)
    found = find_chest_studies(pacs, StudyQuery(date_from=day, date_to=day))
    mine = [s for s in found if s.accession.startswith("SHIFT-") and s.accession != "SHIFT-PRIOR"]
    assert len(mine) == 5
    first = next(s for s in mine if s.accession == "SHIFT-001")
    assert (first.patient_name, first.patient_id, first.when) == ("Rivera, Mia", "SHIFT-PID-001", "2025-06-12 08:00")
    assert first.facts()["Age"] == "2 years" and first.facts()["Sex"] == "female" and first.facts()["Views"] == "PA"
    assert [s.accession for s in order_studies(mine, "time")] == [f"SHIFT-{i:03d}" for i in range(1, 6)]
    assert first.status() == "unread"


def test_today_and_the_last_24_hours_are_one_query_each():
    noon = datetime(2025, 6, 12, 12, 0)
    assert today(noon).filters() == {"StudyDate": "20250612-20250612"}
    query, moment = last_day(noon)
    assert query.filters() == {"StudyDate": "20250611-20250612"} and moment == datetime(2025, 6, 11, 12, 0)


def test_results_in_the_pacs_are_found_with_their_probability_and_order_the_list(shift, pacs, samples):
    day = date(2025, 6, 12)
    found = [s for s in find_chest_studies(pacs, StudyQuery(date_from=day, date_to=day)) if s.accession[:6] == "SHIFT-"]
    third = next(s for s in found if s.accession == "SHIFT-003")
    data = next(iter(shift[2].instances.values()))
    finding = Finding("vtest", "balanced", 0.5, probability=0.91, label="PNEUMONIA")
    pixels = load_xray(data, "x.dcm").full_pixels()
    assert send_results(pacs, data, finding, pixels, np.ones((7, 7), np.float32))
    look_up_results(pacs, found, "vtest")
    assert third.results_in_pacs == 1 and third.probability == pytest.approx(0.91) and third.status() != "unread"
    assert all(s.results_in_pacs == 0 and s.probability is None for s in found if s is not third)
    assert order_studies(found, "probability")[0] is third  # the likeliest pneumonia read first
    # the study's description is kept after the results went in
    found_again = find_chest_studies(pacs, StudyQuery(accession="SHIFT-003"))
    assert found_again[0].description == "XR CHEST 1 VIEW"


def test_the_sc_shows_the_result_at_1024_px_or_more(shift, orthanc, pacs):
    data = next(iter(shift[3].instances.values()))
    read = ReaderRead("Ada Reader", True, "")
    finding = Finding("vtest", "balanced", 0.5, probability=0.27, label="NORMAL", read=read)
    send_results(pacs, data, finding, load_xray(data, "x.dcm").full_pixels(), None)
    (sc,) = stored_objects(orthanc, shift[3].study_uid, "OT") or stored_objects(orthanc, shift[3].study_uid, "SC")
    assert max(int(sc.Rows), int(sc.Columns)) >= SC_MIN_SIDE
    assert "27%" in sc.ImageComments and "NORMAL" in sc.ImageComments and "balanced" in sc.ImageComments
    assert "vtest" in sc.ImageComments and sc.StudyDescription == "XR CHEST 1 VIEW"
    (sr,) = stored_objects(orthanc, shift[3].study_uid, "SR")
    person = next(
        item
        for item in sr.ContentSequence
        if getattr(item, "ValueType", "") == "PNAME" and "Reader" in str(item.PersonName)
    )
    assert str(person.PersonName) == "Reader^Ada"
    assert read_report(sr)["codes"]["Reader agrees with the AI result"] == "Yes"


def test_the_burned_in_words_are_in_the_pixels():
    small = np.full((256, 252), 90, np.uint8)
    finding = Finding("v9", "balanced", 0.5, probability=0.8, label="PNEUMONIA")
    plain = heatmap_picture(small, None, "v9")
    with_result = heatmap_picture(small, None, "v9", finding=finding)
    assert max(plain.shape[:2]) >= SC_MIN_SIDE and with_result.shape[0] > plain.shape[0]  # a second line of words


@pytest.mark.parametrize(
    ("typed", "dicom"),
    [("Ada Reader", "Reader^Ada"), ("Reader, Ada", "Reader^Ada"), ("AB", "AB"), ("Lovelace^Ada", "Lovelace^Ada")],
)
def test_the_readers_name_is_a_dicom_person_name(typed, dicom):
    assert person_name(typed) == dicom


def test_a_patients_priors_are_found(shift, pacs):
    today_study = shift[0]
    found = priors(pacs, today_study.patient_id, today_study.study_uid)
    assert [s.accession for s in found] == ["SHIFT-PRIOR"] and found[0].date == "2024-06-10"
    assert priors(pacs, shift[1].patient_id, shift[1].study_uid) == []


def test_since_keeps_the_last_24_hours(shift, pacs):
    found = find_chest_studies(pacs, StudyQuery(accession="SHIFT-005"))
    assert since(found, datetime(2025, 6, 12, 9, 0)) == found  # 09:20
    assert since(found, datetime(2025, 6, 12, 9, 30)) == []


def test_identity_reads_the_header_for_the_screen_and_the_pdf(shift, samples):
    who = film_identity(next(iter(shift[0].instances.values())))
    assert who.accession == "SHIFT-001" and who.patient_name == "Rivera, Mia" and who.patient_id == "SHIFT-PID-001"
    assert who.when == "2025-06-12 08:00" and who.view == "PA" and who.age_sex == "2 years female"
    assert "Rivera, Mia" in who.header_line() and "accession SHIFT-001" in who.header_line()
    assert film_identity(samples[0].read_bytes()) is None  # a JPEG has no identity
    assert person_name_words("Doe^Jane^Q") == "Doe, Jane Q"


def _pdf_text(pdf: bytes) -> str:
    return "".join(
        zlib.decompress(s).decode("latin-1")
        for s in re.findall(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.S)
        if s[:1] == b"x"
    )


def test_pdf_carries_the_studys_accession_and_the_screens_colour_scale(shift):
    data = next(iter(shift[0].instances.values()))
    xray = load_xray(data, "film.dcm")
    result = ImageResult("film.dcm", xray, gate=GateResult(True), probability=0.7, threshold=0.5)
    pdf = pdf_report(
        result,
        np.dstack([xray.pixels] * 3),
        model_version="v1",
        choice=ThresholdChoice("balanced", 0.5, 0.95, 0.9),
        method="Grad-CAM",
        heatmap_flat=False,
        identity=film_identity(data).fields(),
    )
    text = _pdf_text(pdf)
    assert "SHIFT-001" in text and "Rivera, Mia" in text and "2025-06-12 08:00" in text
    strip = colour_scale_strip("jet")
    assert (strip[0, 0] == 255).all() and strip[0, -1].tolist() != [255, 255, 255]  # white to colour, as on screen


def test_the_default_csv_holds_no_identifier(shift):
    data = next(iter(shift[0].instances.values()))
    xray = load_xray(data, "film.dcm")
    result = ImageResult("Rivera_Mia.dcm", xray, gate=GateResult(True), probability=0.7, threshold=0.5)
    who = {xray.sha256: film_identity(data).as_dict()}
    default = worklist_csv([result], identities=who).decode()
    assert "SHIFT" not in default and "Rivera" not in default and "Mia" not in default
    asked = worklist_csv([result], include_names=True, identities=who).decode()
    assert "SHIFT-001" in asked and "Rivera, Mia" in asked


def test_the_sr_and_sc_pass_tools_we_did_not_write(tmp_path):
    """dicom3tools' dciodvfy finds no Error in the SR or the SC, and DCMTK's dsrdump reads the SR with the
    reader's name and the AI result (Debian's dicom3tools and dcmtk, installed by .ci/run)."""
    import io
    import shutil
    import subprocess

    import pydicom
    from pydicom.uid import generate_uid

    from tests.dicom_factory import make_dicom
    from tests.pacs_studies import PacsStudy, to_pacs_instance

    if not (shutil.which("dciodvfy") and shutil.which("dsrdump")):
        pytest.skip("dicom3tools and dcmtk are not installed (.ci/run installs them)")
    study = PacsStudy("ACC-1", "MRN-1", generate_uid(), "20261203", description="XR CHEST 1 VIEW")
    film = make_dicom(np.full((512, 512), 100, np.uint16), view="PA", age="003Y", sex="F")
    source = pydicom.dcmread(io.BytesIO(to_pacs_instance(film, study, "CR", generate_uid(), 1)))
    finding = Finding(
        "vtest", "balanced", 0.5, probability=0.27, label="NORMAL", read=ReaderRead("Ada Reader", True, "")
    )
    picture = heatmap_picture(np.full((512, 512), 90, np.uint8), None, "vtest", finding=finding)
    for i, made in enumerate(result_objects(source, finding, picture)):
        path = tmp_path / f"result{i}.dcm"
        made.save_as(path, enforce_file_format=True)
        checked = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
        errors = [line for line in (checked.stdout + checked.stderr).splitlines() if line.startswith("Error")]
        assert not errors, (made.Modality, errors)
    dumped = subprocess.run(["dsrdump", str(tmp_path / "result0.dcm")], capture_output=True, text=True, timeout=60)
    assert dumped.returncode == 0, dumped.stderr
    assert "Reader^Ada" in dumped.stdout and "XR CHEST 1 VIEW" in dumped.stdout
