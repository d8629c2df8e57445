"""Small helpers shared by the tests."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image


def encode(pixels: np.ndarray, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def gray_pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L"))
