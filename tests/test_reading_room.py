"""The reading room's library side (issue 12): DICOM context and scope, refusal wording, the ensemble
fields, the reader in the audit trail, duplicates, the reviewed column and the reader's record on the PDF."""

from __future__ import annotations

import sqlite3
from types import SimpleNamespace

import numpy as np
import pytest

from pneumonia.audit import AuditLog
from pneumonia.core.decode import age_in_years, dicom_context, load_xray
from pneumonia.core.operating_points import ThresholdChoice
from pneumonia.insight.report import (
    ReaderReview,
    duplicates,
    pdf_report,
    point_title,
    threshold_sentence,
    worklist,
)
from pneumonia.serving.explain import display_jpeg, window_level
from pneumonia.serving.gate import GateResult, scope_reasons
from pneumonia.serving.pipeline import _fill_prediction, score
from pneumonia.serving.results import ImageResult
from tests.dicom_factory import make_dicom
from tests.helpers import encode, gray_pixels
from tests.test_audit_report import _record


@pytest.mark.parametrize(
    ("text", "years"), [("045Y", 45), ("018M", 1.5), ("003D", 3 / 365.25), ("", None), ("4Z", None)]
)
def test_dicom_age_strings(text, years):
    assert age_in_years(text) == (None if years is None else pytest.approx(years))


def test_dicom_context_keeps_safe_tags_and_never_identifiers(normal_sample):
    data = make_dicom(gray_pixels(normal_sample), bits=8, age="004Y", sex="F", view="AP")
    xray = load_xray(data, "x.dcm")
    context = dicom_context(xray.metadata)
    assert context == {"Age": "4 years", "Sex": "female", "View position": "AP", "Body part": "CHEST", "Modality": "DX"}
    assert "Doe" not in repr(xray.metadata) and "MRN-123456" not in repr(xray.metadata)
    assert "ACC-987" not in repr(xray.metadata) and "20200101" not in repr(xray.metadata)


def test_scope_reasons_name_adults_lateral_views_and_other_body_parts():
    assert scope_reasons({"PatientAge": "004Y", "ViewPosition": "PA", "BodyPartExamined": "CHEST"}) == []
    adult = scope_reasons({"PatientAge": "045Y"})
    assert len(adult) == 1 and "45 years" in adult[0] and "not for adults" in adult[0]
    assert "lateral view" in scope_reasons({"ViewPosition": "LL"})[0]
    assert "ABDOMEN" in scope_reasons({"BodyPartExamined": "ABDOMEN"})[0]


@pytest.mark.parametrize(("tags", "words"), [({"age": "045Y"}, "not for adults"), ({"view": "RL"}, "lateral view")])
def test_out_of_scope_dicoms_are_refused_not_scored(classifier, normal_sample, tags, words):
    data = make_dicom(gray_pixels(normal_sample), bits=8, **tags)
    result = score(classifier, [("study.dcm", data)], 0.5)[0]
    assert not result.scored and result.label is None and words in result.reason


def test_a_child_outside_the_training_ages_is_scored_with_a_notice(classifier, normal_sample):
    data = make_dicom(gray_pixels(normal_sample), bits=8, age="012Y")
    result = score(classifier, [("study.dcm", data)], 0.5)[0]
    assert result.scored and any("12 years" in n for n in result.notices)


def test_refusals_are_in_words_with_numbers_only_in_details(classifier):
    from tests.negatives import negative_files

    refused = [r for r in score(classifier, list(negative_files().values()), 0.5) if r.gate and not r.gate.ok]
    assert refused
    for r in refused:
        words = " ".join(r.gate.reasons)
        assert "limit" not in words and "embedding" not in words and "appearance check" not in words, words
        assert r.gate.details()  # the numbers, for the page's "details" toggle


def test_decompression_bomb_message_is_for_a_reader():
    from tests.test_decode import _png_header_only

    with pytest.raises(ValueError) as err:
        load_xray(_png_header_only(9000, 9000), "bomb.png")
    assert "DOS" not in str(err.value) and "megapixels" in str(err.value)


def test_ensemble_fields_are_read_when_the_model_gives_them(normal_sample, classifier):
    xray = load_xray(normal_sample.read_bytes(), normal_sample.name)
    from pneumonia.core.preprocess import to_model_input

    x = to_model_input(xray.pixels, classifier.spec)
    pred = classifier.predict(x[None])[0]
    single = SimpleNamespace(logit=pred.logit, probability=pred.probability, embedding=pred.embedding)
    one_model = ImageResult("a", xray, x, threshold=0.5)
    _fill_prediction(classifier, one_model, single)  # a single-output model's prediction has neither field
    assert one_model.bacterial_probability is None and one_model.ensemble_spread is None
    assert not one_model.members_disagree
    ensemble = SimpleNamespace(
        logit=3.0, probability=0.95, embedding=pred.embedding, bacterial_probability=0.72, ensemble_spread=0.3
    )
    later = ImageResult("b", xray, x, threshold=0.5)
    _fill_prediction(classifier, later, ensemble)
    assert later.scored and later.members_disagree
    assert later.subtype_note.startswith("If pneumonia: bacterial 72% / viral 28%")


def test_subtype_only_when_called_pneumonia():
    r = ImageResult("n", gate=GateResult(True), probability=0.2, threshold=0.5, bacterial_probability=0.9)
    assert r.label == "NORMAL" and r.subtype_note == ""


def _scored(xray, p: float, **kw) -> ImageResult:
    return ImageResult("x", xray, gate=GateResult(True), probability=p, threshold=0.5, **kw)


def test_worklist_flags_duplicates_reviewed_and_subtype(samples):
    a = load_xray(samples[0].read_bytes(), samples[0].name)
    png = load_xray(encode(a.pixels, "PNG"), "same.png")  # the same pixels under another name and format
    b = load_xray(samples[1].read_bytes(), samples[1].name)
    results = [_scored(a, 0.9, bacterial_probability=0.7), _scored(png, 0.9), _scored(b, 0.1)]
    assert duplicates(results) == {1: [2], 2: [1]}
    df = worklist(results, reviewed={b.sha256}).set_index("item")
    assert df.loc[1, "duplicate_of"] == "2" and df.loc[3, "duplicate_of"] == ""
    assert df.loc[3, "reviewed"] and not df.loc[1, "reviewed"]
    assert df.loc[1, "bacterial_if_pneumonia"] == 0.7 and np.isnan(df.loc[3, "bacterial_if_pneumonia"])


def test_threshold_sentence_explains_a_high_probability_called_normal():
    r = ImageResult("x", gate=GateResult(True), probability=0.844, threshold=0.9)
    text = threshold_sentence(r, ThresholdChoice("balanced", 0.9, 0.98, 1.0), "Balanced")
    assert "of 84%." in text and "cut-off" in text and "90.0%" in text and text.endswith("called NORMAL.")
    assert point_title("high_sensitivity", {"high_sensitivity": {"label": "High sensitivity (misses ...)"}}) == (
        "High sensitivity"
    )


def test_pdf_carries_the_readers_record(samples):
    xray = load_xray(samples[0].read_bytes(), samples[0].name)
    r = _scored(xray, 0.8, bacterial_probability=0.6, ensemble_spread=0.2)
    review = ReaderReview("J. Smith", agrees=False, comment="atelectasis", accession="ACC-42")
    pdf = pdf_report(
        r,
        np.dstack([xray.pixels] * 3),
        model_version="v1",
        choice=ThresholdChoice("balanced", 0.5, 0.95, 0.9),
        method="Grad-CAM",
        heatmap_flat=False,
        review=review,
    )
    assert pdf.startswith(b"%PDF") and len(pdf) > 10_000


def test_audit_trail_gains_a_reader_column_and_keeps_old_databases(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:  # the first release's schema, with one row
        from pneumonia.audit import _SCHEMA

        db.executescript(_SCHEMA)
        db.execute(
            "INSERT INTO reviews (time, image_sha256, model_version, operating_point, threshold, heatmap_method, "
            "probability, label, reader_agrees, comment) VALUES ('t', ?, 'v0', 'balanced', 0.5, 'gradcam', 0.9, "
            "'PNEUMONIA', 1, 'old')",
            ("b" * 64,),
        )
    log = AuditLog(path)
    _record(log, image_sha256="c" * 64, comment="", reader="AB")
    rows = log.recent()
    assert list(rows["reader"]) == ["AB", ""] and list(rows["comment"]) == ["", "old"]
    assert log.reviewed(["b" * 64, "d" * 64]) == {"b" * 64}
    with sqlite3.connect(path) as db, pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("UPDATE reviews SET reader = 'X'")


def test_window_level_and_display_image():
    ramp = np.tile(np.arange(256, dtype=np.uint8), (64, 1))
    assert np.array_equal(window_level(ramp, 127.5, 255), ramp)
    narrow = window_level(ramp, 100, 50)
    assert narrow[0, 74] == 0 and narrow[0, 126] == 255 and 100 < narrow[0, 100] < 155
    jpeg, shape = display_jpeg(np.zeros((3000, 1500), np.uint8), max_side=1536)
    assert jpeg[:2] == b"\xff\xd8" and shape == (1536, 768)


# ------------------------------------------------------------------ the reading room, second pass (issue 20)
def test_worklist_sorts_by_number_and_its_csv_carries_the_read(samples):
    from pneumonia.insight.report import probability_percent, worklist_csv

    a = load_xray(samples[0].read_bytes(), samples[0].name)
    b = load_xray(samples[1].read_bytes(), samples[1].name)
    results = [_scored(a, 0.99996), _scored(b, 0.021)]
    assert [probability_percent(p) for p in (0.99996, 0.021, 0.00001, None)] == [99.0, 2.1, 1.0, None]
    reviews = {b.sha256: ReaderReview("AB", agrees=False)}
    df = worklist(results, reviewed={b.sha256}, reviews=reviews).set_index("item")
    assert df.loc[2, "reader_read"] == "disagree" and df.loc[1, "reader_read"] == ""
    assert "reader_read" in worklist_csv(results, reviewed={b.sha256}, reviews=reviews).decode().splitlines()[0]


def test_review_pdf_has_the_heatmaps_colour_scale(samples):
    import re
    import zlib

    from pneumonia.insight.report import colour_scale_strip

    strip = colour_scale_strip("inferno")
    assert strip.shape == (8, 256, 3) and (strip[0, 0] == 255).all()  # white at "least", as the screen's bar
    assert strip[0, -1].sum() < 3 * 255  # the colour map's own colour at "most"
    xray = load_xray(samples[0].read_bytes(), samples[0].name)
    pdf = pdf_report(
        _scored(xray, 0.8),
        np.dstack([xray.pixels] * 3),
        model_version="v1",
        choice=ThresholdChoice("balanced", 0.5, 0.95, 0.9),
        method="Grad-CAM",
        heatmap_flat=False,
        colormap="inferno",
    )
    text = "".join(
        zlib.decompress(s).decode("latin-1")
        for s in re.findall(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.S)
        if s[:1] == b"x"
    )
    assert "least" in text and "most" in text and "out-of-fold" in text and "internal split" not in text


def test_heatmap_colour_scale_fades_out_at_its_low_end():
    from pages.widgets import fading_colorscale, heatmap_trace

    for name in ("Jet", "Inferno", "Viridis", "Turbo"):
        scale = fading_colorscale(name)
        assert scale[0][1].endswith(",0.00)") and scale[-1][1].endswith(",1.00)")  # no tint where there is little
    trace = heatmap_trace(np.zeros((14, 14)), (224, 224), 0.4, "Inferno")
    assert list(trace.colorbar.ticktext) == ["least", "most"] and 0 < min(trace.colorbar.tickvals) < 0.1


def test_a_read_saved_in_another_session_opens_with_the_film(samples):
    """The worklist marks a film reviewed in another session; opening it shows that read, not an empty form."""
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    normal = next(i for i, p in enumerate(samples) if p.name.startswith("NORMAL"))
    sha = load_xray(samples[normal].read_bytes(), samples[normal].name).sha256
    AuditLog().record(
        image_sha256=sha,
        model_version="v",
        operating_point="balanced",
        threshold=0.65,
        heatmap_method="gradcam",
        probability=0.1,
        label="NORMAL",
        reader_agrees=False,
        comment="small effusion?",
        reader="CD",
    )
    page = Path(__file__).resolve().parent.parent / "pages" / "review.py"
    at = AppTest.from_file(str(page), default_timeout=180).run()
    at.selectbox(key="sample").select_index(normal + 1).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Review saved by CD in an earlier session" in s.value for s in at.success)
    assert at.radio[0].value == "Disagree"
    assert any(t.value == "small effusion?" for t in at.text_input)
