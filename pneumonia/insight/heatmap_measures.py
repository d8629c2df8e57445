"""How much of a heatmap falls on the lung fields, and where its hottest point lies (issue 19).

The lung fields come from the hand traces (``assets/lung_fields/traces.jsonl``) or from the trained
segmenter (:mod:`pneumonia.serving.lung_fields`); the chance level of "mass inside" is the fields'
share of the image. ``bench/heatmap_lungs.py`` measures these over thousands of films and writes
``bench/results/heatmap_lungs.json``, which :func:`heatmap_lung_summary` puts in words for the model card.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

OUTER_BAND = 0.12  # "at the edge": the outer 12% of the image's width on either side
RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results" / "heatmap_lungs.json"


def _at(cam: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    heat = np.asarray(cam, np.float32)
    return heat if heat.shape == shape else cv2.resize(heat, shape[::-1], interpolation=cv2.INTER_LINEAR)


def mass_inside(cam: np.ndarray, mask: np.ndarray) -> float:
    """Share of a non-negative heatmap's mass inside ``mask`` (the heatmap is resized to the mask);
    NaN for a map without mass."""
    heat = np.clip(_at(cam, mask.shape), 0, None)
    total = float(heat.sum())
    return float(heat[mask].sum()) / total if total > 0 else float("nan")


def hotspot_inside(cam: np.ndarray, mask: np.ndarray) -> bool:
    """Whether the heatmap's maximum (resized to the mask) falls inside ``mask``."""
    return bool(mask.flat[int(np.argmax(_at(cam, mask.shape)))])


def hotspot_column(cam: np.ndarray) -> float:
    """The column of the heatmap's maximum as a fraction of its width (pixel centres, 0..1)."""
    heat = np.asarray(cam, np.float32)
    return (float(np.unravel_index(int(np.argmax(heat)), heat.shape)[1]) + 0.5) / heat.shape[1]


def hotspot_at_edge(cam: np.ndarray, band: float = OUTER_BAND) -> bool:
    """Whether the heatmap's maximum lies in the outer ``band`` of the image's width (either side):
    the arm, axilla or chest wall rather than the lungs on a frontal film."""
    x = hotspot_column(cam)
    return x < band or x > 1.0 - band


def heatmap_lung_summary(path: Path = RESULTS, method: str = "gradcam") -> str | None:
    """The benchmark's Grad-CAM figures in one paragraph for the model card (None when not measured)."""
    if not path.exists():
        return None
    result = json.loads(path.read_text())
    groups = result.get("segmenter_fields", {}).get("groups", {})
    parts = []
    for name, words in (("pneumonia", "pneumonia films"), ("normal", "normals"), ("hard_normal", "hard normals")):
        g = groups.get(name, {})
        m = g.get(method)
        if m and m.get("mass_inside_mean") is not None:
            parts.append(
                f"{words} ({m['films']}): {m['mass_inside_mean']:.0%} of the map inside the lung fields where the "
                f"fields cover {g['fields_share_mean']:.0%} of the image (chance), hottest point inside on "
                f"{m['hotspot_inside_share']:.0%}, in the outer {OUTER_BAND:.0%} of the width on "
                f"{m['hotspot_at_edge_share']:.0%}"
            )
    return "; ".join(parts) or None
