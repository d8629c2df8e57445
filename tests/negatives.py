"""Images that are not chest x-rays, built from what installed packages ship (no downloads)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from tests.helpers import encode


def colour_photos() -> list[np.ndarray]:
    from sklearn.datasets import load_sample_images

    return list(load_sample_images().images)  # china.jpg, flower.jpg (RGB)


def document(seed: int = 0) -> np.ndarray:
    """A page of black text on white, like a scanned report."""
    rng = np.random.default_rng(seed)
    img = Image.new("L", (850, 1100), 255)
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=22)
    words = ["patient", "report", "findings", "impression", "the", "chest", "normal", "lungs", "clear", "dated"]
    for row in range(40):
        line = " ".join(rng.choice(words, 8))
        draw.text((60, 60 + row * 25), line, fill=0, font=font)
    return np.asarray(img)


def negative_files() -> dict[str, tuple[str, bytes]]:
    """name -> (file name, bytes) of each kind of non-chest-x-ray input."""
    from pydicom.data import get_testdata_file

    rng = np.random.default_rng(1)
    china, flower = colour_photos()
    gray_china = np.asarray(Image.fromarray(china).convert("L"))
    gray_flower = np.asarray(Image.fromarray(flower).convert("L"))
    return {
        "colour photograph": ("china.jpg", encode(china, "JPEG")),
        "colour photograph 2": ("flower.png", encode(flower, "PNG")),
        "grayscale photograph": ("china_gray.png", encode(gray_china, "PNG")),
        "grayscale photograph 2": ("flower_gray.jpg", encode(gray_flower, "JPEG")),
        "document": ("report.png", encode(document(), "PNG")),
        "uniform noise": ("noise.png", encode(rng.integers(0, 256, (512, 512), dtype=np.uint8), "PNG")),
        "gaussian noise": (
            "gnoise.png",
            encode(np.clip(rng.normal(128, 40, (600, 500)), 0, 255).astype(np.uint8), "PNG"),
        ),
        "blank": ("blank.png", encode(np.full((512, 512), 200, np.uint8), "PNG")),
        "black": ("black.jpg", encode(np.zeros((512, 512), np.uint8), "JPEG")),
        "CT slice": ("ct.dcm", Path(get_testdata_file("CT_small.dcm")).read_bytes()),
        "MR slice": ("mr.dcm", Path(get_testdata_file("MR_small.dcm")).read_bytes()),
    }
