"""Lung-gated pooling for the trained members, without retraining their trunks.

Each member scores every cell of its 14x14 map with a 1x1 head and averages the cells. Gated, the
member's logit is the mean of its cell logits weighted by how much of each cell the lung segmenter
calls lung (:func:`pneumonia.serving.lung_fields.pooling_weights`), which equals its head applied to
the lung-weighted mean of its last feature map. So:

1. :func:`extract_frame` runs the trunks once per (re-framed) image and keeps, per weighting, the
   lung-weighted mean feature map of every member, with the cells' lung coverage and the original
   heads' cell logits (so that any weighting with the original heads can be measured);
2. :func:`refit_heads` refits each member's head (pneumonia and bacterial-vs-viral) on those pooled
   features, on that member's own training folds only: a logistic regression per member and output;
3. :func:`gated_ensemble` builds the served Keras model: the merged trunks, the refitted block-diagonal
   head, and the lung weights as a second input; the score and the default heatmap are the same
   weighted cell evidence.
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

from pneumonia.serving.lung_fields import LungSegmenter, cell_coverage, pooling_weights
from pneumonia.serving.runtime import LUNG_WEIGHTS
from pneumonia.training import artifacts
from pneumonia.training.framing import reframed_inputs
from pneumonia.training.network import LAST_CONV_LAYER, LOGIT_LAYER, MEMBER_LOGIT_LAYER, OUTPUTS, PATCH_LOGIT_LAYER

if TYPE_CHECKING:
    import keras
    import onnxruntime

GRID = 14  # cells per side of the members' last map (224 px / stride 16)
# candidate weightings: name -> power of the lung coverage ("half": cells at least half lung, weight 1)
WEIGHTINGS = {"all": 0.0, "cov": 1.0, "cov2": 2.0, "half": None}
CHUNK = 64
log = logging.getLogger(__name__)


def weights_for(coverage: np.ndarray, weighting: str) -> np.ndarray:
    """Pooling weights (N, grid, grid, 1) for a named weighting of the cells' lung coverage."""
    power = WEIGHTINGS[weighting]
    if power is None:
        return pooling_weights((np.asarray(coverage, np.float32) >= 0.5).astype(np.float32), 1.0)
    if power == 0.0:
        return np.ones((*np.shape(coverage), 1), np.float32)
    return pooling_weights(coverage, power)


def features_session(merged: keras.Model, path: Path) -> onnxruntime.InferenceSession:
    """An ONNX Runtime session over the merged trunks up to their concatenated last maps."""
    import keras
    import onnxruntime as ort

    if not path.exists():
        trunks = keras.Model(merged.input, merged.get_layer(LAST_CONV_LAYER).output)
        trunks.predict_on_batch(np.zeros((1, *merged.input.shape[1:]), np.float32))
        path.parent.mkdir(parents=True, exist_ok=True)
        trunks.export(str(path), format="onnx", verbose=False, opset_version=17)
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def extract_frame(
    x_all: np.ndarray, frame: str, trunks, segmenter: LungSegmenter, head: tuple[np.ndarray, np.ndarray]
) -> dict[str, np.ndarray]:
    """For every image re-framed as ``frame``: lung coverage per cell, the lung share of the image,
    the original heads' cell logits and, per weighting, the lung-weighted mean of the last maps."""
    n, (kernel, bias) = len(x_all), head
    out = {
        "coverage": np.zeros((n, GRID, GRID), np.float16),
        "share": np.zeros(n, np.float32),
        "patch": np.zeros((n, GRID, GRID, kernel.shape[-1]), np.float16),
        **{f"pooled_{w}": np.zeros((n, kernel.shape[-2]), np.float32) for w in WEIGHTINGS},
    }
    name, t0 = trunks.get_inputs()[0].name, time.time()
    for s in range(0, n, CHUNK):
        x = reframed_inputs(np.asarray(x_all[s : s + CHUNK], np.float32), frame)
        masks = segmenter.masks(x)
        coverage = cell_coverage(masks, GRID)
        maps = trunks.run(None, {name: x})[0]
        out["coverage"][s : s + CHUNK], out["share"][s : s + CHUNK] = coverage, masks.mean(axis=(1, 2))
        out["patch"][s : s + CHUNK] = maps @ kernel.reshape(kernel.shape[-2:]) + bias
        for w in WEIGHTINGS:
            out[f"pooled_{w}"][s : s + CHUNK] = (maps * weights_for(coverage, w)).mean(axis=(1, 2))
        if s and s % (CHUNK * 20) == 0:
            log.info("%s: %d/%d images (%.0f s)", frame, s, n, time.time() - t0)
    return out


def extracted_frames(x_all, frames, trunks, segmenter, head, cache: Path) -> dict[str, dict[str, np.ndarray]]:
    """:func:`extract_frame` for each frame, each kept in ``cache`` (a killed run resumes)."""
    cache.mkdir(parents=True, exist_ok=True)
    out = {}
    for frame in frames:
        path = cache / f"{frame}.npz"
        if not path.exists():
            part = path.with_suffix(".part.npz")
            np.savez(part, **extract_frame(x_all, frame, trunks, segmenter, head))
            part.replace(path)
        out[frame] = dict(np.load(path))
    return out


@dataclass
class MemberFolds:
    """Which pool images each member was trained on."""

    member_fold: list[int]  # the fold each member held out, in the merged model's order
    folds: np.ndarray  # (N,) fold per image, -1 for the hard normals (held out of every fold)

    def training(self, member: int) -> np.ndarray:
        return (self.folds != self.member_fold[member]) & (self.folds >= 0)

    def held_out_by(self, image_fold: int) -> list[int]:
        """The members that never saw an image of this fold (every member for a hard normal)."""
        if image_fold < 0:
            return list(range(len(self.member_fold)))
        return [i for i, f in enumerate(self.member_fold) if f == image_fold]


def _logistic_head(x: np.ndarray, y: np.ndarray, c: float, balanced: bool) -> tuple[np.ndarray, float]:
    """A logistic regression on standardised features, folded back into a head on the raw features."""
    from sklearn.linear_model import LogisticRegression

    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
    lr = LogisticRegression(C=c, max_iter=3000, class_weight="balanced" if balanced else None)
    lr.fit((x - mean) / std, y)
    kernel = lr.coef_[0] / std
    return kernel.astype(np.float32), float(lr.intercept_[0] - (kernel * mean).sum())


def refit_heads(
    pooled: dict[str, np.ndarray], targets: np.ndarray, members: MemberFolds, c: float
) -> tuple[np.ndarray, np.ndarray]:
    """Each member's 1x1 head refitted on its lung-pooled features (frame -> (N, K * C)), on its own
    training folds only (plain and re-framed copies): the pneumonia output on every image, the
    bacterial output on pneumonia images whose subtype is known. Returns the block-diagonal kernel
    (1, 1, K * C, K * outputs) and bias of the merged model's head."""
    k, n_out = len(members.member_fold), len(OUTPUTS)
    channels = next(iter(pooled.values())).shape[1] // k
    kernel = np.zeros((1, 1, k * channels, k * n_out), np.float32)
    bias = np.zeros(k * n_out, np.float32)
    for i in range(k):
        rows = members.training(i)
        x = np.concatenate([f[rows, i * channels : (i + 1) * channels] for f in pooled.values()])
        y = np.tile(targets[rows], (len(pooled), 1))
        cols = slice(i * channels, (i + 1) * channels)
        kernel[0, 0, cols, i * n_out], bias[i * n_out] = _logistic_head(x, y[:, 0].astype(int), c, balanced=True)
        known = y[:, 1] >= 0
        kernel[0, 0, cols, i * n_out + 1], bias[i * n_out + 1] = _logistic_head(
            x[known], y[known, 1].astype(int), c, balanced=False
        )
    return kernel, bias


def member_logits(pooled: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Every member's logits (N, K * outputs) from lung-pooled features and a block-diagonal head."""
    return pooled @ kernel[0, 0] + bias


def original_head_logits(frame: dict[str, np.ndarray], weighting: str) -> np.ndarray:
    """Every member's logits (N, K * outputs) with the original heads, pooled by ``weighting``."""
    w = weights_for(frame["coverage"], weighting)
    return (frame["patch"].astype(np.float32) * w).mean(axis=(1, 2))


def out_of_fold(logits: np.ndarray, members: MemberFolds) -> np.ndarray:
    """Each image's logits (N, outputs) averaged over the members that never trained on it."""
    n_out = len(OUTPUTS)
    out = np.full((len(logits), n_out), np.nan)
    for fold in np.unique(members.folds):
        rows = members.folds == fold
        cols = members.held_out_by(int(fold))
        for o in range(n_out):
            out[rows, o] = logits[rows][:, [c * n_out + o for c in cols]].mean(axis=1)
    return out


def lung_limits(shares: np.ndarray) -> dict:
    """Plausible lung-field shares of the image, from the pool's films (plain and re-framed): a notice
    outside the central 99%, a refusal far outside anything seen (half the 0.1th percentile, or no lung;
    above the 99.9th percentile plus a margin)."""
    lo, hi = np.percentile(shares, [0.5, 99.5])
    floor, ceiling = np.percentile(shares, [0.1, 99.9])
    return {
        "refuse_below": round(float(max(0.02, floor / 2)), 4),
        "refuse_above": round(float(min(0.95, ceiling + 0.15)), 4),
        "notice_below": round(float(lo), 4),
        "notice_above": round(float(hi), 4),
        "measured_on": f"{len(shares)} pool films, plain and re-framed",
    }


def gated_ensemble(merged: keras.Model, kernel: np.ndarray, bias: np.ndarray, grid: int = GRID) -> keras.Model:
    """The served Keras model: the merged trunks, a (refitted) block-diagonal head, and the cells' lung
    weights as a second input. Its logits are the members' lung-weighted mean cell logits, averaged."""
    import keras
    from keras import layers

    from pneumonia.serving.keras_layers import NormalisedCellWeights

    weights = keras.Input(shape=(grid, grid, 1), name=LUNG_WEIGHTS)
    patches = layers.Conv2D(kernel.shape[-1], 1, name=PATCH_LOGIT_LAYER)(merged.get_layer(LAST_CONV_LAYER).output)
    scaled = NormalisedCellWeights(name=LUNG_CELL_WEIGHTS_LAYER)(weights)
    gated = layers.Multiply(name=GATED_PATCH_LAYER)([patches, scaled])
    members = layers.GlobalAveragePooling2D(name=MEMBER_LOGIT_LAYER)(gated)
    logits = layers.Dense(len(OUTPUTS), use_bias=False, trainable=False, name=LOGIT_LAYER)(members)
    model = keras.Model([merged.input, weights], logits, name="pneumonia_lung_gated_ensemble")
    model.get_layer(PATCH_LOGIT_LAYER).set_weights([kernel, bias])
    model.get_layer(LOGIT_LAYER).set_weights(merged.get_layer(LOGIT_LAYER).get_weights())
    return model


LUNG_CELL_WEIGHTS_LAYER = "lung_cell_weights"
GATED_PATCH_LAYER = "gated_patch_logits"


@dataclass
class Variant:
    """One way of pooling the members' cells: a weighting and the heads (original or refitted)."""

    weighting: str
    refit_c: float | None  # None: the trained heads as they are
    head: tuple[np.ndarray, np.ndarray]  # block-diagonal kernel (1, 1, K * C, K * outputs) and bias
    fit_frames: tuple[str, ...] = ()  # the re-framed copies the heads were refitted on

    @property
    def name(self) -> str:
        if self.refit_c is None:
            return f"lung-gated/{self.weighting}, trained heads"
        return f"lung-gated/{self.weighting}, heads refitted on {'+'.join(self.fit_frames)} (C={self.refit_c:g})"

    def logits(self, frame: dict[str, np.ndarray]) -> np.ndarray:
        """Every member's logits (N, K * outputs) on one extracted frame."""
        if self.refit_c is None:
            return original_head_logits(frame, self.weighting)
        return member_logits(frame[f"pooled_{self.weighting}"], *self.head)


def member_spread(logits: np.ndarray, members: MemberFolds) -> np.ndarray:
    """Std of the held-out members' pneumonia logits per image (NaN where only one member held it out)."""
    n_out, out = len(OUTPUTS), np.full(len(logits), np.nan)
    for fold in np.unique(members.folds):
        rows, cols = members.folds == fold, members.held_out_by(int(fold))
        if len(cols) > 1:
            out[rows] = logits[rows][:, [c * n_out for c in cols]].std(axis=1)
    return out


def variant_out_of_fold(variant: Variant, frames: dict[str, dict[str, np.ndarray]], members: MemberFolds):
    """The variant's out-of-fold logits on every extracted frame, as the finalize steps read them."""
    from pneumonia.training.finalize import OutOfFold

    logits = {f: out_of_fold(variant.logits(d), members) for f, d in frames.items()}
    return OutOfFold(logits, member_spread(variant.logits(frames["plain"]), members))


def variant_row(variant: Variant, targets: np.ndarray, hard: np.ndarray, oof, calibrate) -> dict:
    """One experiments.csv row: the variant's out-of-fold, re-framed and hard-normal figures, with
    the calibration and balanced point it would ship with (``calibrate(y, hard, oof) -> (cal, ops)``)."""
    from sklearn.metrics import roc_auc_score

    from pneumonia.core import calibration
    from pneumonia.core.metrics import expected_calibration_error
    from pneumonia.training.finalize import reframed_metrics

    y = targets[:, 0].astype(int)
    cal, ops = calibrate(y, hard, oof)
    threshold = ops["balanced"]["threshold"]
    frames = reframed_metrics(y, hard, oof, cal, threshold)
    pool = ~hard
    known = (targets[:, 1] >= 0) & pool
    return {
        "run": variant.name,
        "oof_auc": round(frames["plain"]["roc_auc"], 4),
        "oof_specificity": round(frames["plain"]["specificity"], 4),
        "oof_sensitivity": round(frames["plain"]["sensitivity"], 4),
        "crop125_auc": round(frames["crop125"]["roc_auc"], 4),
        "crop125_specificity": round(frames["crop125"]["specificity"], 4),
        "crop20_auc": round(frames["crop20"]["roc_auc"], 4),
        "crop20_specificity": round(frames["crop20"]["specificity"], 4),
        "crop10_mean_shift": round(frames["crop10"]["mean_probability_shift"], 4),
        "hard_normal_specificity": round(frames["plain"]["hard_normal_specificity"], 4),
        "hard_normal_specificity_crop125": round(frames["crop125"]["hard_normal_specificity"], 4),
        "subtype_auc": round(float(roc_auc_score(targets[known, 1], oof.logits["plain"][known, 1])), 4),
        "default_threshold": round(threshold, 4),
        "ece": round(expected_calibration_error(y[pool], calibration.apply(cal, oof.pneumonia()[pool])), 4),
    }


# Calibration that carries the shift: the official test's normals are often tightly framed, and a
# model whose out-of-fold normals are easy is over-confident on them. The fit set is every pool film
# plain and re-framed up to 20% per side, plus the hard normals (plain and re-framed) weighted so that
# they make up this share of the normals: a hospital's normals include far more tight, hard films than
# the training pool's 5%.
CALIBRATION_FRAMES = ("plain", "crop10", "crop125", "crop20")
HARD_NORMAL_SHARE = 0.25


def calibration_set(y: np.ndarray, hard: np.ndarray, oof, share: float = HARD_NORMAL_SHARE):
    """(logits, labels, weights) of the calibration fit set described above."""
    z = np.concatenate([oof.pneumonia(f) for f in CALIBRATION_FRAMES])
    labels = np.tile(y, len(CALIBRATION_FRAMES))
    is_hard = np.tile(hard, len(CALIBRATION_FRAMES))
    normals = labels == 0
    weights = np.ones(len(z))
    easy, tough = (normals & ~is_hard).sum(), (normals & is_hard).sum()
    if tough:
        weights[is_hard] = share / (1 - share) * easy / tough
    return z, labels, weights


def calibrate_with_shift(y: np.ndarray, hard: np.ndarray, oof, share: float = HARD_NORMAL_SHARE) -> tuple[dict, dict]:
    """Platt scaling on :func:`calibration_set`; operating points on the same films (unweighted: a
    point's validation figures are counts of real films)."""
    from sklearn.linear_model import LogisticRegression

    from pneumonia.core import calibration, operating_points
    from pneumonia.core.metrics import confusion, rates

    z, labels, weights = calibration_set(y, hard, oof, share)
    lr = LogisticRegression(C=1e4, max_iter=1000).fit(z.reshape(-1, 1), labels, sample_weight=weights)
    cal = {"method": "platt", "a": float(lr.coef_[0, 0]), "b": float(lr.intercept_[0])}
    cal["fitted_on"] = (
        f"out-of-fold logits of every pool film plain and re-framed ({', '.join(CALIBRATION_FRAMES)}), hard "
        f"normals weighted to {share:.0%} of the normals"
    )
    ops = operating_points.choose(labels, calibration.apply(cal, z))
    p_plain = calibration.apply(cal, oof.pneumonia())
    for op in ops.values():
        clean = rates(*confusion(y[~hard], p_plain[~hard], op["threshold"]))
        op["validation_sensitivity"], op["validation_specificity"] = clean["sensitivity"], clean["specificity"]
        op["reframed_validation_sensitivity"] = op.pop("sensitivity")
        op["reframed_validation_specificity"] = op.pop("specificity")
        op["hard_normal_specificity"] = float((p_plain[hard] < op["threshold"]).mean())
    return cal, ops


def pooled_logits(x: np.ndarray, variant: Variant, trunks, segmenter: LungSegmenter) -> np.ndarray:
    """Every member's logits (N, K * outputs) under ``variant`` for model inputs ``x``."""
    name, parts = trunks.get_inputs()[0].name, []
    for s in range(0, len(x), CHUNK):
        batch = np.asarray(x[s : s + CHUNK], np.float32)
        coverage = cell_coverage(segmenter.masks(batch), GRID)
        maps = trunks.run(None, {name: batch})[0]
        w = weights_for(coverage, variant.weighting)
        if variant.refit_c is None:
            kernel, bias = variant.head
            parts.append(((maps @ kernel[0, 0] + bias) * w).mean(axis=(1, 2)))
        else:
            parts.append(member_logits((maps * w).mean(axis=(1, 2)), *variant.head))
    return np.concatenate(parts)


STRESS_PER_FOLD = 80  # out-of-fold images per fold scored under the photometric stress perturbations


def stress_metrics(data, variant: Variant, trunks, segmenter, members: MemberFolds, cal: dict, threshold: float):
    """Photometric stress (contrast, gamma, exposure, blur, noise, resampling, crop) on a sample of
    out-of-fold images, scored lung-gated by the members that held each image out."""
    from pneumonia.core import calibration
    from pneumonia.training.augment import stress_variants
    from pneumonia.training.finalize import frame_metrics

    rng, n_out = np.random.default_rng(0), len(OUTPUTS)
    y, logits = [], {}
    for fold in range(int(members.folds.max()) + 1):
        idx = np.flatnonzero(members.folds == fold)
        idx = np.sort(rng.choice(idx, min(len(idx), STRESS_PER_FOLD), replace=False))
        cols = [c * n_out for c in members.held_out_by(fold)]
        y.append(data.targets[idx, 0])
        for name, x in stress_variants(np.asarray(data.x_all[idx], np.float32)).items():
            logits.setdefault(name, []).append(pooled_logits(x, variant, trunks, segmenter)[:, cols].mean(axis=1))
    y = np.concatenate(y).astype(int)
    plain = calibration.apply(cal, np.concatenate(logits["identity"]))
    out = {
        name: frame_metrics(y, plain, calibration.apply(cal, np.concatenate(z)), threshold)
        for name, z in logits.items()
    }
    for figures in out.values():
        figures["n_pneumonia"], figures["n_normal"] = int(y.sum()), int((1 - y).sum())
    return out


SIMPLER_WITHIN = 0.0005  # worst re-framed AUCs closer than this: the simpler variant (listed first) wins
HEAD_FIT_FRAMES = (("plain", "crop10", "crop125"), ("plain", "crop10", "crop125", "crop20"))
SHIFTED_FRAMES = ("crop10", "crop125", "crop20", "narrow", "zoomout")


def candidate_variants(frames, targets: np.ndarray, members: MemberFolds, head) -> list[Variant]:
    """The gated variants, simplest first: trained heads per weighting, then heads refitted on the
    lung-pooled features of the films each member trained on (plain and re-framed copies)."""
    out = [Variant(w, None, head) for w in ("cov", "cov2", "half")]
    for fit_frames in HEAD_FIT_FRAMES:
        for weighting, c in (("cov", 0.1), ("cov", 1.0), ("cov2", 0.1)):
            pooled = {f: frames[f][f"pooled_{weighting}"] for f in fit_frames}
            out.append(Variant(weighting, c, refit_heads(pooled, targets, members, c), fit_frames))
    return out


def worst_shifted_auc(targets: np.ndarray, hard: np.ndarray, oof) -> float:
    """The lowest out-of-fold AUC over the re-framed copies: the shift a new site's films bring is not
    known in advance, so a variant is judged by the re-framing it copes with worst."""
    from sklearn.metrics import roc_auc_score

    pool = ~hard
    return min(float(roc_auc_score(targets[pool, 0], oof.pneumonia(f)[pool])) for f in SHIFTED_FRAMES)


def choose_variant(frames, targets, hard, members, head) -> tuple[Variant, list[dict]]:
    """The gated variant with the best worst re-framed AUC out of fold, the simpler one within
    ``SIMPLER_WITHIN``; and every variant's row, the ungated shipped pooling first for comparison."""
    rows, best, best_auc = [], None, -1.0
    baseline = Variant("all", None, head)
    for variant in [baseline, *candidate_variants(frames, targets, members, head)]:
        oof = variant_out_of_fold(variant, frames, members)
        rows.append(variant_row(variant, targets, hard, oof, calibrate_with_shift))
        rows[-1]["worst_reframed_auc"] = round(worst_shifted_auc(targets, hard, oof), 4)
        log.info("%s: %s", variant.name, rows[-1])
        if variant is not baseline and rows[-1]["worst_reframed_auc"] > best_auc + SIMPLER_WITHIN:
            best, best_auc = variant, rows[-1]["worst_reframed_auc"]
    return best, rows


def pooling_record(variant: Variant, limits: dict, segmenter: LungSegmenter, chosen_by: str) -> dict:
    """The metadata's ``lung_pooling``: what serving needs to pool over the lungs, and how it was chosen."""
    import hashlib

    return {
        "input": LUNG_WEIGHTS,
        "weights_layer": LUNG_CELL_WEIGHTS_LAYER,
        "grid": GRID,
        "power": WEIGHTINGS[variant.weighting],
        "weights": "the share of each cell that the lung segmenter calls lung, to this power, scaled to "
        "average 1 over the cells; the score is the members' mean of their cell logits weighted so",
        "segmenter": segmenter.path.name,
        "segmenter_sha256": hashlib.sha256(segmenter.path.read_bytes()).hexdigest(),
        "heads": variant.name,
        "chosen_by": chosen_by,
        "limits": limits,
    }


def gated_metrics(data, frames, variant: Variant, members: MemberFolds, trunks, segmenter) -> tuple:
    """(calibration, subtype calibration, operating points, out-of-fold logits, metrics) of the
    chosen variant, as the finalize steps compute them for a trained ensemble."""
    from pneumonia.core import calibration
    from pneumonia.training.finalize import reframed_metrics, subtype_metrics, validation_metrics

    y, hard = data.targets[:, 0].astype(int), data.manifest["hard_normal"].to_numpy()
    oof = variant_out_of_fold(variant, frames, members)
    cal, ops = calibrate_with_shift(y, hard, oof)
    known = (data.targets[:, 1] >= 0) & np.isfinite(oof.logits["plain"][:, 1])
    sub_cal = calibration.fit_platt(oof.logits["plain"][known, 1], data.targets[known, 1])
    metrics = validation_metrics(data, oof, cal, ops)
    threshold = ops["balanced"]["threshold"]
    metrics["reframed"] = reframed_metrics(y, hard, oof, cal, threshold)
    metrics["subtype"] = subtype_metrics(data.manifest, oof, sub_cal)
    metrics["stress"] = stress_metrics(data, variant, trunks, segmenter, members, cal, threshold)
    p = calibration.apply(cal, np.concatenate([oof.pneumonia(f) for f in ("plain", "crop125")]))
    metrics["calibration"]["shifted"] = shifted_reliability(np.tile(y, 2), np.tile(hard, 2), p)
    return cal, sub_cal, ops, oof, metrics


def shifted_reliability(y: np.ndarray, hard: np.ndarray, p: np.ndarray) -> dict:
    """Reliability (10 equal-width bins: films, mean predicted, observed) on the set that carries the
    shift: the pool's films plain and cropped 12.5% per side, hard normals weighted as in calibration."""
    from pneumonia.core.metrics import expected_calibration_error

    normals = y == 0
    w = np.ones(len(y))
    easy, tough = (normals & ~hard).sum(), (normals & hard).sum()
    w[hard] = HARD_NORMAL_SHARE / (1 - HARD_NORMAL_SHARE) * easy / max(tough, 1)
    bins = np.minimum((p * 10).astype(int), 9)
    rows, ece = [], 0.0
    for b in range(10):
        m = bins == b
        if m.any():
            rows.append(
                {
                    "bin": f"{b / 10:.1f}-{(b + 1) / 10:.1f}",
                    "n": int(m.sum()),
                    "mean_predicted": float(np.average(p[m], weights=w[m])),
                    "observed": float(np.average(y[m], weights=w[m])),
                }
            )
            ece += w[m].sum() / w.sum() * abs(rows[-1]["mean_predicted"] - rows[-1]["observed"])
    return {
        "what": "pool films plain and cropped 12.5% per side, out of fold; hard normals weighted to "
        f"{HARD_NORMAL_SHARE:.0%} of the normals",
        "ece": float(ece),
        "ece_unweighted": float(expected_calibration_error(y, p)),
        "bins": rows,
    }


def regate_model_dir(source: Path, data_dir: str | Path, cache_dir: Path, out: Path, experiment_log: Path | None):
    """Lung-gate the ungated ensemble in ``source`` and write the new model folder ``out``: variants
    measured and chosen on out-of-fold validation, heads refitted, calibration and operating points on
    the shifted fit set, metrics, the served graph (ONNX) and the metadata. The gate is kept (its
    embedding is the first member's trunk, unchanged)."""
    import shutil

    import keras

    from pneumonia.serving.metadata import GATE_FILE, HISTORY_FILE, RUN_FILE, SPLIT_FILE, read_metadata
    from pneumonia.training.fit import TrainingConfig, load_training_data
    from pneumonia.training.framing import REFRAMES

    source, out = Path(source), Path(out)
    metadata = read_metadata(source)
    if metadata.extra.get("lung_pooling"):
        raise ValueError(f"{source} is lung-gated already; run on the ungated ensemble it was made from")
    config = TrainingConfig(**json.loads((source / RUN_FILE).read_text())["config"])
    data = load_training_data(config, data_dir, None, Path(cache_dir), folds_from=source / SPLIT_FILE)
    members = MemberFolds([m["fold"] for m in metadata.training["members"]], data.manifest["fold"].to_numpy())
    merged = keras.models.load_model(source / metadata.model_file, compile=False)
    head = tuple(np.asarray(w, np.float32) for w in merged.get_layer(PATCH_LOGIT_LAYER).get_weights())
    trunks = features_session(merged, Path(cache_dir) / "gating" / f"trunks-{metadata.model_sha256[:12]}.onnx")
    segmenter = LungSegmenter(source / "lung_segmenter.onnx")
    frames = extracted_frames(
        data.x_all, list(REFRAMES), trunks, segmenter, head, Path(cache_dir) / "gating" / metadata.model_sha256[:12]
    )
    hard = data.manifest["hard_normal"].to_numpy()
    variant, rows = choose_variant(frames, data.targets, hard, members, head)
    cal, sub_cal, ops, oof, metrics = gated_metrics(data, frames, variant, members, trunks, segmenter)
    limits = lung_limits(np.concatenate([frames[f]["share"][~hard] for f in REFRAMES]))
    chosen_by = (
        f"best lowest out-of-fold AUC over the re-framed copies ({', '.join(SHIFTED_FRAMES)}) among "
        f"{len(rows) - 1} gated variants"
    )
    out.mkdir(parents=True, exist_ok=True)
    for name in (RUN_FILE, SPLIT_FILE, HISTORY_FILE, "lung_segmenter.onnx", "lung_segmenter.json", "hard_normals.csv"):
        if (source / name).exists() and source != out:
            shutil.copy2(source / name, out / name)
    pooling = pooling_record(variant, limits, segmenter, chosen_by)
    gated = write_gated_model(out, gated_ensemble(merged, *variant.head), metadata, pooling, (cal, sub_cal, ops))
    metrics["gate"] = json.loads((source / "test_metrics.json").read_text()).get("gate")
    write_gated_artifacts(out, gated, data, oof, metrics, dict(np.load(source / GATE_FILE)))
    if experiment_log:
        now = datetime.now(UTC).isoformat(timespec="seconds")
        for row in rows:
            artifacts.append_experiment_log(experiment_log, {"time": now, **row})
    return read_metadata(out), rows


def write_gated_model(out: Path, model: keras.Model, ungated, pooling: dict, fitted: tuple) -> object:
    """Save the gated Keras model, its metadata (a new version) and its served graph, checked against
    Keras on the sample films with their own lung weights."""
    from pneumonia.training.finalize import ARCHITECTURE, build_metadata
    from pneumonia.training.runtime_export import check_agreement, export_onnx

    cal, sub_cal, ops = fitted
    sha = artifacts.save_model(model, out)
    metadata = build_metadata(sha, ungated.input_spec, (cal, sub_cal), ops, dict(ungated.training))
    metadata.architecture = ARCHITECTURE.format(k=ungated.extra.get("members", 1)) + (
        "; the cells are pooled over the lung fields (each cell weighted by its share of lung), heads "
        "refitted on the lung-pooled features"
    )
    metadata.extra["lung_pooling"] = pooling
    metadata.extra["derived_from"] = {"version": ungated.version, "model_sha256": ungated.model_sha256}
    metadata.runtime = export_onnx(model, metadata, out)
    samples = sorted((Path(__file__).resolve().parents[2] / "assets" / "samples").glob("*.jpeg"))
    worst = check_agreement(model, metadata, out, sample_inputs(samples, metadata.input_spec))
    if worst["member_logits"] > 1e-4:
        raise RuntimeError(f"the exported graph disagrees with the Keras model: {worst}")
    metadata.runtime["agreement_max_abs"] = worst
    artifacts.write_metadata(out, metadata)
    return metadata


def sample_inputs(paths: list[Path], spec) -> np.ndarray:
    from pneumonia.core.decode import load_xray
    from pneumonia.core.preprocess import to_model_input

    return np.stack([to_model_input(load_xray(p.read_bytes(), p.name).pixels, spec) for p in paths])


def write_gated_artifacts(out: Path, metadata, data, oof, metrics: dict, gate_params: dict) -> None:
    """Test metrics, out-of-fold predictions and the failure gallery of the gated model."""
    from pneumonia.training.finalize import finalized_run

    artifacts.write_finalized(out, finalized_run(data, oof, metadata, metrics, gate_params))
