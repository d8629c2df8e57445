"""Local validation: the shipped model's figures on a site's own labelled images, read from an
archive run's results (``python -m pneumonia.score``).

The same numbers feed the evaluate command (``--results``), the performance page's "your data"
view and the validation report (PDF).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score, roc_curve

from pneumonia.core import operating_points
from pneumonia.core.kaggle_layout import parse_filename
from pneumonia.core.labels import LABELS
from pneumonia.core.metrics import (
    bootstrap_ci,
    confusion,
    expected_calibration_error,
    metrics_with_ci,
    predictive_values_at_prevalence,
    rates,
    subtype_summary,
)

FPR_GRID = np.linspace(0.0, 1.0, 101)
MIN_PER_CLASS = 2  # below this a site's labels cannot give sensitivity and specificity


def read_results(source: str | Path | bytes) -> pd.DataFrame:
    """A results file (path or its bytes), sorted by file so that row order never depends on the run."""
    import io

    df = pd.read_parquet(io.BytesIO(source) if isinstance(source, bytes) else source)
    missing = {"file", "probability", "truth"} - set(df.columns)
    if missing:
        raise ValueError(
            f"This is not a results file of `python -m pneumonia.score` (no {', '.join(sorted(missing))})."
        )
    return df.sort_values("file", kind="stable").reset_index(drop=True)


@dataclass
class Labelled:
    """The labelled, readable rows of a results table as arrays."""

    y: np.ndarray
    p: np.ndarray  # the model's calibrated probability, also for images the gate refused
    groups: np.ndarray  # patient ids where the file names give them, else one group per image
    subtypes: np.ndarray
    unreadable: int  # labelled files that could not be read
    refused: int  # labelled files the gate refused (they count in the figures)
    bacterial: np.ndarray | None = None  # probability that a pneumonia is bacterial, where the model gives it


def labelled(results: pd.DataFrame, input_name: str = "") -> Labelled:
    """Rows with a truth and a score, the way ``evaluate --data-dir`` counts them."""
    prob_col = "probability_ungated" if "probability_ungated" in results else "probability"
    has_truth = results["truth"].notna()
    readable = results[prob_col].notna()
    rows = results[has_truth & readable]
    y = rows["truth"].astype(int).to_numpy()
    infos = [parse_filename(PurePosixPath(f).name, LABELS[t]) for f, t in zip(rows["file"], y)]
    gate = rows["gate_ok"] if "gate_ok" in rows else pd.Series(True, index=rows.index)
    return Labelled(
        y=y,
        p=rows[prob_col].astype(float).to_numpy(),
        groups=np.array([f"{input_name}/{i.patient_id}" for i in infos], dtype=object),
        subtypes=np.array([i.subtype for i in infos], dtype=object),
        unreadable=int((has_truth & ~readable).sum()),
        refused=int((gate == False).sum()),  # noqa: E712 - a nullable column
        bacterial=rows["bacterial_probability"].astype(float).to_numpy() if "bacterial_probability" in rows else None,
    )


def evaluate_results(data: Labelled, threshold: float, n_boot: int = 1000) -> dict:
    """The evaluate command's metrics (with patient-bootstrap CIs and per-subtype recall)."""
    out = metrics_with_ci(data.y, data.p, threshold, groups=data.groups, subtypes=data.subtypes, n_boot=n_boot)
    out["subtype"] = subtype_summary(data.subtypes, data.bacterial)
    return out


def enough_labels(data: Labelled) -> bool:
    return int((data.y == 1).sum()) >= MIN_PER_CLASS and int((data.y == 0).sum()) >= MIN_PER_CLASS


def roc_band(data: Labelled, n_boot: int = 200, seed: int = 0) -> dict:
    """The ROC curve, a pointwise 95% band on sensitivity over a grid of false-positive rates
    (patient bootstrap), and the AUC with its interval."""
    fpr, tpr, _ = roc_curve(data.y, data.p)
    rng = np.random.default_rng(seed)
    uniq, inverse = np.unique(data.groups, return_inverse=True)
    members = [np.flatnonzero(inverse == g) for g in range(len(uniq))]
    curves, aucs = [], []
    for _ in range(n_boot):
        idx = np.concatenate([members[g] for g in rng.integers(0, len(uniq), len(uniq))])
        yb, pb = data.y[idx], data.p[idx]
        if len(np.unique(yb)) < 2:
            continue
        f, t, _ = roc_curve(yb, pb)
        curves.append(np.interp(FPR_GRID, f, t))
        aucs.append(roc_auc_score(yb, pb))
    band = np.percentile(np.array(curves), [2.5, 97.5], axis=0) if curves else np.vstack([FPR_GRID, FPR_GRID])
    return {
        "fpr": fpr,
        "tpr": tpr,
        "grid": FPR_GRID,
        "low": band[0],
        "high": band[1],
        "auc": float(roc_auc_score(data.y, data.p)),
        "auc_ci": [float(np.percentile(aucs, 2.5)), float(np.percentile(aucs, 97.5))] if aucs else [np.nan] * 2,
    }


def calibration(data: Labelled, n_bins: int = 10) -> dict:
    """Mean predicted probability against the observed pneumonia fraction in equal-width bins."""
    bins = np.minimum((data.p * n_bins).astype(int), n_bins - 1)
    rows = [
        (float(data.p[bins == b].mean()), float(data.y[bins == b].mean()), int((bins == b).sum()))
        for b in range(n_bins)
        if (bins == b).any()
    ]
    pred, frac, count = (list(col) for col in zip(*rows)) if rows else ([], [], [])
    brier = float(np.mean((data.p - data.y) ** 2)) if len(data.y) else float("nan")
    return {"mean_predicted": pred, "fraction_positive": frac, "count": count, "brier": brier} | {
        "ece": expected_calibration_error(data.y, data.p, n_bins)
    }


def _point_row(data: Labelled, name: str, threshold: float, prevalence: float, n_boot: int) -> dict:
    r = rates(*confusion(data.y, data.p, threshold))
    ci = bootstrap_ci(data.y, data.p, threshold, groups=data.groups, n_boot=n_boot, keys=("sensitivity", "specificity"))
    ppv, npv = predictive_values_at_prevalence(r["sensitivity"], r["specificity"], prevalence)
    return {
        "operating point": name,
        "threshold": threshold,
        "sensitivity": r["sensitivity"],
        "sensitivity 95% CI": ci["sensitivity"],
        "specificity": r["specificity"],
        "specificity 95% CI": ci["specificity"],
        "PPV": ppv,
        "NPV": npv,
    }


def shipped_points_on_site(
    data: Labelled, points: dict[str, dict], prevalence: float, n_boot: int = 300
) -> pd.DataFrame:
    """Each shipped operating point: its validation figures beside what it does on this site's images."""
    rows = []
    for name, point in points.items():
        row = _point_row(data, name, float(point["threshold"]), prevalence, n_boot)
        row["shipped sensitivity"] = point.get("validation_sensitivity")
        row["shipped specificity"] = point.get("validation_specificity")
        rows.append(row)
    return pd.DataFrame(rows)


def rechosen_points(data: Labelled, prevalence: float, n_boot: int = 300) -> pd.DataFrame:
    """The operating points chosen again, by the shipped rule, on this site's images."""
    chosen = operating_points.choose(data.y, data.p)
    return pd.DataFrame(
        [_point_row(data, name, float(pt["threshold"]), prevalence, n_boot) for name, pt in chosen.items()]
    )


@dataclass
class SiteValidation:
    """Everything the "your data" view and the validation report show."""

    model_version: str
    counts: dict[str, int]
    prevalence: float  # the prevalence PPV/NPV are given at
    metrics: dict | None  # evaluate's metrics at the default point; None without enough labels
    default_point: str
    shipped: pd.DataFrame | None
    rechosen: pd.DataFrame | None
    roc: dict | None
    calibration: dict | None


def file_counts(results: pd.DataFrame, data: Labelled) -> dict[str, int]:
    status = results["status"] if "status" in results else pd.Series(dtype=str)
    return {
        "files": len(results),
        "scored": int((status == "scored").sum()),
        "refused": int((status == "refused").sum()),
        "unreadable": int((status == "unreadable").sum()),
        "labelled": int(len(data.y)),
        "pneumonia": int((data.y == 1).sum()),
        "normal": int((data.y == 0).sum()),
    }


def validate(
    results: pd.DataFrame,
    points: dict[str, dict],
    default_point: str,
    model_version: str,
    prevalence: float | None = None,
    n_boot: int = 300,
) -> SiteValidation:
    """The site's figures; ``prevalence`` defaults to the labelled images' own pneumonia share."""
    data = labelled(results)
    counts = file_counts(results, data)
    site_prev = float(data.y.mean()) if len(data.y) else float("nan")
    prev = site_prev if prevalence is None else float(prevalence)
    if not enough_labels(data):
        return SiteValidation(model_version, counts, prev, None, default_point, None, None, None, None)
    threshold = float(points[default_point]["threshold"])
    return SiteValidation(
        model_version=model_version,
        counts=counts,
        prevalence=prev,
        metrics=evaluate_results(data, threshold, n_boot=n_boot),
        default_point=default_point,
        shipped=shipped_points_on_site(data, points, prev, n_boot),
        rechosen=rechosen_points(data, prev, n_boot),
        roc=roc_band(data, n_boot=min(n_boot, 200)),
        calibration=calibration(data),
    )
