"""Reads a model folder's metadata and evaluation artifacts back, for the performance page and the model card."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pneumonia.serving.metadata import (
    EXPERIMENT_LOG_FILE,
    FAILURES_FILE,
    HISTORY_FILE,
    TEST_METRICS_FILE,
    TEST_PREDICTIONS_FILE,
    ModelMetadata,
    read_metadata,
)

# Published results on the official 624-image test split (the split this project is judged on).
PUBLISHED = [
    {
        "source": "Kermany et al. 2018 (ImageNet transfer learning)",
        "split": "official test (624)",
        "accuracy": 0.928,
        "sensitivity": 0.932,
        "specificity": 0.901,
        "roc_auc": 0.968,
    },
    {
        "source": "MedMNIST v2 PneumoniaMNIST, best (Google AutoML Vision)",
        "split": "official test (624)",
        "accuracy": 0.946,
        "sensitivity": None,
        "specificity": None,
        "roc_auc": 0.991,
    },
]
METRIC_NAMES = {
    "accuracy": "Accuracy",
    "roc_auc": "ROC AUC",
    "sensitivity": "Sensitivity (recall)",
    "specificity": "Specificity",
    "precision": "PPV (precision)",
    "npv": "NPV",
    "f1": "F1",
}


@dataclass
class Artifacts:
    """What a finished training run left in its model folder, read back."""

    metadata: ModelMetadata
    test_metrics: dict
    predictions: pd.DataFrame
    history: pd.DataFrame
    failures: dict[str, np.ndarray]
    experiments: pd.DataFrame | None


def load_artifacts(model_dir: str | Path) -> Artifacts:
    d = Path(model_dir)
    with np.load(d / FAILURES_FILE) as f:
        failures = {k: f[k] for k in f.files}
    exp = d / EXPERIMENT_LOG_FILE
    return Artifacts(
        metadata=read_metadata(d),
        test_metrics=json.loads((d / TEST_METRICS_FILE).read_text()),
        predictions=pd.read_csv(d / TEST_PREDICTIONS_FILE),
        history=pd.read_csv(d / HISTORY_FILE),
        failures=failures,
        experiments=pd.read_csv(exp) if exp.exists() else None,
    )


def metrics_table(test_metrics: dict) -> pd.DataFrame:
    """Point estimate with its patient-level bootstrap 95% CI for each metric."""
    rows = []
    for key, name in METRIC_NAMES.items():
        lo, hi = test_metrics["ci95"][key]
        rows.append({"metric": name, "value": test_metrics[key], "95% CI low": lo, "95% CI high": hi})
    return pd.DataFrame(rows)


def comparison_table(test_metrics: dict) -> pd.DataFrame:
    """This model's internal-test figures beside the published ones."""
    ours = {"source": "This model", "split": "out-of-fold validation (pooled Kaggle train + val, by patient)"}
    ours.update({k: test_metrics[k] for k in ("accuracy", "sensitivity", "specificity", "roc_auc")})
    return pd.DataFrame([ours, *PUBLISHED])


def operating_point_rows(operating_points: dict[str, dict], by_operating_point: dict | None = None) -> pd.DataFrame:
    """One row per operating point: threshold, out-of-fold figures on the films as taken and
    re-framed, and the hard normals' specificity (``by_operating_point`` is accepted for older
    model folders, whose second split it adds)."""
    rows = []
    for name, point in operating_points.items():
        row = {
            "operating point": point.get("label", name).split(" (")[0],
            "threshold": point["threshold"],
            "sensitivity": point["validation_sensitivity"],
            "specificity": point["validation_specificity"],
        }
        if "reframed_validation_sensitivity" in point:
            row["sensitivity, re-framed"] = point["reframed_validation_sensitivity"]
            row["specificity, re-framed"] = point["reframed_validation_specificity"]
            row["specificity, hard normals"] = point.get("hard_normal_specificity")
        elif by_operating_point is not None:
            row["internal test sensitivity"] = by_operating_point[name]["sensitivity"]
            row["internal test specificity"] = by_operating_point[name]["specificity"]
        rows.append(row)
    return pd.DataFrame(rows)
