"""View pieces the pages share: a chart with its answer, the operating-point table, thumbnails, and
the frame every page shows (disclaimer and model version)."""

from __future__ import annotations

import base64

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from pneumonia.core.png import encode_png
from pneumonia.insight.artifacts import operating_point_rows
from pneumonia.insight.report import DISCLAIMER


def frame(model_version: str) -> None:
    """What every page shares, at the top of the sidebar: the disclaimer and the model version."""
    with st.sidebar:
        st.caption(DISCLAIMER)
        st.caption(f"Model {model_version}")


def loading_notice(model_ready) -> None:
    """A sign of life while the model loads in the background: polls ``model_ready()`` each second
    and reruns the app once it is ready (then the notice is gone and nothing polls)."""
    if model_ready():
        return

    @st.fragment(run_every=1.0)
    def notice() -> None:
        if model_ready():
            st.rerun()
        st.info("Loading the model in the background (a few seconds after the server starts). You can upload now.")

    with st.sidebar:
        notice()


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


def xray_viewer(
    image_url: str,
    shape: tuple[int, int],
    cam: np.ndarray | None,
    *,
    opacity: float,
    colorscale: str,
    revision: str,
) -> go.Figure:
    """The x-ray (left) and the x-ray with the heatmap over it (right), zoomed and panned together
    (Plotly's own zoom, pan and reset). ``cam`` at any resolution is stretched over the image; None
    shows no overlay. ``revision`` keeps the zoom across reruns of the same image."""
    h, w = shape
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.02, subplot_titles=["Original", "Heatmap overlay"])
    for col in (1, 2):
        fig.add_trace(go.Image(source=image_url, x0=0, y0=0, dx=1, dy=1, hoverinfo="skip"), row=1, col=col)
    if cam is not None:
        n_rows, n_cols = cam.shape
        fig.add_trace(
            go.Heatmap(
                z=cam,
                x0=-0.5 + w / n_cols / 2,
                dx=w / n_cols,
                y0=-0.5 + h / n_rows / 2,
                dy=h / n_rows,
                zmin=0.0,
                zmax=1.0,
                zsmooth="best",
                opacity=opacity,
                colorscale=colorscale,
                hoverinfo="skip",
                colorbar={
                    "title": {"text": "contribution to<br>the pneumonia<br>score", "side": "right"},
                    "tickvals": [0, 0.5, 1],
                    "ticktext": ["low", "medium", "high"],
                    "thickness": 12,
                    "len": 0.9,
                },
            ),
            row=1,
            col=2,
        )
    fig.update_xaxes(visible=False, range=[-0.5, w - 0.5], constrain="domain")
    fig.update_yaxes(visible=False, range=[h - 0.5, -0.5], scaleanchor="x", constrain="domain")
    fig.update_xaxes(matches="x", row=1, col=2)
    fig.update_yaxes(matches="y", scaleanchor="x2", row=1, col=2)
    fig.update_layout(
        height=520, margin={"l": 0, "r": 0, "t": 30, "b": 0}, uirevision=revision, dragmode="pan", showlegend=False
    )
    return fig


WORKLIST_COLUMNS = {
    "item": st.column_config.NumberColumn("#", width=40),
    "thumbnail": st.column_config.ImageColumn("Image", width=60),
    "file": st.column_config.TextColumn("File", width="medium"),
    "probability": st.column_config.ProgressColumn(
        "Probability", min_value=0.0, max_value=1.0, format="percent", width=110
    ),
    "label": st.column_config.TextColumn("Result", width=100),
    "reviewed": st.column_config.CheckboxColumn("Reviewed", width=80),
    "duplicate_of": st.column_config.TextColumn("Same pixels as", width=110, help="Items with identical pixels"),
    "reason": st.column_config.TextColumn("Why not scored", width="large", help="Open the image for the full reason"),
    "members_disagree": st.column_config.TextColumn("Members disagree", width=90),
    "bacterial_if_pneumonia": st.column_config.ProgressColumn(
        "If pneumonia: bacterial", min_value=0.0, max_value=1.0, format="percent", width=110
    ),
}
AUDIT_COLUMNS = {
    "id": st.column_config.NumberColumn("#", width=40),
    "time": st.column_config.TextColumn("Time (UTC)", width=150),
    "reader": st.column_config.TextColumn("Reader", width=70),
    "image_sha256": st.column_config.TextColumn("Image SHA-256", width=110),
    "label": st.column_config.TextColumn("Result", width=100),
    "probability": st.column_config.NumberColumn("Probability", format="percent", width=90),
    "reader_agrees": st.column_config.CheckboxColumn("Agrees", width=60),
    "comment": st.column_config.TextColumn("Comment", width="medium"),
    "operating_point": st.column_config.TextColumn("Operating point", width=110),
    "threshold": st.column_config.NumberColumn("Threshold", format="%.3f", width=80),
    "heatmap_method": st.column_config.TextColumn("Heatmap", width=80),
    "model_version": st.column_config.TextColumn("Model", width=150),
}
AUDIT_ORDER = list(AUDIT_COLUMNS)


def short_reason(reason: str, limit: int = 90) -> str:
    """The first sentence of a reason, for a table cell; the full text shows when the image is opened."""
    first = reason.split(". ")[0].rstrip(".")
    return first if len(first) <= limit else first[: limit - 1].rstrip() + "…"
