"""Read a folder in the Kaggle layout (``DIR/SPLIT/{NORMAL,PNEUMONIA}/*.jpeg``) into a manifest.

Used by training, evaluation and the data set summary alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pneumonia.core.labels import LABELS

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


def _rows_of_split(split_dir: Path) -> list[dict]:
    rows = []
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
    return rows


def scan(data_dir: str | Path, splits: list[str] | None = None) -> pd.DataFrame:
    """One row per image under ``data_dir/SPLIT/{NORMAL,PNEUMONIA}/``.

    Columns: split, label (0/1), label_name, subtype, patient_id, path.
    Patient ids are namespaces of their split; callers that pool splits decide how to group.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"data directory not found: {root}")
    split_dirs = [root / s for s in splits] if splits else sorted(p for p in root.iterdir() if p.is_dir())
    rows = [row for split_dir in split_dirs for row in _rows_of_split(split_dir)]
    if not rows:
        raise FileNotFoundError(f"no images in the Kaggle layout under {root} (SPLIT/NORMAL, SPLIT/PNEUMONIA)")
    return pd.DataFrame(rows)
