"""Train the CNN from scratch on a folder in the Kaggle layout and write the models/ artifacts.

python -m pneumonia.train --data-dir ../shared/data/chest_xray --out models/
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from pneumonia.cache import DEFAULT_CACHE_DIR, fingerprint, load_arrays
from pneumonia.data import patient_split, scan
from pneumonia.preprocess import InputSpec

VALIDATION_STRESS = ("identity", "contrast_low", "gamma_1.4", "blur", "noise", "low_resolution")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", required=True, help="folder with SPLIT/{NORMAL,PNEUMONIA}/ images")
    p.add_argument("--out", default="models", help="artifact folder (default models/)")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--size", type=int, default=160, help="square input size in pixels")
    p.add_argument("--clahe", action="store_true", help="apply CLAHE contrast normalisation")
    p.add_argument("--widths", default="48,96,192,320", help="channels of the residual blocks")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--label-smoothing", type=float, default=0.05)
    p.add_argument("--augment", type=float, default=1.0, help="augmentation strength (0 = off)")
    p.add_argument("--patience", type=int, default=8, help="early-stopping patience on validation AUC")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--limit", type=int, default=0, help="use only N images per part (smoke tests)")
    p.add_argument("--cache-dir", default=str(DEFAULT_CACHE_DIR))
    p.add_argument("--note", default="", help="free text stored in the experiment log")
    p.add_argument("--experiment-log", default="models/experiments.csv", help="CSV log of runs ('' = none)")
    return p.parse_args(argv)


def load_parts(args: argparse.Namespace) -> tuple[pd.DataFrame, InputSpec]:
    """Manifest of the pooled non-test splits, with a patient-level train/val/test part column."""
    manifest = scan(args.data_dir)
    # The official test split is never used for training or selection; the official val folder
    # (16 images) is too small to select on, so it is pooled and re-split by patient.
    manifest = manifest[manifest["split"] != "test"].reset_index(drop=True)
    manifest["part"] = patient_split(manifest, seed=args.seed)
    if args.limit:
        shuffled = manifest.sample(frac=1.0, random_state=args.seed)
        manifest = shuffled.groupby(["part", "label"]).head(max(1, args.limit // 2)).reset_index(drop=True)
    spec = InputSpec(size=args.size, clahe=args.clahe)
    return manifest, spec


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    from pneumonia.augment import make_augmenter, stress_variants
    from pneumonia.network import build_model

    keras.utils.set_random_seed(args.seed)
    manifest, spec = load_parts(args)
    print(manifest.groupby(["part", "label_name"]).size().unstack().to_string(), flush=True)
    x_all = load_arrays(manifest, spec, Path(args.cache_dir))
    parts = {k: np.flatnonzero(manifest["part"].to_numpy() == k) for k in ("train", "val", "test")}
    y_all = manifest["label"].to_numpy().astype(np.float32)
    ytr = y_all[parts["train"]]
    # Balanced class weights: the training part is about 74% pneumonia.
    weights = {c: len(ytr) / (2.0 * max(1, (ytr == c).sum())) for c in (0, 1)}
    w_tr = np.where(ytr == 1, weights[1], weights[0]).astype(np.float32)
    print(f"class weights: normal {weights[0]:.2f}, pneumonia {weights[1]:.2f}", flush=True)

    train_ds = tf.data.Dataset.from_tensor_slices((x_all[parts["train"]], ytr[:, None], w_tr))
    train_ds = train_ds.shuffle(len(ytr), seed=args.seed, reshuffle_each_iteration=True).batch(args.batch_size)
    train_ds = train_ds.map(lambda x, y, w: (tf.cast(x, tf.float32), y, w))
    if args.augment > 0:
        train_ds = train_ds.map(make_augmenter(args.augment), num_parallel_calls=tf.data.AUTOTUNE)
    train_ds = train_ds.prefetch(tf.data.AUTOTUNE)
    # Validate on the clean validation images plus stressed copies: clean validation AUC saturates
    # near 0.998 on this easy internal split, so it cannot rank epochs by what generalises.
    variants = stress_variants(x_all[parts["val"]].astype(np.float32))
    val_x = np.concatenate([variants[k] for k in VALIDATION_STRESS])
    val_y = np.tile(y_all[parts["val"]], len(VALIDATION_STRESS))[:, None]

    widths = tuple(int(w) for w in args.widths.split(","))
    model = build_model(spec.size, widths)
    steps = max(1, int(np.ceil(len(ytr) / args.batch_size))) * args.epochs
    schedule = keras.optimizers.schedules.CosineDecay(
        1e-4, steps, warmup_target=args.lr, warmup_steps=max(1, steps // 20), alpha=0.02
    )
    model.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=1e-4),
        loss=keras.losses.BinaryCrossentropy(label_smoothing=args.label_smoothing),
        metrics=[keras.metrics.AUC(name="auc"), keras.metrics.BinaryAccuracy(name="accuracy")],
    )
    print(f"model: {model.count_params():,} parameters, input {spec.size}px", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    history_path = out / "history.csv"
    t0 = time.time()
    history = model.fit(
        train_ds,
        validation_data=(val_x, val_y),
        epochs=args.epochs,
        verbose=2,
        callbacks=[
            keras.callbacks.EarlyStopping(
                monitor="val_auc",
                mode="max",
                patience=args.patience,
                restore_best_weights=True,
                # the first half runs at high learning rate; its early AUC peaks are noise
                start_from_epoch=args.epochs // 2,
            ),
            keras.callbacks.CSVLogger(str(history_path)),
        ],
    )
    train_seconds = time.time() - t0
    epochs_run = len(history.history["loss"])
    model_path = out / "model.keras"
    model.save(model_path)
    print(f"trained {epochs_run} epochs in {train_seconds / 60:.1f} min -> {model_path}", flush=True)
    command = "python -m pneumonia.train " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    run_info = {
        "command": command,
        "config": {k: v for k, v in vars(args).items() if k not in ("data_dir", "out", "cache_dir", "experiment_log")},
        "input_spec": spec.to_dict(),
        "epochs_run": epochs_run,
        "best_epoch": int(np.argmax(history.history["val_auc"])) + 1,
        "train_seconds": round(train_seconds, 1),
        "seconds_per_epoch": round(train_seconds / max(1, epochs_run), 1),
        "parameters": int(model.count_params()),
        "data_fingerprint": fingerprint(manifest),
        "n_images": {k: int(len(v)) for k, v in parts.items()},
    }
    (out / "run.json").write_text(json.dumps(run_info, indent=2))
    manifest.drop(columns=["path"]).assign(file=manifest["path"].map(lambda p: Path(p).name)).to_csv(
        out / "split.csv", index=False
    )
    from pneumonia.finalize import finalize  # imported late: a training run never waits on it

    finalize(
        model, manifest, x_all, parts, spec, run_info, out, Path(args.experiment_log) if args.experiment_log else None
    )


if __name__ == "__main__":
    main()
