"""Train the CNN from scratch: data sets, class weights, the compiled network and the fit itself.

Writes the model, its training curves and the run record; :mod:`pneumonia.training.finalize`
turns the trained model into the rest of a model folder.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from pneumonia.core.preprocess import InputSpec
from pneumonia.training import artifacts
from pneumonia.training.data import part_indices, training_manifest
from pneumonia.training.input_cache import DEFAULT_CACHE_DIR, fingerprint, load_arrays

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

VALIDATION_STRESS = ("identity", "contrast_low", "gamma_1.4", "blur", "noise", "low_resolution")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingConfig:
    """The training settings recorded in run.json and the metadata (``training.config``)."""

    epochs: int = 40
    size: int = 160
    clahe: bool = False
    widths: str = "48,96,192,320"  # channels of the residual blocks
    batch_size: int = 32
    lr: float = 2e-3
    label_smoothing: float = 0.05
    augment: float = 1.0  # augmentation strength (0 = off)
    patience: int = 8  # early-stopping patience on validation AUC
    seed: int = 42
    limit: int = 0  # use only N images per part (smoke tests)
    note: str = ""

    @property
    def spec(self) -> InputSpec:
        return InputSpec(size=self.size, clahe=self.clahe)


@dataclass
class TrainedRun:
    """A trained model with the data it was trained on, ready for :func:`finalize`."""

    model: keras.Model
    manifest: pd.DataFrame
    x_all: np.ndarray
    parts: dict[str, np.ndarray]
    spec: InputSpec
    run_info: dict


def training_data(x: np.ndarray, y: np.ndarray, config: TrainingConfig) -> tf.data.Dataset:
    """Shuffled, batched, augmented training batches with balanced class weights."""
    import tensorflow as tf

    from pneumonia.training.augment import make_augmenter

    # Balanced class weights: the training part is about 74% pneumonia.
    weights = {c: len(y) / (2.0 * max(1, (y == c).sum())) for c in (0, 1)}
    log.info("class weights: normal %.2f, pneumonia %.2f", weights[0], weights[1])
    w = np.where(y == 1, weights[1], weights[0]).astype(np.float32)
    ds = tf.data.Dataset.from_tensor_slices((x, y[:, None], w))
    ds = ds.shuffle(len(y), seed=config.seed, reshuffle_each_iteration=True).batch(config.batch_size)
    ds = ds.map(lambda xb, yb, wb: (tf.cast(xb, tf.float32), yb, wb))
    if config.augment > 0:
        ds = ds.map(make_augmenter(config.augment), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def stressed_validation(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Clean validation images plus stressed copies: clean validation AUC saturates near 0.998 on
    this easy internal split, so it cannot rank epochs by what generalises."""
    from pneumonia.training.augment import stress_variants

    variants = stress_variants(x.astype(np.float32))
    return np.concatenate([variants[k] for k in VALIDATION_STRESS]), np.tile(y, len(VALIDATION_STRESS))[:, None]


def compiled_network(config: TrainingConfig, n_train: int) -> keras.Model:
    """The network with AdamW, a warm-up + cosine learning rate, and label-smoothed cross-entropy."""
    import keras

    from pneumonia.training.network import build_model

    model = build_model(config.size, tuple(int(w) for w in config.widths.split(",")))
    steps = max(1, int(np.ceil(n_train / config.batch_size))) * config.epochs
    schedule = keras.optimizers.schedules.CosineDecay(
        1e-4, steps, warmup_target=config.lr, warmup_steps=max(1, steps // 20), alpha=0.02
    )
    model.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=1e-4),
        loss=keras.losses.BinaryCrossentropy(label_smoothing=config.label_smoothing),
        metrics=[keras.metrics.AUC(name="auc"), keras.metrics.BinaryAccuracy(name="accuracy")],
    )
    log.info("model: %s parameters, input %dpx", f"{model.count_params():,}", config.size)
    return model


def fit_network(
    model: keras.Model, train: tf.data.Dataset, val: tuple, config: TrainingConfig, out: Path
) -> keras.callbacks.History:
    """Fit with early stopping on validation AUC (restoring the best weights); returns the history."""
    import keras

    return model.fit(
        train,
        validation_data=val,
        epochs=config.epochs,
        verbose=2,
        callbacks=[
            keras.callbacks.EarlyStopping(
                monitor="val_auc",
                mode="max",
                patience=config.patience,
                restore_best_weights=True,
                # the first half runs at high learning rate; its early AUC peaks are noise
                start_from_epoch=config.epochs // 2,
            ),
            keras.callbacks.CSVLogger(str(artifacts.history_path(out))),
        ],
    )


def train(
    config: TrainingConfig, data_dir: str | Path, out: Path, command: str, cache_dir: Path = DEFAULT_CACHE_DIR
) -> TrainedRun:
    """Train on the Kaggle-layout folder ``data_dir``; saves the model, history and run record in ``out``."""
    import keras

    keras.utils.set_random_seed(config.seed)
    manifest = training_manifest(data_dir, seed=config.seed, limit=config.limit)
    log.info("%s", manifest.groupby(["part", "label_name"]).size().unstack().to_string())
    spec = config.spec
    x_all = load_arrays(manifest, spec, Path(cache_dir))
    parts = part_indices(manifest)
    y_all = manifest["label"].to_numpy().astype(np.float32)
    model = compiled_network(config, len(parts["train"]))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    train_ds = training_data(x_all[parts["train"]], y_all[parts["train"]], config)
    history = fit_network(model, train_ds, stressed_validation(x_all[parts["val"]], y_all[parts["val"]]), config, out)
    seconds, epochs_run = time.time() - t0, len(history.history["loss"])
    artifacts.save_model(model, out)
    log.info("trained %d epochs in %.1f min -> %s", epochs_run, seconds / 60, out)
    run_info = {
        "command": command,
        "config": asdict(config),
        "input_spec": spec.to_dict(),
        "epochs_run": epochs_run,
        "best_epoch": int(np.argmax(history.history["val_auc"])) + 1,
        "train_seconds": round(seconds, 1),
        "seconds_per_epoch": round(seconds / max(1, epochs_run), 1),
        "parameters": int(model.count_params()),
        "data_fingerprint": fingerprint(manifest),
        "n_images": {k: int(len(v)) for k, v in parts.items()},
    }
    artifacts.write_run_record(out, run_info, manifest)
    return TrainedRun(model, manifest, x_all, parts, spec, run_info)
