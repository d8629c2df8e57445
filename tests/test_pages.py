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
    assert _metric(at, "Result at this operating point") in ("NORMAL", "PNEUMONIA")
    for op in ("high_sensitivity", "balanced", "high_specificity"):
        at.selectbox(key="operating_point").select(op).run()
        threshold = classifier.threshold(op)
        assert _metric(at, "Threshold") == f"{threshold:.3f}"  # from the model metadata
        assert _metric(at, "Pneumonia probability") == prob  # the probability does not depend on the threshold
        p = float(prob.strip("<>%")) / 100
        if abs(p - threshold) > 0.002:
            assert _metric(at, "Result at this operating point") == ("PNEUMONIA" if p >= threshold else "NORMAL")
    at.selectbox(key="method").select("gradcam++").run()
    assert not at.exception, [e.value for e in at.exception]


def test_review_page_saves_a_review_to_the_audit_trail():
    from pneumonia.audit import AuditLog

    at = run_page("review.py")
    at.selectbox(key="sample").select_index(1).run()
    at.radio(key="agree").set_value("Disagree")
    at.text_input(key="comment").input("looks normal to me")
    next(b for b in at.button if b.label == "Save review").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Review saved" in s.value for s in at.success)
    rows = AuditLog().recent()
    assert len(rows) == 1
    row = rows.iloc[0]
    assert row["comment"] == "looks normal to me" and not row["reader_agrees"]
    assert len(row["image_sha256"]) == 64 and row["heatmap_method"] == "gradcam"


def test_eda_page():
    at = run_page("eda.py")
    assert at.title[0].value == "The data set"
    assert len(at.get("plotly_chart")) >= 7
    assert any("class weights" in c.value for c in at.caption)


def test_performance_page_threshold_moves_the_confusion_matrix():
    at = run_page("performance.py")
    assert "internal test split" in at.warning[0].value
    low = (_metric(at, "Sensitivity"), _metric(at, "Specificity"))
    at.slider(key="threshold").set_value(0.99).run()
    high = (_metric(at, "Sensitivity"), _metric(at, "Specificity"))
    assert low != high
    assert float(high[0].rstrip("%")) <= float(low[0].rstrip("%"))
    assert float(high[1].rstrip("%")) >= float(low[1].rstrip("%"))
    at.number_input(key="prevalence").set_value(0.05).run()
    assert "5%" in next(m.label for m in at.metric if m.label.startswith("PPV / NPV at"))


def test_model_card_page():
    at = run_page("model_card.py")
    text = " ".join(m.value for m in at.markdown)
    for phrase in ("Intended use", "aged 1 to 5", "Known limitations", "not localisation", "fingerprint"):
        assert phrase in text
