"""Platt scaling on logits, fitted on validation, so a shown probability means what it says."""

from __future__ import annotations

import numpy as np


def fit_platt(logits: np.ndarray, y_true: np.ndarray) -> dict:
    """Fit p = sigmoid(a * logit + b); returns the parameters stored in the model metadata."""
    from sklearn.linear_model import LogisticRegression  # fitting only: serving never imports scikit-learn

    lr = LogisticRegression(C=1e4, max_iter=1000)
    lr.fit(np.asarray(logits, float).reshape(-1, 1), np.asarray(y_true).astype(int))
    return {"method": "platt", "a": float(lr.coef_[0, 0]), "b": float(lr.intercept_[0])}


def apply(calibration: dict | None, logits: np.ndarray) -> np.ndarray:
    """Calibrated probabilities from logits (plain sigmoid when there is no calibration)."""
    z = np.asarray(logits, float)
    if calibration:
        z = calibration["a"] * z + calibration["b"]
    return 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))
