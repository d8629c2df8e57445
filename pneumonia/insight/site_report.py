"""The "your data" figures (Plotly, each with its answer) and the validation report (PDF) of a
:class:`~pneumonia.insight.site_validation.SiteValidation`."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import plotly.graph_objects as go
from fpdf import FPDF

from pneumonia.insight.report import DISCLAIMER
from pneumonia.insight.site_validation import SiteValidation


def _words(key) -> str:
    """An operating point's key in words: "High sensitivity", not "high_sensitivity"."""
    return str(key).replace("_", " ").capitalize()


def roc_with_band(sv: SiteValidation) -> tuple[go.Figure, str]:
    roc = sv.roc
    fig = go.Figure()
    fig.add_scatter(x=roc["grid"], y=roc["high"], mode="lines", line={"width": 0}, showlegend=False)
    fig.add_scatter(
        x=roc["grid"], y=roc["low"], mode="lines", line={"width": 0}, fill="tonexty", name="95% band (bootstrap)"
    )
    fig.add_scatter(x=roc["fpr"], y=roc["tpr"], mode="lines", name=f"your data (AUC {roc['auc']:.3f})")
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "#999"}, name="chance")
    for _, row in sv.shipped.iterrows():
        fig.add_scatter(
            x=[1 - row["specificity"]],
            y=[row["sensitivity"]],
            mode="markers",
            marker={"size": 11},
            name=_words(row.iloc[0]),
        )
    fig.update_layout(title="ROC curve on your data", xaxis_title="1 - specificity", yaxis_title="sensitivity")
    lo, hi = roc["auc_ci"]
    return fig, f"AUC {roc['auc']:.3f} (95% CI {lo:.3f}-{hi:.3f}) on {sv.counts['labelled']} labelled images."


def calibration_on_site(sv: SiteValidation) -> tuple[go.Figure, str]:
    cal = sv.calibration
    fig = go.Figure()
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "#999"}, name="perfect")
    fig.add_scatter(
        x=cal["mean_predicted"],
        y=cal["fraction_positive"],
        mode="lines+markers",
        text=[f"{n} images" for n in cal["count"]],
        name=f"your data (ECE {cal['ece']:.3f}, Brier {cal['brier']:.3f})",
    )
    fig.update_layout(
        title="Calibration on your data", xaxis_title="mean predicted probability", yaxis_title="observed pneumonia"
    )
    verdict = "close to" if cal["ece"] < 0.05 else "away from"
    return fig, (
        f"Expected calibration error {cal['ece']:.3f}: the probabilities are {verdict} the observed pneumonia rate "
        "on your images."
    )


def point_table(df: pd.DataFrame, shipped: bool) -> pd.DataFrame:
    """Rates as percentages with their intervals, for the page and the report."""

    def pct(v) -> str:
        return "" if v is None or pd.isna(v) else f"{v:.1%}"

    names = df["operating point"].map(_words)
    out = pd.DataFrame({"operating point": names, "threshold": df["threshold"].map("{:.1%}".format)})
    if shipped:
        out["shipped sensitivity"] = df["shipped sensitivity"].map(pct)
        out["shipped specificity"] = df["shipped specificity"].map(pct)
    for key in ("sensitivity", "specificity"):
        ci = df[f"{key} 95% CI"]
        out[f"your {key}"] = [f"{pct(v)} ({pct(c[0])}-{pct(c[1])})" for v, c in zip(df[key], ci)]
    out["PPV"], out["NPV"] = df["PPV"].map(pct), df["NPV"].map(pct)
    return out


def _table(pdf: FPDF, df: pd.DataFrame) -> None:
    pdf.set_font("Helvetica", "", 7.5)
    with pdf.table(text_align="LEFT", line_height=4.5) as table:
        table.row([str(c) for c in df.columns])
        for _, r in df.iterrows():
            table.row([str(v) for v in r])
    pdf.ln(3)


def _heading(pdf: FPDF, text: str) -> None:
    pdf.set_font("Helvetica", "B", 11)
    pdf.cell(0, 7, text, new_x="LMARGIN", new_y="NEXT")


def _summary(pdf: FPDF, sv: SiteValidation) -> None:
    c, m = sv.counts, sv.metrics
    pdf.set_font("Helvetica", "", 9)
    lines = [
        f"Files {c['files']}: scored {c['scored']}, refused by the chest x-ray gate {c['refused']}, "
        f"unreadable {c['unreadable']}. Labelled and readable: {c['labelled']} "
        f"({c['pneumonia']} pneumonia, {c['normal']} normal).",
        f"PPV and NPV are given at a pneumonia prevalence of {sv.prevalence:.1%}.",
    ]
    if m is not None:
        lo, hi = m["ci95"]["roc_auc"]
        lines.append(
            f"ROC AUC {m['roc_auc']:.3f} (95% CI {lo:.3f}-{hi:.3f}); at the default point ({sv.default_point}) "
            f"accuracy {m['accuracy']:.1%}, sensitivity {m['sensitivity']:.1%}, specificity {m['specificity']:.1%}; "
            f"calibration error (ECE) {m['ece']:.3f}."
        )
    for line in lines:
        pdf.multi_cell(0, 4.5, line, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)


def _axes_plot(pdf: FPDF, x: float, y: float, size: float, title: str, labels: tuple[str, str]) -> callable:
    """A square plot frame on [0, 1] x [0, 1] with a dotted diagonal; returns a function mapping data to page."""
    pdf.set_draw_color(0)
    pdf.set_line_width(0.2)
    pdf.rect(x, y, size, size)
    pdf.set_font("Helvetica", "B", 8)
    pdf.set_xy(x, y - 5)
    pdf.cell(size, 4, title, align="C")
    pdf.set_font("Helvetica", "", 7)
    pdf.set_xy(x, y + size + 1)
    pdf.cell(size, 3, labels[0], align="C")
    for tick in (0.0, 0.5, 1.0):
        pdf.set_xy(x - 7, y + size - tick * size - 1.5)
        pdf.cell(6, 3, f"{tick:g}", align="R")
        pdf.set_xy(x + tick * size - 3, y + size + 4)
        pdf.cell(6, 3, f"{tick:g}", align="C")
    pdf.set_xy(x - 7, y - 5)
    pdf.cell(6, 4, labels[1][:1])

    def at(u: float, v: float) -> tuple[float, float]:
        return x + float(u) * size, y + size - float(v) * size

    pdf.set_draw_color(160)
    pdf.set_dash_pattern(dash=0.6, gap=0.6)
    pdf.line(*at(0, 0), *at(1, 1))
    pdf.set_dash_pattern()
    return at


def _polyline(pdf: FPDF, at, xs, ys, colour: tuple[int, int, int], width: float = 0.5) -> None:
    pdf.set_draw_color(*colour)
    pdf.set_line_width(width)
    points = [at(u, v) for u, v in zip(xs, ys)]
    for a, b in zip(points, points[1:]):
        pdf.line(*a, *b)
    pdf.set_line_width(0.2)
    pdf.set_draw_color(0)


def _charts(pdf: FPDF, sv: SiteValidation) -> None:
    """The ROC curve with its 95% band and the calibration curve, drawn as vector lines."""
    size, top = 62, pdf.get_y() + 7
    roc = sv.roc
    at = _axes_plot(pdf, 25, top, size, f"ROC on your images (AUC {roc['auc']:.3f})", ("1 - specificity", "sens."))
    band = [at(u, v) for u, v in zip(roc["grid"], roc["high"])] + [
        at(u, v) for u, v in zip(roc["grid"][::-1], roc["low"][::-1])
    ]
    pdf.set_fill_color(200, 215, 235)
    pdf.polygon(band, style="F")
    _polyline(pdf, at, roc["fpr"], roc["tpr"], (31, 95, 168))
    cal = sv.calibration
    at = _axes_plot(pdf, 120, top, size, f"Calibration (ECE {cal['ece']:.3f})", ("mean predicted", "observed"))
    _polyline(pdf, at, cal["mean_predicted"], cal["fraction_positive"], (230, 85, 13))
    for u, v in zip(cal["mean_predicted"], cal["fraction_positive"]):
        cx, cy = at(u, v)
        pdf.set_fill_color(230, 85, 13)
        pdf.ellipse(cx - 0.8, cy - 0.8, 1.6, 1.6, style="F")
    pdf.set_y(top + size + 10)
    pdf.set_font("Helvetica", "I", 8)
    pdf.multi_cell(
        0,
        4,
        "Shaded: 95% band of the ROC curve (patient bootstrap). Dotted: chance (ROC) and perfect calibration.",
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.ln(2)


def _small_sample_warning(pdf: FPDF, sv: SiteValidation) -> None:
    if sv.enough_to_adopt:
        return
    from pneumonia.serving.site_points import too_few

    pdf.set_text_color(180, 0, 0)
    pdf.set_font("Helvetica", "B", 9)
    pdf.multi_cell(
        0,
        4.5,
        "Small sample, NOT FOR CLINICAL USE: " + too_few(sv.counts["pneumonia"], sv.counts["normal"]) + " The figures "
        "and re-chosen thresholds below are unsettled (wide intervals; a few images decide them).",
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.set_text_color(0)
    pdf.ln(2)


def validation_pdf(sv: SiteValidation, site_name: str = "") -> bytes:
    """The site's validation report: counts, AUC, each shipped point on the site's images beside the
    shipped figures, the re-chosen thresholds, PPV/NPV at the site's prevalence, and the disclaimer."""
    pdf = FPDF(format="A4")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 15)
    pdf.cell(0, 9, "Local validation of the pneumonia model", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 9)
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    where = f"  |  {site_name}" if site_name else ""
    pdf.cell(0, 5, f"Generated {when}  |  model {sv.model_version}{where}", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    _small_sample_warning(pdf, sv)
    _summary(pdf, sv)
    if sv.metrics is not None:
        _charts(pdf, sv)
    if sv.metrics is None:
        pdf.multi_cell(0, 5, "Too few labelled images of each class for sensitivity and specificity.")
    else:
        _heading(pdf, "Shipped operating points on your images (95% CI, patient bootstrap)")
        _table(pdf, point_table(sv.shipped, shipped=True))
        _heading(pdf, "Operating points chosen again on your images (same rule as the shipped ones)")
        _table(pdf, point_table(sv.rechosen, shipped=False))
        pdf.set_font("Helvetica", "I", 8)
        pdf.multi_cell(
            0,
            4,
            "Thresholds chosen on these images and measured on the same images flatter; confirm them on new "
            "images before adopting them.",
        )
    pdf.ln(3)
    pdf.set_font("Helvetica", "", 8)
    pdf.multi_cell(0, 4, DISCLAIMER)
    return bytes(pdf.output())
