"""The two classes, in the order of the 0/1 labels, and how a probability becomes one of them."""

from __future__ import annotations

NORMAL = "NORMAL"
PNEUMONIA = "PNEUMONIA"
LABELS = (NORMAL, PNEUMONIA)  # label 0 is NORMAL, label 1 is PNEUMONIA


def label_at(probability: float, threshold: float) -> str:
    """PNEUMONIA when the calibrated probability reaches the threshold, else NORMAL."""
    return PNEUMONIA if probability >= threshold else NORMAL
