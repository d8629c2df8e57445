"""Operating points (thresholds on the calibrated probability) chosen on validation data.

Each point maximises a cost-weighted Youden index, w * sensitivity + (1 - w) * specificity, then
enforces its floor. On an easy validation split both floors hold over a wide range of thresholds,
and "the highest threshold with >= 98% sensitivity" would sit above the balanced point; the
weighting keeps the points ordered (high sensitivity <= balanced <= high specificity) and each
one leaning the way its name says.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import roc_curve

from pneumonia.core.metrics import confusion, rates

MIN_SENSITIVITY = 0.98
MIN_SPECIFICITY = 0.95
POINTS = {
    "high_sensitivity": "High sensitivity (misses weigh 4x false alarms; >= 98% sensitivity on validation)",
    "balanced": "Balanced (Youden's J on validation)",
    "high_specificity": "High specificity (false alarms weigh 4x misses; >= 95% specificity on validation)",
}
WEIGHTS = {"high_sensitivity": 0.8, "balanced": 0.5, "high_specificity": 0.2}


def choose(y_true: np.ndarray, prob: np.ndarray) -> dict:
    """Thresholds for the three named operating points from (validation) labels and probabilities."""
    y, p = np.asarray(y_true).astype(int), np.asarray(prob, float)
    fpr, tpr, thr = roc_curve(y, p)  # thresholds in decreasing order
    thr = np.clip(thr, 0.0, 1.0)
    tnr = 1 - fpr
    idx = {}
    for name, w in WEIGHTS.items():
        score = w * tpr + (1 - w) * tnr
        best = np.flatnonzero(score >= score.max() - 1e-12)
        # among ties, lean the way the point's name says: lower threshold for sensitivity
        idx[name] = int(best[-1] if w > 0.5 else best[0] if w < 0.5 else best[len(best) // 2])
    if tpr[idx["high_sensitivity"]] < MIN_SENSITIVITY:
        idx["high_sensitivity"] = int(np.flatnonzero(tpr >= MIN_SENSITIVITY)[0])
    if tnr[idx["high_specificity"]] < MIN_SPECIFICITY:
        idx["high_specificity"] = int(np.flatnonzero(tnr >= MIN_SPECIFICITY)[-1])
    return {name: describe(y, p, float(thr[i]), POINTS[name]) for name, i in idx.items()}


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
