"""The one writer of a model folder (``models/`` or a run folder).

File names and the metadata schema are :mod:`pneumonia.serving.metadata`'s, which serving and
insight use to read the folder back.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from pneumonia.serving.metadata import (
    FAILURES_FILE,
    GATE_FILE,
    HISTORY_FILE,
    METADATA_FILE,
    MODEL_FILE,
    RUN_FILE,
    SPLIT_FILE,
    TEST_METRICS_FILE,
    TEST_PREDICTIONS_FILE,
    VAL_PREDICTIONS_FILE,
    ModelMetadata,
)

if TYPE_CHECKING:
    import keras


@dataclass
class FinalizedRun:
    """Everything the finalize steps produce for a trained model, ready to be written."""

    metadata: ModelMetadata
    gate_params: dict[str, np.ndarray]
    test_metrics: dict
    test_predictions: pd.DataFrame
    val_predictions: pd.DataFrame
    failures: dict[str, np.ndarray]


def history_path(out: Path) -> Path:
    """Where the training loop's CSV logger writes the per-epoch curves."""
    return Path(out) / HISTORY_FILE


def write_history(out: Path, records: list[dict]) -> None:
    """history.csv: each member's training loss per epoch (columns member, epoch, loss)."""
    rows = [
        {"member": f"seed{r['seed']}_fold{r['fold']}", "epoch": i, "loss": loss}
        for r in records
        for i, loss in enumerate(r.get("loss", []))
    ]
    pd.DataFrame(rows, columns=["member", "epoch", "loss"]).to_csv(history_path(out), index=False)


def save_model(model: keras.Model, out: Path, keep_existing: bool = False) -> str:
    """Save the model (unless ``keep_existing`` and the folder holds one); returns the file's SHA-256."""
    path = Path(out) / MODEL_FILE
    if not (keep_existing and path.exists()):
        path.parent.mkdir(parents=True, exist_ok=True)
        model.save(path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_run_record(out: Path, run_info: dict, manifest: pd.DataFrame) -> None:
    """run.json (how the model was trained) and split.csv (which image went to which part)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / RUN_FILE).write_text(json.dumps(run_info, indent=2))
    split = manifest.drop(columns=["path"]).assign(file=manifest["path"].map(lambda p: Path(p).name))
    split.to_csv(out / SPLIT_FILE, index=False)


def read_run_record(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / RUN_FILE).read_text())


def json_safe(value):
    """``value`` with every NaN or infinite float replaced by None (strict JSON has no NaN)."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_metadata(out: Path, metadata: ModelMetadata) -> None:
    """metadata.json alone (renamed into place), e.g. after the served graph was exported again."""
    target = Path(out) / METADATA_FILE
    part = target.with_suffix(".json.part")
    part.write_text(json.dumps(json_safe(metadata.to_dict()), indent=2))
    part.replace(target)


def write_finalized(out: Path, run: FinalizedRun) -> None:
    """metadata.json, gate.npz, test metrics, predictions and the failure gallery."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out / GATE_FILE, **run.gate_params)
    (out / METADATA_FILE).write_text(json.dumps(json_safe(run.metadata.to_dict()), indent=2))
    (out / TEST_METRICS_FILE).write_text(json.dumps(json_safe(run.test_metrics), indent=2))
    run.test_predictions.to_csv(out / TEST_PREDICTIONS_FILE, index=False)
    run.val_predictions.to_csv(out / VAL_PREDICTIONS_FILE, index=False)
    np.savez_compressed(out / FAILURES_FILE, **run.failures)


def append_experiment_log(log: Path, row: dict) -> None:
    """Append one row to the experiment log CSV; columns are the union of old and new rows (runs of
    different recipes record different figures)."""
    log = Path(log)
    log.parent.mkdir(parents=True, exist_ok=True)
    old = pd.read_csv(log) if log.exists() else pd.DataFrame()
    pd.concat([old, pd.DataFrame([row])], ignore_index=True).to_csv(log, index=False)
