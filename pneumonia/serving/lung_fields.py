"""Lung fields of a frontal chest x-ray from the trained segmenter, on ONNX Runtime (no TensorFlow).

The segmenter (``models/lung_segmenter.onnx``, trained by :mod:`pneumonia.training.lung_segmenter`
on hand-traced fields) reads the classifier's model input (the film squashed to 224x224, [0, 1])
shrunk to 128 px and answers, per pixel, the probability of lung field: both lungs from apex to
costophrenic angle inside the ribs, hila included, a whitened lung still counted, the heart not.
Its spec (``models/lung_segmenter.json``) holds the input size, the threshold and its Dice on
held-out traced films. An estimate to measure heatmaps with and to draw a faint outline for the
reader; not a diagnosis and not a boundary to measure a lesion by.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

MODEL_INPUT_SIZE = 224  # the classifier's input side, which masks are returned at
SEG_SIZE = 128  # the segmenter's input side
DEFAULT_SEGMENTER = Path(__file__).resolve().parents[2] / "models" / "lung_segmenter.onnx"
SEG_CHUNK = 32  # films per segmenter run
MIN_LUNG_SHARE = 0.15  # a second region is kept as a lung when at least this share of the largest


def segmenter_input(model_input: np.ndarray, size: int = SEG_SIZE) -> np.ndarray:
    """The classifier's model input ((224, 224, 1) or (224, 224), [0, 1]) -> (size, size) float32."""
    x = np.asarray(model_input, np.float32)
    if x.ndim == 3:
        x = x[..., 0]
    if x.ndim != 2:
        raise ValueError(f"expected one grayscale image, got an array of shape {x.shape}")
    return cv2.resize(x, (size, size), interpolation=cv2.INTER_AREA) if x.shape != (size, size) else x


def keep_two_lungs(mask: np.ndarray) -> np.ndarray:
    """The largest region of the mask and the next one if it is lung-sized (at least
    ``MIN_LUNG_SHARE`` of the largest), holes filled; specks the network answered elsewhere dropped."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return np.zeros(mask.shape, bool)
    order = 1 + np.argsort(stats[1:, cv2.CC_STAT_AREA])[::-1]
    keep = [order[0]] + [i for i in order[1:2] if stats[i, cv2.CC_STAT_AREA] >= MIN_LUNG_SHARE * stats[order[0], 4]]
    kept = np.isin(labels, keep).astype(np.uint8)
    contours, _ = cv2.findContours(kept, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    filled = np.zeros_like(kept)
    cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
    return filled.astype(bool)


class LungSegmenter:
    """One ONNX Runtime session over the segmenter; ``run`` is safe from several threads."""

    def __init__(self, path: str | Path = DEFAULT_SEGMENTER, threads: int | None = None):
        import onnxruntime as ort

        path = self.path = Path(path)
        if not path.exists():
            raise FileNotFoundError(
                f"The lung-field segmenter {path.name} is missing from {path.parent}; train and export it with "
                "`python bench/train_lung_segmenter.py`."
            )
        self.spec = json.loads(path.with_suffix(".json").read_text())
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or max(1, len(os.sched_getaffinity(0)))
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.size = int(self.spec["input_size"])
        self.threshold = float(self.spec["threshold"])
        self._lock = threading.Lock()

    def probabilities(self, model_inputs: np.ndarray) -> np.ndarray:
        """Lung-field probability per pixel, (N, 224, 224) float32, for model inputs (N, 224, 224, 1)."""
        batch = np.stack([segmenter_input(x, self.size) for x in np.asarray(model_inputs, np.float32)])[..., None]
        with self._lock:  # in chunks: a U-Net's activations for thousands of films at once would not fit
            out = np.concatenate(
                [
                    self.session.run(None, {self.input_name: np.ascontiguousarray(batch[i : i + SEG_CHUNK])})[0][..., 0]
                    for i in range(0, len(batch), SEG_CHUNK)
                ]
            )
        return np.stack(
            [cv2.resize(p, (MODEL_INPUT_SIZE, MODEL_INPUT_SIZE), interpolation=cv2.INTER_LINEAR) for p in out]
        )

    def masks(self, model_inputs: np.ndarray) -> np.ndarray:
        """Boolean lung-field masks (N, 224, 224), at most two regions each (:func:`keep_two_lungs`)."""
        return np.stack([keep_two_lungs(p >= self.threshold) for p in self.probabilities(model_inputs)])


@lru_cache(maxsize=2)
def default_segmenter(path: str | Path = DEFAULT_SEGMENTER) -> LungSegmenter:
    """The shipped segmenter, loaded once per process."""
    return LungSegmenter(path)


def lung_field_mask(model_input: np.ndarray) -> np.ndarray:
    """The lung fields of one film's model input ((224, 224, 1) in [0, 1]): a 224x224 boolean mask."""
    return default_segmenter().masks(np.asarray(model_input, np.float32)[None])[0]


def lung_outline(mask: np.ndarray, tolerance: float = 1.0) -> list[np.ndarray]:
    """The outline of each region of a boolean mask as a closed polygon (n, 2) of (x, y) in fractions
    of the image's width and height (0..1), simplified to ``tolerance`` pixels; largest first."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    contours = sorted(contours, key=cv2.contourArea, reverse=True)
    h, w = mask.shape
    outlines = []
    for c in contours:
        p = cv2.approxPolyDP(c, tolerance, True).reshape(-1, 2).astype(np.float64)
        if len(p) >= 3:
            p = (p + 0.5) / [w, h]
            outlines.append(np.vstack([p, p[:1]]))
    return outlines


def cell_coverage(masks: np.ndarray, grid: int) -> np.ndarray:
    """The share of each cell of a ``grid`` x ``grid`` map that is lung field, (N, grid, grid) float32,
    for boolean masks (N, S, S) whose side S is a multiple of ``grid`` (224 = 14 cells of 16 px)."""
    masks = np.asarray(masks, np.float32)
    n, side = masks.shape[0], masks.shape[1]
    if side % grid:
        raise ValueError(f"a {side} px mask does not split into {grid} equal cells")
    step = side // grid
    return masks.reshape(n, grid, step, grid, step).mean(axis=(2, 4))


def pooling_weights(coverage: np.ndarray, power: float = 1.0) -> np.ndarray:
    """Per-cell pooling weights (N, grid, grid, 1) from lung coverage: coverage ** ``power``, scaled so
    that they average 1 over the cells (the model's mean over cells is then the lung-weighted mean).
    A film without any lung gets zeros (its score is refused, never pooled over all cells)."""
    w = np.power(np.clip(np.asarray(coverage, np.float32), 0.0, 1.0), power)
    mean = w.mean(axis=(1, 2), keepdims=True)
    scaled = np.divide(w, mean, out=np.zeros_like(w), where=mean > 0)
    return scaled[..., None].astype(np.float32)


@dataclass
class LungFields:
    """The lung fields a film's score was pooled over, and whether they are plausible enough to use."""

    mask: np.ndarray  # (224, 224) bool: the fields that were used
    share: float  # of the image
    regions: int
    refusal: str | None = None  # why the film cannot be scored on its lungs (then it is not scored)
    notice: str | None = None  # scored, but the reader should look at the outline


def assess_lung_fields(mask: np.ndarray, limits: dict) -> LungFields:
    """Plausibility of one film's fields against ``limits`` (the model metadata's ``lung_pooling``
    limits, measured on the training pool): no lung or a tiny region is refused, fields far outside
    the usual share of the image are refused, and fields merely unusual get a notice."""
    mask = np.asarray(mask, bool)
    share = float(mask.mean())
    regions = int(cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)[0] - 1)
    fields = LungFields(mask, share, regions)
    pct = f"{share:.0%} of the image"
    if regions == 0 or share < limits["refuse_below"]:
        fields.refusal = (
            f"The lung fields could not be found on this film (the outline found covers {pct}); the score is "
            "taken from the lungs only, so this film is not scored. Check that it is a frontal chest film."
        )
    elif share > limits["refuse_above"]:
        fields.refusal = (
            f"The area taken for lung fields covers {pct}, far more than on any chest film the model was "
            "checked on; the score would not come from the lungs, so this film is not scored."
        )
    elif regions == 1 and share < limits["notice_below"]:
        fields.notice = (
            f"Only one small lung region was found ({pct}); the score comes from that region only. "
            "Turn on the lung outline to see which part of the film was read."
        )
    elif not limits["notice_below"] <= share <= limits["notice_above"]:
        fields.notice = (
            f"The lung fields found cover {pct}, outside the usual range on the training films "
            f"({limits['notice_below']:.0%}-{limits['notice_above']:.0%}); turn on the lung outline to check "
            "which part of the film the score was taken from."
        )
    return fields
