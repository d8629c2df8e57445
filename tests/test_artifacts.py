"""The shipped models/ artifacts are complete, consistent with each other and within budget."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from pneumonia.serving.metadata import RUN_ARTIFACTS, ModelMetadata, read_metadata
from pneumonia.serving.model import DEFAULT_MODEL_DIR as MODELS

REQUIRED = (*RUN_ARTIFACTS, "experiments.csv")


@pytest.fixture(scope="module")
def meta() -> dict:
    return json.loads((MODELS / "metadata.json").read_text())


def test_every_artifact_ships(meta):
    for name in REQUIRED:
        assert (MODELS / name).exists(), name
    model = MODELS / meta["model_file"]
    assert model.stat().st_size <= 10 * 2**20
    assert hashlib.sha256(model.read_bytes()).hexdigest() == meta["model_sha256"]
    for key in (
        "version",
        "input_spec",
        "preprocessing",
        "operating_points",
        "default_operating_point",
        "calibration",
        "training",
        "data",
    ):
        assert key in meta
    assert len(meta["data"]["fingerprint_sha256"]) == 64
    assert meta["training"]["command"].startswith("python -m pneumonia.train")


def test_operating_points_meet_their_floors_on_validation(meta):
    ops = meta["operating_points"]
    assert ops["high_sensitivity"]["reframed_validation_sensitivity"] >= 0.99
    assert ops["balanced"]["reframed_validation_sensitivity"] >= 0.97
    assert ops["high_specificity"]["reframed_validation_specificity"] >= 0.99
    thresholds = [ops[k]["threshold"] for k in ("high_sensitivity", "balanced", "high_specificity")]
    assert thresholds == sorted(thresholds) and thresholds[2] - thresholds[0] > 0.3  # points that differ


def test_split_has_no_patient_in_two_folds_and_hard_normals_in_none():
    split = pd.read_csv(MODELS / "split.csv")
    assert set(split["fold"]) == {-1, 0, 1, 2, 3, 4}
    assert (split.groupby("patient_id")["fold"].nunique() == 1).all()
    hard = pd.read_csv(MODELS / "hard_normals.csv")
    assert (split.set_index("name").loc[hard["name"], "fold"] == -1).all()
    assert (split.loc[split["fold"] == -1, "label"] == 0).all()


def test_gate_accepts_the_internal_test_xrays():
    metrics = json.loads((MODELS / "test_metrics.json").read_text())
    assert metrics["gate"]["val"]["accepted"] >= 0.99
    assert metrics["gate"]["val_cropped_10pct"]["accepted"] >= 0.97  # tightly framed films are x-rays too
    assert "NOT the official test split" in metrics["split"]


def test_failure_gallery_matches_the_out_of_fold_predictions(classifier):
    """The failure cases are the out-of-fold predictions' most confident mistakes; the shipped
    ensemble (whose other members trained on them, and whose heads were refitted on them) still scores
    the false positives higher than the false negatives on average."""
    f = np.load(MODELS / "failures.npz")
    preds = pd.read_csv(MODELS / "test_predictions.csv").set_index("file")
    np.testing.assert_allclose(preds.loc[list(f["files"]), "probability"].to_numpy(), f["probability"])
    got = np.array([p.probability for p in classifier.predict(f["inputs"].astype(np.float32) / 255.0)])
    fp, fn = f["kind"] == "false positive", f["kind"] == "false negative"
    assert got[fp].mean() > got[fn].mean() + 0.1


def test_metadata_schema_reads_the_shipped_file_back_unchanged(meta):
    loaded = read_metadata(MODELS)
    assert loaded.to_dict() == meta
    assert (loaded.last_conv_layer, loaded.logit_layer, loaded.embedding_layer) == (
        "last_conv_act",
        "member_logits",
        "m0_last_conv_act",
    )
    assert loaded.extra["outputs"] == ["pneumonia", "bacterial"] and loaded.extra["members"] == 8
    assert loaded.input_spec.size == meta["input_spec"]["size"]


def test_metadata_written_before_the_layer_names_were_recorded_still_loads(meta):
    older = {k: v for k, v in meta.items() if k not in ("logit_layer", "embedding_layer")}
    loaded = ModelMetadata.from_dict(older)
    assert (loaded.logit_layer, loaded.embedding_layer) == ("logit", "gap")
