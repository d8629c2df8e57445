"""Validation that contains the failure: re-framed copies of held-out x-rays.

The official test's normals are often tightly framed; a model that reads "tight field of view"
as pneumonia calls them pneumonia, and a random patient split never shows it. Each held-out
image is therefore also scored cropped (5-20% per side), with only its width or height cropped
(another aspect ratio), and zoomed out (padded). Together with the hard normals (normals the
first model scored highest out of fold, kept out of every training fold; models/hard_normals.csv)
these are what selects models, calibrates and places the operating points.
"""

from __future__ import annotations

import cv2
import numpy as np

# name -> (fraction cropped from top and bottom, from left and right); negative pads instead
REFRAMES = {
    "plain": (0.0, 0.0),
    "crop10": (0.10, 0.10),
    "crop125": (0.125, 0.125),
    "crop20": (0.20, 0.20),
    "narrow": (0.0, 0.12),
    "zoomout": (-0.08, -0.08),
}
# the copies that calibration and the operating points are fitted on, beside the plain images
CALIBRATION_REFRAMES = ("plain", "crop10", "crop125")


def reframe(image: np.ndarray, crop_y: float, crop_x: float) -> np.ndarray:
    """A 2-D image cropped (or, for negative fractions, padded with black) and resized back."""
    h, w = image.shape[:2]
    if crop_y < 0:
        py, px = int(-crop_y * h), int(-crop_x * w)
        framed = cv2.copyMakeBorder(image, py, py, px, px, cv2.BORDER_CONSTANT, value=0)
    else:
        a, b = int(h * crop_y), int(w * crop_x)
        framed = image[a : h - a, b : w - b]
    shrink = framed.shape[0] >= h
    return cv2.resize(framed, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def reframed_inputs(x: np.ndarray, name: str) -> np.ndarray:
    """Model inputs (N, S, S, 1) re-framed as ``REFRAMES[name]``, float32."""
    x = np.asarray(x, np.float32)
    if name == "plain":
        return x
    return np.stack([reframe(img[..., 0], *REFRAMES[name])[..., None] for img in x])
