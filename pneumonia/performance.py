"""Reads the evaluation artifacts in models/ for the performance page and the model card."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

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
    metadata: dict
    test_metrics: dict
    predictions: pd.DataFrame
    history: pd.DataFrame
    failures: dict[str, np.ndarray]
    experiments: pd.DataFrame | None


def load(model_dir: str | Path) -> Artifacts:
    d = Path(model_dir)
    with np.load(d / "failures.npz") as f:
        failures = {k: f[k] for k in f.files}
    exp = d / "experiments.csv"
    return Artifacts(
        metadata=json.loads((d / "metadata.json").read_text()),
        test_metrics=json.loads((d / "test_metrics.json").read_text()),
        predictions=pd.read_csv(d / "test_predictions.csv"),
        history=pd.read_csv(d / "history.csv"),
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
    ours = {"source": "This model", "split": "internal test (patient-held-out from Kaggle train)"}
    ours.update({k: test_metrics[k] for k in ("accuracy", "sensitivity", "specificity", "roc_auc")})
    return pd.DataFrame([ours, *PUBLISHED])
