"""View pieces the pages share: a chart with its answer, the operating-point table, thumbnails, and
the frame every page shows (disclaimer and model version)."""

from __future__ import annotations

import base64
import os

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from pages import view_keeper
from pneumonia.core.literal import markdown_literal
from pneumonia.core.png import encode_png
from pneumonia.insight.artifacts import operating_point_rows
from pneumonia.insight.report import DISCLAIMER

# Who answers for this deployment: set by the deploying site in the secrets' [site] section or the environment.
SITE_SETTINGS = {
    "owner": ("PNEUMONIA_SITE_OWNER", "Owner"),
    "contact": ("PNEUMONIA_SITE_CONTACT", "Contact"),
    "report_problem": ("PNEUMONIA_REPORT_PROBLEM", "Report a problem"),
}
NOT_SET = "not set by this site (README: Accountability)"


def site_accountability(environ: dict | None = None) -> dict[str, str]:
    """The deploying site's owner, contact and problem route: ``[site]`` in the secrets, else
    ``PNEUMONIA_SITE_OWNER`` / ``PNEUMONIA_SITE_CONTACT`` / ``PNEUMONIA_REPORT_PROBLEM``; unset ones say so."""
    environ = os.environ if environ is None else environ
    try:
        section = dict(st.secrets.get("site", {})) if st.secrets.load_if_toml_exists() else {}
    except Exception:  # an unreadable secrets file is reported by Streamlit itself
        section = {}
    return {
        key: str(section.get(key) or environ.get(env) or NOT_SET).strip() for key, (env, _) in SITE_SETTINGS.items()
    }


def accountability_lines(settings: dict[str, str]) -> str:
    return "  \n".join(f"**{SITE_SETTINGS[key][1]}:** {markdown_literal(value)}" for key, value in settings.items())


def frame(model_version: str) -> None:
    """What every page shares, at the top of the sidebar: the disclaimer, the model version, and who
    answers for this deployment (owner, contact, how to report a problem)."""
    with st.sidebar:
        st.caption(DISCLAIMER)
        st.caption(f"Model {model_version}")
        st.caption(accountability_lines(site_accountability()))
        view_keeper.keep_view()  # the viewer's zoom across re-renders; the sidebar folded on narrow screens


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
    rows = operating_point_rows(operating_points, by_operating_point)
    rows["threshold"] = rows["threshold"] * 100  # in percent, as the review page words a threshold
    rates = {c: st.column_config.NumberColumn(format="%.3f") for c in rows.columns[2:]}
    threshold = st.column_config.NumberColumn("threshold", format="%.1f%%")
    st.dataframe(rows, hide_index=True, column_config={**rates, "threshold": threshold})


def thumbnail_data_url(pixels: np.ndarray, side: int = 72) -> str:
    """A small PNG of an x-ray as a data URL, for image columns of a table."""
    return "data:image/png;base64," + base64.b64encode(encode_png(pixels, side)).decode()


def fading_colorscale(name: str, fade_below: float = 0.3) -> list[list]:
    """A Plotly colour scale whose low end fades to transparent: where the map has little evidence the
    film shows through untinted (a dark or pink wash over the whole film hid it)."""
    from plotly.colors import get_colorscale, unlabel_rgb

    scale = []
    for position, colour in get_colorscale(name):
        r, g, b = unlabel_rgb(colour) if colour.startswith("rgb") else _hex_rgb(colour)
        alpha = min(1.0, position / fade_below)
        scale.append([position, f"rgba({r:.0f},{g:.0f},{b:.0f},{alpha:.2f})"])
    return scale


def _hex_rgb(colour: str) -> tuple[int, int, int]:
    colour = colour.lstrip("#")
    return int(colour[0:2], 16), int(colour[2:4], 16), int(colour[4:6], 16)


def heatmap_trace(
    cam: np.ndarray, shape: tuple[int, int], opacity: float, colorscale: str, target: str = "the pneumonia score"
) -> go.Heatmap:
    """The heatmap stretched over an image of ``shape`` (height, width), with a colour bar in words."""
    (h, w), (n_rows, n_cols) = shape, cam.shape
    return go.Heatmap(
        z=cam,
        x0=-0.5 + w / n_cols / 2,
        dx=w / n_cols,
        y0=-0.5 + h / n_rows / 2,
        dy=h / n_rows,
        zmin=0.0,
        zmax=1.0,
        zsmooth="best",
        opacity=opacity,
        colorscale=fading_colorscale(colorscale),
        hoverinfo="skip",
        colorbar={
            "title": {"text": f"raised {target}", "side": "top"},
            "tickvals": [0.06, 0.94],  # inside the bar's ends: a label at 1.0 overflowed and was dropped
            "ticktext": ["least", "most"],
            "orientation": "h",
            "thickness": 10,
            "len": 0.5,
            "x": 1.0,
            "xanchor": "right",
            "y": -0.02,
            "yanchor": "top",
        },
    )


def xray_viewer(
    image_url: str,
    shape: tuple[int, int],
    cam: np.ndarray | None,
    *,
    opacity: float,
    colorscale: str,
    revision: str,
    side_by_side: bool = True,
    target: str = "the pneumonia score",
) -> go.Figure:
    """The x-ray and the x-ray with the heatmap over it, side by side and zoomed and panned together
    (Plotly's own zoom, pan and reset), or the overlay alone. ``cam`` at any resolution is stretched
    over the image; None shows no overlay. ``revision`` keeps the zoom across reruns of the same image."""
    h, w = shape
    n = 2 if side_by_side else 1
    titles = ["Original", "Heatmap overlay" if cam is not None else "No overlay"][-n:]
    fig = make_subplots(rows=1, cols=n, horizontal_spacing=0.02, subplot_titles=titles)
    for col in range(1, n + 1):
        fig.add_trace(go.Image(source=image_url, x0=0, y0=0, dx=1, dy=1, hoverinfo="skip"), row=1, col=col)
    if cam is not None:
        fig.add_trace(heatmap_trace(cam, shape, opacity, colorscale, target), row=1, col=n)
    fig.update_xaxes(visible=False, range=[-0.5, w - 0.5], constrain="domain")
    fig.update_yaxes(visible=False, range=[h - 0.5, -0.5], scaleanchor="x", constrain="domain")
    if n == 2:
        fig.update_xaxes(matches="x", row=1, col=2)
        fig.update_yaxes(matches="y", scaleanchor=None, row=1, col=2)
    # about the height the images take at a typical width, so little space is left empty
    # at most 560 px of film: with the name and result above it the whole film fits a 1280x800 screen
    height = int(np.clip(720 / n * h / w, 260, 560)) + 70
    fig.update_layout(
        height=height, margin={"l": 0, "r": 0, "t": 30, "b": 40}, uirevision=revision, dragmode="pan", showlegend=False
    )
    # pages/view_keeper.py finds the viewer by this and keeps the reader's zoom across re-renders
    fig.update_layout(meta={"xray_viewer": revision, "width": w, "height": h})
    return fig


WORKLIST_COLUMNS = {
    "open": st.column_config.TextColumn("", width=24, help="The image open below"),
    "item": st.column_config.NumberColumn("#", width=36),
    "thumbnail": st.column_config.ImageColumn("Image", width=50),
    "probability_percent": st.column_config.NumberColumn(
        "Probability",
        format="%.0f%%",
        width=82,
        help="Calibrated pneumonia probability; sorts as a number. Shown between 1% and 99% "
        "(the open image says '>99%' or '<1%': validation cannot support more at the ends).",
    ),
    "label": st.column_config.TextColumn("Result", width=96),
    "reviewed": st.column_config.CheckboxColumn("Reviewed", width=72),
    "notes": st.column_config.TextColumn(
        "Notes", width="medium", help="Why an image was not scored, duplicates, disagreeing members"
    ),
    "file": st.column_config.TextColumn("File", width=220),
    "bacterial_if_pneumonia": st.column_config.ProgressColumn(
        "Bacterial?",
        min_value=0.0,
        max_value=1.0,
        format="percent",
        width=90,
        help="If pneumonia: the estimated chance it is bacterial rather than viral (secondary; no basis for "
        "prescribing).",
    ),
}
AUDIT_COLUMNS = {
    "id": st.column_config.NumberColumn("#", width=40),
    "time": st.column_config.TextColumn("Time (UTC)", width=130),
    "reader": st.column_config.TextColumn("Reader", width=70),
    "image_sha256": st.column_config.TextColumn("Image SHA-256", width=110),
    "label": st.column_config.TextColumn("Result", width=100),
    "probability": st.column_config.NumberColumn("Probability", format="%.1f%%", width=90),
    "reader_agrees": st.column_config.CheckboxColumn("Agrees", width=60),
    "comment": st.column_config.TextColumn("Comment", width="medium"),
    "operating_point": st.column_config.TextColumn("Operating point", width=110),
    "threshold": st.column_config.NumberColumn("Threshold", format="%.3f", width=80),
    "heatmap_method": st.column_config.TextColumn("Heatmap", width=80),
    "model_version": st.column_config.TextColumn("Model", width=150),
}
AUDIT_ORDER = list(AUDIT_COLUMNS)


def short_reason(reason: str, limit: int = 60) -> str:
    """The first clause of a reason, for a table cell; the full text shows when the image is opened."""
    first = reason.split(". ")[0].split("; ")[0].split(" (")[0].rstrip(".")
    return first if len(first) <= limit else first[: limit - 1].rstrip() + "…"
