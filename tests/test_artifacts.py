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
    assert ops["high_sensitivity"]["stressed_validation_sensitivity"] >= 0.98
    assert ops["high_specificity"]["stressed_validation_specificity"] >= 0.95


def test_split_has_no_patient_in_two_parts():
    split = pd.read_csv(MODELS / "split.csv")
    assert set(split["part"]) == {"train", "val", "test"}
    assert (split.groupby("patient_id")["part"].nunique() == 1).all()


def test_gate_accepts_the_internal_test_xrays():
    metrics = json.loads((MODELS / "test_metrics.json").read_text())
    assert metrics["gate"]["internal_test"]["accepted"] >= 0.99
    assert "NOT the official test split" in metrics["split"]


def test_stored_predictions_are_reproduced_by_the_classifier(classifier):
    """The failure cases stored as model inputs score as the predictions CSV says (same calibration)."""
    f = np.load(MODELS / "failures.npz")
    preds = pd.read_csv(MODELS / "test_predictions.csv").set_index("file")
    x = f["inputs"].astype(np.float32) / 255.0
    got = [p.probability for p in classifier.predict(x)]
    want = preds.loc[list(f["files"]), "probability"].to_numpy()
    np.testing.assert_allclose(got, want, atol=0.02)  # inputs were stored at 8 bits


def test_metadata_schema_reads_the_shipped_file_back_unchanged(meta):
    loaded = read_metadata(MODELS)
    assert loaded.to_dict() == meta
    assert (loaded.last_conv_layer, loaded.logit_layer, loaded.embedding_layer) == ("last_conv_act", "logit", "gap")
    assert loaded.input_spec.size == meta["input_spec"]["size"]


def test_metadata_written_before_the_layer_names_were_recorded_still_loads(meta):
    older = {k: v for k, v in meta.items() if k not in ("logit_layer", "embedding_layer")}
    loaded = ModelMetadata.from_dict(older)
    assert (loaded.logit_layer, loaded.embedding_layer) == ("logit", "gap")
