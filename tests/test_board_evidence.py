"""Evidence a governance board can approve (issue 27): the model card and performance page lead with the
held-out figures of the model version in use (or say they are pending), every interval is computed from
counts, and the monitoring view runs on an audit trail of a few hundred reads."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from pneumonia.core.metrics import predictive_values_at_prevalence
from pneumonia.insight import monitoring
from pneumonia.insight.external_test import held_out, read_all, wilson
from pneumonia.serving.metadata import read_metadata

ROOT = Path(__file__).resolve().parent.parent
PAGES = ROOT / "pages"
MODELS = ROOT / "models"
MEASURED = "2026.11.25-a062b95f"  # the version whose held-out figures issue 27 gives
TIMEOUT = 240


def _model_dir(tmp_path: Path, version: str) -> Path:
    """The shipped model folder with its metadata's version set: every other file linked, not copied."""
    d = tmp_path / "models"
    d.mkdir()
    for f in MODELS.iterdir():
        if f.name != "metadata.json":
            (d / f.name).symlink_to(f)
    meta = json.loads((MODELS / "metadata.json").read_text())
    meta["version"] = version
    meta.pop("official_test", None)
    # a version the held-out check measured: its operating points are the thresholds it was measured at
    measured = json.loads((MODELS / "external_test.json").read_text()).get("versions", {}).get(version, {})
    for name, point in measured.get("operating_points", {}).items():
        if name in meta["operating_points"]:
            meta["operating_points"][name]["threshold"] = point["threshold"]
    (d / "metadata.json").write_text(json.dumps(meta))
    return d


@pytest.fixture
def page_models(tmp_path, monkeypatch):
    """Run the pages on a model folder of a chosen version (the lead may ship a new one at any time)."""
    import pages.resources as resources

    def use(version: str) -> Path:
        d = _model_dir(tmp_path, version)
        monkeypatch.setattr(resources, "MODELS_DIR", d)
        st.cache_data.clear()
        return d

    yield use
    st.cache_data.clear()


def _texts(at: AppTest) -> list[str]:
    kinds = ("title", "markdown", "caption", "subheader", "warning", "info", "error", "success")
    out = []
    for node in at.main:  # document order, as a reader meets them
        out += _walk(node, kinds)
    return out


def _walk(node, kinds) -> list[str]:
    found = [str(node.value)] if getattr(node, "type", None) in kinds and hasattr(node, "value") else []
    for child in getattr(node, "children", {}).values():
        found += _walk(child, kinds)
    return found


def _run(name: str) -> AppTest:
    at = AppTest.from_file(str(PAGES / name), default_timeout=TIMEOUT).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_held_out_figures_are_computed_from_counts():
    found = read_all(MODELS)[MEASURED]
    balanced = found.point("balanced")
    assert (balanced.tp, balanced.fn, balanced.tn, balanced.fp) == (387, 3, 202, 32)
    assert round(balanced.sensitivity, 3) == 0.992 and round(balanced.specificity, 3) == 0.863
    lo, hi = balanced.specificity_ci()
    assert (round(lo, 3), round(hi, 3)) == (0.813, 0.901)  # Wilson, as the check reported
    assert round(balanced.predictive_values(0.10)["ppv"], 3) == 0.446
    assert round(found.point("high_sensitivity").predictive_values(0.10)["ppv"], 3) == 0.317
    assert round(found.point("high_specificity").predictive_values(0.10)["ppv"], 3) == 0.573
    assert round(found.ece, 3) == 0.069 and found.n == 624 and sum(b["positives"] for b in found.bins) == 390
    assert wilson(10, 10)[0] < 0.8  # ten of ten is never 100-100%


def test_model_card_leads_with_the_held_out_figures_of_this_version(page_models, monkeypatch):
    page_models(MEASURED)
    monkeypatch.setenv("PNEUMONIA_SITE_OWNER", "Paediatric radiology, St Elsewhere")
    monkeypatch.setenv("PNEUMONIA_SITE_CONTACT", "ai-lead@elsewhere.example")
    monkeypatch.setenv("PNEUMONIA_REPORT_PROBLEM", "Incident form RAD-7")
    at = _run("model_card.py")
    text = _texts(at)
    joined = "\n".join(text)
    first = next(i for i, t in enumerate(text) if "44.6%" in t)
    # the board summary comes first: all three points with intervals, before any training-pool figure
    assert first <= 3, text[:4]
    table = next(t for t in text if "| High sensitivity (" in t)
    for row in ("| High sensitivity (21.9%) |", "| Balanced (64.8%) |", "| High specificity (94.3%) |"):
        assert row in table
    assert "99.2% (97.8-99.7%), 387 of 390" in table and "86.3% (81.3-90.1%), 202 of 234" in table
    assert "31.7%" in table and "57.3%" in table
    assert not any("out of fold" in t.lower() for t in text[:first])
    # a prevalence the reader sets moves PPV, from the held-out counts
    at.number_input(key="card_prevalence").set_value(20.0).run()
    ppv = predictive_values_at_prevalence(387 / 390, 202 / 234, 0.20)[0]
    assert f"{ppv:.1%}" in "\n".join(_texts(at))
    # the held-out reliability diagram, provenance, subgroups, heatmap, accountability, history, status, checklist
    assert any("never saw" in c.value and "ECE 0.069" in c.value for c in at.caption)
    for needed in (
        "same hospital",
        "no second site",
        "two expert",
        "aged 1 to 5",
        "| bacterial pneumonia |",
        "In plain words",
        "Version history",
        "not a cleared",
        "Checklist",
        "NOT DONE: no second site",
        "NOT DONE: none exists",
        "ai\\-lead\\@elsewhere\\.example",
    ):
        assert needed.lower() in joined.lower(), needed
    assert "the 54 of the 70 hard normals not used to train the lung outline" in joined  # no 70 against 54
    # every page's frame (drawn by app.py) names them too
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    assert not app.exception, [e.value for e in app.exception]
    sidebar = " ".join(c.value for c in app.sidebar.caption)
    assert "Owner:" in sidebar and "Report a problem:" in sidebar and "RAD\\-7" in sidebar


def test_performance_page_leads_with_the_held_out_figures(page_models):
    page_models(MEASURED)
    at = _run("performance.py")
    text = _texts(at)
    joined = "\n".join(text)
    assert any("44.6%" in t for t in text[:4])
    assert "happen to equal" not in joined and "a few hundred" not in joined
    assert "sample of 400 out-of-fold films (310 pneumonia, 90 normal)" in joined
    assert "PPV (these films)" in [m.label for m in at.metric]
    assert sum(c.value.startswith("95% CI") for c in at.caption) == 4  # PPV too: never 100.0% without one
    # the explorer's calculator at the shipped default point gives the held-out PPV beside its own
    assert any("the held-out split gives PPV 44.6%" in c.value for c in at.caption)
    published = next(t for t in text if t.startswith("| source |"))
    assert "None" not in published and "not published" in published
    assert published.splitlines()[2].startswith("| This model, held-out test split |")  # held-out first


def test_a_version_without_held_out_figures_says_so_at_the_top(page_models):
    page_models("2099.01.01-pending")
    for page in ("model_card.py", "performance.py"):
        at = _run(page)
        text = _texts(at)
        assert "Held-out measurement pending for this version" in at.warning[0].value
        assert text.index(at.warning[0].value) <= 2
        previous = next(t for t in text if t.startswith("**Previous version"))
        assert MEASURED in previous
        table = text[text.index(previous) + 1]
        assert "44.6%" in table and "| Balanced (64.8%) |" in table  # the previous version's, labelled as such
        assert "training pool" not in table  # this version's training-pool figures are not beside another's
        # the training pool's figures never stand in as the headline
        meta = read_metadata(MODELS)
        assert not any(f"{meta.operating_points['balanced']['validation_specificity']:.1%}" in t for t in text[:3])


def _audit_trail(path: Path, n: int, probabilities: np.ndarray) -> None:
    from pneumonia.audit import AuditLog

    start = datetime.now(UTC) - timedelta(days=55)
    times = iter([start + timedelta(hours=4 * i) for i in range(n)])
    log = AuditLog(path, clock=lambda: next(times))
    version = read_metadata(MODELS).version
    rng = np.random.default_rng(1)
    for i, p in enumerate(probabilities):
        label = "PNEUMONIA" if p >= 0.648 else "NORMAL"
        log.record(
            image_sha256=f"{i:064x}",
            model_version=version,
            operating_point="balanced",
            threshold=0.648,
            heatmap_method="gradcam",
            probability=float(p),
            label=label,
            reader_agrees=bool(rng.random() < (0.8 if label == "PNEUMONIA" else 0.97)),
            reader=f"R{i % 4}",
        )
    log.close()


def _site_probabilities(n: int, prevalence: float, seed: int = 0) -> np.ndarray:
    """Probabilities as the held-out split's pneumonia and normal films give them, at a site's prevalence."""
    found = read_all(MODELS)[MEASURED]
    pos, neg = monitoring.reference_from_held_out(found)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        counts = pos if rng.random() < prevalence else neg
        b = rng.choice(10, p=counts / counts.sum())
        out.append(rng.uniform(b / 10, (b + 1) / 10))
    return np.array(out)


def test_monitoring_on_a_few_hundred_reads(tmp_path):
    from pneumonia.audit import AuditLog

    db = tmp_path / "monitor.sqlite"
    _audit_trail(db, 300, _site_probabilities(300, prevalence=0.15))
    audit = AuditLog(db).between(datetime.now(UTC).date() - timedelta(days=60), datetime.now(UTC).date())
    found = read_all(MODELS)[MEASURED]
    ref = monitoring.reference_from_held_out(found)
    m = monitoring.monitor(audit, read_metadata(MODELS).version, ref, "held-out test split")
    assert m.weekly["reads"].sum() == 300 and len(m.weekly) >= 8
    assert m.agreement["reads"].sum() == 300
    assert m.drift["state"] == "stable" and 0.05 < m.drift["prevalence"] < 0.3  # a prevalence change is no drift
    shifted = monitoring.drift(np.clip(np.random.default_rng(2).normal(0.5, 0.15, 300), 0, 1), ref, "held-out")
    assert shifted["state"] == "alert" and "DRIFT ALERT" in monitoring.drift_words(shifted)
    scored = pd.DataFrame({"status": ["scored"] * 95 + ["refused"] * 4 + ["unreadable"]})
    refused = monitoring.refused_share(scored)
    assert (refused["refused"], refused["files"], refused["unreadable"]) == (4, 100, 1) and refused["low"] > 0
    m = monitoring.monitor(audit, read_metadata(MODELS).version, ref, "held-out test split", scored)
    assert "refused by the input check" in monitoring.monitoring_csv(m).decode()
    assert monitoring.monitoring_pdf(m).startswith(b"%PDF")
    csv = monitoring.monitoring_csv(m).decode()
    assert "reader agreed with AI PNEUMONIA" in csv and "0" * 64 not in csv  # no image identifiers exported


def test_monitoring_page_for_a_site_administrator(tmp_path, monkeypatch):
    import os

    _audit_trail(Path(os.environ["PNEUMONIA_AUDIT_DB"]), 240, _site_probabilities(240, prevalence=0.3, seed=4))
    at = _run("monitoring.py")
    assert at.title[0].value == "Monitoring after go-live"
    assert any("no sign of drift" in s.value or "moderate shift" in s.value for s in [*at.success, *at.warning])
    assert any("240 reads" in c.value for c in at.caption)
    labels = [b.label for b in at.get("download_button")]
    assert "Export for the board (CSV)" in labels and "Export for the board (PDF)" in labels
    assert "| PNEUMONIA |" in "\n".join(m.value for m in at.markdown)


def test_heatmap_words_name_the_version_they_were_measured_on():
    from pneumonia.insight.artifacts import HEATMAP_RESULTS, heatmap_sentence

    measured = json.loads(HEATMAP_RESULTS.read_text())["model_version"]
    assert "not this version" not in heatmap_sentence("gradcam", 70, measured)
    assert f"Measured on model {measured}, not this version." in heatmap_sentence("gradcam", 70, "2099.01.01-new")


def test_held_out_figures_belong_to_their_version(tmp_path):
    pending = _model_dir(tmp_path, "2099.01.01-pending")
    assert held_out(pending, read_metadata(pending)) is None
    (tmp_path / "measured").mkdir()
    measured = _model_dir(tmp_path / "measured", MEASURED)
    assert held_out(measured, read_metadata(measured)).version == MEASURED


def test_monitoring_page_without_reads_says_so():
    at = _run("monitoring.py")
    assert any(i.value.startswith("No reads recorded") for i in at.info)
    assert not at.get("plotly_chart")


@pytest.mark.browser
def test_board_summary_fits_one_1280x800_screen(tmp_path):
    """In headless Chromium at 1280x800, each page's board summary (status, the held-out table, or the pending
    notice with the previous version's table) is on the first screen, before any scrolling."""
    from tests import test_browser as tb

    if not Path(tb.CHROMIUM).exists():
        pytest.skip(f"{tb.CHROMIUM} not found")
    from playwright.sync_api import sync_playwright

    with tb.running_app(tmp_path) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=tb.CHROMIUM, args=tb.CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        for path in ("model_card", "performance"):
            page.goto(f"{url}/{path}")
            status = page.get_by_text("A research tool, not a cleared medical device").first
            status.wait_for(timeout=tb.WAIT_MS)
            table = page.locator('[data-testid="stMarkdownContainer"] table').first
            table.wait_for(timeout=tb.WAIT_MS)
            tb.settle(page)
            box = table.bounding_box()
            assert box["y"] + box["height"] <= 800, (path, box)  # the whole table, every column, on screen
            assert box["x"] + box["width"] <= 1280
            assert "(" in table.inner_text() and "%" in table.inner_text()  # figures with their intervals
        browser.close()
