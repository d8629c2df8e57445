"""Kaggle-layout file-name parsing, Kaggle-layout scanning and the patient-level split."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from pneumonia.core.kaggle_layout import parse_filename, scan
from pneumonia.training.data import patient_split


@pytest.mark.parametrize(
    ("name", "label", "patient", "subtype"),
    [
        ("person1000_bacteria_2931.jpeg", "PNEUMONIA", "person1000", "bacteria"),
        ("person1021_virus_1711.jpeg", "PNEUMONIA", "person1021", "virus"),
        ("IM-0115-0001.jpeg", "NORMAL", "IM-0115", "normal"),
        ("NORMAL2-IM-1427-0001.jpeg", "NORMAL", "NORMAL2-IM-1427", "normal"),
        ("scan.png", "PNEUMONIA", "scan", "unknown"),
    ],
)
def test_parse_filename(name, label, patient, subtype):
    info = parse_filename(name, label)
    assert (info.patient_id, info.subtype) == (patient, subtype)


def test_scan_kaggle_layout(tmp_path, samples):
    for p in samples:
        label = p.name.split("_")[0]
        dest = tmp_path / "test" / label
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy(p, dest / p.name.split("_", 2)[2])
    (tmp_path / "test" / "NORMAL" / "notes.txt").write_text("not an image")
    m = scan(tmp_path)
    assert len(m) == len(samples)
    assert set(m["split"]) == {"test"}
    assert (m["label"] == (m["label_name"] == "PNEUMONIA")).all()
    assert set(m["subtype"]) == {"normal", "bacteria", "virus"}


def test_scan_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError):
        scan(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="no images"):
        scan(tmp_path)


def _synthetic_manifest(n_patients: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_patients):
        subtype = rng.choice(["normal", "bacteria", "virus"], p=[0.27, 0.48, 0.25])
        for _ in range(rng.integers(1, 5)):
            rows.append({"patient_id": f"p{i}", "subtype": subtype, "label": int(subtype != "normal")})
    return pd.DataFrame(rows)


def test_patient_split_has_no_patient_in_two_parts():
    m = _synthetic_manifest()
    part = patient_split(m, seed=42)
    per_patient = m.assign(part=part).groupby("patient_id")["part"].nunique()
    assert (per_patient == 1).all()
    shares = part.value_counts(normalize=True)
    assert 0.72 < shares["train"] < 0.88 and 0.05 < shares["val"] < 0.15 and 0.05 < shares["test"] < 0.15
    # stratified: each part keeps roughly the overall pneumonia share
    overall = m["label"].mean()
    for name in ("train", "val", "test"):
        assert abs(m[part == name]["label"].mean() - overall) < 0.08


def test_patient_split_is_deterministic():
    m = _synthetic_manifest()
    assert patient_split(m, seed=7).equals(patient_split(m, seed=7))
    assert not patient_split(m, seed=7).equals(patient_split(m, seed=8))
