"""Plotly figures for the EDA and performance pages, each with the one-line answer it gives.

Every builder returns ``(figure, answer)``; the answer is computed from the data shown.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import plotly.io as pio
from sklearn.metrics import auc, precision_recall_curve, roc_curve

from pneumonia.core.metrics import confusion, rates
from pneumonia.insight.eda_summary import squashed_share

CLASS_COLOURS = {
    "NORMAL": "#2b8cbe",
    "PNEUMONIA": "#e6550d",
    "normal": "#2b8cbe",
    "bacteria": "#e6550d",
    "virus": "#fdae6b",
    "original": "#31a354",
    "squashed_224": "#969696",
    "squashed 224x224 copy": "#969696",
}
KIND_WORDS = {"squashed_224": "squashed 224x224 copy", "original": "original"}


def point_words(name: str, point: dict) -> str:
    """An operating point's name in words for a legend: "High sensitivity", not "high_sensitivity"."""
    return str(point.get("label") or name.replace("_", " ").capitalize()).split(" (")[0]


OP_COLOURS = {"high_sensitivity": "#d62728", "balanced": "#1f77b4", "high_specificity": "#2ca02c"}

pio.templates["pneumonia"] = go.layout.Template(
    layout=go.Layout(
        font={"family": "Source Sans Pro, sans-serif", "size": 13},
        margin={"l": 40, "r": 20, "t": 50, "b": 40},
        colorway=["#1f5fa8", "#e6550d", "#31a354", "#756bb1", "#969696"],
        legend={"orientation": "h", "y": -0.2},
    )
)
pio.templates.default = "plotly_white+pneumonia"


# ---------------------------------------------------------------- EDA
def _grouped_bar(df: pd.DataFrame, y: str, colour: str, title: str) -> go.Figure:
    return px.bar(
        df,
        x="split",
        y=y,
        color=colour,
        barmode="group",
        text=y,
        color_discrete_map=CLASS_COLOURS,
        title=title,
        labels={"label_name": "class"},
    )


def counts_by_split(summary: dict) -> tuple[go.Figure, str]:
    df = pd.DataFrame(summary["counts"])
    fig = _grouped_bar(df, "images", "label_name", "Images per split and class")
    tr = df[df["split"] == "train"].set_index("label_name")
    ratio = tr.loc["PNEUMONIA", "images"] / tr.loc["NORMAL", "images"]
    return fig, (
        f"Pneumonia images outnumber normal ones {ratio:.1f} to 1 in train; training balances this with "
        "class weights, so both classes weigh the same in the loss."
    )


def patients_by_split(summary: dict) -> tuple[go.Figure, str]:
    df = pd.DataFrame(summary["counts"])
    fig = _grouped_bar(df, "patients", "label_name", "Patients per split and class")
    n = int(df["patients"].sum())
    return fig, (
        f"{n:,} patients in all: splits must be made by patient, or images of one child would sit on "
        "both sides of a split and flatter the scores."
    )


def subtype_counts(summary: dict) -> tuple[go.Figure, str]:
    df = pd.DataFrame(summary["subtypes"])
    fig = _grouped_bar(df, "images", "subtype", "Bacterial vs viral pneumonia")
    tot = df.groupby("subtype")["images"].sum()
    return fig, (
        f"Bacterial pneumonia is {tot.get('bacteria', 0) / max(tot.get('virus', 1), 1):.1f}x as common as "
        "viral; the model gives a secondary bacterial-vs-viral estimate for images it calls pneumonia "
        "(noisy labels; no basis for prescribing), and its pneumonia recall is reported for each."
    )


def images_per_patient(summary: dict) -> tuple[go.Figure, str]:
    df = pd.DataFrame(summary["images_per_patient"])
    df["images"] = np.where(df["n"] >= 6, "6+", df["n"].astype(str))
    df = df.groupby(["label_name", "images"], as_index=False)["patients"].sum()
    fig = px.bar(
        df,
        x="images",
        y="patients",
        color="label_name",
        barmode="group",
        color_discrete_map=CLASS_COLOURS,
        title="Images per patient",
        labels={"images": "images of one patient", "label_name": "class"},
        category_orders={"images": ["1", "2", "3", "4", "5", "6+"]},
    )
    multi = df[df["images"] != "1"]["patients"].sum() / df["patients"].sum()
    return fig, f"{multi:.0%} of patients have more than one image, mostly pneumonia cases."


def size_scatter(summary: dict) -> tuple[go.Figure, str]:
    s = pd.DataFrame(summary["sizes"])
    s["aspect"] = s["width"] / s["height"]
    s["kind"] = s["kind"].map(KIND_WORDS).fillna(s["kind"])
    fig = px.histogram(
        s,
        x="aspect",
        color="kind",
        nbins=60,
        barmode="overlay",
        opacity=0.75,
        color_discrete_map=CLASS_COLOURS,
        title="Aspect ratio (width / height)",
        labels={"kind": "file kind"},
    )
    share = squashed_share(summary)
    orig = s[s["kind"] == "original"]["aspect"]
    return fig, (
        f"{share:.0%} of the files are 224x224 copies squashed to a square (aspect 1.0, lost); the "
        f"originals keep aspects of {orig.quantile(0.05):.2f}-{orig.quantile(0.95):.2f}. The model squashes "
        "every image to a square so both kinds look alike."
    )


def intensity_histograms(summary: dict) -> tuple[go.Figure, str]:
    h = summary["intensity_histogram"]
    centres = (np.array(h["bin_edges"][:-1]) + np.array(h["bin_edges"][1:])) / 2
    fig = go.Figure()
    means = {}
    for label in ("NORMAL", "PNEUMONIA"):
        freq = np.array(h[label])
        means[label] = float((centres * freq).sum() / freq.sum())
        fig.add_scatter(x=centres, y=freq, name=label, mode="lines", line={"color": CLASS_COLOURS[label]})
    fig.update_layout(title="Grey levels per class", xaxis_title="grey level", yaxis_title="fraction of pixels")
    return fig, (
        f"Overall mean grey level: normal {means['NORMAL']:.0f}, pneumonia {means['PNEUMONIA']:.0f}, nearly "
        "the same. The distributions overlap heavily: brightness alone cannot separate the classes."
    )


def mean_images(arrays: dict[str, np.ndarray]) -> tuple[go.Figure, str]:
    from plotly.subplots import make_subplots

    names = [
        ("mean_NORMAL", "mean, normal"),
        ("mean_PNEUMONIA", "mean, pneumonia"),
        ("std_NORMAL", "std, normal"),
        ("std_PNEUMONIA", "std, pneumonia"),
    ]
    # a 2x2 grid: four panels in a row left their titles overlapping on a narrow screen
    fig = make_subplots(rows=2, cols=2, subplot_titles=[t for _, t in names], vertical_spacing=0.08)
    for i, (key, _) in enumerate(names, start=1):
        row, col = (i - 1) // 2 + 1, (i - 1) % 2 + 1
        fig.add_trace(go.Heatmap(z=arrays[key][::-1], colorscale="gray", showscale=False), row=row, col=col)
        fig.update_xaxes(visible=False, row=row, col=col)
        fig.update_yaxes(visible=False, scaleanchor=f"x{i}", row=row, col=col)
    delta = arrays["mean_PNEUMONIA"] - arrays["mean_NORMAL"]
    diff = float(np.abs(delta).mean())
    h, w = delta.shape
    # where the class means differ most, on a 3x3 grid of the (squashed) image
    cells = {
        (r, c): float(np.abs(delta[r * h // 3 : (r + 1) * h // 3, c * w // 3 : (c + 1) * w // 3]).mean())
        for r in range(3)
        for c in range(3)
    }
    (r, c), _ = max(cells.items(), key=lambda kv: kv[1])
    where = f"{('upper', 'middle', 'lower')[r]} {('left', 'central', 'right')[c]}"
    brighter = "brighter" if delta.mean() > 0 else "darker"
    fig.update_layout(title="Mean and std image per class", height=580, margin={"t": 80})
    return fig, (
        f"Pixel by pixel the two mean images differ by {diff:.1f} grey levels on average (the size of the "
        f"difference, wherever it lies), most in the {where} part of the image (as displayed), although their "
        f"overall brightness is nearly the same; pneumonia images are slightly {brighter} overall."
    )


# ---------------------------------------------------------------- performance
def confusion_matrix_figure(y: np.ndarray, p: np.ndarray, threshold: float) -> tuple[go.Figure, dict]:
    tn, fp, fn, tp = confusion(y, p, threshold)
    z = [[tn, fp], [fn, tp]]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=["predicted normal", "predicted pneumonia"],
            y=["normal", "pneumonia"],
            text=z,
            texttemplate="%{text}",
            colorscale="Blues",
            showscale=False,
        )
    )
    fig.update_layout(
        title=f"Confusion matrix at threshold {threshold:.1%}", yaxis={"autorange": "reversed"}, height=360
    )
    return fig, rates(tn, fp, fn, tp) | {"tn": tn, "fp": fp, "fn": fn, "tp": tp}


def roc_figure(y: np.ndarray, p: np.ndarray, ops: dict) -> tuple[go.Figure, str]:
    fpr, tpr, _ = roc_curve(y, p)
    a = auc(fpr, tpr)
    fig = go.Figure(go.Scatter(x=fpr, y=tpr, mode="lines", name=f"ROC (AUC {a:.3f})"))
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "#999"}, name="chance")
    for name, op in ops.items():
        r = rates(*confusion(y, p, op["threshold"]))
        fig.add_scatter(
            x=[1 - r["specificity"]],
            y=[r["sensitivity"]],
            mode="markers",
            name=point_words(name, op),
            marker={"size": 12, "color": OP_COLOURS.get(name)},
        )
    fig.update_layout(title="ROC curve", xaxis_title="1 - specificity", yaxis_title="sensitivity", height=420)
    return fig, f"AUC {a:.3f}: the probability that a random pneumonia image scores above a random normal one."


def pr_figure(y: np.ndarray, p: np.ndarray, ops: dict) -> tuple[go.Figure, str]:
    prec, rec, _ = precision_recall_curve(y, p)
    a = auc(rec, prec)
    fig = go.Figure(go.Scatter(x=rec, y=prec, mode="lines", name=f"PR (AUC {a:.3f})"))
    for name, op in ops.items():
        r = rates(*confusion(y, p, op["threshold"]))
        fig.add_scatter(
            x=[r["sensitivity"]],
            y=[r["precision"]],
            mode="markers",
            name=point_words(name, op),
            marker={"size": 12, "color": OP_COLOURS.get(name)},
        )
    fig.update_layout(
        title="Precision-recall curve", xaxis_title="recall (sensitivity)", yaxis_title="precision (PPV)", height=420
    )
    base = float(np.mean(y))
    return fig, (
        f"PR AUC {a:.3f} against a baseline of {base:.2f} (the pneumonia share here); precision depends "
        "on prevalence, so it will differ in another population."
    )


def reliability_figure(cal: dict) -> tuple[go.Figure, str]:
    fig = go.Figure()
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "#999"}, name="perfect")
    for key, name in (("before", "before calibration"), ("after", "after calibration")):
        c = cal[key]["curve"]
        fig.add_scatter(
            x=c["mean_predicted"],
            y=c["fraction_positive"],
            mode="lines+markers",
            name=f"{name} (ECE {cal[key]['ece']:.3f}, Brier {cal[key]['brier']:.3f})",
        )
    fig.update_layout(
        title="Reliability diagram",
        xaxis_title="mean predicted probability",
        yaxis_title="observed pneumonia fraction",
        height=420,
    )
    return fig, (
        f"Calibration moved ECE from {cal['before']['ece']:.3f} to {cal['after']['ece']:.3f} and Brier from "
        f"{cal['before']['brier']:.3f} to {cal['after']['brier']:.3f}."
    )


def shifted_reliability_figure(shifted: dict) -> tuple[go.Figure, str]:
    """The reliability diagram on the set that carries the shift (test_metrics.json's
    ``calibration.shifted``: the pool's films plain and cropped, hard normals weighted), films per bin."""
    bins = shifted["bins"]
    curve = {
        "mean_predicted": [b["mean_predicted"] for b in bins],
        "fraction_positive": [b["observed"] for b in bins],
        "n": [b["n"] for b in bins],
    }
    fig, _ = held_out_reliability_figure(curve, shifted["ece"], sum(curve["n"]))
    fig.update_layout(title="Reliability with the shift the fit set carries (out of fold)")
    fig.data[1].name = f"plain and cropped films, hard normals weighted (ECE {shifted['ece']:.3f})"
    top = next((b for b in bins if b["bin"] == "0.9-1.0"), None)
    said = (
        f" Films scored 90% or more: said {top['mean_predicted']:.1%}, found {top['observed']:.1%} pneumonia."
        if top
        else ""
    )
    return fig, f"ECE {shifted['ece']:.3f} on {sum(curve['n'])} out-of-fold films: {shifted['what']}.{said}"


def held_out_reliability_figure(curve: dict, ece: float, n: int) -> tuple[go.Figure, str]:
    """The reliability diagram of a split calibration was not fitted on, with the films in each bin."""
    fig = go.Figure()
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "#999"}, name="perfect")
    fig.add_scatter(
        x=curve["mean_predicted"],
        y=curve["fraction_positive"],
        mode="lines+markers+text",
        text=[f"n={k}" for k in curve["n"]],
        textposition="top left",
        marker={"size": [6 + 14 * (k / max(curve["n"])) ** 0.5 for k in curve["n"]], "color": "#e6550d"},
        name=f"held-out test split (ECE {ece:.3f})",
    )
    fig.update_layout(
        title="Reliability on the held-out test split (not fitted on it)",
        xaxis_title="mean predicted probability",
        yaxis_title="observed pneumonia fraction",
        height=420,
    )
    points = list(zip(curve["mean_predicted"], curve["fraction_positive"], curve["n"]))
    middle = [(x, y, k) for x, y, k in points if 0.1 <= x < 0.9]
    below = sum(1 for x, y, _ in middle if y < x)
    return fig, (
        f"ECE {ece:.3f} on {n} films the calibration never saw. {sum(k for *_, k in middle)} of them fall between "
        f"10% and 90%, where few films per bin make each point uncertain; in {below} of those {len(middle)} bins "
        "fewer children had pneumonia than the probability said (the probability over-states the risk there)."
    )


def history_figure(history: pd.DataFrame) -> tuple[go.Figure, str]:
    """Each ensemble member's training loss per epoch."""
    fig = go.Figure()
    for member, rows in history.groupby("member"):
        fig.add_scatter(x=rows["epoch"] + 1, y=rows["loss"], name=str(member).replace("_", ", "), mode="lines")
    fig.update_layout(
        title="Training loss of each ensemble member",
        xaxis_title="epoch",
        yaxis_title="loss",
        height=360,
        legend_title_text="member",
    )
    final = history.groupby("member")["loss"].last()
    return fig, (
        f"{len(final)} members, each trained from scratch on four of five patient-grouped folds; final training "
        f"loss {final.min():.3f} to {final.max():.3f}. The loss includes augmentation, class weights, label "
        "smoothing and the bacterial-vs-viral term, so it stays well above zero; members are judged on the "
        "folds they never saw (the figures above), not on this curve."
    )


def subtype_recall_figure(per_subtype: dict) -> tuple[go.Figure, str]:
    rows = [
        {
            "group": k,
            "rate": v.get("recall", v.get("specificity")),
            "measure": "recall" if "recall" in v else "specificity",
            "n": v["n"],
        }
        for k, v in per_subtype.items()
    ]
    df = pd.DataFrame(rows)
    fig = px.bar(
        df,
        x="group",
        y="rate",
        color="measure",
        text=df["rate"].map("{:.1%}".format),
        hover_data=["n"],
        title="Recall per subtype (specificity for normals)",
        range_y=[0, 1.05],
    )
    rec = {r["group"]: r["rate"] for r in rows}
    return fig, (
        f"Bacterial recall {rec.get('bacteria', float('nan')):.1%}, viral "
        f"{rec.get('virus', float('nan')):.1%}: viral pneumonia is subtler on a radiograph and is missed "
        "more often."
    )


FRAME_WORDS = {
    "plain": "as taken",
    "crop10": "cropped 10% per side",
    "crop125": "cropped 12.5% per side",
    "crop20": "cropped 20% per side",
    "narrow": "width cropped 12% per side",
    "zoomout": "zoomed out (8% border)",
}


def reframing_figure(reframed: dict) -> tuple[go.Figure, str]:
    """Sensitivity, specificity and hard-normal specificity when the same out-of-fold films are re-framed."""
    rows = []
    for frame, m in reframed.items():
        words = FRAME_WORDS.get(frame, frame)
        rows += [
            {"framing": words, "measure": "sensitivity", "value": m["sensitivity"]},
            {"framing": words, "measure": "specificity", "value": m["specificity"]},
        ]
        if m.get("hard_normal_specificity") is not None:
            rows.append(
                {"framing": words, "measure": "specificity on hard normals", "value": m["hard_normal_specificity"]}
            )
    # horizontal bars: the framings' names stay readable on a narrow screen (upright labels were cut off)
    fig = px.bar(
        pd.DataFrame(rows), y="framing", x="value", color="measure", barmode="group", orientation="h", range_x=[0, 1.02]
    )
    fig.update_layout(
        title="The same out-of-fold films (training pool), re-framed",
        height=440,
        xaxis_title="",
        yaxis_title="",
        yaxis={"autorange": "reversed"},
        legend_title_text="",
        legend={"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 0},
        margin={"t": 80},
    )
    crop = reframed.get("crop125", {})
    return fig, (
        f"Tightly framed normals were the first model's failure on new patients. Cropped 12.5% per side, "
        f"specificity is {crop.get('specificity', float('nan')):.1%} and on the hard normals "
        f"{crop.get('hard_normal_specificity') or float('nan'):.1%}; the probability moves by "
        f"{reframed.get('crop10', {}).get('mean_probability_shift', float('nan')):.3f} on average when a film is "
        "cropped 10% per side."
    )


def subtype_roc_figure(y_bacterial: np.ndarray, p_bacterial: np.ndarray) -> tuple[go.Figure, str]:
    """ROC of bacterial (positive) vs viral on pneumonia images."""
    fpr, tpr, _ = roc_curve(y_bacterial, p_bacterial)
    a = auc(fpr, tpr)
    fig = go.Figure(go.Scatter(x=fpr, y=tpr, mode="lines", name=f"bacterial vs viral (AUC {a:.3f})"))
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "#999"}, name="chance")
    fig.update_layout(
        title="Bacterial or viral (pneumonia images only)",
        xaxis_title="viral images called bacterial",
        yaxis_title="bacterial images called bacterial",
        height=400,
    )
    return fig, (
        f"AUC {a:.3f}. The bacterial/viral labels come from the file names and are noisy (many pneumonias are "
        "mixed or undetermined); this is a secondary estimate and no basis for prescribing."
    )


def drift_figure(d: dict) -> tuple[go.Figure, str]:
    """The site's probabilities per tenth beside what the reference, mixed at the fitted prevalence, expects."""
    labels = [f"{i * 10}-{(i + 1) * 10}%" for i in range(len(d["site"]))]
    fig = go.Figure()
    fig.add_bar(x=labels, y=d["site"], name="reads here", marker_color="#1f5fa8")
    fig.add_bar(x=labels, y=d["expected"], name=f"{d['reference']} at {d['prevalence']:.0%}", marker_color="#bdbdbd")
    fig.update_layout(
        title="Probabilities of the reads against the reference",
        xaxis_title="pneumonia probability",
        yaxis_title="reads",
        barmode="group",
        height=360,
    )
    return fig, f"Population stability index {d['psi']:.2f} over {d['n']} reads."


def weekly_reads_figure(weekly: pd.DataFrame) -> tuple[go.Figure, str]:
    fig = go.Figure(go.Bar(x=weekly["week"], y=weekly["reads"], name="reads", marker_color="#1f5fa8"))
    fig.update_layout(title="Reads per week", xaxis_title="week starting", yaxis_title="reads", height=320)
    if weekly.empty:
        return fig, "No reads in this period."
    reads = int(weekly["reads"].sum())
    agree = float(weekly["agree with the AI"].mul(weekly["reads"]).sum()) / reads
    return fig, (
        f"{reads} reads over {len(weekly)} weeks (at most {int(weekly['reads'].max())} in a week); readers agreed "
        f"with the AI on {agree:.0%}."
    )
