"""After training: the finalize steps, each a function over arrays, and :func:`finalize`, which runs
them and hands the result to the one writer (:mod:`pneumonia.training.artifacts`).

Steps: score validation and internal test under stress perturbations; calibrate and choose the
operating points; internal-test metrics; fit the chest x-ray gate; the failure gallery; metadata.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from PIL import Image
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss, roc_auc_score

from pneumonia.core import calibration, operating_points
from pneumonia.core.metrics import binary_metrics, confusion, expected_calibration_error, metrics_with_ci, rates
from pneumonia.core.preprocess import InputSpec, source_kind
from pneumonia.serving.metadata import GATE_FILE, MODEL_FILE, ModelMetadata
from pneumonia.serving.model import forward, forward_model
from pneumonia.training import artifacts
from pneumonia.training.augment import stress_variants
from pneumonia.training.data import part_indices, training_manifest
from pneumonia.training.gate_fitting import fit_gate_on_parts
from pneumonia.training.input_cache import DEFAULT_CACHE_DIR, load_arrays
from pneumonia.training.network import EMBEDDING_LAYER, LAST_CONV_LAYER, LOGIT_LAYER

if TYPE_CHECKING:
    import keras

DEFAULT_OPERATING_POINT = "balanced"
N_FAILURES = 4
ARCHITECTURE = "residual separable-conv CNN (flat Functional, Keras 3), trained from scratch"
DATA_SOURCE = "Kermany et al. 2018, Chest X-Ray Images (Pneumonia), CC BY 4.0"
log = logging.getLogger(__name__)


@dataclass
class PartScores:
    """Labels and logits of one part, clean ("identity") and under each stress perturbation."""

    y: np.ndarray
    stress_logits: dict[str, np.ndarray]

    @property
    def logits(self) -> np.ndarray:
        return self.stress_logits["identity"]


def score_under_stress(fwd: keras.Model, x: np.ndarray) -> dict[str, np.ndarray]:
    """Logits of ``x`` under every stress perturbation, the identity included."""
    return {name: forward(fwd, v)[0] for name, v in stress_variants(x).items()}


def calibrate_and_choose_points(val: PartScores) -> tuple[dict, dict]:
    """Platt calibration on clean validation logits; operating points on validation pooled with its
    stressed copies (thresholds picked on the clean internal split alone did not transfer to the
    official test split)."""
    cal = calibration.fit_platt(val.logits, val.y)
    p_va = calibration.apply(cal, val.logits)
    pooled_p = calibration.apply(cal, np.concatenate(list(val.stress_logits.values())))
    ops = operating_points.choose(np.tile(val.y, len(val.stress_logits)), pooled_p)
    for op in ops.values():
        clean = rates(*confusion(val.y, p_va, op["threshold"]))
        op["validation_sensitivity"], op["validation_specificity"] = clean["sensitivity"], clean["specificity"]
        op["stressed_validation_sensitivity"] = op.pop("sensitivity")
        op["stressed_validation_specificity"] = op.pop("specificity")
    return cal, ops


def calibration_summary(y: np.ndarray, logits: np.ndarray, cal: dict) -> dict:
    """ECE, Brier and the reliability curve before and after calibration."""

    def one(p: np.ndarray) -> dict:
        frac, mean = calibration_curve(y, p, n_bins=10, strategy="quantile")
        return {
            "ece": expected_calibration_error(y, p),
            "brier": float(brier_score_loss(y, p)),
            "curve": {"mean_predicted": mean.tolist(), "fraction_positive": frac.tolist()},
        }

    return {"before": one(calibration.apply(None, logits)), "after": one(calibration.apply(cal, logits))}


def stress_metrics(part: PartScores, cal: dict, threshold: float) -> dict:
    """AUC, accuracy, sensitivity and specificity under each stress perturbation."""
    out = {}
    for name, logits in part.stress_logits.items():
        p = calibration.apply(cal, logits)
        r = rates(*confusion(part.y, p, threshold))
        out[name] = {"roc_auc": float(roc_auc_score(part.y, p))} | {
            k: r[k] for k in ("accuracy", "sensitivity", "specificity")
        }
    return out


def metrics_by_source_kind(paths: pd.Series, y: np.ndarray, p: np.ndarray, threshold: float) -> dict:
    """Metrics on the originals vs the 224x224 squashed copies: the official test has only originals."""
    kind = np.array([source_kind(*Image.open(f).size) for f in paths])
    out = {}
    for k in ("original", "squashed_224"):
        m = kind == k
        if m.sum() and len(np.unique(y[m])) == 2:
            r = binary_metrics(y[m], p[m], threshold)
            out[k] = {key: r[key] for key in ("n", "roc_auc", "accuracy", "sensitivity", "specificity")}
    return out


def internal_test_metrics(rows: pd.DataFrame, test: PartScores, val: PartScores, cal: dict, ops: dict) -> dict:
    """test_metrics.json: the internal test at every operating point, calibration, stress, source kind."""
    groups, subtypes = rows["patient_id"].to_numpy(), rows["subtype"].to_numpy()
    p_te = calibration.apply(cal, test.logits)
    threshold = ops[DEFAULT_OPERATING_POINT]["threshold"]
    return {
        "split": "internal test (patient-held-out 10% of the Kaggle train folder; NOT the official test split)",
        "operating_point": DEFAULT_OPERATING_POINT,
        **metrics_with_ci(test.y, p_te, threshold, groups=groups, subtypes=subtypes),
        "by_operating_point": {
            name: metrics_with_ci(test.y, p_te, op["threshold"], groups=groups, subtypes=subtypes, n_boot=300)
            for name, op in ops.items()
        },
        "at_0.5": metrics_with_ci(test.y, p_te, 0.5, groups=groups, n_boot=300),
        "calibration": {
            "validation": calibration_summary(val.y, val.logits, cal),
            "internal_test": calibration_summary(test.y, test.logits, cal),
        },
        "stress": stress_metrics(test, cal, threshold),
        "by_source_kind": metrics_by_source_kind(rows["path"], test.y, p_te, threshold),
    }


def failure_gallery(x: np.ndarray, y: np.ndarray, p: np.ndarray, files: np.ndarray, threshold: float) -> dict:
    """The most confident mistakes, kept as 8-bit model inputs so the performance page can explain them."""
    pred_pos = p >= threshold
    fp = np.flatnonzero(pred_pos & (y == 0))
    fn = np.flatnonzero(~pred_pos & (y == 1))
    fp = fp[np.argsort(-p[fp])][:N_FAILURES]
    fn = fn[np.argsort(p[fn])][:N_FAILURES]
    chosen = np.concatenate([fp, fn]).astype(int)
    return {
        "inputs": np.round(x[chosen].astype(np.float32) * 255).astype(np.uint8),
        "kind": np.array(["false positive"] * len(fp) + ["false negative"] * len(fn)),
        "files": np.asarray(files).astype(str)[chosen],
        "label": y[chosen],
        "probability": p[chosen],
    }


def prediction_tables(
    rows: pd.DataFrame, test: PartScores, val: PartScores, cal: dict
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(internal test predictions, validation predictions) as data frames."""
    test_predictions = pd.DataFrame(
        {
            "file": rows["path"].map(lambda s: Path(s).name).to_numpy(),
            "patient_id": rows["patient_id"].to_numpy(),
            "label": test.y,
            "subtype": rows["subtype"].to_numpy(),
            "logit": test.logits,
            "probability_uncalibrated": calibration.apply(None, test.logits),
            "probability": calibration.apply(cal, test.logits),
        }
    )
    val_predictions = pd.DataFrame(
        {"label": val.y, "logit": val.logits, "probability": calibration.apply(cal, val.logits)}
    )
    return test_predictions, val_predictions


def build_metadata(model_sha256: str, spec: InputSpec, cal: dict, ops: dict, run_info: dict) -> ModelMetadata:
    """The model's metadata: what serving needs to load and use it, and what the model card shows."""
    created = datetime.now(UTC)
    return ModelMetadata(
        version=f"{created:%Y.%m.%d}-{model_sha256[:8]}",
        created=created.isoformat(timespec="seconds"),
        model_file=MODEL_FILE,
        model_sha256=model_sha256,
        gate_file=GATE_FILE,
        input_spec=spec,
        last_conv_layer=LAST_CONV_LAYER,
        logit_layer=LOGIT_LAYER,
        embedding_layer=EMBEDDING_LAYER,
        calibration=cal,
        operating_points=ops,
        default_operating_point=DEFAULT_OPERATING_POINT,
        architecture=ARCHITECTURE,
        parameters=run_info.get("parameters"),
        preprocessing=(
            f"8-bit grayscale, squashed to {spec.size}x{spec.size} (INTER_AREA), "
            + ("CLAHE, " if spec.clahe else "")
            + "scaled to [0, 1]; pneumonia.core.preprocess.to_model_input"
        ),
        training=run_info,
        data={
            "source": DATA_SOURCE,
            "fingerprint_sha256": run_info.get("data_fingerprint"),
            "split": "train + official val pooled, split by patient (StratifiedGroupKFold, seed "
            f"{run_info.get('config', {}).get('seed')}) into train/val/internal test",
            "n_images": run_info.get("n_images"),
        },
    )


def experiment_row(run_name: str, metadata: ModelMetadata, test_metrics: dict, val: PartScores) -> dict:
    """One row of the experiment log: command, config, validation and stress figures."""
    stress, run_info = test_metrics["stress"], metadata.training
    return {
        "time": metadata.created,
        "run": run_name,
        "command": run_info.get("command"),
        "config": json.dumps(run_info.get("config"), sort_keys=True),
        "epochs_run": run_info.get("epochs_run"),
        "best_epoch": run_info.get("best_epoch"),
        "seconds_per_epoch": run_info.get("seconds_per_epoch"),
        "val_auc": round(float(roc_auc_score(val.y, val.logits)), 4),
        "internal_test_auc": round(test_metrics["roc_auc"], 4),
        "stress_auc_min": round(min(v["roc_auc"] for v in stress.values()), 4),
        "stress_auc_mean": round(float(np.mean([v["roc_auc"] for v in stress.values()])), 4),
        "stress_specificity_min": round(min(v["specificity"] for v in stress.values()), 4),
        "default_threshold": round(metadata.operating_points[DEFAULT_OPERATING_POINT]["threshold"], 4),
        "ece_after": round(test_metrics["calibration"]["internal_test"]["after"]["ece"], 4),
    }


def finalize(
    model: keras.Model,
    manifest: pd.DataFrame,
    x_all: np.ndarray,
    parts: dict[str, np.ndarray],
    spec: InputSpec,
    run_info: dict,
    out: Path,
    experiment_log: Path | None = None,
) -> ModelMetadata:
    """Run the finalize steps and write the artifacts into ``out``; append to ``experiment_log`` when given."""
    t0 = time.time()
    fwd = forward_model(model, LOGIT_LAYER, EMBEDDING_LAYER)
    y = manifest["label"].to_numpy().astype(int)
    log.info("scoring validation and internal test under stress perturbations...")
    val = PartScores(y[parts["val"]], score_under_stress(fwd, x_all[parts["val"]]))
    test = PartScores(y[parts["test"]], score_under_stress(fwd, x_all[parts["test"]]))
    cal, ops = calibrate_and_choose_points(val)
    rows = manifest.iloc[parts["test"]]
    test_metrics = internal_test_metrics(rows, test, val, cal, ops)
    log.info("fitting the chest x-ray gate...")
    gate_params, test_metrics["gate"] = fit_gate_on_parts(fwd, x_all, parts)
    log.info("gate acceptance: %s", test_metrics["gate"])
    metadata = build_metadata(artifacts.save_model(model, out, keep_existing=True), spec, cal, ops, run_info)
    test_predictions, val_predictions = prediction_tables(rows, test, val, cal)
    threshold = ops[DEFAULT_OPERATING_POINT]["threshold"]
    failures = failure_gallery(
        x_all[parts["test"]], test.y, test_predictions["probability"].to_numpy(), test_predictions["file"], threshold
    )
    run = artifacts.FinalizedRun(metadata, gate_params, test_metrics, test_predictions, val_predictions, failures)
    artifacts.write_finalized(out, run)
    if experiment_log:
        artifacts.append_experiment_log(experiment_log, experiment_row(Path(out).name, metadata, test_metrics, val))
    log.info(
        "finalized in %.0f s: internal test AUC %.4f, accuracy %.4f at %s (%.3f)",
        time.time() - t0,
        test_metrics["roc_auc"],
        test_metrics["accuracy"],
        DEFAULT_OPERATING_POINT,
        threshold,
    )
    return metadata


def finalize_saved_run(
    run_dir: Path, data_dir: str | Path, cache_dir: Path = DEFAULT_CACHE_DIR, experiment_log: Path | None = None
) -> ModelMetadata:
    """Finalize a model that ``pneumonia.train`` saved in ``run_dir``; its run.json says how it was trained."""
    import keras

    run_info = artifacts.read_run_record(run_dir)
    config = run_info["config"]
    manifest = training_manifest(data_dir, seed=config["seed"], limit=config.get("limit", 0))
    spec = InputSpec.from_dict(run_info["input_spec"])
    x_all = load_arrays(manifest, spec, cache_dir)
    model = keras.models.load_model(Path(run_dir) / MODEL_FILE, compile=False)
    return finalize(model, manifest, x_all, part_indices(manifest), spec, run_info, Path(run_dir), experiment_log)
