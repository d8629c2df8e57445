"""View pieces the pages share: a chart with its answer, the operating-point table, thumbnails, and
the frame every page shows (disclaimer and model version)."""

from __future__ import annotations

import base64

import numpy as np
import streamlit as st

from pneumonia.core.png import encode_png
from pneumonia.insight.artifacts import operating_point_rows
from pneumonia.insight.report import DISCLAIMER


def frame(model_version: str) -> None:
    """What every page shares, at the top of the sidebar: the disclaimer and the model version."""
    with st.sidebar:
        st.caption(DISCLAIMER)
        st.caption(f"Model {model_version}")


def chart_with_answer(figure_and_answer: tuple, note: str = "") -> None:
    """A chart and, under it, the one-line answer it gives (plus an optional note)."""
    figure, answer = figure_and_answer
    st.plotly_chart(figure, width="stretch")
    st.caption(f"{answer} {note}".strip())


def operating_point_table(operating_points: dict[str, dict], by_operating_point: dict | None = None) -> None:
    """The operating points with their validation (and, when given, internal test) figures."""
    st.dataframe(operating_point_rows(operating_points, by_operating_point), hide_index=True)


def thumbnail_data_url(pixels: np.ndarray, side: int = 72) -> str:
    """A small PNG of an x-ray as a data URL, for image columns of a table."""
    return "data:image/png;base64," + base64.b64encode(encode_png(pixels, side)).decode()
