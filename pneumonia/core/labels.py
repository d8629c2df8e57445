"""The two classes, in the order of the 0/1 labels, and how a probability becomes one of them."""

from __future__ import annotations

NORMAL = "NORMAL"
PNEUMONIA = "PNEUMONIA"
LABELS = (NORMAL, PNEUMONIA)  # label 0 is NORMAL, label 1 is PNEUMONIA


def label_at(probability: float, threshold: float) -> str:
    """PNEUMONIA when the calibrated probability reaches the threshold, else NORMAL."""
    return PNEUMONIA if probability >= threshold else NORMAL


def probability_in_words(p: float) -> str:
    """A whole percentage that never claims more than validation can: above 99% and below 1% read as
    '>99%' and '<1%' (on children it never saw, films the previous version scored 90% or more were
    pneumonia 94.8% of the time, so tenths of a percent at the top say nothing)."""
    if p >= 0.99:
        return ">99%"
    if p <= 0.01:
        return "<1%"
    return f"{p:.0%}"
