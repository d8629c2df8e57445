"""Classification metrics over arrays, with patient-level bootstrap confidence intervals.

Thin wrappers over scikit-learn so that every page and report names the same quantities. scikit-learn
is imported where a metric needs it: serving reads thresholds through this module and must start fast.
"""

from __future__ import annotations

import numpy as np


def confusion(y_true: np.ndarray, prob: np.ndarray, threshold: float) -> tuple[int, int, int, int]:
    """(tn, fp, fn, tp) with "positive" meaning probability >= threshold."""
    from sklearn.metrics import confusion_matrix

    pred = (np.asarray(prob) >= threshold).astype(int)
    tn, fp, fn, tp = confusion_matrix(np.asarray(y_true).astype(int), pred, labels=[0, 1]).ravel()
    return int(tn), int(fp), int(fn), int(tp)


def _ratio(a: float, b: float) -> float:
    return float(a / b) if b else float("nan")


def rates(tn: int, fp: int, fn: int, tp: int) -> dict[str, float]:
    """Sensitivity, specificity, PPV (precision), NPV, accuracy and F1 from a confusion matrix."""
    sens, spec = _ratio(tp, tp + fn), _ratio(tn, tn + fp)
    ppv, npv = _ratio(tp, tp + fp), _ratio(tn, tn + fn)
    f1 = _ratio(2 * tp, 2 * tp + fp + fn)
    return {
        "accuracy": _ratio(tp + tn, tn + fp + fn + tp),
        "sensitivity": sens,
        "specificity": spec,
        "precision": ppv,
        "npv": npv,
        "f1": f1,
    }


def predictive_values_at_prevalence(sensitivity: float, specificity: float, prevalence: float) -> tuple[float, float]:
    """PPV and NPV that the same sensitivity/specificity give at another disease prevalence (Bayes)."""
    tp = sensitivity * prevalence
    fp = (1 - specificity) * (1 - prevalence)
    fn = (1 - sensitivity) * prevalence
    tn = specificity * (1 - prevalence)
    return _ratio(tp, tp + fp), _ratio(tn, tn + fn)


def expected_calibration_error(y_true: np.ndarray, prob: np.ndarray, n_bins: int = 10) -> float:
    """ECE with equal-width bins: the bin-size weighted gap between confidence and frequency."""
    y, p = np.asarray(y_true, float), np.asarray(prob, float)
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        mask = bins == b
        if mask.any():
            ece += mask.mean() * abs(p[mask].mean() - y[mask].mean())
    return float(ece)


def binary_metrics(y_true: np.ndarray, prob: np.ndarray, threshold: float) -> dict:
    """The evaluate CLI's metrics: n, accuracy, roc_auc, sensitivity, specificity, ... confusion_matrix."""
    from sklearn.metrics import brier_score_loss, roc_auc_score

    y, p = np.asarray(y_true).astype(int), np.asarray(prob, float)
    tn, fp, fn, tp = confusion(y, p, threshold)
    out = {"n": int(len(y)), "threshold": float(threshold)}
    out["roc_auc"] = float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else float("nan")
    out.update(rates(tn, fp, fn, tp))
    out["brier"] = float(brier_score_loss(y, p, pos_label=1)) if len(y) else float("nan")
    out["ece"] = expected_calibration_error(y, p)
    out["confusion_matrix"] = [[tn, fp], [fn, tp]]
    return out


def bootstrap_ci(
    y_true: np.ndarray,
    prob: np.ndarray,
    threshold: float,
    groups: np.ndarray | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    keys: tuple[str, ...] = ("accuracy", "roc_auc", "sensitivity", "specificity", "precision", "npv", "f1"),
) -> dict[str, list[float]]:
    """95% percentile intervals, resampling patients (not images) when ``groups`` is given."""
    from sklearn.metrics import roc_auc_score

    y, p = np.asarray(y_true).astype(int), np.asarray(prob, float)
    rng = np.random.default_rng(seed)
    if groups is None:
        groups = np.arange(len(y))
    uniq, inverse = np.unique(np.asarray(groups), return_inverse=True)
    members = [np.flatnonzero(inverse == g) for g in range(len(uniq))]
    samples: dict[str, list[float]] = {k: [] for k in keys}
    for _ in range(n_boot):
        idx = np.concatenate([members[g] for g in rng.integers(0, len(uniq), len(uniq))])
        yb, pb = y[idx], p[idx]
        tn, fp, fn, tp = confusion(yb, pb, threshold)
        r = rates(tn, fp, fn, tp)
        r["roc_auc"] = float(roc_auc_score(yb, pb)) if len(np.unique(yb)) == 2 else float("nan")
        for k in keys:
            samples[k].append(r[k])
    return {k: [float(np.nanpercentile(v, 2.5)), float(np.nanpercentile(v, 97.5))] for k, v in samples.items()}


PerImageValues = np.ndarray | None  # one value per image: a patient id or a subtype


def _rate_per_subtype(y_true: np.ndarray, prob: np.ndarray, threshold: float, subtypes: np.ndarray) -> dict:
    """Recall per pneumonia subtype; normals have no recall, so they get the rate called normal."""
    per = {}
    for sub in sorted(set(subtypes)):
        mask = np.asarray(subtypes) == sub
        r = rates(*confusion(np.asarray(y_true)[mask], np.asarray(prob)[mask], threshold))
        key = "specificity" if sub == "normal" else "recall"
        per[sub] = {"n": int(mask.sum()), key: r["specificity" if sub == "normal" else "sensitivity"]}
    return per


def metrics_with_ci(
    y_true: np.ndarray,
    prob: np.ndarray,
    threshold: float,
    *,
    groups: PerImageValues = None,
    subtypes: PerImageValues = None,
    n_boot: int = 1000,
) -> dict:
    """:func:`binary_metrics` at ``threshold`` with patient-level bootstrap 95% CIs and recall per subtype."""
    out = binary_metrics(y_true, prob, threshold)
    out["ece"] = expected_calibration_error(y_true, prob)
    out["ci95"] = bootstrap_ci(y_true, prob, threshold, groups=groups, n_boot=n_boot)
    if subtypes is not None:
        out["per_subtype"] = _rate_per_subtype(y_true, prob, threshold, subtypes)
    return out


def subtype_summary(subtypes: np.ndarray, bacterial_probability: np.ndarray | None) -> dict | None:
    """Bacterial (positive) vs viral over the pneumonia images whose subtype is known and that got a
    bacterial probability: ``{"n", "accuracy", "roc_auc"}`` (None where there is nothing to judge)."""
    from sklearn.metrics import roc_auc_score

    if bacterial_probability is None:
        return None
    p = np.asarray(bacterial_probability, float)
    known = np.isin(np.asarray(subtypes).astype(str), ["bacteria", "virus"]) & ~np.isnan(p)
    y = (np.asarray(subtypes).astype(str)[known] == "bacteria").astype(int)
    if not known.any():
        return None
    auc = float(roc_auc_score(y, p[known])) if len(np.unique(y)) == 2 else None
    return {"n": int(known.sum()), "accuracy": float(((p[known] >= 0.5) == y).mean()), "roc_auc": auc}
