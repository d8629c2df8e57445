"""The lung-field segmenter: a compact U-Net trained on the hand-traced lung fields.

Reference: ``assets/lung_fields/traces.jsonl`` (one film a line, each lung a polygon in fractions of
the image's width and height; protocol in ``assets/lung_fields/PROTOCOL.md``). The network sees the
classifier's model input (the film squashed to 224x224, [0, 1]) shrunk to ``SEG_SIZE`` and answers a
probability of "lung field" per pixel (one class: both lungs). Served on ONNX Runtime by
:mod:`pneumonia.serving.lung_fields`; ``bench/train_lung_segmenter.py`` trains, measures and exports it.

Split: patient-disjoint, about a fifth of the traced films held out per group (pneumonia, normal,
hard normal) for Dice. Augmentation: one random affine map per sample (rotation, zoom in and out,
unequal zoom per axis, shift, and a crop of up to 15% per side that re-frames the film as a tighter
film would be), contrast, gamma, brightness, blur and noise. No left-right flips: the heart sits on
the left and the fields are not mirror images.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from pneumonia.core.decode import read_file
from pneumonia.core.preprocess import InputSpec, to_model_input
from pneumonia.serving.lung_fields import MODEL_INPUT_SIZE, SEG_SIZE, segmenter_input

if TYPE_CHECKING:
    import keras

GROUPS = ("pneumonia", "normal", "hard_normal")
WIDTHS = (8, 16, 32, 64, 96)  # filters per U-Net level; 5 levels at 128 px: 128 -> 64 -> 32 -> 16 -> 8
MIN_POINTS = 6
LUNG_AREA = (0.03, 0.40)  # one lung's plausible share of the image
FIELDS_AREA = (0.10, 0.65)  # both lungs'
ROTATION_DEG = 8.0
ZOOM = (0.85, 1.15)  # < 1 zooms out (more body around the lungs), > 1 zooms in
ASPECT = 0.10  # unequal zoom per axis, +-10%
SHIFT = 0.08  # share of the side
REFRAME_CROP = 0.15  # up to this share cut per side, then squashed back to the square
OPSET = 17


@dataclass
class TracedFilm:
    file: str  # relative to the data set's root, e.g. train/NORMAL/IM-0115-0001.jpeg
    group: str
    patient_id: str
    right_lung: np.ndarray  # (n, 2) fractions (x, y): the patient's right lung, on the image's left
    left_lung: np.ndarray


def read_traces(path: str | Path) -> list[TracedFilm]:
    """The traced films of a JSON-lines reference, in file order."""
    films = []
    for line in Path(path).read_text().splitlines():
        if line.strip():
            d = json.loads(line)
            films.append(
                TracedFilm(
                    d["file"],
                    d["group"],
                    str(d["patient_id"]),
                    np.asarray(d["right_lung"], np.float64),
                    np.asarray(d["left_lung"], np.float64),
                )
            )
    return films


def polygon_mask(polygons: list[np.ndarray], size: int = MODEL_INPUT_SIZE) -> np.ndarray:
    """Boolean size x size mask of polygons given in fractions of the image (sub-pixel accurate)."""
    shift = 4  # cv2 fixed point: 1/16 pixel
    mask = np.zeros((size, size), np.uint8)
    pts = [np.round(np.asarray(p) * size * (1 << shift) - 0.5 * (1 << shift)).astype(np.int32) for p in polygons]
    cv2.fillPoly(mask, pts, 1, lineType=cv2.LINE_8, shift=shift)
    return mask.astype(bool)


def film_fields(film: TracedFilm, size: int = MODEL_INPUT_SIZE) -> np.ndarray:
    """The film's traced lung fields (both lungs) as a size x size boolean mask of the squashed film."""
    return polygon_mask([film.right_lung, film.left_lung], size)


def film_input(data_dir: str | Path, film: TracedFilm) -> np.ndarray:
    """The classifier's model input of a traced film: (224, 224, 1) float32 in [0, 1]."""
    pixels = read_file(str(Path(data_dir) / film.file)).pixels
    return to_model_input(pixels, InputSpec(size=MODEL_INPUT_SIZE))


def trace_problems(d: dict) -> list[str]:
    """What is wrong with one line of a tracer's file, in words (empty when it is usable)."""
    problems = []
    if d.get("group") not in GROUPS:
        problems.append(f"group {d.get('group')!r} is not one of {GROUPS}")
    for side in ("right_lung", "left_lung"):
        p = np.asarray(d.get(side, []), np.float64)
        if p.ndim != 2 or p.shape[1:] != (2,) or len(p) < MIN_POINTS:
            problems.append(f"{side} has fewer than {MIN_POINTS} points")
            continue
        if p.min() < 0 or p.max() > 1:
            problems.append(f"{side} has points outside the image (fractions must lie in 0..1)")
        area = polygon_mask([p]).mean()
        if not LUNG_AREA[0] <= area <= LUNG_AREA[1]:
            problems.append(f"{side} covers {area:.1%} of the image (plausible {LUNG_AREA[0]:.0%}-{LUNG_AREA[1]:.0%})")
    if not problems:
        right, left = np.asarray(d["right_lung"]), np.asarray(d["left_lung"])
        if right[:, 0].mean() >= left[:, 0].mean():
            problems.append("right_lung lies right of left_lung on the image (the patient's right is the image's left)")
        both = polygon_mask([right, left]).mean()
        if not FIELDS_AREA[0] <= both <= FIELDS_AREA[1]:
            problems.append(f"both fields cover {both:.1%} of the image")
    return problems


def sample_film_names(samples_dir: str | Path) -> set[str]:
    """The data set names (train/CLASS/file) of the repo's sample x-rays (CLASS_subtype_file in assets/samples)."""
    names = set()
    for p in Path(samples_dir).glob("*.jpeg"):
        label, _subtype, original = p.name.split("_", 2)
        names.add(f"train/{label}/{original}")
    return names


def patient_split(
    films: list[TracedFilm], holdout: float = 0.2, seed: int = 0, held_files: frozenset[str] = frozenset()
) -> tuple[list[int], list[int]]:
    """Indices (train, held out): about ``holdout`` of each group's patients held out, every film of a
    held-out patient with them (a patient's films never sit on both sides). The patients of
    ``held_files`` (the repo's sample x-rays) are always held out, beside the drawn ones."""
    rng = np.random.default_rng(seed)
    held: set[str] = {f.patient_id for f in films if f.file in held_files}
    for group in GROUPS:
        every = {f.patient_id for f in films if f.group == group}
        patients = sorted(every - held)
        rng.shuffle(patients)
        held |= set(patients[: max(0, int(round(holdout * len(every))) - len(every & held))])
    test = [i for i, f in enumerate(films) if f.patient_id in held]
    train = [i for i, f in enumerate(films) if f.patient_id not in held]
    return train, test


def random_affine(rng: np.random.Generator, size: int) -> np.ndarray:
    """A 2x3 map of output pixel <- input pixel: crop that re-frames the film, zoom, aspect, rotation, shift."""
    crop = rng.uniform(0, REFRAME_CROP, 4) * (rng.random() < 0.5)  # left, right, top, bottom
    x0, x1 = crop[0] * size, size - crop[1] * size
    y0, y1 = crop[2] * size, size - crop[3] * size
    reframe = np.array([[size / (x1 - x0), 0, -x0 * size / (x1 - x0)], [0, size / (y1 - y0), -y0 * size / (y1 - y0)]])
    zoom = rng.uniform(*ZOOM)
    aspect = math.exp(rng.uniform(-ASPECT, ASPECT))
    angle = math.radians(rng.uniform(-ROTATION_DEG, ROTATION_DEG))
    c, s = math.cos(angle), math.sin(angle)
    linear = np.array([[c, -s], [s, c]]) @ np.diag([zoom * aspect, zoom / aspect])
    centre = np.array([size / 2, size / 2])
    offset = centre - linear @ centre + rng.uniform(-SHIFT, SHIFT, 2) * size
    outer = np.vstack([np.hstack([linear, offset[:, None]]), [0, 0, 1]])
    return (outer @ np.vstack([reframe, [0, 0, 1]]))[:2]


def photometric(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Contrast, gamma, brightness, now and then a blur, and a little noise; float32 in [0, 1]."""
    x = np.clip((x - x.mean()) * rng.uniform(0.7, 1.3) + x.mean() + rng.uniform(-0.08, 0.08), 0, 1)
    x = x ** math.exp(rng.uniform(-0.35, 0.35))
    if rng.random() < 0.25:
        x = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.4, 1.2))
    x = x + rng.normal(0, rng.uniform(0, 0.02), x.shape)
    return np.clip(x, 0, 1).astype(np.float32)


def augmented_batch(
    images: np.ndarray, fields: np.ndarray, rng: np.random.Generator, copies: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """``copies`` augmented versions of each (SEG_SIZE, SEG_SIZE) image and soft field mask,
    shaped (N, S, S, 1) for the network."""
    xs, ys = [], []
    size = images.shape[1]
    for _ in range(copies):
        for img, field in zip(images, fields):
            m = random_affine(rng, size)
            xs.append(photometric(cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_LINEAR), rng))
            ys.append(cv2.warpAffine(field, m, (size, size), flags=cv2.INTER_LINEAR))
    return np.stack(xs)[..., None], np.stack(ys)[..., None].astype(np.float32)


def _conv_block(x, filters: int, name: str):
    from keras import layers

    for i in (1, 2):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv{i}")(x)
        x = layers.BatchNormalization(momentum=0.9, name=f"{name}_bn{i}")(x)  # few steps: settle fast
        x = layers.Activation("relu", name=f"{name}_relu{i}")(x)
    return x


def build_unet(size: int = SEG_SIZE, widths: tuple[int, ...] = WIDTHS) -> keras.Model:
    """A compact U-Net: (N, size, size, 1) in [0, 1] -> (N, size, size, 1) probability of lung field."""
    import keras
    from keras import layers

    inputs = keras.Input((size, size, 1), name="image")
    skips, x = [], inputs
    for level, filters in enumerate(widths[:-1]):
        x = _conv_block(x, filters, f"down{level}")
        skips.append(x)
        x = layers.MaxPooling2D(name=f"pool{level}")(x)
    x = _conv_block(x, widths[-1], "bottom")
    for level in reversed(range(len(widths) - 1)):
        x = layers.UpSampling2D(interpolation="bilinear", name=f"up{level}")(x)
        x = layers.Concatenate(name=f"skip{level}")([x, skips[level]])
        x = _conv_block(x, widths[level], f"dec{level}")
    outputs = layers.Conv2D(1, 1, activation="sigmoid", name="lung_probability")(x)
    return keras.Model(inputs, outputs, name="lung_segmenter")


def dice_bce_loss(y_true, y_pred):
    """Binary cross-entropy plus (1 - soft Dice) per image."""
    from keras import ops

    bce = ops.mean(ops.binary_crossentropy(y_true, y_pred), axis=(1, 2, 3))
    inter = ops.sum(y_true * y_pred, axis=(1, 2, 3))
    dice = (2 * inter + 1.0) / (ops.sum(y_true, axis=(1, 2, 3)) + ops.sum(y_pred, axis=(1, 2, 3)) + 1.0)
    return bce + 1.0 - dice


@dataclass
class SegmenterTraining:
    epochs: int = 30
    copies: int = 3  # augmented samples per film and epoch
    batch_size: int = 16
    learning_rate: float = 2e-3
    seed: int = 0


def train_segmenter(inputs: np.ndarray, fields: np.ndarray, config: SegmenterTraining) -> tuple[keras.Model, list]:
    """Train the U-Net on model inputs (N, 224, 224, 1) and traced field masks (N, 224, 224) bool.
    Returns the model and the loss per epoch. Fresh augmentations every epoch, cosine-decayed Adam."""
    import keras

    keras.utils.set_random_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    images = np.stack([segmenter_input(x) for x in inputs])
    soft = np.stack(
        [cv2.resize(f.astype(np.float32), (SEG_SIZE, SEG_SIZE), interpolation=cv2.INTER_AREA) for f in fields]
    )
    model = build_unet()
    steps = config.epochs * math.ceil(len(images) * config.copies / config.batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, steps, alpha=0.05)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss=dice_bce_loss)
    losses = []
    for _ in range(config.epochs):
        x, y = augmented_batch(images, soft, rng, config.copies)
        history = model.fit(x, y, batch_size=config.batch_size, epochs=1, verbose=0, shuffle=True)
        losses.append(round(float(history.history["loss"][-1]), 4))
    return model, losses


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap of two boolean masks (1.0 when both are empty)."""
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def export_onnx(model: keras.Model, path: Path) -> None:
    """Write the model as ONNX with a free batch size; input "image" (N, S, S, 1) float32."""
    import tensorflow as tf
    import tf2onnx

    spec = (tf.TensorSpec((None, SEG_SIZE, SEG_SIZE, 1), tf.float32, name="image"),)
    path.parent.mkdir(parents=True, exist_ok=True)
    tf2onnx.convert.from_keras(model, input_signature=spec, opset=OPSET, output_path=str(path))
