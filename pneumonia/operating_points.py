"""Operating points (thresholds on the calibrated probability) chosen on validation data."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_curve

from pneumonia.metrics import confusion, rates

POINTS = {
    "high_sensitivity": "High sensitivity (>= 98% sensitivity on validation)",
    "balanced": "Balanced (Youden's J on validation)",
    "high_specificity": "High specificity (>= 95% specificity on validation)",
}


def choose(y_true: np.ndarray, prob: np.ndarray, min_sensitivity: float = 0.98, min_specificity: float = 0.95) -> dict:
    """Thresholds for the three named operating points from (validation) labels and probabilities."""
    y, p = np.asarray(y_true).astype(int), np.asarray(prob, float)
    fpr, tpr, thr = roc_curve(y, p)
    thr = np.clip(thr, 0.0, 1.0)
    tnr = 1 - fpr
    ok_sens = np.flatnonzero(tpr >= min_sensitivity)
    ok_spec = np.flatnonzero(tnr >= min_specificity)
    chosen = {
        # the highest threshold that still keeps the sensitivity floor
        "high_sensitivity": float(thr[ok_sens[0]]) if len(ok_sens) else float(thr[-1]),
        "balanced": float(thr[int(np.argmax(tpr - fpr))]),
        # the lowest threshold that keeps the specificity floor
        "high_specificity": float(thr[ok_spec[-1]]) if len(ok_spec) else float(thr[0]),
    }
    return {name: describe(y, p, t, POINTS[name]) for name, t in chosen.items()}


def describe(y_true: np.ndarray, prob: np.ndarray, threshold: float, label: str = "") -> dict:
    r = rates(*confusion(y_true, prob, threshold))
    return {
        "label": label,
        "threshold": float(threshold),
        "sensitivity": r["sensitivity"],
        "specificity": r["specificity"],
    }
