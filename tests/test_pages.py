"""Each Streamlit page run headless with AppTest: no exception, key elements present, controls work."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

PAGES = Path(__file__).resolve().parent.parent / "pages"
TIMEOUT = 180  # the first run loads TensorFlow and the model


def run_page(name: str) -> AppTest:
    at = AppTest.from_file(str(PAGES / name), default_timeout=TIMEOUT).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _text_input(at: AppTest, label_start: str):
    return next(t for t in at.text_input if t.label.startswith(label_start))


def _metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_app_registers_every_page():
    at = AppTest.from_file(str(PAGES.parent / "app.py"), default_timeout=TIMEOUT).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Review chest x-rays"


def test_review_page_scores_a_sample_and_follows_the_operating_point(samples, classifier):
    at = run_page("review.py")
    assert "Upload" in at.info[0].value
    names = [p.name for p in samples]
    pneumonia = next(i for i, n in enumerate(names) if n.startswith("PNEUMONIA"))
    at.selectbox(key="sample").select_index(pneumonia + 1).run()
    assert not at.exception, [e.value for e in at.exception]
    prob = _metric(at, "Pneumonia probability")
    assert prob.endswith("%")
    assert _metric(at, "Result") in ("NORMAL", "PNEUMONIA")
    assert any("is a cut-off on that probability" in m.value for m in at.markdown)
    for op in ("high_sensitivity", "balanced", "high_specificity"):
        at.selectbox(key="operating_point").select(op).run()
        threshold = classifier.threshold(op)
        assert _metric(at, "Threshold") == f"{threshold:.1%}"  # from the model metadata, worded as elsewhere
        assert _metric(at, "Pneumonia probability") == prob  # the probability does not depend on the threshold
        p = float(prob.strip("<>%")) / 100
        if abs(p - threshold) > 0.002:
            assert _metric(at, "Result") == ("PNEUMONIA" if p >= threshold else "NORMAL")
    at.selectbox(key="method").select("gradcam++").run()
    assert not at.exception, [e.value for e in at.exception]
    # the sample pneumonia film is called pneumonia: the heatmap can explain bacterial vs viral too
    assert _metric(at, "Result") == "PNEUMONIA"
    at.selectbox(key="explain_output").select(1).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("bacterial (rather than viral) score" in c.value for c in at.caption)
    at.slider(key="level").set_value(90).run()
    at.slider(key="window").set_value(120).run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.get("plotly_chart")) == 1  # the viewer


def test_review_page_builds_the_pdf_only_when_asked(samples):
    at = run_page("review.py")
    at.selectbox(key="sample").select_index(1).run()
    assert not any(b.label == "Download report (PDF)" for b in at.get("download_button"))
    next(b for b in at.button if b.label == "Prepare report (PDF)").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(b.label == "Download report (PDF)" for b in at.get("download_button"))


def test_review_page_saves_a_review_with_the_reader_and_keeps_it():
    from pneumonia.audit import AuditLog

    at = run_page("review.py")
    at.selectbox(key="sample").select_index(1).run()
    at.text_input(key="reader").input("AB").run()
    assert at.radio[0].value is None  # no read is pre-selected
    next(b for b in at.button if b.label == "Save review").click().run()
    assert any("Choose Agree or Disagree" in e.value for e in at.error)
    assert len(AuditLog().recent()) == 0
    at.text_input(key="reader").input("").run()
    form_radio = at.radio[0]
    form_radio.set_value("Disagree")
    _text_input(at, "Comment").input("looks normal to me")
    next(b for b in at.button if b.label == "Save review").click().run()
    assert any("Reader" in e.value for e in at.error)  # no reader yet: nothing saved
    assert len(AuditLog().recent()) == 0
    at.text_input(key="reader").input("AB").run()
    at.radio[0].set_value("Disagree")
    _text_input(at, "Comment").input("looks normal to me")
    _text_input(at, "Accession").input("ACC-1")
    next(b for b in at.button if b.label == "Save review").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Review saved by AB" in s.value for s in at.success)
    rows = AuditLog().recent()
    assert len(rows) == 1
    row = rows.iloc[0]
    assert row["comment"] == "looks normal to me" and not row["reader_agrees"] and row["reader"] == "AB"
    assert len(row["image_sha256"]) == 64 and row["heatmap_method"] == "gradcam"
    assert "ACC-1" not in AuditLog().to_csv().decode()  # the accession goes on the PDF only
    at.run()  # the choice persists after saving
    assert at.radio[0].value == "Disagree" and _text_input(at, "Comment").value == "looks normal to me"


def test_eda_page():
    at = run_page("eda.py")
    assert at.title[0].value == "The data set"
    assert len(at.get("plotly_chart")) >= 7
    assert any("class weights" in c.value for c in at.caption)


def test_performance_page_threshold_moves_the_confusion_matrix():
    from pneumonia.serving.metadata import read_metadata
    from pneumonia.serving.model import DEFAULT_MODEL_DIR

    meta = read_metadata(DEFAULT_MODEL_DIR)
    at = run_page("performance.py")
    text = " ".join(m.value for m in at.markdown)
    # the held-out figures lead (or say they are pending); the training pool's are labelled as such
    assert "never saw" in text or "Held-out measurement pending" in at.warning[0].value
    assert "on the training pool" in text.lower() or "training pool" in text
    assert any("no basis for prescribing" in w.value for w in at.warning)  # the subtype section says it
    captions = " ".join(c.value for c in at.caption)
    # every number that differs from the headline says why
    assert "by sampling alone" in captions and "hard normals, reported apart" in captions
    assert "Framing is harder still" in captions
    default = meta.operating_points[meta.default_operating_point]
    assert f"threshold {default['threshold']:.1%}" in text  # the default point as the other pages word it
    assert at.slider(key="threshold").value == round(default["threshold"] * 100, 1)
    low = (_metric(at, "Sensitivity").split(" (")[0], _metric(at, "Specificity").split(" (")[0])
    # the training pool's figures at the default point, exactly
    assert low == (f"{default['validation_sensitivity']:.1%}", f"{default['validation_specificity']:.1%}")
    assert any(c.value.startswith("95% CI") for c in at.caption)  # each rate with its Wilson interval
    at.slider(key="threshold").set_value(99.0).run()
    high = (_metric(at, "Sensitivity").split(" (")[0], _metric(at, "Specificity").split(" (")[0])
    assert low != high
    assert float(high[0].rstrip("%")) <= float(low[0].rstrip("%"))
    assert float(high[1].rstrip("%")) >= float(low[1].rstrip("%"))
    at.number_input(key="prevalence").set_value(0.05).run()
    assert "5%" in next(m.label for m in at.metric if m.label.startswith("PPV / NPV at"))


def test_external_figures_belong_to_their_model_version(tmp_path):
    import dataclasses
    import json

    from pneumonia.insight.external_test import external_test
    from pneumonia.serving.metadata import read_metadata
    from pneumonia.serving.model import DEFAULT_MODEL_DIR

    meta = read_metadata(DEFAULT_MODEL_DIR)
    flat = {"model_version": meta.version, "n": 624, "accuracy": 0.944, "sensitivity": 0.99, "specificity": 0.86}
    (tmp_path / "external_test.json").write_text(json.dumps(flat))  # the older one-version file still reads
    assert external_test(tmp_path, meta)["accuracy"] == 0.944
    (tmp_path / "external_test.json").write_text(json.dumps({**flat, "model_version": "another"}))
    assert external_test(tmp_path, meta) is None  # never shown as another model's
    (tmp_path / "external_test.json").write_text(json.dumps({"schema": 2, "versions": {"another": flat}}))
    assert external_test(tmp_path, meta) is None
    assert external_test(tmp_path / "none", meta) is None
    official = {"n": 10, "accuracy": 0.9, "roc_auc": 0.9, "sensitivity": 0.9, "specificity": 0.9}
    assert external_test(tmp_path, dataclasses.replace(meta, official_test=official)) == official


def test_model_card_page():
    at = run_page("model_card.py")
    text = " ".join(m.value for m in at.markdown)
    for phrase in (
        "Intended use",
        "aged 1 to 5",
        "Known limitations",
        "not localisation",
        "fingerprint",
        "The training pool's figures",
        "What the heatmap means",
        "Where each figure's films come from",
        "Accountability",
        "Using it safely",
    ):
        assert phrase in text, phrase
    assert text.index("Model ") < text.index("Intended use")  # the board summary first
