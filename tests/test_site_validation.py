"""Site validation: figures from a results file, the validation report, site operating points, and
the performance page's "your data" view (AppTest) feeding the review page's operating points."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from pneumonia.insight.site_report import point_table, validation_pdf
from pneumonia.insight.site_validation import validate
from pneumonia.serving import site_points
from pneumonia.serving.metadata import read_metadata
from pneumonia.serving.model import DEFAULT_MODEL_DIR

PAGES = Path(__file__).resolve().parent.parent / "pages"
META = read_metadata(DEFAULT_MODEL_DIR)


def _results(n: int = 60, seed: int = 0) -> pd.DataFrame:
    """A results table as the score command writes it: separable but imperfect scores."""
    rng = np.random.default_rng(seed)
    truth = np.arange(n) % 2
    prob = np.clip(0.3 + 0.45 * truth + rng.normal(0, 0.2, n), 0.001, 0.999)
    names = [f"{'PNEUMONIA' if t else 'NORMAL'}/img{i:03d}.jpeg" for i, t in enumerate(truth)]
    return pd.DataFrame(
        {
            "file": names,
            "status": "scored",
            "probability": prob,
            "probability_ungated": prob,
            "gate_ok": True,
            "truth": truth,
        }
    )


def test_site_figures_and_report():
    sv = validate(_results(), META.operating_points, META.default_operating_point, META.version, prevalence=0.1)
    assert sv.counts["labelled"] == 60 and sv.prevalence == 0.1
    assert 0.5 < sv.roc["auc"] <= 1 and sv.roc["auc_ci"][0] <= sv.roc["auc"] <= sv.roc["auc_ci"][1]
    assert list(sv.shipped["operating point"]) == list(META.operating_points)
    assert len(sv.rechosen) == 3 and sv.rechosen["threshold"].is_monotonic_increasing
    table = point_table(sv.shipped, shipped=True)
    assert {"training pool (sens. / spec.)", "your sensitivity", "PPV", "NPV"} <= set(table.columns)
    # every interval at least as wide as the Wilson interval of its counts
    for lo_hi in list(sv.shipped["sensitivity 95% CI"]) + list(sv.shipped["specificity 95% CI"]):
        assert lo_hi[1] - lo_hi[0] > 0.05
    pdf = validation_pdf(sv, acceptance="Balanced: MEETS the site's acceptance")
    assert pdf.startswith(b"%PDF") and len(pdf) > 2000
    text = _pdf_text(pdf)
    assert "How this local validation was to be run" in text and "Who sets the truth" in text  # for the board
    assert "Acceptance: Balanced: MEETS" in text


def test_too_few_labels_give_counts_only():
    sv = validate(_results().head(3), META.operating_points, META.default_operating_point, META.version)
    assert sv.metrics is None and sv.counts["files"] == 3
    assert validation_pdf(sv).startswith(b"%PDF")


def _pdf_text(pdf: bytes) -> str:
    """The text drawing commands of an fpdf2 PDF (its content streams are deflated)."""
    import re
    import zlib

    streams = re.findall(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.S)
    out = []
    for raw in streams:
        try:
            out.append(zlib.decompress(raw).decode("latin-1"))
        except zlib.error:
            continue
    return "\n".join(out)


def test_resampled_intervals_equal_the_bootstrap_they_replace():
    """The page's weighted resamples give bootstrap_ci's intervals exactly (same draws), far faster."""
    from pneumonia.core.metrics import bootstrap_ci
    from pneumonia.insight.site_validation import Resamples, resampled_ci

    rng = np.random.default_rng(3)
    y, p, groups = rng.integers(0, 2, 300), np.round(rng.random(300), 2), rng.integers(0, 120, 300)  # ties too
    expected = bootstrap_ci(y, p, 0.5, groups=groups, n_boot=200)
    got = resampled_ci(Resamples(y, p, groups, 200), 0.5, tuple(expected))
    for key in expected:
        assert np.allclose(expected[key], got[key], atol=1e-12), key


def test_a_prevalence_change_reweighs_ppv_and_npv_only():
    sv = validate(_results(), META.operating_points, META.default_operating_point, META.version)
    again = sv.at_prevalence(0.05)
    direct = validate(_results(), META.operating_points, META.default_operating_point, META.version, prevalence=0.05)
    assert again.prevalence == 0.05 and again.roc is sv.roc
    pd.testing.assert_frame_equal(again.shipped, direct.shipped)
    pd.testing.assert_frame_equal(again.rechosen, direct.rechosen)


def test_a_small_sample_is_marked_not_for_clinical_use_in_the_report():
    small = validate(_results(40), META.operating_points, META.default_operating_point, META.version)
    assert not small.enough_to_adopt
    text = _pdf_text(validation_pdf(small))
    assert "NOT FOR CLINICAL USE" in text and "ROC on your images" in text  # the warning and the charts
    large = validate(_results(240), META.operating_points, META.default_operating_point, META.version)
    assert large.enough_to_adopt and "NOT FOR CLINICAL USE" not in _pdf_text(validation_pdf(large))


def test_site_points_need_enough_images_of_each_class_and_live_beside_the_audit(monkeypatch, tmp_path):
    with pytest.raises(ValueError, match="at least 100 of each"):
        site_points.save_site_point(
            "Twenty", 0.96, model_version=META.version, sensitivity=1.0, specificity=1.0, n_pneumonia=10, n_normal=10
        )
    path = Path(os.environ["PNEUMONIA_SITE_POINTS"])
    assert not path.exists()
    # a point saved before the counts were kept (or edited in by hand) is never offered
    path.write_text(
        json.dumps(
            {
                "points": [
                    {
                        "key": "site_x",
                        "name": "x",
                        "threshold": 0.9,
                        "model_version": META.version,
                        "sensitivity": 1,
                        "specificity": 1,
                        "n": 20,
                    }
                ]
            }
        )
    )
    assert site_points.operating_points(META) == META.operating_points
    monkeypatch.delenv("PNEUMONIA_SITE_POINTS")
    monkeypatch.setenv("PNEUMONIA_AUDIT_DB", str(tmp_path / "records" / "audit.sqlite"))
    assert site_points.default_path() == tmp_path / "records" / "site_operating_points.json"


def test_site_points_belong_to_their_model_version():
    key = site_points.save_site_point(
        "Our ED", 0.42, model_version=META.version, sensitivity=0.97, specificity=0.8, n_pneumonia=150, n_normal=150
    )
    site_points.save_site_point(
        "Old", 0.5, model_version="0.0.1", sensitivity=0.9, specificity=0.9, n_pneumonia=100, n_normal=100
    )
    points = site_points.operating_points(META)
    assert list(points)[: len(META.operating_points)] == list(META.operating_points)
    assert key == "site_our_ed" and points[key]["threshold"] == 0.42 and "site_old" not in points
    assert site_points.resolve(META, key).validation_sensitivity == 0.97
    with pytest.raises(ValueError):
        site_points.save_site_point(
            "  ", 0.5, model_version=META.version, sensitivity=1, specificity=1, n_pneumonia=200, n_normal=200
        )
    Path(os.environ["PNEUMONIA_SITE_POINTS"]).write_text("{not json")
    assert site_points.operating_points(META) == META.operating_points  # a damaged file offers none


def test_your_data_view_scores_a_folder_and_saves_a_site_point(samples, tmp_path, monkeypatch):
    folder = tmp_path / "site"
    for p in samples:
        (folder / p.name.split("_")[0]).mkdir(parents=True, exist_ok=True)
        shutil.copy(p, folder / p.name.split("_")[0] / p.name)
    monkeypatch.setenv("PNEUMONIA_SERVER_FOLDERS", str(tmp_path))  # folders are scored only under a named root
    at = AppTest.from_file(str(PAGES / "performance.py"), default_timeout=180).run()
    at.radio(key="performance_view").set_value("Your data").run()
    at.radio(key="site_source").set_value("Score a folder on this server").run()
    at.text_input(key="site_folder").input(str(folder)).run()
    next(b for b in at.button if b.label == "Score this folder").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert next(m.value for m in at.metric if m.label == "Files") == str(len(samples))
    assert len(at.get("plotly_chart")) == 2
    assert any("AUC" in c.value for c in at.caption)
    tables = [m.value for m in at.markdown if m.value.startswith("| operating point |")]
    assert len(tables) == 2  # the shipped points and the re-chosen ones, as tables that wrap
    # ten sample images: shown, marked not for clinical use, and no way to save them
    assert any("NOT FOR CLINICAL USE" in h.value for h in at.subheader)
    # no interval of zero width, and a small-sample warning on every figure (counts, ROC, calibration, table)
    shown = [c.value for c in at.caption] + tables
    assert not any(z in text for text in shown for z in ("1.000-1.000", "100.0%-100.0%", "(100.0-100.0%)"))
    small = [w.value for w in at.warning if w.value.startswith("Small sample")]
    assert len(small) >= 3, [w.value for w in at.warning]  # above the ROC, the calibration and the table
    assert all("Small sample" in c.value for c in at.caption if "AUC" in c.value or "calibration error" in c.value)
    ppv_cells = [row.split(" | ")[-2] for row in tables[0].splitlines()[2:]]
    assert ppv_cells and all("(" in cell for cell in ppv_cells)  # PPV 100.0% never without its range
    header = tables[0].splitlines()[0]
    assert (
        "held-out test split (sens. / spec.)" in header or "training pool, held-out pending (sens. / spec.)" in header
    )
    assert any("acceptance" in m.value for m in [*at.warning, *at.success])
    assert not any(b.label == "Save site operating point" for b in at.button)
    review = AppTest.from_file(str(PAGES / "review.py"), default_timeout=180).run()
    assert not any(o.startswith("Site:") for o in review.selectbox(key="operating_point").options)
    # with the rule's minimum lowered to what these ten images have, saving works end to end
    monkeypatch.setattr(site_points, "MIN_PER_CLASS", 4)
    at.run()
    assert not any("NOT FOR CLINICAL USE" in h.value for h in at.subheader)
    at.text_input(key="site_point_name").input("Our clinic")
    next(b for b in at.button if b.label == "Save site operating point").click().run()
    assert any("Site: Our clinic" in s.value for s in at.success), [e.value for e in at.exception]
    saved = json.loads(Path(os.environ["PNEUMONIA_SITE_POINTS"]).read_text())["points"]
    assert [p["key"] for p in saved] == ["site_our_clinic"]
    review = AppTest.from_file(str(PAGES / "review.py"), default_timeout=180).run()
    assert "Site: Our clinic" in review.selectbox(key="operating_point").options
