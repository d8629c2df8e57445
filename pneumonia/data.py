"""Scan a folder in the Kaggle layout into a manifest and split it by patient."""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

LABELS = ("NORMAL", "PNEUMONIA")
IMAGE_SUFFIXES = {".jpeg", ".jpg", ".png"}

# person1000_bacteria_2931.jpeg, IM-0115-0001.jpeg, NORMAL2-IM-1427-0001.jpeg
_PERSON = re.compile(r"^(person\d+)_(bacteria|virus)_\d+", re.IGNORECASE)
_NORMAL = re.compile(r"^((?:NORMAL2-)?IM-\d+)-\d+", re.IGNORECASE)


@dataclass(frozen=True)
class FileInfo:
    patient_id: str
    subtype: str  # "normal", "bacteria", "virus" or "unknown"


def parse_filename(filename: str, label: str) -> FileInfo:
    """Patient id and subtype from a Kermany file name (unknown names keep the stem as patient)."""
    stem = Path(filename).stem
    m = _PERSON.match(stem)
    if m:
        return FileInfo(m.group(1).lower(), m.group(2).lower())
    m = _NORMAL.match(stem)
    if m:
        return FileInfo(m.group(1).upper(), "normal")
    return FileInfo(stem, "normal" if label == "NORMAL" else "unknown")


def scan(data_dir: str | Path, splits: list[str] | None = None) -> pd.DataFrame:
    """One row per image under ``data_dir/SPLIT/{NORMAL,PNEUMONIA}/``.

    Columns: split, label (0/1), label_name, subtype, patient_id, path.
    Patient ids are namespaces of their split; callers that pool splits decide how to group.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"data directory not found: {root}")
    split_dirs = [root / s for s in splits] if splits else sorted(p for p in root.iterdir() if p.is_dir())
    rows = []
    for split_dir in split_dirs:
        for label_index, label in enumerate(LABELS):
            folder = split_dir / label
            if not folder.is_dir():
                continue
            for path in sorted(folder.iterdir()):
                if path.suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                info = parse_filename(path.name, label)
                rows.append(
                    {
                        "split": split_dir.name,
                        "label": label_index,
                        "label_name": label,
                        "subtype": info.subtype,
                        "patient_id": info.patient_id,
                        "path": str(path),
                    }
                )
    if not rows:
        raise FileNotFoundError(f"no images in the Kaggle layout under {root} (SPLIT/NORMAL, SPLIT/PNEUMONIA)")
    return pd.DataFrame(rows)


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


def main() -> None:
    parser = argparse.ArgumentParser(description="Scan a Kaggle-layout folder into a manifest CSV.")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    manifest = scan(args.data_dir)
    manifest["part"] = patient_split(manifest, seed=args.seed)
    manifest.to_csv(args.out, index=False)
    print(manifest.groupby(["part", "label_name"]).size().to_string())


if __name__ == "__main__":
    main()
