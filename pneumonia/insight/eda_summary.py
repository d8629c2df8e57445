"""Data set statistics for the EDA page, computed from a Kaggle-layout folder and shipped in assets/."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from PIL import Image

from pneumonia.core.decode import read_file
from pneumonia.core.kaggle_layout import scan
from pneumonia.core.labels import LABELS
from pneumonia.core.preprocess import source_kind

SUMMARY_FILE = "eda_summary.json"
IMAGES_FILE = "eda_images.npz"
MEAN_SIDE = 128
HIST_BINS = 64


def _counts(m: pd.DataFrame) -> dict:
    """Images and patients per split and class, subtypes, and images per patient."""
    per_patient = m.groupby(["split", "label_name", "patient_id"]).size().reset_index(name="n")
    return {
        "counts": m.groupby(["split", "label_name"])
        .agg(images=("path", "size"), patients=("patient_id", "nunique"))
        .reset_index()
        .to_dict("records"),
        "subtypes": m.groupby(["split", "subtype"]).size().reset_index(name="images").to_dict("records"),
        "images_per_patient": per_patient.groupby(["label_name", "n"])
        .size()
        .reset_index(name="patients")
        .to_dict("records"),
    }


def _pixel_statistics(m: pd.DataFrame) -> tuple[dict, dict[str, np.ndarray]]:
    """Mean intensity histogram per class, and mean and standard deviation images per class."""
    hist = {label: np.zeros(HIST_BINS) for label in LABELS}
    acc = {label: [np.zeros((MEAN_SIDE, MEAN_SIDE)), np.zeros((MEAN_SIDE, MEAN_SIDE)), 0] for label in LABELS}
    for path, label in zip(m["path"], m["label_name"]):
        px = read_file(path).pixels
        hist[label] += np.histogram(px, bins=HIST_BINS, range=(0, 256))[0] / px.size
        small = cv2.resize(px, (MEAN_SIDE, MEAN_SIDE), interpolation=cv2.INTER_AREA).astype(np.float64)
        acc[label][0] += small
        acc[label][1] += small**2
        acc[label][2] += 1
    arrays: dict[str, np.ndarray] = {}
    for label, (s, s2, n) in acc.items():
        mean = s / max(n, 1)
        arrays[f"mean_{label}"] = mean.astype(np.float32)
        arrays[f"std_{label}"] = np.sqrt(np.maximum(s2 / max(n, 1) - mean**2, 0)).astype(np.float32)
    n_by_label = m["label_name"].value_counts().to_dict()
    histogram = {
        "bin_edges": np.linspace(0, 256, HIST_BINS + 1).tolist(),
        **{label: (h / max(n_by_label.get(label, 1), 1)).tolist() for label, h in hist.items()},
    }
    return histogram, arrays


def summarise(data_dir: str | Path) -> tuple[dict, dict[str, np.ndarray]]:
    """(JSON-able summary, arrays) for a Kaggle-layout folder: counts, sizes, intensities, mean images."""
    m = scan(data_dir)
    sizes = [Image.open(p).size for p in m["path"]]  # header only, no decode
    m["width"] = [s[0] for s in sizes]
    m["height"] = [s[1] for s in sizes]
    m["kind"] = [source_kind(w, h) for w, h in sizes]
    histogram, arrays = _pixel_statistics(m)
    summary = {
        "source": "Kermany et al. 2018, Chest X-Ray Images (Pneumonia), CC BY 4.0",
        "data_dir": Path(data_dir).name,
        "n_images": len(m),
        **_counts(m),
        "sizes": {
            "width": m["width"].tolist(),
            "height": m["height"].tolist(),
            "kind": m["kind"].tolist(),
            "label": m["label_name"].tolist(),
        },
        "kind_counts": m.groupby(["kind", "label_name"]).size().reset_index(name="images").to_dict("records"),
        "intensity_histogram": histogram,
    }
    return summary, arrays


def write_summary(out: str | Path, summary: dict, arrays: dict[str, np.ndarray]) -> tuple[Path, Path]:
    """Write the summary JSON and the mean images; returns their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / SUMMARY_FILE).write_text(json.dumps(summary))
    np.savez_compressed(out / IMAGES_FILE, **arrays)
    return out / SUMMARY_FILE, out / IMAGES_FILE


def load_summary(assets_dir: str | Path) -> tuple[dict, dict[str, np.ndarray]]:
    """The shipped summary and arrays (what the EDA page reads)."""
    d = Path(assets_dir)
    summary = json.loads((d / SUMMARY_FILE).read_text())
    with np.load(d / IMAGES_FILE) as f:
        return summary, {k: f[k] for k in f.files}


def squashed_share(summary: dict) -> float:
    """The share of the data set's files that exist only as 224x224 squashed copies (aspect ratio lost)."""
    kinds = summary["kind_counts"]
    total = sum(k["images"] for k in kinds)
    return sum(k["images"] for k in kinds if k["kind"] == "squashed_224") / total if total else 0.0


def film_attributes(manifest: str | Path) -> pd.DataFrame:
    """Per film of the training pool: file name, whether it is an original or a squashed 224x224 copy,
    and the original's size (no pixels, no patient identifier beyond the data set's own file name), for
    the subgroup results (assets/film_attributes.csv)."""
    m = pd.read_csv(manifest)
    return m[["filename", "source_kind", "orig_width", "orig_height"]].rename(columns={"filename": "file"})
