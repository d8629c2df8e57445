"""The one preprocessing function shared by training and inference, with its frozen input spec."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

SQUASHED_SIDE = 224  # the 224x224 copies in this data set lost their aspect ratio


@dataclass(frozen=True)
class InputSpec:
    """How grayscale pixels become model input; stored in the model metadata."""

    size: int = 160
    clahe: bool = False
    clahe_clip: float = 2.0
    clahe_grid: int = 8

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> InputSpec:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def to_model_input(pixels: np.ndarray, spec: InputSpec) -> np.ndarray:
    """8-bit grayscale HxW pixels -> float32 (size, size, 1) in [0, 1].

    Everything is squashed to a square: 72% of the training images exist only as 224x224
    squashed copies, so squashing the rest too makes both kinds (and new uploads) look alike.
    """
    if pixels.ndim != 2 or pixels.dtype != np.uint8:
        raise ValueError(f"expected 2-D uint8 grayscale pixels, got {pixels.dtype} {pixels.shape}")
    h, w = pixels.shape
    # INTER_AREA for shrinking (anti-aliased); cubic when an upload is smaller than the input.
    interp = cv2.INTER_AREA if min(h, w) >= spec.size else cv2.INTER_CUBIC
    img = cv2.resize(pixels, (spec.size, spec.size), interpolation=interp)
    if spec.clahe:
        clahe = cv2.createCLAHE(clipLimit=spec.clahe_clip, tileGridSize=(spec.clahe_grid, spec.clahe_grid))
        img = clahe.apply(img)
    return (img.astype(np.float32) / 255.0)[..., None]


def batch_to_model_input(images: list[np.ndarray], spec: InputSpec) -> np.ndarray:
    """Stack several images through :func:`to_model_input`."""
    return (
        np.stack([to_model_input(p, spec) for p in images])
        if images
        else np.zeros((0, spec.size, spec.size, 1), np.float32)
    )


def source_kind(width: int, height: int) -> str:
    """'squashed_224' for the 224x224 copies that lost their aspect ratio, else 'original'."""
    return "squashed_224" if (width, height) == (SQUASHED_SIDE, SQUASHED_SIDE) else "original"
