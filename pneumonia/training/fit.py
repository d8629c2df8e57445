"""Train the ensemble's members from scratch: one member per (seed, cross-validation fold).

Each member trains on four folds and predicts its held-out fold and the hard normals, plain and
re-framed (:mod:`pneumonia.training.framing`); those out-of-fold predictions are what
:mod:`pneumonia.training.finalize` calibrates and judges the ensemble on. A member already on disk
is not trained again, so a killed run resumes where it stopped.

Speed: about 100 min a member on 2 CPU cores (TensorFlow); about 3 min on one GPU with
``KERAS_BACKEND=jax`` (the shipped members were trained so; the files load in TensorFlow).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from pneumonia.core.preprocess import InputSpec
from pneumonia.training.data import mark_hard_normals, patient_folds, relative_name, training_manifest
from pneumonia.training.framing import REFRAMES, reframed_inputs
from pneumonia.training.input_cache import DEFAULT_CACHE_DIR, fingerprint, load_arrays

if TYPE_CHECKING:
    import keras

log = logging.getLogger(__name__)
MEMBERS_DIR = "members"


@dataclass(frozen=True)
class TrainingConfig:
    """The training settings recorded in run.json and the metadata (``training.config``)."""

    epochs: int = 40
    size: int = 224
    batch_size: int = 64
    lr: float = 2e-3
    label_smoothing: float = 0.05
    normal_zoom: float = 0.15  # extra zoom-in of NORMAL images (see augment.py); 0 = symmetric
    subtype_weight: float = 0.7  # weight of the bacterial-vs-viral loss
    folds: int = 5
    seeds: str = "0"  # comma-separated: one member per seed and fold
    fold_seed: int = 42
    limit: int = 0  # use only about N images (smoke tests)
    note: str = ""

    @property
    def spec(self) -> InputSpec:
        return InputSpec(size=self.size)

    @property
    def seed_list(self) -> list[int]:
        return [int(s) for s in str(self.seeds).split(",") if s.strip()]


@dataclass
class TrainingData:
    """The pooled training manifest (with ``fold`` and ``hard_normal``), model inputs and targets."""

    manifest: pd.DataFrame
    x_all: np.ndarray
    targets: np.ndarray  # (N, 2): pneumonia 0/1, bacterial 1 / viral 0 / -1 for normal or unknown


def load_training_data(
    config: TrainingConfig,
    data_dir: str | Path,
    hard_normals: Path | None,
    cache_dir: Path = DEFAULT_CACHE_DIR,
    folds_from: Path | None = None,
) -> TrainingData:
    """The pool with its folds: new ones, or those of an earlier run's split.csv (``folds_from``),
    so that a run can be resumed or finalized on exactly the folds its members were trained on."""
    manifest = mark_hard_normals(training_manifest(data_dir, limit=config.limit), hard_normals)
    manifest = manifest.drop(columns=["part"])
    manifest["name"] = manifest["path"].map(relative_name)
    if folds_from:
        saved = pd.read_csv(folds_from).set_index("name")
        manifest["fold"] = manifest["name"].map(saved["fold"]).fillna(-1).astype(int)
        manifest["hard_normal"] = manifest["name"].map(saved["hard_normal"]).fillna(False).astype(bool)
    else:
        manifest["fold"] = patient_folds(manifest, config.folds, config.fold_seed)
    subtype = manifest["subtype"].to_numpy()
    targets = np.stack(
        [manifest["label"].to_numpy(), np.where(subtype == "bacteria", 1, np.where(subtype == "virus", 0, -1))], 1
    ).astype(np.float32)
    return TrainingData(manifest, load_arrays(manifest, config.spec, Path(cache_dir)), targets)


def member_loss(normal_weight: float, label_smoothing: float, subtype_weight: float):
    """Class-weighted cross-entropy on the pneumonia logit plus the bacterial-vs-viral
    cross-entropy on pneumonia images whose subtype is known."""
    from keras import ops

    def smooth(y):
        return y * (1 - label_smoothing) + 0.5 * label_smoothing

    def loss(y_true, y_pred):
        weight = ops.where(y_true[:, 0] > 0.5, 1.0, normal_weight)
        pneumonia = ops.binary_crossentropy(smooth(y_true[:, 0]), y_pred[:, 0], from_logits=True) * weight
        known = ops.cast(y_true[:, 1] >= 0, "float32")
        bacterial = ops.binary_crossentropy(smooth(ops.clip(y_true[:, 1], 0, 1)), y_pred[:, 1], from_logits=True)
        return pneumonia + subtype_weight * bacterial * known

    return loss


def training_wrapper(member: keras.Model, config: TrainingConfig, seed: int, n_train: int, normal_weight: float):
    """The member behind the augmentation layer, compiled with AdamW (EMA weights) and a warm-up
    + cosine learning rate."""
    import keras

    from pneumonia.training.augment import Augment

    image = keras.Input((config.size, config.size, 1), name="image")
    is_normal = keras.Input((), name="is_normal")
    augmented = Augment(normal_zoom=config.normal_zoom, seed=seed, name="augment")([image, is_normal])
    wrapper = keras.Model([image, is_normal], member(augmented))
    steps = math.ceil(n_train / config.batch_size) * config.epochs
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, steps, alpha=0.01, warmup_target=config.lr, warmup_steps=max(1, steps // 20)
    )
    optimizer = keras.optimizers.AdamW(schedule, weight_decay=1e-4, use_ema=True, ema_momentum=0.995)
    loss = member_loss(normal_weight, config.label_smoothing, config.subtype_weight)
    wrapper.compile(optimizer=optimizer, loss=loss, jit_compile=keras.backend.backend() == "jax")
    return wrapper, optimizer


def train_member(data: TrainingData, config: TrainingConfig, seed: int, fold: int) -> tuple[keras.Model, dict]:
    """One member trained on every fold but ``fold``; returns it and its training record."""
    import keras

    from pneumonia.training.network import build_member

    keras.utils.set_random_seed(seed * 100 + fold)
    folds = data.manifest["fold"].to_numpy()
    train = np.flatnonzero((folds != fold) & (folds >= 0))
    y = data.targets[train]
    normal_weight = float((y[:, 0] == 1).sum() / max(1, (y[:, 0] == 0).sum()))
    member = build_member(config.size)
    wrapper, optimizer = training_wrapper(member, config, seed, len(train), normal_weight)
    t0 = time.time()
    x = np.asarray(data.x_all[train], np.float32)
    history = wrapper.fit(
        [x, (y[:, 0] == 0).astype(np.float32)],
        y,
        batch_size=config.batch_size,
        epochs=config.epochs,
        shuffle=True,
        verbose=2,
    )
    optimizer.finalize_variable_values(member.trainable_variables)
    record = {
        "seed": seed,
        "fold": fold,
        "seconds": round(time.time() - t0, 1),
        "n_train": int(len(train)),
        "parameters": int(member.count_params()),
        "loss": [float(v) for v in history.history["loss"]],
    }
    return member, record


def out_of_fold_logits(member: keras.Model, data: TrainingData, fold: int) -> dict[str, np.ndarray]:
    """The member's logits on its held-out fold and the hard normals, plain and re-framed."""
    folds = data.manifest["fold"].to_numpy()
    held = np.flatnonzero((folds == fold) | (folds < 0))
    out = {"name": data.manifest["name"].to_numpy()[held].astype(str)}
    for frame in REFRAMES:
        x = reframed_inputs(data.x_all[held], frame)
        out[f"logits_{frame}"] = np.asarray(member.predict(x, batch_size=32, verbose=0), np.float32)
    return out


def member_name(seed: int, fold: int) -> str:
    return f"seed{seed}_fold{fold}"


def train_members(data: TrainingData, config: TrainingConfig, out: Path) -> list[Path]:
    """Train every (seed, fold) member not yet in ``out/members``; returns all member files."""
    folder = Path(out) / MEMBERS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for seed in config.seed_list:
        for fold in range(config.folds):
            path = folder / f"{member_name(seed, fold)}.keras"
            files.append(path)
            if path.exists():
                log.info("member %s already trained; skipped", path.name)
                continue
            member, record = train_member(data, config, seed, fold)
            np.savez(path.with_suffix(".oof.npz"), **out_of_fold_logits(member, data, fold))
            path.with_suffix(".json").write_text(json.dumps(record))
            # last, and atomically: a member file means the member is complete
            partial = folder / "partial" / path.name
            partial.parent.mkdir(exist_ok=True)
            member.save(partial)
            os.replace(partial, path)
            log.info("member %s: %.0f s", path.name, record["seconds"])
    return files


def run_record(config: TrainingConfig, data: TrainingData, command: str, member_files: list[Path]) -> dict:
    """How the ensemble was trained, for run.json and the metadata."""
    records = [json.loads(p.with_suffix(".json").read_text()) for p in member_files]
    return {
        "command": command,
        "config": asdict(config),
        "input_spec": config.spec.to_dict(),
        "members": [{k: r[k] for k in ("seed", "fold", "seconds", "n_train", "parameters")} for r in records],
        "epochs_run": config.epochs,
        "train_seconds": round(sum(r["seconds"] for r in records), 1),
        "data_fingerprint": fingerprint(data.manifest),
        "n_images": {"pool": int(len(data.manifest)), "hard_normals": int(data.manifest["hard_normal"].sum())},
    }
