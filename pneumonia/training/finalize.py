"""After the members are trained: the finalize steps, each a function over arrays, and
:func:`finalize`, which runs them and hands the result to the one writer
(:mod:`pneumonia.training.artifacts`).

Steps: merge the members into one model; gather their out-of-fold predictions (plain, re-framed,
hard normals); calibrate and choose the operating points on that validation; metrics with CIs
(plain, re-framed, hard normals, subtype, stress, ensemble spread); fit the chest x-ray gate; the
failure gallery; the metadata.
"""

from __future__ import annotations

import json
import logging
import time
import zlib
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
from pneumonia.training import artifacts
from pneumonia.training.augment import stress_variants
from pneumonia.training.fit import TrainingData
from pneumonia.training.framing import CALIBRATION_REFRAMES, REFRAMES, reframed_inputs
from pneumonia.training.gate_fitting import acceptance_rate, fit_gate
from pneumonia.training.network import EMBEDDING_LAYER, LAST_CONV_LAYER, MEMBER_LOGIT_LAYER, OUTPUTS

if TYPE_CHECKING:
    import keras

DEFAULT_OPERATING_POINT = "balanced"
N_FAILURES = 4
STRESS_SAMPLE = 400  # out-of-fold images scored under the photometric stress perturbations
ARCHITECTURE = (
    "ensemble of {k} patch-evidence CNNs (residual separable convolutions to a stride-16 map, a logit per "
    "patch, averaged; flat Functional Keras 3 graph), trained from scratch; outputs pneumonia and "
    "bacterial-vs-viral"
)
DATA_SOURCE = "Kermany et al. 2018, Chest X-Ray Images (Pneumonia), CC BY 4.0"
log = logging.getLogger(__name__)


@dataclass
class OutOfFold:
    """Each image's logits averaged over the members that never trained on it, per re-framing."""

    logits: dict[str, np.ndarray]  # frame -> (N, 2), NaN where no member held the image out
    member_spread: np.ndarray  # (N,) std of the members' pneumonia logits on the plain image

    def pneumonia(self, frame: str = "plain") -> np.ndarray:
        return self.logits[frame][:, 0]


def gather_out_of_fold(member_files: list[Path], names: np.ndarray) -> OutOfFold:
    """Average the members' saved out-of-fold logits per image (matched by ``split/LABEL/file``)."""
    row = {n: i for i, n in enumerate(names)}
    sums = {f: np.zeros((len(names), len(OUTPUTS))) for f in REFRAMES}
    plain = [[] for _ in names]
    count = np.zeros(len(names))
    for path in member_files:
        saved = np.load(path.with_suffix(".oof.npz"))
        idx = np.array([row[n] for n in saved["name"]])
        for f in REFRAMES:
            sums[f][idx] += saved[f"logits_{f}"]
        for i, z in zip(idx, saved["logits_plain"][:, 0]):
            plain[i].append(z)
        count[idx] += 1
    with np.errstate(invalid="ignore"):
        logits = {f: sums[f] / count[:, None] for f in REFRAMES}
    spread = np.array([np.std(z) if len(z) > 1 else np.nan for z in plain])
    return OutOfFold(logits, spread)


def calibrate_and_choose_points(y: np.ndarray, hard: np.ndarray, oof: OutOfFold) -> tuple[dict, dict]:
    """Platt calibration and operating points on the validation that contains the failure: every
    out-of-fold image plain and re-framed (CALIBRATION_REFRAMES), hard normals included."""
    z = np.concatenate([oof.pneumonia(f) for f in CALIBRATION_REFRAMES])
    labels = np.tile(y, len(CALIBRATION_REFRAMES))
    cal = calibration.fit_platt(z, labels)
    ops = operating_points.choose(labels, calibration.apply(cal, z))
    plain = ~hard
    p_plain = calibration.apply(cal, oof.pneumonia())
    for op in ops.values():
        clean = rates(*confusion(y[plain], p_plain[plain], op["threshold"]))
        op["validation_sensitivity"], op["validation_specificity"] = clean["sensitivity"], clean["specificity"]
        op["reframed_validation_sensitivity"] = op.pop("sensitivity")
        op["reframed_validation_specificity"] = op.pop("specificity")
        op["hard_normal_specificity"] = float((p_plain[hard] < op["threshold"]).mean()) if hard.any() else None
    return cal, ops


def frame_metrics(y: np.ndarray, plain_p: np.ndarray, p: np.ndarray, threshold: float) -> dict:
    r = rates(*confusion(y, p, threshold))
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        **{k: r[k] for k in ("accuracy", "sensitivity", "specificity")},
        "mean_probability_shift": float(np.mean(np.abs(p - plain_p))),
    }


def reframed_metrics(y: np.ndarray, hard: np.ndarray, oof: OutOfFold, cal: dict, threshold: float) -> dict:
    """Per re-framing: metrics on the out-of-fold pool and the hard normals' specificity."""
    pool = ~hard
    plain = calibration.apply(cal, oof.pneumonia())
    out = {}
    for frame in REFRAMES:
        p = calibration.apply(cal, oof.pneumonia(frame))
        out[frame] = frame_metrics(y[pool], plain[pool], p[pool], threshold)
        out[frame]["hard_normal_specificity"] = float((p[hard] < threshold).mean()) if hard.any() else None
    return out


def stress_metrics(data: TrainingData, member_files: list[Path], cal: dict, threshold: float) -> dict:
    """Photometric stress (contrast, gamma, exposure, blur, noise, resampling, crop) on a sample of
    out-of-fold images, each scored by the first member that held it out."""
    import keras

    folds, rng = data.manifest["fold"].to_numpy(), np.random.default_rng(0)
    y, logits = [], {}
    for fold in range(int(folds.max()) + 1):
        path = next(p for p in member_files if p.stem.endswith(f"fold{fold}"))
        member = keras.models.load_model(path, compile=False)
        idx = np.flatnonzero(folds == fold)
        idx = rng.choice(idx, min(len(idx), STRESS_SAMPLE // (int(folds.max()) + 1)), replace=False)
        y.append(data.targets[idx, 0])
        for name, x in stress_variants(np.asarray(data.x_all[idx], np.float32)).items():
            logits.setdefault(name, []).append(np.asarray(member.predict(x, batch_size=32, verbose=0))[:, 0])
    y = np.concatenate(y).astype(int)
    plain = calibration.apply(cal, np.concatenate(logits["identity"]))
    return {
        name: frame_metrics(y, plain, calibration.apply(cal, np.concatenate(z)), threshold)
        for name, z in logits.items()
    }


def subtype_metrics(manifest: pd.DataFrame, oof: OutOfFold, sub_cal: dict) -> dict:
    """Bacterial (positive) vs viral on out-of-fold pneumonia images whose file name gives it."""
    subtype = manifest["subtype"].to_numpy()
    known = np.isin(subtype, ["bacteria", "virus"]) & ~np.isnan(oof.logits["plain"][:, 1])
    y = (subtype[known] == "bacteria").astype(int)
    p = calibration.apply(sub_cal, oof.logits["plain"][known, 1])
    m = metrics_with_ci(y, p, 0.5, groups=manifest["patient_id"].to_numpy()[known], n_boot=300)
    keys = ("n", "accuracy", "roc_auc", "sensitivity", "specificity", "confusion_matrix", "ci95")
    return {k: m[k] for k in keys if k in m} | {
        "calibration": calibration_summary(y, oof.logits["plain"][known, 1], sub_cal),
        "note": "positive = bacterial; sensitivity is bacterial recall, specificity viral recall",
    }


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


def validation_metrics(data: TrainingData, oof: OutOfFold, cal: dict, ops: dict) -> dict:
    """test_metrics.json: out-of-fold figures at every operating point, calibration, source kind."""
    rows = data.manifest[~data.manifest["hard_normal"]]
    n_folds = int(data.manifest["fold"].max()) + 1
    pool = ~data.manifest["hard_normal"].to_numpy()
    y, z = data.targets[pool, 0].astype(int), oof.pneumonia()[pool]
    p = calibration.apply(cal, z)
    groups, subtypes = rows["patient_id"].to_numpy(), rows["subtype"].to_numpy()
    threshold = ops[DEFAULT_OPERATING_POINT]["threshold"]
    return {
        "split": (
            "out-of-fold validation: every image of the pooled Kaggle train + val folders, scored by the "
            f"members that never trained on it ({n_folds}-fold, grouped by patient); hard normals reported apart. "
            "NOT the official test split"
        ),
        "operating_point": DEFAULT_OPERATING_POINT,
        **metrics_with_ci(y, p, threshold, groups=groups, subtypes=subtypes),  # with "ece"
        "by_operating_point": {
            name: metrics_with_ci(y, p, op["threshold"], groups=groups, subtypes=subtypes, n_boot=300)
            for name, op in ops.items()
        },
        "at_0.5": metrics_with_ci(y, p, 0.5, groups=groups, n_boot=300),
        "calibration": {"validation": calibration_summary(y, z, cal)},
        "by_source_kind": metrics_by_source_kind(rows["path"], y, p, threshold),
        "ensemble_spread": {
            "median_logit_std": float(np.nanmedian(oof.member_spread)),
            "p95_logit_std": float(np.nanpercentile(oof.member_spread, 95)),
        },
    }


GATE_FRAMES = ("plain", "crop10", "crop125", "zoomout")  # tightly framed films are chest x-rays too


def framed_copies(x: np.ndarray) -> np.ndarray:
    return np.concatenate([reframed_inputs(x, f) for f in GATE_FRAMES])


def fit_gate_on_member(merged: keras.Model, data: TrainingData) -> tuple[dict, dict]:
    """The gate on the first member's embedding, fitted on its training folds (plain and re-framed),
    limits set on half of its held-out fold's patients, acceptance measured on the other half, plain
    and cropped 10% per side."""
    import keras

    # only the first member's trunk: the embedding does not need the other members
    pooled = keras.layers.GlobalAveragePooling2D()(merged.get_layer(EMBEDDING_LAYER).output)
    first_member = keras.Model(merged.input, pooled)

    def embed(x: np.ndarray) -> np.ndarray:
        return np.concatenate([first_member.predict_on_batch(x[i : i + 64]) for i in range(0, len(x), 64)])

    folds, patients = data.manifest["fold"].to_numpy(), data.manifest["patient_id"].to_numpy()
    held = np.flatnonzero(folds == 0)
    in_limits = np.array([zlib.crc32(str(p).encode()) % 2 == 0 for p in patients[held]])
    train = np.flatnonzero(folds > 0)
    train = np.random.default_rng(0).choice(train, min(len(train), 1500), replace=False)
    inputs = {
        "train": framed_copies(np.asarray(data.x_all[train], np.float32)),
        "limits": framed_copies(np.asarray(data.x_all[held[in_limits]], np.float32)),
        "check": np.asarray(data.x_all[held[~in_limits]], np.float32),
    }
    inputs["check_cropped"] = reframed_inputs(inputs["check"], "crop10")
    embeddings = {k: embed(v) for k, v in inputs.items()}
    params = fit_gate(inputs["train"], embeddings["train"], inputs["limits"], embeddings["limits"])
    acceptance = {
        name: {"n": int(len(inputs[k])), "accepted": acceptance_rate(params, inputs[k], embeddings[k])}
        for name, k in (("val", "check"), ("val_cropped_10pct", "check_cropped"))
    }
    return params, acceptance


def prediction_tables(data: TrainingData, oof: OutOfFold, cals: tuple[dict, dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(out-of-fold predictions of the pool, of the hard normals) as data frames."""
    z, (cal, sub_cal) = oof.pneumonia(), cals
    table = pd.DataFrame(
        {
            "file": data.manifest["path"].map(lambda s: Path(s).name).to_numpy(),
            "patient_id": data.manifest["patient_id"].to_numpy(),
            "label": data.targets[:, 0].astype(int),
            "subtype": data.manifest["subtype"].to_numpy(),
            "logit": z,
            "probability_uncalibrated": calibration.apply(None, z),
            "probability": calibration.apply(cal, z),
            "probability_crop10": calibration.apply(cal, oof.pneumonia("crop10")),
            "bacterial_probability": calibration.apply(sub_cal, oof.logits["plain"][:, 1]) if sub_cal else np.nan,
            "member_logit_std": oof.member_spread,
        }
    )
    hard = data.manifest["hard_normal"].to_numpy()
    return table[~hard].reset_index(drop=True), table[hard].reset_index(drop=True)


def build_metadata(
    model_sha256: str, spec: InputSpec, cals: tuple[dict, dict], ops: dict, run_info: dict
) -> ModelMetadata:
    """The model's metadata: what serving needs to load and use it, and what the model card shows."""
    created = datetime.now(UTC)
    n_members = len(run_info.get("members", [])) or 1
    return ModelMetadata(
        version=f"{created:%Y.%m.%d}-{model_sha256[:8]}",
        created=created.isoformat(timespec="seconds"),
        model_file=MODEL_FILE,
        model_sha256=model_sha256,
        gate_file=GATE_FILE,
        input_spec=spec,
        last_conv_layer=LAST_CONV_LAYER,
        logit_layer=MEMBER_LOGIT_LAYER,
        embedding_layer=EMBEDDING_LAYER,
        calibration=cals[0],
        operating_points=ops,
        default_operating_point=DEFAULT_OPERATING_POINT,
        architecture=ARCHITECTURE.format(k=n_members),
        parameters=run_info.get("parameters"),
        preprocessing=(
            f"8-bit grayscale, squashed to {spec.size}x{spec.size} (INTER_AREA), scaled to [0, 1]; "
            "pneumonia.core.preprocess.to_model_input"
        ),
        training=run_info,
        data={
            "source": DATA_SOURCE,
            "fingerprint_sha256": run_info.get("data_fingerprint"),
            "split": f"train + official val pooled; {run_info.get('config', {}).get('folds')} folds by patient "
            f"(StratifiedGroupKFold, seed {run_info.get('config', {}).get('fold_seed')}); hard normals held out "
            "of every fold",
            "n_images": run_info.get("n_images"),
        },
        extra={
            # without a fitted subtype calibration the bacterial logit means nothing: serve pneumonia only
            "outputs": list(OUTPUTS) if cals[1] else [OUTPUTS[0], "unused"],
            "members": n_members,
            "subtype_calibration": cals[1],
        },
    )


def experiment_row(run_name: str, metadata: ModelMetadata, metrics: dict) -> dict:
    """One row of the experiment log: command, config and the three kinds of validation."""
    frames, run_info = metrics["reframed"], metadata.training
    return {
        "time": metadata.created,
        "run": run_name,
        "command": run_info.get("command"),
        "config": json.dumps(run_info.get("config"), sort_keys=True),
        "members": metadata.extra.get("members"),
        "oof_auc": round(metrics["roc_auc"], 4),
        "oof_specificity": round(metrics["specificity"], 4),
        "crop125_auc": round(frames["crop125"]["roc_auc"], 4),
        "crop125_specificity": round(frames["crop125"]["specificity"], 4),
        "crop10_mean_shift": round(frames["crop10"]["mean_probability_shift"], 4),
        "hard_normal_specificity": frames["plain"]["hard_normal_specificity"],
        "hard_normal_specificity_crop125": frames["crop125"]["hard_normal_specificity"],
        "subtype_auc": round(metrics["subtype"]["roc_auc"], 4) if metrics["subtype"] else None,
        "subtype_accuracy": round(metrics["subtype"]["accuracy"], 4) if metrics["subtype"] else None,
        "default_threshold": round(metadata.operating_points[DEFAULT_OPERATING_POINT]["threshold"], 4),
        "ece": round(metrics["ece"], 4),
    }


def evaluate_ensemble(data: TrainingData, member_files: list[Path]) -> tuple[dict, dict, dict, OutOfFold, dict]:
    """(pneumonia calibration, subtype calibration, operating points, out-of-fold logits) + metrics."""
    oof = gather_out_of_fold(member_files, data.manifest["name"].to_numpy())
    y, hard = data.targets[:, 0].astype(int), data.manifest["hard_normal"].to_numpy()
    cal, ops = calibrate_and_choose_points(y, hard, oof)
    known = (data.targets[:, 1] >= 0) & ~np.isnan(oof.logits["plain"][:, 1])
    has_subtype = len(np.unique(data.targets[known, 1])) == 2  # file names gave bacterial and viral
    sub_cal = calibration.fit_platt(oof.logits["plain"][known, 1], data.targets[known, 1]) if has_subtype else None
    metrics = validation_metrics(data, oof, cal, ops)
    threshold = ops[DEFAULT_OPERATING_POINT]["threshold"]
    metrics["reframed"] = reframed_metrics(y, hard, oof, cal, threshold)
    metrics["subtype"] = subtype_metrics(data.manifest, oof, sub_cal) if has_subtype else None
    metrics["stress"] = stress_metrics(data, member_files, cal, threshold)
    return cal, sub_cal, ops, oof, metrics


def finalized_run(data: TrainingData, oof: OutOfFold, metadata: ModelMetadata, metrics: dict, gate_params: dict):
    """What :func:`artifacts.write_finalized` writes: the metadata, gate, metrics, the out-of-fold prediction
    tables and the failure gallery at the default operating point."""
    cals = (metadata.calibration, metadata.extra.get("subtype_calibration"))
    pool_predictions, hard_predictions = prediction_tables(data, oof, cals)
    pool = ~data.manifest["hard_normal"].to_numpy()
    failures = failure_gallery(
        np.asarray(data.x_all[pool], np.float32),
        pool_predictions["label"].to_numpy(),
        pool_predictions["probability"].to_numpy(),
        pool_predictions["file"],
        metadata.operating_points[DEFAULT_OPERATING_POINT]["threshold"],
    )
    return artifacts.FinalizedRun(metadata, gate_params, metrics, pool_predictions, hard_predictions, failures)


def finalize(
    data: TrainingData,
    member_files: list[Path],
    spec: InputSpec,
    run_info: dict,
    out: Path,
    experiment_log: Path | None = None,
) -> ModelMetadata:
    """Merge the members, run the finalize steps and write the model folder ``out``."""
    import keras

    from pneumonia.training.network import merge_members
    from pneumonia.training.runtime_export import export_onnx

    t0 = time.time()
    merged = merge_members([keras.models.load_model(p, compile=False) for p in member_files], spec.size)
    run_info["parameters"] = int(merged.count_params())
    cal, sub_cal, ops, oof, metrics = evaluate_ensemble(data, member_files)
    log.info("fitting the chest x-ray gate...")
    gate_params, metrics["gate"] = fit_gate_on_member(merged, data)
    metadata = build_metadata(artifacts.save_model(merged, out), spec, (cal, sub_cal), ops, run_info)
    metadata.runtime = export_onnx(merged, metadata, out)
    run = finalized_run(data, oof, metadata, metrics, gate_params)
    artifacts.write_finalized(out, run)
    artifacts.write_history(out, [json.loads(p.with_suffix(".json").read_text()) for p in member_files])
    if experiment_log:
        artifacts.append_experiment_log(experiment_log, experiment_row(Path(out).name, metadata, metrics))
    log.info(
        "finalized in %.0f s: out-of-fold AUC %.4f, crop 12.5%% specificity %.3f",
        time.time() - t0,
        metrics["roc_auc"],
        metrics["reframed"]["crop125"]["specificity"],
    )
    return metadata


def finalize_saved_run(
    run_dir: Path, data_dir: str | Path, cache_dir: Path, experiment_log: Path | None = None
) -> ModelMetadata:
    """Finalize the members in ``run_dir/members`` on the folds of its split.csv; run.json says how
    they were trained."""
    from pneumonia.serving.metadata import SPLIT_FILE
    from pneumonia.training.fit import MEMBERS_DIR, TrainingConfig, load_training_data, run_record

    run_dir = Path(run_dir)
    saved = artifacts.read_run_record(run_dir)
    config = TrainingConfig(**saved["config"])
    data = load_training_data(config, data_dir, None, Path(cache_dir), folds_from=run_dir / SPLIT_FILE)
    members = sorted((run_dir / MEMBERS_DIR).glob("*.keras"))
    run_info = {**saved, **run_record(config, data, saved["command"], members)}
    artifacts.write_run_record(run_dir, run_info, data.manifest)
    return finalize(data, members, config.spec, run_info, run_dir, experiment_log)
