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
    VAL_PREDICTIONS_FILE,
    ModelMetadata,
    read_metadata,
)

# Published results on the data set's own 624-image test split (the split this project's held-out check uses).
PUBLISHED = [
    {
        "source": "Kermany et al. 2018 (ImageNet transfer learning)",
        "split": "the data set's test split (624)",
        "accuracy": 0.928,
        "sensitivity": 0.932,
        "specificity": 0.901,
        "roc_auc": 0.968,
    },
    {
        "source": "MedMNIST v2 PneumoniaMNIST, best (Google AutoML Vision)",
        "split": "the data set's test split (624)",
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
    model_dir: Path | None = None
    hard_normal_predictions: pd.DataFrame | None = None


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
        model_dir=d,
        hard_normal_predictions=pd.read_csv(d / VAL_PREDICTIONS_FILE) if (d / VAL_PREDICTIONS_FILE).exists() else None,
    )


def metrics_table(test_metrics: dict) -> pd.DataFrame:
    """Point estimate with its patient-level bootstrap 95% CI for each metric."""
    rows = []
    for key, name in METRIC_NAMES.items():
        lo, hi = test_metrics["ci95"][key]
        rows.append({"metric": name, "value": test_metrics[key], "95% CI low": lo, "95% CI high": hi})
    return pd.DataFrame(rows)


def comparison_table(test_metrics: dict, held_out: dict | None = None) -> pd.DataFrame:
    """This model's figures beside the published ones: the held-out test split first (the same films
    the published figures are on), then the training pool's out-of-fold figures, which are not comparable."""
    keys = ("accuracy", "sensitivity", "specificity", "roc_auc")
    rows = []
    if held_out is not None:
        rows.append({"source": "This model, held-out test split", "split": "the data set's test split (624)"})
        rows[-1].update({k: held_out.get(k) for k in keys})
    ours = {"source": "This model, on the training pool", "split": "out of fold (not comparable)"}
    rows.append(ours | {k: test_metrics[k] for k in keys})
    return pd.DataFrame([*rows, *PUBLISHED])


VERSIONS_FILE = "versions.json"


def version_history(model_dir: str | Path, metadata: ModelMetadata, test_metrics: dict) -> list[dict]:
    """Each released model version, newest first: date, what changed, its training-pool figures and its
    held-out figures (None while pending). The current version comes first even before versions.json
    describes it, with its figures from test_metrics.json."""
    from pneumonia.insight.external_test import read_all

    path = Path(model_dir) / VERSIONS_FILE
    listed = json.loads(path.read_text())["versions"] if path.exists() else []
    held = read_all(model_dir)
    current = str(metadata.version)
    if not any(v["version"] == current for v in listed):
        listed = [{"version": current, "released": metadata.created[:10], "changed": ""}, *listed]
    rows = []
    for entry in listed:
        row = dict(entry)
        if entry["version"] == current:
            row["training_pool"] = {"measured_on": f"out of fold, {test_metrics['n']:,} films"} | {
                k: test_metrics[k] for k in ("roc_auc", "accuracy", "sensitivity", "specificity")
            }
            row["current"] = True
        row["held_out"] = held.get(entry["version"])
        rows.append(row)
    return rows


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


FILM_ATTRIBUTES = Path(__file__).resolve().parents[2] / "assets" / "film_attributes.csv"


def _rate_row(group: str, measure: str, hits: int, n: int) -> dict:
    from pneumonia.insight.external_test import wilson

    lo, hi = wilson(hits, n)
    return {
        "group": group,
        "measure": measure,
        "films": n,
        "count": f"{hits} of {n}",
        "value": hits / n if n else None,
        "95% CI low": lo,
        "95% CI high": hi,
    }


def _both_rates(group: str, frame: pd.DataFrame, threshold: float) -> list[dict]:
    called = frame["probability"] >= threshold
    sick, healthy = frame["label"] == 1, frame["label"] == 0
    return [
        _rate_row(group, "pneumonia found (sensitivity)", int((called & sick).sum()), int(sick.sum())),
        _rate_row(group, "normals cleared (specificity)", int((~called & healthy).sum()), int(healthy.sum())),
    ]


def subgroup_rows(art: Artifacts, threshold: float, attributes: Path = FILM_ATTRIBUTES) -> pd.DataFrame:
    """The training pool's out-of-fold results by the subgroups the data allows, with counts and Wilson
    intervals: pneumonia subtype, original against squashed copies, image size, and the hard normals."""
    pred = art.predictions
    called = pred["probability"] >= threshold
    rows = [
        _rate_row(
            f"{words} pneumonia",
            "found (sensitivity)",
            int((called & (pred["subtype"] == kind)).sum()),
            int((pred["subtype"] == kind).sum()),
        )
        for kind, words in (("bacteria", "bacterial"), ("virus", "viral"))
    ]
    if attributes.exists():
        films = pred.merge(pd.read_csv(attributes), on="file", how="inner")
        for kind, words in (("original", "original films"), ("squashed_224", "squashed 224x224 copies")):
            rows += _both_rates(words, films[films["source_kind"] == kind], threshold)
        original = films[films["source_kind"] == "original"]
        megapixels = original["orig_width"] * original["orig_height"] / 1e6
        median = float(megapixels.median())
        rows += _both_rates(f"original films under {median:.1f} MP", original[megapixels < median], threshold)
        rows += _both_rates(f"original films of {median:.1f} MP or more", original[megapixels >= median], threshold)
    hard = art.hard_normal_predictions
    if hard is not None and len(hard):
        cleared = int((hard["probability"] < threshold).sum())
        rows.append(
            _rate_row("hard normals (held out of every fold)", "normals cleared (specificity)", cleared, len(hard))
        )
    return pd.DataFrame(rows)


HEATMAP_RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results" / "heatmap_lungs.json"
HEATMAP_KEYS = {"gradcam": "gradcam", "gradcam++": "layercam", "layercam": "layercam", "scorecam": "scorecam"}


def heatmap_sentence(
    method: str, n_hard_normals: int, model_version: str | None = None, path: Path = HEATMAP_RESULTS
) -> str | None:
    """What the lung-field measurement of a heatmap method means, in one plain sentence (None when not
    measured). Grad-CAM++ equalled LayerCAM on the ungated network, so it reads LayerCAM's figures when it
    was not measured itself. Figures measured
    on another model version than ``model_version`` say so."""
    if not path.exists():
        return None
    result = json.loads(path.read_text())
    measured_on = result.get("model_version")
    other = (
        f" Measured on model {measured_on}, not this version." if model_version and measured_on != model_version else ""
    )
    groups = result.get("segmenter_fields", {}).get("groups", {})
    sick, normal, hard = (groups.get(g, {}) for g in ("pneumonia", "normal", "hard_normal"))
    key = method if method in sick else HEATMAP_KEYS.get(method, method)  # measured itself, or its equal
    if key not in sick or key not in normal:
        return None
    s, n = sick[key], normal[key]
    ratio = s["mass_inside_mean"] / sick["fields_share_mean"]
    strength = "only a little more than chance" if ratio < 1.5 else "more than chance"
    measured = f"{s['films']:,} pneumonia and {n['films']:,} normal films" + (
        ", a small sample" if s["films"] < 100 else ""
    )
    if key in hard and 15 < hard[key]["films"] < n_hard_normals:
        measured += (
            f"; the {hard[key]['films']} of the {n_hard_normals} hard normals not used to train the lung outline"
        )
    return (
        f"{s['mass_inside_mean']:.0%} of the map lies on the lungs, which cover {sick['fields_share_mean']:.0%} of the "
        f"film ({strength}); on normal films its hottest point is at the film's outer edge (arm, armpit, chest wall) "
        f"on {n['hotspot_at_edge_share']:.0%}. It shows what moved the score, not where the disease is ({measured})."
        + other
    )


def _smallest_denominator(rates: list[float], limit: int = 5000) -> int | None:
    for m in range(1, limit + 1):
        if all(abs(r * m - round(r * m)) < 1e-6 for r in rates):
            return m
    return None


def stress_sample(test_metrics: dict) -> tuple[int, int] | None:
    """The pneumonia and normal films of the stress-test sample: recorded as ``n_pneumonia`` / ``n_normal``
    in newer runs, otherwise the smallest counts that give every recorded sensitivity and specificity."""
    stress = test_metrics.get("stress") or {}
    first = next(iter(stress.values()), {})
    if "n_pneumonia" in first:
        return int(first["n_pneumonia"]), int(first["n_normal"])
    sick = _smallest_denominator([m["sensitivity"] for m in stress.values()])
    healthy = _smallest_denominator([m["specificity"] for m in stress.values()])
    return (sick, healthy) if sick and healthy else None
