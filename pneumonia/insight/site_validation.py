"""Local validation: the shipped model's figures on a site's own labelled images, read from an
archive run's results (``python -m pneumonia.score``).

The same numbers feed the evaluate command (``--results``), the performance page's "your data"
view and the validation report (PDF). The page's patient bootstraps draw exactly the resamples of
:func:`pneumonia.core.metrics.bootstrap_ci` (same seed, same order) but count each resample with
weights over the images sorted once, instead of re-running scikit-learn on every resample: the
same intervals in a fraction of the time (20 images: about 5 s -> well under 1 s). The page and its report
then widen each interval to at least the Wilson interval of its counts (:func:`widened`), so a few films
never give an interval of zero width.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score, roc_curve

from pneumonia.core import operating_points
from pneumonia.core.kaggle_layout import parse_filename
from pneumonia.core.labels import LABELS
from pneumonia.core.metrics import (
    binary_metrics,
    confusion,
    expected_calibration_error,
    metrics_with_ci,
    predictive_values_at_prevalence,
    rates,
    subtype_summary,
)

FPR_GRID = np.linspace(0.0, 1.0, 101)
BOOT_CHUNK = 64  # resamples weighed at once (memory: chunk x images)
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


class Resamples:
    """Patient-bootstrap resamples as integer weights per image: resample ``b`` draws groups exactly as
    :func:`pneumonia.core.metrics.bootstrap_ci` does (``rng.integers(0, G, G)`` per resample, same seed),
    and an image's weight is how often its patient was drawn. Images are sorted by probability once;
    each statistic is then a weighted sum, not a new scikit-learn call."""

    def __init__(self, y: np.ndarray, p: np.ndarray, groups: np.ndarray | None, n_boot: int, seed: int = 0):
        y, p = np.asarray(y).astype(int), np.asarray(p, float)
        groups = np.arange(len(y)) if groups is None else np.asarray(groups)
        uniq, inverse = np.unique(groups, return_inverse=True)
        rng = np.random.default_rng(seed)
        n_groups = len(uniq)
        self.draws = (
            np.stack([np.bincount(rng.integers(0, n_groups, n_groups), minlength=n_groups) for _ in range(n_boot)])
            if n_boot
            else np.zeros((0, n_groups), int)
        )
        order = np.argsort(p, kind="stable")
        self.p, self.y, self.group = p[order], y[order], inverse[order]
        self.starts = np.flatnonzero(np.r_[True, self.p[1:] != self.p[:-1]]) if len(p) else np.zeros(0, int)

    def chunks(self):
        """(positive weights, negative weights) per image, ``BOOT_CHUNK`` resamples at a time."""
        for i in range(0, len(self.draws), BOOT_CHUNK):
            w = self.draws[i : i + BOOT_CHUNK][:, self.group].astype(float)
            yield w * self.y, w * (1 - self.y)

    def confusion_counts(self, threshold: float) -> np.ndarray:
        """tn, fp, fn, tp per resample (rows), at ``threshold`` (called pneumonia at or above it)."""
        k = int(np.searchsorted(self.p, threshold, side="left"))
        out = []
        for wp, wn in self.chunks():
            tp, fp = wp[:, k:].sum(1), wn[:, k:].sum(1)
            out.append(np.stack([wn.sum(1) - fp, fp, wp.sum(1) - tp, tp], axis=1))
        return np.concatenate(out) if out else np.zeros((0, 4))

    def per_value(self):
        """Positive and negative weight at each distinct probability (ascending), per resample chunk."""
        for wp, wn in self.chunks():
            yield np.add.reduceat(wp, self.starts, axis=1), np.add.reduceat(wn, self.starts, axis=1)

    def aucs(self) -> np.ndarray:
        """ROC AUC per resample (Mann-Whitney with ties counted half, as roc_auc_score); NaN with one class."""
        out = []
        for pos, neg in self.per_value():
            n_pos, n_neg = pos.sum(1), neg.sum(1)
            pos_above = n_pos[:, None] - np.cumsum(pos, axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                out.append((neg * (pos_above + 0.5 * pos)).sum(1) / (n_pos * n_neg))
        return np.concatenate(out) if out else np.zeros(0)

    def roc_curves(self, grid: np.ndarray) -> np.ndarray:
        """Sensitivity at each false-positive rate of ``grid``, per resample with both classes."""
        curves = []
        for pos, neg in self.per_value():
            tps, fps = np.cumsum(pos[:, ::-1], axis=1), np.cumsum(neg[:, ::-1], axis=1)  # thresholds falling
            for tp, fp in zip(tps, fps):
                if tp[-1] > 0 and fp[-1] > 0:
                    curves.append(np.interp(grid, np.r_[0.0, fp / fp[-1]], np.r_[0.0, tp / tp[-1]]))
        return np.array(curves)


def _percentiles(values: np.ndarray) -> list[float]:
    return [float(np.nanpercentile(values, 2.5)), float(np.nanpercentile(values, 97.5))]


def resampled_ci(resamples: Resamples, threshold: float, keys: tuple[str, ...]) -> dict[str, list[float]]:
    """What :func:`pneumonia.core.metrics.bootstrap_ci` gives for these keys, from the weighted resamples."""
    counts = resamples.confusion_counts(threshold)
    per = [rates(*row) for row in counts]
    out = {k: _percentiles(np.array([r[k] for r in per], float)) for k in keys if k != "roc_auc"}
    if "roc_auc" in keys:
        out["roc_auc"] = _percentiles(resamples.aucs())
    return {k: out[k] for k in keys}


CI_KEYS = ("accuracy", "roc_auc", "sensitivity", "specificity", "precision", "npv", "f1")


def wilson_counts(threshold: float, y: np.ndarray, p: np.ndarray) -> dict[str, tuple[int, int]]:
    """Successes and trials of each rate at ``threshold``, for its Wilson interval."""
    tn, fp, fn, tp = confusion(y, p, threshold)
    n = tn + fp + fn + tp
    return {
        "accuracy": (tp + tn, n),
        "sensitivity": (tp, tp + fn),
        "specificity": (tn, tn + fp),
        "precision": (tp, tp + fp),
        "npv": (tn, tn + fn),
    }


def widened(bootstrap: list[float], counts: tuple[int, int]) -> list[float]:
    """The patient bootstrap's interval widened to include the Wilson interval of the counts: a few films
    can never give a zero-width interval (10 films all right: 100.0% (72.2-100.0%), not 100.0-100.0%)."""
    from pneumonia.insight.external_test import wilson

    lo, hi = wilson(*counts)
    if np.isnan(lo):
        return list(bootstrap)
    return [float(np.nanmin([bootstrap[0], lo])), float(np.nanmax([bootstrap[1], hi]))]


def auc_interval(bootstrap: list[float], auc: float, n_pneumonia: int, n_normal: int) -> list[float]:
    """The AUC's bootstrap interval, widened to at least the Wilson interval of the AUC taken as a share
    of the smaller class's count (conservative; the bootstrap alone gives 1.000-1.000 from 10 separable films)."""
    from pneumonia.insight.external_test import wilson

    m = min(n_pneumonia, n_normal)
    if m == 0 or np.isnan(auc):
        return list(bootstrap)
    lo, hi = wilson(round(auc * m), m)
    return [float(np.nanmin([bootstrap[0], lo])), float(np.nanmax([bootstrap[1], hi]))]


def site_metrics(data: Labelled, threshold: float, n_boot: int = 1000) -> dict:
    """:func:`evaluate_results`'s figures (the evaluate command's), with the same intervals computed
    from weighted resamples, widened to at least the Wilson interval of the counts."""
    out = binary_metrics(data.y, data.p, threshold)
    out["ece"] = expected_calibration_error(data.y, data.p)
    ci = resampled_ci(Resamples(data.y, data.p, data.groups, n_boot), threshold, CI_KEYS)
    for key, counts in wilson_counts(threshold, data.y, data.p).items():
        ci[key] = widened(ci[key], counts)
    ci["roc_auc"] = auc_interval(ci["roc_auc"], out["roc_auc"], int((data.y == 1).sum()), int((data.y == 0).sum()))
    out["ci95"] = ci
    out["per_subtype"] = _per_subtype(data, threshold)
    out["subtype"] = subtype_summary(data.subtypes, data.bacterial)
    return out


def _per_subtype(data: Labelled, threshold: float) -> dict:
    """Recall per pneumonia subtype and, for normals, the share called normal (as metrics_with_ci gives)."""
    per = {}
    for sub in sorted(set(data.subtypes)):
        mask = data.subtypes == sub
        r = rates(*confusion(data.y[mask], data.p[mask], threshold))
        key = "specificity" if sub == "normal" else "recall"
        per[sub] = {"n": int(mask.sum()), key: r["specificity" if sub == "normal" else "sensitivity"]}
    return per


def roc_band(data: Labelled, n_boot: int = 200, seed: int = 0) -> dict:
    """The ROC curve, a pointwise 95% band on sensitivity over a grid of false-positive rates
    (patient bootstrap), and the AUC with its interval."""
    fpr, tpr, _ = roc_curve(data.y, data.p)
    resamples = Resamples(data.y, data.p, data.groups, n_boot, seed)
    curves, aucs = resamples.roc_curves(FPR_GRID), resamples.aucs()
    aucs = aucs[~np.isnan(aucs)]
    band = np.percentile(curves, [2.5, 97.5], axis=0) if len(curves) else np.vstack([FPR_GRID, FPR_GRID])
    return {
        "fpr": fpr,
        "tpr": tpr,
        "grid": FPR_GRID,
        "low": band[0],
        "high": band[1],
        "auc": float(roc_auc_score(data.y, data.p)),
        "auc_ci": auc_interval(
            _percentiles(aucs) if len(aucs) else [np.nan] * 2,
            float(roc_auc_score(data.y, data.p)),
            int((data.y == 1).sum()),
            int((data.y == 0).sum()),
        ),
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


def _point_row(data: Labelled, resamples: Resamples, name: str, threshold: float, prevalence: float) -> dict:
    r = rates(*confusion(data.y, data.p, threshold))
    ci = resampled_ci(resamples, threshold, ("sensitivity", "specificity"))
    counts = wilson_counts(threshold, data.y, data.p)
    row = {
        "operating point": name,
        "threshold": threshold,
        "sensitivity": r["sensitivity"],
        "sensitivity 95% CI": widened(ci["sensitivity"], counts["sensitivity"]),
        "specificity": r["specificity"],
        "specificity 95% CI": widened(ci["specificity"], counts["specificity"]),
    }
    return row | predictive_values(row, prevalence)


def predictive_values(row: dict, prevalence: float) -> dict:
    """PPV and NPV at ``prevalence`` with the range the sensitivity's and specificity's intervals give (both
    rise with each): zero false positives among a few films gives PPV 100% only with its wide range."""
    ppv, npv = predictive_values_at_prevalence(row["sensitivity"], row["specificity"], prevalence)
    (se_lo, se_hi), (sp_lo, sp_hi) = row["sensitivity 95% CI"], row["specificity 95% CI"]
    low = predictive_values_at_prevalence(se_lo, sp_lo, prevalence)
    high = predictive_values_at_prevalence(se_hi, sp_hi, prevalence)
    return {"PPV": ppv, "PPV 95% CI": [low[0], high[0]], "NPV": npv, "NPV 95% CI": [low[1], high[1]]}


def shipped_points_on_site(
    data: Labelled,
    points: dict[str, dict],
    prevalence: float,
    n_boot: int = 300,
    reference: dict[str, tuple[float, float]] | None = None,
) -> pd.DataFrame:
    """Each shipped operating point on this site's images beside its reference figures: ``reference``
    (the held-out test split's sensitivity and specificity by point) when given, else the training pool's."""
    resamples = Resamples(data.y, data.p, data.groups, n_boot)
    rows = []
    for name, point in points.items():
        row = _point_row(data, resamples, name, float(point["threshold"]), prevalence)
        if reference is not None:
            row["shipped sensitivity"], row["shipped specificity"] = reference.get(name, (None, None))
        else:
            row["shipped sensitivity"] = point.get("validation_sensitivity")
            row["shipped specificity"] = point.get("validation_specificity")
        rows.append(row)
    return pd.DataFrame(rows)


def rechosen_points(data: Labelled, prevalence: float, n_boot: int = 300) -> pd.DataFrame:
    """The operating points chosen again, by the shipped rule, on this site's images."""
    chosen = operating_points.choose(data.y, data.p)
    resamples = Resamples(data.y, data.p, data.groups, n_boot)
    return pd.DataFrame(
        [_point_row(data, resamples, name, float(pt["threshold"]), prevalence) for name, pt in chosen.items()]
    )


def with_prevalence(table: pd.DataFrame | None, prevalence: float) -> pd.DataFrame | None:
    """PPV and NPV of each row again at another prevalence (Bayes; nothing is resampled)."""
    if table is None:
        return None
    out = table.copy()
    values = [predictive_values(row, prevalence) for row in out.to_dict("records")]
    for key in ("PPV", "PPV 95% CI", "NPV", "NPV 95% CI"):
        out[key] = [v[key] for v in values]
    return out


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
    reference_name: str = "training pool"  # what the "shipped" columns are: the held-out split's or the training pool's

    @property
    def enough_to_adopt(self) -> bool:
        """Enough labelled images of each class for a site threshold to be saved for clinical use."""
        from pneumonia.serving.site_points import too_few

        return not too_few(self.counts["pneumonia"], self.counts["normal"])

    def at_prevalence(self, prevalence: float) -> SiteValidation:
        """The same figures with PPV and NPV at another prevalence: a prevalence change costs no resampling."""
        return replace(
            self,
            prevalence=float(prevalence),
            shipped=with_prevalence(self.shipped, prevalence),
            rechosen=with_prevalence(self.rechosen, prevalence),
        )


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
    reference: dict[str, tuple[float, float]] | None = None,
    reference_name: str = "training pool",
) -> SiteValidation:
    """The site's figures; ``prevalence`` defaults to the labelled images' own pneumonia share;
    ``reference`` gives the figures the site's are set beside (the held-out split's, by operating point)."""
    data = labelled(results)
    counts = file_counts(results, data)
    site_prev = float(data.y.mean()) if len(data.y) else float("nan")
    prev = site_prev if prevalence is None else float(prevalence)
    if not enough_labels(data):
        return SiteValidation(model_version, counts, prev, None, default_point, None, None, None, None, reference_name)
    threshold = float(points[default_point]["threshold"])
    return SiteValidation(
        model_version=model_version,
        counts=counts,
        prevalence=prev,
        metrics=site_metrics(data, threshold, n_boot=n_boot),
        default_point=default_point,
        shipped=shipped_points_on_site(data, points, prev, n_boot, reference),
        rechosen=rechosen_points(data, prev, n_boot),
        roc=roc_band(data, n_boot=min(n_boot, 200)),
        calibration=calibration(data),
        reference_name=reference_name,
    )
