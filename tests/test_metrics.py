"""The package's metric functions agree with scikit-learn on fixed data."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    brier_score_loss,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)
from sklearn.metrics import confusion_matrix as sk_confusion

from pneumonia.core import calibration, operating_points
from pneumonia.core.metrics import (
    binary_metrics,
    bootstrap_ci,
    expected_calibration_error,
    predictive_values_at_prevalence,
)
from pneumonia.core.operating_points import resolve_threshold

RNG = np.random.default_rng(3)
Y = RNG.integers(0, 2, 300)
P = np.clip(Y * 0.35 + RNG.random(300) * 0.65, 0, 1)


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.62])
def test_binary_metrics_match_sklearn(threshold):
    m = binary_metrics(Y, P, threshold)
    pred = (threshold <= P).astype(int)
    assert m["n"] == 300
    assert m["accuracy"] == pytest.approx(accuracy_score(Y, pred))
    assert m["roc_auc"] == pytest.approx(roc_auc_score(Y, P))
    assert m["sensitivity"] == pytest.approx(recall_score(Y, pred))
    assert m["specificity"] == pytest.approx(recall_score(Y, pred, pos_label=0))
    assert m["precision"] == pytest.approx(precision_score(Y, pred))
    assert m["f1"] == pytest.approx(f1_score(Y, pred))
    assert m["brier"] == pytest.approx(brier_score_loss(Y, P))
    assert m["confusion_matrix"] == sk_confusion(Y, pred).tolist()


def test_ece_known_values():
    assert expected_calibration_error(np.array([0, 1, 0, 1]), np.array([0.5, 0.5, 0.5, 0.5])) == pytest.approx(0)
    assert expected_calibration_error(np.array([1, 1]), np.array([0.75, 0.75])) == pytest.approx(0.25)


def test_bootstrap_ci_brackets_the_estimate():
    groups = np.repeat(np.arange(150), 2)
    ci = bootstrap_ci(Y, P, 0.5, groups=groups, n_boot=300)
    m = binary_metrics(Y, P, 0.5)
    for key in ("accuracy", "roc_auc", "sensitivity", "specificity"):
        lo, hi = ci[key]
        assert lo <= m[key] <= hi and hi - lo > 0.01


def test_predictive_values_at_prevalence():
    ppv, npv = predictive_values_at_prevalence(0.9, 0.8, 0.5)
    assert ppv == pytest.approx(0.45 / (0.45 + 0.1))
    assert npv == pytest.approx(0.4 / (0.4 + 0.05))


def test_operating_points_meet_their_floors():
    ops = operating_points.choose(Y, P)
    hs, hsp = ops["high_sensitivity"], ops["high_specificity"]
    assert hs["sensitivity"] >= 0.99
    assert ops["balanced"]["sensitivity"] >= 0.97
    assert hsp["specificity"] >= 0.99
    assert hs["threshold"] <= ops["balanced"]["threshold"] <= hsp["threshold"]


def test_platt_calibration_improves_a_miscalibrated_score():
    logits = RNG.normal(0, 1, 2000)
    y = (RNG.random(2000) < 1 / (1 + np.exp(-0.5 * logits + 0.3))).astype(int)
    cal = calibration.fit_platt(logits * 3, y)  # overconfident logits
    before = expected_calibration_error(y, calibration.apply(None, logits * 3))
    after = expected_calibration_error(y, calibration.apply(cal, logits * 3))
    assert after < before / 2


POINTS = {
    "balanced": {"threshold": 0.6, "validation_sensitivity": 0.9, "validation_specificity": 0.8},
    "high_sensitivity": {"threshold": 0.3, "validation_sensitivity": 0.99, "validation_specificity": 0.5},
}


def test_resolve_threshold_default_named_and_custom():
    default = resolve_threshold(POINTS, "balanced")
    assert (default.operating_point, default.threshold, default.validated) == ("balanced", 0.6, True)
    named = resolve_threshold(POINTS, "balanced", "high_sensitivity")
    assert named.threshold == 0.3 and named.validation_sensitivity == 0.99
    custom = resolve_threshold(POINTS, "balanced", "high_sensitivity", custom_threshold=0.42)
    assert (custom.operating_point, custom.threshold, custom.validated) == ("custom", 0.42, False)


def test_resolve_threshold_refuses_unknown_points_and_impossible_thresholds():
    with pytest.raises(ValueError, match="unknown operating point 'sensitive'"):
        resolve_threshold(POINTS, "balanced", "sensitive")
    with pytest.raises(ValueError, match="between 0 and 1"):
        resolve_threshold(POINTS, "balanced", custom_threshold=1.5)
