"""Audit trail (append-only SQLite) and exports (CSV, PDF) without patient identifiers."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from pneumonia.audit import AuditLog, default_path
from pneumonia.core.decode import load_xray
from pneumonia.core.operating_points import ThresholdChoice
from pneumonia.insight.report import pdf_report, worklist, worklist_csv
from pneumonia.serving.gate import GateResult
from pneumonia.serving.results import ImageResult

SHA = "a" * 64


def _record(log: AuditLog, **kw) -> int:
    args = dict(
        image_sha256=SHA,
        model_version="v1",
        operating_point="balanced",
        threshold=0.5,
        heatmap_method="gradcam",
        probability=0.9,
        label="PNEUMONIA",
        reader_agrees=True,
        comment="ok",
    )
    args.update(kw)
    return log.record(**args)


def test_default_path_is_configurable_and_outside_repo(tmp_path, monkeypatch):
    assert default_path() == tmp_path / "audit.sqlite"  # set by the autouse fixture
    monkeypatch.delenv("PNEUMONIA_AUDIT_DB")
    assert "pneumonia-review" in str(default_path())


def test_audit_appends_and_refuses_changes(tmp_path):
    log = AuditLog(tmp_path / "a.sqlite")
    first = _record(log)
    _record(log, reader_agrees=False, comment="disagree: looks normal")
    recent = log.recent()
    assert list(recent["id"]) == [first + 1, first]
    assert recent.iloc[0]["reader_agrees"] == False  # noqa: E712
    with sqlite3.connect(log.path) as db, pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("UPDATE reviews SET label = 'NORMAL'")
    with sqlite3.connect(log.path) as db, pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("DELETE FROM reviews")
    csv = log.to_csv().decode()
    assert csv.splitlines()[0].startswith("id,time,image_sha256")
    with pytest.raises(ValueError):
        _record(log, image_sha256="not-a-hash")


def _results(samples) -> list[ImageResult]:
    x1 = load_xray(samples[0].read_bytes(), samples[0].name)
    x2 = load_xray(samples[1].read_bytes(), samples[1].name)
    return [
        ImageResult("Doe_Jane_low.png", x1, gate=GateResult(True), probability=0.2, threshold=0.5),
        ImageResult("broken.png", error="The file is empty.", threshold=0.5),
        ImageResult("photo.png", x2, gate=GateResult(False, ["colour image"]), probability=0.99, threshold=0.5),
        ImageResult("Doe_Jane_high.png", x2, gate=GateResult(True), probability=0.95, threshold=0.5),
    ]


def test_worklist_order_and_no_names_by_default(samples):
    df = worklist(_results(samples))
    assert list(df["status"]) == ["scored", "scored", "refused", "unreadable"]
    assert list(df["probability"][:2]) == [0.95, 0.2]
    assert pd_isna(df["probability"][2])  # a refused image shows no probability
    csv = worklist_csv(_results(samples)).decode()
    assert "Doe_Jane" not in csv and "file" not in csv.splitlines()[0]
    assert "Doe_Jane_high.png" in worklist_csv(_results(samples), include_names=True).decode()


def pd_isna(v) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v))


def test_pdf_report(samples):
    r = _results(samples)[0]
    rgb = np.dstack([r.xray.pixels] * 3)
    pdf = pdf_report(
        r,
        rgb,
        model_version="v1",
        choice=ThresholdChoice("balanced", 0.5, 0.95, 0.9),
        method="Grad-CAM",
        heatmap_flat=False,
    )
    assert pdf.startswith(b"%PDF") and len(pdf) > 10_000
    assert b"Doe_Jane" not in pdf
    with pytest.raises(ValueError):
        pdf_report(
            _results(samples)[2],
            rgb,
            model_version="v1",
            choice=ThresholdChoice("custom", 0.5),
            method="Grad-CAM",
            heatmap_flat=False,
        )
