"""Training augmentation and the stress perturbations used to rank models and pick thresholds.

Photometric changes dominate: hospitals and years differ in exposure, contrast and processing
far more than in geometry. No left-right flips: the heart sits on the left.
"""

from __future__ import annotations

import cv2
import keras
import numpy as np
import tensorflow as tf


def geometric_layers(strength: float = 1.0) -> keras.Sequential:
    return keras.Sequential(
        [
            keras.layers.RandomRotation(0.03 * strength, fill_mode="constant"),
            keras.layers.RandomTranslation(0.06 * strength, 0.06 * strength, fill_mode="constant"),
            keras.layers.RandomZoom((-0.12 * strength, 0.08 * strength), fill_mode="constant"),
        ],
        name="geometric_augmentation",
    )


def photometric(x: tf.Tensor, strength: float = 1.0) -> tf.Tensor:
    """Per-image random gamma, contrast, brightness, blur and noise on a [0, 1] batch."""
    n = tf.shape(x)[0]
    gamma = tf.exp(tf.random.uniform((n, 1, 1, 1), -0.35 * strength, 0.35 * strength))
    x = tf.pow(tf.clip_by_value(x, 1e-4, 1.0), gamma)
    mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    contrast = tf.random.uniform((n, 1, 1, 1), 1 - 0.35 * strength, 1 + 0.35 * strength)
    brightness = tf.random.uniform((n, 1, 1, 1), -0.1 * strength, 0.1 * strength)
    x = (x - mean) * contrast + mean + brightness
    # Blur half the images a little (lower resolution / different detectors).
    kernel = tf.constant([[1, 2, 1], [2, 4, 2], [1, 2, 1]], tf.float32)[..., None, None] / 16.0
    blurred = tf.nn.conv2d(x, kernel, strides=1, padding="SAME")
    x = tf.where(tf.random.uniform((n, 1, 1, 1)) < 0.5 * strength, blurred, x)
    noise_sd = tf.random.uniform((n, 1, 1, 1), 0, 0.03 * strength)
    x = x + tf.random.normal(tf.shape(x)) * noise_sd
    return tf.clip_by_value(x, 0.0, 1.0)


def make_augmenter(strength: float = 1.0):
    geo = geometric_layers(strength)

    def augment(x: tf.Tensor, y: tf.Tensor, w: tf.Tensor):
        return photometric(geo(x, training=True), strength), y, w

    return augment


# Deterministic perturbations of [0, 1] model inputs (N, S, S, 1) for the stress test.
def _per_image(fn):
    def apply(x: np.ndarray) -> np.ndarray:
        return np.stack([fn(img[..., 0])[..., None] for img in x]).astype(np.float32)

    return apply


def _resample(img: np.ndarray, factor: float) -> np.ndarray:
    s = img.shape[0]
    small = cv2.resize(img, (int(s * factor), int(s * factor)), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (s, s), interpolation=cv2.INTER_LINEAR)


def _crop(img: np.ndarray, frac: float) -> np.ndarray:
    s = img.shape[0]
    m = int(s * frac)
    return cv2.resize(img[m : s - m, m : s - m], (s, s), interpolation=cv2.INTER_LINEAR)


def _noise(x: np.ndarray, sd: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.clip(x + rng.normal(0, sd, x.shape), 0, 1).astype(np.float32)


def _contrast(x: np.ndarray, factor: float) -> np.ndarray:
    mean = x.mean((1, 2, 3), keepdims=True)
    return np.clip((x - mean) * factor + mean, 0, 1)


STRESS = {
    "identity": lambda x: x.astype(np.float32),
    "contrast_low": lambda x: _contrast(x, 0.7),
    "contrast_high": lambda x: _contrast(x, 1.3),
    "gamma_0.7": lambda x: np.power(np.clip(x, 0, 1), 0.7),
    "gamma_1.4": lambda x: np.power(np.clip(x, 0, 1), 1.4),
    "brighter": lambda x: np.clip(x + 0.08, 0, 1),
    "darker": lambda x: np.clip(x - 0.08, 0, 1),
    "blur": _per_image(lambda i: cv2.GaussianBlur(i, (0, 0), 1.2)),
    "noise": lambda x: _noise(x, 0.03),
    "low_resolution": _per_image(lambda i: _resample(i, 0.5)),
    "crop_8pct": _per_image(lambda i: _crop(i, 0.08)),
}


def stress_variants(x: np.ndarray) -> dict[str, np.ndarray]:
    """Every stress perturbation of a batch of model inputs, the identity included."""
    x = x.astype(np.float32)
    return {name: np.asarray(fn(x), np.float32) for name, fn in STRESS.items()}


def augmentation_preview(model_input: np.ndarray, strength: float, n: int = 5, seed: int = 0) -> list[np.ndarray]:
    """The model input, then ``n`` random training augmentations of it, as uint8 images."""
    tf.random.set_seed(seed)
    batch = np.repeat(model_input[None], n, axis=0)
    augmented, _, _ = make_augmenter(strength)(tf.constant(batch), tf.zeros((n, 1)), tf.ones((n,)))
    return [np.uint8(np.clip(i[..., 0], 0, 1) * 255) for i in [model_input, *np.asarray(augmented)]]
