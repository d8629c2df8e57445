"""PNG encoding of 8-bit pixels (grayscale or RGB), for reports, thumbnails and heatmap files."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def encode_png(pixels: np.ndarray, max_side: int | None = None) -> bytes:
    """PNG bytes of a uint8 HxW or HxWx3 array, shrunk to fit ``max_side`` when given."""
    img = Image.fromarray(pixels)
    if max_side:
        img.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()
