"""The training manifest: the pooled non-test splits of a Kaggle-layout folder, split by patient."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from pneumonia.core.kaggle_layout import scan


def patient_split(
    manifest: pd.DataFrame, seed: int = 42, n_folds: int = 10, val_folds: int = 1, test_folds: int = 1
) -> pd.Series:
    """Assign each row to ``train``/``val``/``test`` so that no patient is in two parts.

    Stratified by subtype (normal/bacteria/virus) through scikit-learn's StratifiedGroupKFold;
    with 10 folds, one is the internal test and one the validation (about 80/10/10).
    Rows are grouped by the raw patient id across pooled splits, which is conservative: a
    collision between namespaces only keeps two patients together.
    """
    cv = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    fold = np.empty(len(manifest), dtype=int)
    for k, (_, idx) in enumerate(cv.split(manifest, manifest["subtype"], groups=manifest["patient_id"])):
        fold[idx] = k
    part = np.where(fold < test_folds, "test", np.where(fold < test_folds + val_folds, "val", "train"))
    return pd.Series(part, index=manifest.index, name="part")


def training_manifest(data_dir: str | Path, seed: int = 42, limit: int = 0) -> pd.DataFrame:
    """Manifest of the pooled non-test splits, with a patient-level train/val/test ``part`` column.

    The official test split is never used for training or selection; the official val folder
    (16 images) is too small to select on, so it is pooled and re-split by patient. ``limit`` keeps
    about that many images per part (smoke tests).
    """
    manifest = scan(data_dir)
    manifest = manifest[manifest["split"] != "test"].reset_index(drop=True)
    manifest["part"] = patient_split(manifest, seed=seed)
    if limit:
        shuffled = manifest.sample(frac=1.0, random_state=seed)
        manifest = shuffled.groupby(["part", "label"]).head(max(1, limit // 2)).reset_index(drop=True)
    return manifest


def patient_folds(manifest: pd.DataFrame, n_folds: int = 5, seed: int = 42) -> np.ndarray:
    """Cross-validation fold of each row, grouped by patient and stratified by subtype; -1 for the
    hard normals (``manifest["hard_normal"]``), which no fold trains on."""
    fold = np.full(len(manifest), -1)
    pool = np.flatnonzero(~manifest["hard_normal"].to_numpy(bool))
    cv = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    rows = manifest.iloc[pool]
    for k, (_, idx) in enumerate(cv.split(rows, rows["subtype"], groups=rows["patient_id"])):
        fold[pool[idx]] = k
    return fold


def relative_name(path: str | Path) -> str:
    """``split/LABEL/file``: how an image is named in split.csv and hard_normals.csv."""
    return "/".join(Path(path).parts[-3:])


def mark_hard_normals(manifest: pd.DataFrame, hard_normals_csv: str | Path | None) -> pd.DataFrame:
    """Adds ``hard_normal``: every image of a patient listed in the hard-normal file."""
    manifest = manifest.copy()
    if hard_normals_csv and not Path(hard_normals_csv).exists():
        raise FileNotFoundError(f"hard-normal list not found: {hard_normals_csv} (pass '' to train without one)")
    listed = set(pd.read_csv(hard_normals_csv)["patient_id"]) if hard_normals_csv else set()
    manifest["hard_normal"] = manifest["patient_id"].isin(listed) & (manifest["label"] == 0)
    return manifest
