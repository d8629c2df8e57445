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
    assert {"shipped sensitivity", "your sensitivity", "PPV", "NPV"} <= set(table.columns)
    pdf = validation_pdf(sv)
    assert pdf.startswith(b"%PDF") and len(pdf) > 2000


def test_too_few_labels_give_counts_only():
    sv = validate(_results().head(3), META.operating_points, META.default_operating_point, META.version)
    assert sv.metrics is None and sv.counts["files"] == 3
    assert validation_pdf(sv).startswith(b"%PDF")


def test_site_points_belong_to_their_model_version():
    key = site_points.save_site_point(
        "Our ED", 0.42, model_version=META.version, sensitivity=0.97, specificity=0.8, n=300
    )
    site_points.save_site_point("Old", 0.5, model_version="0.0.1", sensitivity=0.9, specificity=0.9, n=10)
    points = site_points.operating_points(META)
    assert list(points)[: len(META.operating_points)] == list(META.operating_points)
    assert key == "site_our_ed" and points[key]["threshold"] == 0.42 and "site_old" not in points
    assert site_points.resolve(META, key).validation_sensitivity == 0.97
    with pytest.raises(ValueError):
        site_points.save_site_point("  ", 0.5, model_version=META.version, sensitivity=1, specificity=1, n=1)
    Path(os.environ["PNEUMONIA_SITE_POINTS"]).write_text("{not json")
    assert site_points.operating_points(META) == META.operating_points  # a damaged file offers none


def test_your_data_view_scores_a_folder_and_saves_a_site_point(samples, tmp_path):
    folder = tmp_path / "site"
    for p in samples:
        (folder / p.name.split("_")[0]).mkdir(parents=True, exist_ok=True)
        shutil.copy(p, folder / p.name.split("_")[0] / p.name)
    at = AppTest.from_file(str(PAGES / "performance.py"), default_timeout=180).run()
    at.radio(key="performance_view").set_value("Your data").run()
    at.radio(key="site_source").set_value("Score a folder on this server").run()
    at.text_input(key="site_folder").input(str(folder)).run()
    next(b for b in at.button if b.label == "Score this folder").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert next(m.value for m in at.metric if m.label == "Files") == str(len(samples))
    assert len(at.get("plotly_chart")) == 2
    assert any("AUC" in c.value for c in at.caption)
    assert len(at.dataframe) == 2
    at.text_input(key="site_point_name").input("Our clinic")
    next(b for b in at.button if b.label == "Save site operating point").click().run()
    assert any("Site: Our clinic" in s.value for s in at.success), [e.value for e in at.exception]
    saved = json.loads(Path(os.environ["PNEUMONIA_SITE_POINTS"]).read_text())["points"]
    assert [p["key"] for p in saved] == ["site_our_clinic"]
    review = AppTest.from_file(str(PAGES / "review.py"), default_timeout=180).run()
    assert "Site: Our clinic" in review.selectbox(key="operating_point").options
