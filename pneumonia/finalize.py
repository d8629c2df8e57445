"""After training: calibrate, choose operating points, stress-test, fit the gate, write models/.

Also runnable on its own for a trained model:
    python -m pneumonia.finalize --data-dir DIR --run runs/NAME
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss, roc_auc_score

from pneumonia import calibration, gate, operating_points
from pneumonia.augment import stress_variants
from pneumonia.evaluate import report
from pneumonia.metrics import confusion, expected_calibration_error, rates
from pneumonia.model import forward, forward_model
from pneumonia.network import LAST_CONV_LAYER
from pneumonia.preprocess import InputSpec

DEFAULT_OPERATING_POINT = "balanced"
# what a training run writes into its output folder (pneumonia.train adds history.csv, split.csv)
RUN_ARTIFACTS = (
    "model.keras",
    "metadata.json",
    "gate.npz",
    "history.csv",
    "test_metrics.json",
    "test_predictions.csv",
    "val_predictions.csv",
    "failures.npz",
    "split.csv",
)
N_FAILURES = 4


def _stress_logits(fwd, x: np.ndarray) -> dict[str, np.ndarray]:
    return {name: forward(fwd, v)[0] for name, v in stress_variants(x).items()}


def _calibration_summary(y: np.ndarray, raw: np.ndarray, cal: np.ndarray) -> dict:
    def one(p: np.ndarray) -> dict:
        frac, mean = calibration_curve(y, p, n_bins=10, strategy="quantile")
        return {
            "ece": expected_calibration_error(y, p),
            "brier": float(brier_score_loss(y, p)),
            "curve": {"mean_predicted": mean.tolist(), "fraction_positive": frac.tolist()},
        }

    return {"before": one(raw), "after": one(cal)}


def finalize(
    model,
    manifest: pd.DataFrame,
    x_all: np.ndarray,
    parts: dict,
    spec: InputSpec,
    run_info: dict,
    out: Path,
    experiment_log: Path | None = None,
) -> dict:
    """Write the artifacts into ``out``; append a row to ``experiment_log`` when given."""
    t0 = time.time()
    fwd = forward_model(model)
    y = manifest["label"].to_numpy().astype(int)
    idx_tr, idx_va, idx_te = parts["train"], parts["val"], parts["test"]
    y_va, y_te = y[idx_va], y[idx_te]

    print("scoring validation and internal test under stress perturbations...", flush=True)
    stress_va = _stress_logits(fwd, x_all[idx_va])
    stress_te = _stress_logits(fwd, x_all[idx_te])
    logit_va, logit_te = stress_va["identity"], stress_te["identity"]

    cal = calibration.fit_platt(logit_va, y_va)
    p_va = calibration.apply(cal, logit_va)
    # Operating points on validation pooled with its stressed copies: thresholds picked on the
    # clean internal split alone did not transfer to the official test split.
    pooled_p = calibration.apply(cal, np.concatenate(list(stress_va.values())))
    pooled_y = np.tile(y_va, len(stress_va))
    ops = operating_points.choose(pooled_y, pooled_p)
    for op in ops.values():
        clean = rates(*confusion(y_va, p_va, op["threshold"]))
        op["validation_sensitivity"], op["validation_specificity"] = clean["sensitivity"], clean["specificity"]
        op["stressed_validation_sensitivity"], op["stressed_validation_specificity"] = (
            op.pop("sensitivity"),
            op.pop("specificity"),
        )

    groups_te = manifest["patient_id"].to_numpy()[idx_te]
    subtypes_te = manifest["subtype"].to_numpy()[idx_te]
    p_te = calibration.apply(cal, logit_te)
    default_thr = ops[DEFAULT_OPERATING_POINT]["threshold"]
    test_metrics = {
        "split": "internal test (patient-held-out 10% of the Kaggle train folder; NOT the official test split)",
        "operating_point": DEFAULT_OPERATING_POINT,
        **report(y_te, p_te, default_thr, groups_te, subtypes_te),
        "by_operating_point": {
            name: report(y_te, p_te, op["threshold"], groups_te, subtypes_te, n_boot=300) for name, op in ops.items()
        },
        "at_0.5": report(y_te, p_te, 0.5, groups_te, n_boot=300),
        "calibration": {
            "validation": _calibration_summary(y_va, calibration.apply(None, logit_va), p_va),
            "internal_test": _calibration_summary(y_te, calibration.apply(None, logit_te), p_te),
        },
        "stress": {},
        "by_source_kind": _by_source_kind(manifest.iloc[idx_te], y_te, p_te, default_thr),
    }
    for name, lo in stress_te.items():
        p = calibration.apply(cal, lo)
        r = rates(*confusion(y_te, p, default_thr))
        test_metrics["stress"][name] = {
            "roc_auc": float(roc_auc_score(y_te, p)),
            "accuracy": r["accuracy"],
            "sensitivity": r["sensitivity"],
            "specificity": r["specificity"],
        }

    print("fitting the chest x-ray gate...", flush=True)
    _, emb_tr = forward(fwd, x_all[idx_tr])
    _, emb_va = forward(fwd, x_all[idx_va])
    gate_params = gate.fit(x_all[idx_tr].astype(np.float32), emb_tr, x_all[idx_va].astype(np.float32), emb_va)
    g = gate.Gate(gate_params)
    gate_stats = {}
    for part_name, idx in (("val", idx_va), ("internal_test", idx_te)):
        xi = x_all[idx].astype(np.float32)
        app, dist = g.scores(xi, forward(fwd, xi)[1])
        accepted = (app <= gate_params["appearance_limit"]) & (dist <= gate_params["embedding_limit"])
        gate_stats[part_name] = {"n": int(len(idx)), "accepted": float(accepted.mean())}
    print(f"gate acceptance: {gate_stats}", flush=True)
    test_metrics["gate"] = gate_stats

    out.mkdir(parents=True, exist_ok=True)
    model_file = out / "model.keras"
    if not model_file.exists():
        model.save(model_file)
    g.save(out / "gate.npz")
    digest = hashlib.sha256(model_file.read_bytes()).hexdigest()
    created = datetime.now(UTC)
    metadata = {
        "version": f"{created:%Y.%m.%d}-{digest[:8]}",
        "created": created.isoformat(timespec="seconds"),
        "model_file": "model.keras",
        "model_sha256": digest,
        "gate_file": "gate.npz",
        "architecture": "residual separable-conv CNN (flat Functional, Keras 3), trained from scratch",
        "parameters": run_info.get("parameters"),
        "input_spec": spec.to_dict(),
        "preprocessing": (
            f"8-bit grayscale, squashed to {spec.size}x{spec.size} (INTER_AREA), "
            + ("CLAHE, " if spec.clahe else "")
            + "scaled to [0, 1]; pneumonia.preprocess.to_model_input"
        ),
        "last_conv_layer": LAST_CONV_LAYER,
        "calibration": cal,
        "operating_points": ops,
        "default_operating_point": DEFAULT_OPERATING_POINT,
        "training": run_info,
        "data": {
            "source": "Kermany et al. 2018, Chest X-Ray Images (Pneumonia), CC BY 4.0",
            "fingerprint_sha256": run_info.get("data_fingerprint"),
            "split": "train + official val pooled, split by patient (StratifiedGroupKFold, seed "
            f"{run_info.get('config', {}).get('seed')}) into train/val/internal test",
            "n_images": run_info.get("n_images"),
        },
    }
    (out / "metadata.json").write_text(json.dumps(metadata, indent=2))
    (out / "test_metrics.json").write_text(json.dumps(test_metrics, indent=2))

    te = manifest.iloc[idx_te]
    preds = pd.DataFrame(
        {
            "file": te["path"].map(lambda s: Path(s).name).to_numpy(),
            "patient_id": te["patient_id"].to_numpy(),
            "label": y_te,
            "subtype": subtypes_te,
            "logit": logit_te,
            "probability_uncalibrated": calibration.apply(None, logit_te),
            "probability": p_te,
        }
    )
    preds.to_csv(out / "test_predictions.csv", index=False)
    pd.DataFrame({"label": y_va, "logit": logit_va, "probability": p_va}).to_csv(
        out / "val_predictions.csv", index=False
    )
    # The most confident mistakes, kept as model inputs so the performance page can explain them.
    pred_pos = p_te >= default_thr
    fp = np.flatnonzero(pred_pos & (y_te == 0))
    fn = np.flatnonzero(~pred_pos & (y_te == 1))
    fp = fp[np.argsort(-p_te[fp])][:N_FAILURES]
    fn = fn[np.argsort(p_te[fn])][:N_FAILURES]
    chosen = np.concatenate([fp, fn]).astype(int)
    np.savez_compressed(
        out / "failures.npz",
        inputs=np.round(x_all[idx_te][chosen].astype(np.float32) * 255).astype(np.uint8),
        kind=np.array(["false positive"] * len(fp) + ["false negative"] * len(fn)),
        files=preds["file"].to_numpy().astype(str)[chosen],
        label=y_te[chosen],
        probability=p_te[chosen],
    )
    if experiment_log:
        _log_experiment(Path(experiment_log), out, run_info, metadata, test_metrics, p_va, y_va)
    print(
        f"finalized in {time.time() - t0:.0f} s: internal test AUC {test_metrics['roc_auc']:.4f}, "
        f"accuracy {test_metrics['accuracy']:.4f} at {DEFAULT_OPERATING_POINT} ({default_thr:.3f})",
        flush=True,
    )
    return metadata


def _by_source_kind(rows: pd.DataFrame, y: np.ndarray, p: np.ndarray, threshold: float) -> dict:
    """Metrics on the originals vs the 224x224 squashed copies: the official test has only originals."""
    from PIL import Image

    from pneumonia.eda import source_kind
    from pneumonia.metrics import binary_metrics

    kind = np.array([source_kind(*Image.open(f).size) for f in rows["path"]])
    out = {}
    for k in ("original", "squashed_224"):
        m = kind == k
        if m.sum() and len(np.unique(y[m])) == 2:
            r = binary_metrics(y[m], p[m], threshold)
            out[k] = {key: r[key] for key in ("n", "roc_auc", "accuracy", "sensitivity", "specificity")}
    return out


def _log_experiment(
    log: Path, out: Path, run_info: dict, metadata: dict, test_metrics: dict, p_va: np.ndarray, y_va: np.ndarray
) -> None:
    """Append one row (command, config, validation and stress figures) to the experiment log CSV."""
    stress = test_metrics["stress"]
    row = {
        "time": metadata["created"],
        "run": out.name,
        "command": run_info.get("command"),
        "config": json.dumps(run_info.get("config"), sort_keys=True),
        "epochs_run": run_info.get("epochs_run"),
        "best_epoch": run_info.get("best_epoch"),
        "seconds_per_epoch": run_info.get("seconds_per_epoch"),
        "val_auc": round(float(roc_auc_score(y_va, p_va)), 4),
        "internal_test_auc": round(test_metrics["roc_auc"], 4),
        "stress_auc_min": round(min(v["roc_auc"] for v in stress.values()), 4),
        "stress_auc_mean": round(float(np.mean([v["roc_auc"] for v in stress.values()])), 4),
        "stress_specificity_min": round(min(v["specificity"] for v in stress.values()), 4),
        "default_threshold": round(metadata["operating_points"][DEFAULT_OPERATING_POINT]["threshold"], 4),
        "ece_after": round(test_metrics["calibration"]["internal_test"]["after"]["ece"], 4),
    }
    new = not log.exists()
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(row))
        if new:
            w.writeheader()
        w.writerow(row)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--run", required=True, help="folder with model.keras and run.json from pneumonia.train")
    p.add_argument("--experiment-log", default="", help="CSV to append this run's figures to")
    args = p.parse_args()
    import keras

    from pneumonia.cache import load_arrays
    from pneumonia.train import load_parts, parse_args

    run = Path(args.run)
    run_info = json.loads((run / "run.json").read_text())
    cfg = run_info["config"]
    targs = parse_args(
        [
            "--data-dir",
            args.data_dir,
            "--seed",
            str(cfg["seed"]),
            "--size",
            str(cfg["size"]),
            "--limit",
            str(cfg.get("limit", 0)),
        ]
        + (["--clahe"] if cfg.get("clahe") else [])
    )
    manifest, spec = load_parts(targs)
    x_all = load_arrays(manifest, spec)
    parts = {k: np.flatnonzero(manifest["part"].to_numpy() == k) for k in ("train", "val", "test")}
    model = keras.models.load_model(run / "model.keras", compile=False)
    finalize(
        model, manifest, x_all, parts, spec, run_info, run, Path(args.experiment_log) if args.experiment_log else None
    )


if __name__ == "__main__":
    main()
