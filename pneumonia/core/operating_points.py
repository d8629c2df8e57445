"""Operating points (thresholds on the calibrated probability) chosen on validation data.

Three points that do different jobs, each defined by what it guarantees on validation:

* high sensitivity: the highest threshold that still finds >= 99% of pneumonias (a rule-out
  setting: few misses, more false alarms);
* balanced: the best Youden index (sensitivity + specificity) among thresholds that find
  >= 97% of pneumonias;
* high specificity: the lowest threshold that clears >= 99% of normals (a confirm setting).

They are kept in order (high sensitivity <= balanced <= high specificity).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pneumonia.core.metrics import confusion, rates

HIGH_SENSITIVITY_FLOOR = 0.99
BALANCED_SENSITIVITY_FLOOR = 0.97
HIGH_SPECIFICITY_FLOOR = 0.99
POINTS = {
    "high_sensitivity": "High sensitivity (rule-out: finds >= 99% of pneumonias on validation; more false alarms)",
    "balanced": "Balanced (best sensitivity + specificity while finding >= 97% of pneumonias on validation)",
    "high_specificity": "High specificity (confirm: clears >= 99% of normals on validation; misses more)",
}


def choose(y_true: np.ndarray, prob: np.ndarray) -> dict:
    """Thresholds for the three named operating points from (validation) labels and probabilities."""
    from sklearn.metrics import roc_curve  # choosing only: serving never imports scikit-learn

    y, p = np.asarray(y_true).astype(int), np.asarray(prob, float)
    fpr, tpr, thr = roc_curve(y, p)  # thresholds in decreasing order, tpr increasing
    thr, tnr = np.clip(thr, 0.0, 1.0), 1 - fpr
    high_sens = int(np.flatnonzero(tpr >= HIGH_SENSITIVITY_FLOOR)[0])
    allowed = np.flatnonzero(tpr >= BALANCED_SENSITIVITY_FLOOR)
    balanced = int(allowed[np.argmax(tpr[allowed] + tnr[allowed])])
    high_spec = int(np.flatnonzero(tnr >= HIGH_SPECIFICITY_FLOOR)[-1])
    thresholds = {"high_sensitivity": thr[high_sens], "balanced": thr[balanced], "high_specificity": thr[high_spec]}
    thresholds["balanced"] = float(np.clip(thresholds["balanced"], thresholds["high_sensitivity"], 1.0))
    thresholds["high_specificity"] = max(thresholds["high_specificity"], thresholds["balanced"])
    return {name: describe(y, p, float(t), POINTS[name]) for name, t in thresholds.items()}


def describe(y_true: np.ndarray, prob: np.ndarray, threshold: float, label: str = "") -> dict:
    r = rates(*confusion(y_true, prob, threshold))
    return {
        "label": label,
        "threshold": float(threshold),
        "sensitivity": r["sensitivity"],
        "specificity": r["specificity"],
    }


CUSTOM = "custom"


@dataclass(frozen=True)
class ThresholdChoice:
    """The threshold in force and where it came from: a named operating point or a custom value."""

    operating_point: str  # a key of the model's operating points, or "custom"
    threshold: float
    validation_sensitivity: float | None = None  # None for a custom threshold: it was never validated
    validation_specificity: float | None = None

    @property
    def validated(self) -> bool:
        return self.validation_sensitivity is not None and self.validation_specificity is not None


def resolve_threshold(
    points: dict[str, dict],
    default_point: str,
    operating_point: str | None = None,
    custom_threshold: float | None = None,
) -> ThresholdChoice:
    """The one rule for page, predict and evaluate: a custom threshold wins; else the named
    operating point (the model's default when none is named) with its validation figures."""
    if custom_threshold is not None:
        if not 0.0 <= custom_threshold <= 1.0:
            raise ValueError(f"a threshold is a probability between 0 and 1, not {custom_threshold}")
        return ThresholdChoice(CUSTOM, float(custom_threshold))
    name = operating_point or default_point
    if name not in points:
        raise ValueError(f"unknown operating point {name!r}; choose from {', '.join(points)}")
    point = points[name]
    return ThresholdChoice(
        name,
        float(point["threshold"]),
        point.get("validation_sensitivity"),
        point.get("validation_specificity"),
    )
