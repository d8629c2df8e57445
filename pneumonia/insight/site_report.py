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


GUIDED_PROTOCOL = [
    (
        "1. Choose the cases",
        "Consecutive children aged 1 to 5 with a frontal chest film over a set period (for example three months), "
        "not hand-picked: the normals and the pneumonias seen in that period alike. At least {min_per_class} with "
        "pneumonia and {min_per_class} without, the count a site threshold needs. Exclude nobody except films the "
        "input check refuses, and count those.",
    ),
    (
        "2. Who sets the truth",
        "Two of the site's radiologists read each film without the AI and without each other's reading; a third "
        "settles disagreements; clinical follow-up where available. Record who read and how they disagreed. Put "
        "the films in NORMAL/ and PNEUMONIA/ folders by that truth.",
    ),
    (
        "3. Run it",
        "Score the folder on this page (site administrators), or run python -m pneumonia.score FOLDER --out "
        "results.parquet and upload the results here.",
    ),
    (
        "4. What result to accept (the site sets it, before looking)",
        "For the operating point the site will use: the lowest sensitivity and specificity it accepts, judged on the "
        "lower end of each 95% interval, and the prevalence of its population. The page and this report say "
        "whether the results meet them.",
    ),
    (
        "5. Who signs",
        "The QA lead who ran it and the clinical lead; the report goes to the governance board with the "
        "held-out figures of the model version used.",
    ),
]


def protocol_lines(min_per_class: int) -> list[tuple[str, str]]:
    return [(head, text.format(min_per_class=min_per_class)) for head, text in GUIDED_PROTOCOL]


def small_sample_words(sv: SiteValidation) -> str:
    """A warning for every figure from fewer labelled films than a decision needs; "" when enough."""
    from pneumonia.serving.site_points import MIN_PER_CLASS

    c = sv.counts
    if min(c["pneumonia"], c["normal"]) >= MIN_PER_CLASS:
        return ""
    return (
        f"Small sample: {c['pneumonia']} pneumonia and {c['normal']} normal films; a decision needs at least "
        f"{MIN_PER_CLASS} of each. This figure is unsettled: do not rely on it."
    )


def acceptance_verdict(sv: SiteValidation, point: str, min_sensitivity: float, min_specificity: float) -> str:
    """Whether the site's results meet the acceptance the site set, judged on the lower ends of the intervals."""
    if sv.shipped is None:
        return "No verdict: too few labelled films of each class."
    row = sv.shipped[sv.shipped["operating point"] == point].iloc[0]
    se_lo, sp_lo = row["sensitivity 95% CI"][0], row["specificity 95% CI"][0]
    met = se_lo >= min_sensitivity and sp_lo >= min_specificity
    words = "MEETS" if met else "DOES NOT MEET"
    small = " (small sample: not a basis for a decision)" if small_sample_words(sv) else ""
    return (
        f"{_words(point)}: the lower ends of the 95% intervals are sensitivity {se_lo:.1%} and specificity "
        f"{sp_lo:.1%} against the site's minimum {min_sensitivity:.1%} and {min_specificity:.1%}: {words} the "
        f"site's acceptance{small}."
    )


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
    return fig, (
        f"AUC {roc['auc']:.3f} (95% CI {lo:.3f}-{hi:.3f}) on {sv.counts['labelled']} labelled images. "
        + small_sample_words(sv)
    ).strip()


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
    small = small_sample_words(sv)
    if small:
        return fig, f"Expected calibration error {cal['ece']:.3f}, from too few films to judge calibration. {small}"
    verdict = "close to" if cal["ece"] < 0.05 else "away from"
    return fig, (
        f"Expected calibration error {cal['ece']:.3f}: the probabilities are {verdict} the observed pneumonia rate "
        "on your images."
    )


def point_table(df: pd.DataFrame, shipped: bool, reference_name: str = "training pool") -> pd.DataFrame:
    """Rates as percentages with their intervals, for the page and the report; the shipped columns are
    named by what they are (the held-out split's or the training pool's figures)."""

    def pct(v) -> str:
        return "" if v is None or pd.isna(v) else f"{v:.1%}"

    def with_ci(v, c) -> str:
        return f"{pct(v)} ({c[0] * 100:.1f}-{c[1] * 100:.1f}%)"

    names = df["operating point"].map(_words)
    out = pd.DataFrame({"operating point": names, "threshold": df["threshold"].map("{:.1%}".format)})
    if shipped:
        out[f"{reference_name} (sens. / spec.)"] = [
            f"{pct(se)} / {pct(sp)}" for se, sp in zip(df["shipped sensitivity"], df["shipped specificity"])
        ]
    for key in ("sensitivity", "specificity"):
        out[f"your {key}"] = [with_ci(v, c) for v, c in zip(df[key], df[f"{key} 95% CI"])]
    for key in ("PPV", "NPV"):
        if f"{key} 95% CI" in df:
            out[key] = [with_ci(v, c) for v, c in zip(df[key], df[f"{key} 95% CI"])]
        else:
            out[key] = df[key].map(pct)
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


def validation_pdf(sv: SiteValidation, site_name: str = "", acceptance: str = "") -> bytes:
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
    if acceptance:
        pdf.set_font("Helvetica", "B", 9)
        pdf.multi_cell(0, 4.5, "Acceptance: " + acceptance, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(2)
    _summary(pdf, sv)
    if sv.metrics is not None:
        _charts(pdf, sv)
    if sv.metrics is None:
        pdf.multi_cell(0, 5, "Too few labelled images of each class for sensitivity and specificity.")
    else:
        _heading(pdf, "Shipped operating points on your images (95% CI: patient bootstrap widened to Wilson)")
        _table(pdf, point_table(sv.shipped, shipped=True, reference_name=sv.reference_name))
        _heading(pdf, "Operating points chosen again on your images (same rule as the shipped ones)")
        _table(pdf, point_table(sv.rechosen, shipped=False))
        pdf.set_font("Helvetica", "I", 8)
        pdf.multi_cell(
            0,
            4,
            "Thresholds chosen on these images and measured on the same images flatter; confirm them on new "
            "images before adopting them.",
        )
    _protocol(pdf)
    pdf.ln(3)
    pdf.set_font("Helvetica", "", 8)
    pdf.multi_cell(0, 4, DISCLAIMER)
    return bytes(pdf.output())


def _protocol(pdf: FPDF) -> None:
    from pneumonia.serving.site_points import MIN_PER_CLASS

    pdf.ln(3)
    _heading(pdf, "How this local validation was to be run")
    for head, text in protocol_lines(MIN_PER_CLASS):
        pdf.set_font("Helvetica", "B", 8.5)
        pdf.multi_cell(0, 4.2, head, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 8.5)
        pdf.multi_cell(0, 4.2, text, new_x="LMARGIN", new_y="NEXT")
