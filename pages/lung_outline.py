"""The viewer's faint lung outline: the segmenter's estimate of the lung fields as Plotly lines.

The outline is an AI estimate (pneumonia.serving.lung_fields) drawn for orientation, so a reader can
see whether the heatmap sits on the lungs; it is not a finding and not a boundary to measure by.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from pneumonia.serving.lung_fields import lung_field_mask, lung_outline

LABEL = "Show lung outline (AI-estimated)"
HELP = (
    "A faint line around the lung fields as a small network estimates them from the image: the fields the "
    "model read its score from (it pools its evidence over them) and the only place the heatmap can light. "
    "An estimate for orientation, not a finding."
)
LINE = {"color": "rgba(255, 255, 255, 0.55)", "width": 1.2, "dash": "dot"}


@st.cache_data(max_entries=64, show_spinner=False)
def outline_fractions(image_sha256: str, _model_input: np.ndarray, _mask: np.ndarray | None = None) -> list[np.ndarray]:
    """The lung outlines of one image (fractions of width and height), cached by its hash: the mask the
    score was pooled over (``ImageResult.lung_fields``) when the model is lung-gated, else the segmenter's."""
    return lung_outline(lung_field_mask(_model_input) if _mask is None else _mask)


def outline_traces(outlines: list[np.ndarray], shape: tuple[int, int]) -> list[go.Scatter]:
    """One faint dotted line per lung over an image of ``shape`` (height, width) in pixel coordinates
    (the viewer's axes: x from the left, y from the top)."""
    h, w = shape
    return [
        go.Scatter(
            x=p[:, 0] * w - 0.5,
            y=p[:, 1] * h - 0.5,
            mode="lines",
            line=LINE,
            hoverinfo="skip",
            showlegend=False,
            name="lung outline (AI-estimated)",
        )
        for p in outlines
    ]


def add_outline(figure: go.Figure, outlines: list[np.ndarray], shape: tuple[int, int]) -> go.Figure:
    """Draw the outlines on every image of the viewer's figure (one or two side by side); returns it."""
    columns = sum(1 for t in figure.data if isinstance(t, go.Image))
    for trace in outline_traces(outlines, shape):
        for col in range(1, columns + 1):
            figure.add_trace(trace, row=1, col=col)
    return figure
