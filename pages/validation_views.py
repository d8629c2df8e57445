"""View pieces for the shipped model's validation, shared by the performance page and the model
card: the re-framed figures, the hard normals and the bacterial-vs-viral results."""

import pandas as pd
import streamlit as st

from pages import widgets
from pneumonia.insight import charts
from pneumonia.insight.artifacts import Artifacts

VALIDATION_WORDS = (
    "**Expected performance** comes from out-of-fold validation: every image of the pooled training data "
    "was scored by ensemble members that never saw that child (5 folds, grouped by patient), plain and "
    "re-framed (cropped, narrowed, zoomed out), plus 70 *hard normals* that the first model got wrong "
    "when cropped and that no member trained on (they also helped fit the calibration and place the "
    "operating points). Each image is scored by the one or two members that held it out, while the "
    "shipped model averages all eight, so these figures describe a smaller ensemble. It is not the "
    "official test split; a new site should measure its own figures (Performance > Your data)."
)


def external_details(external: dict) -> str:
    """The rest of the external measurement, in words: interval, calibration, cropping, bacterial vs viral."""
    parts = []
    if external.get("accuracy_ci95"):
        lo, hi = external["accuracy_ci95"]
        parts.append(f"Accuracy {external['accuracy']:.1%} (95% CI {lo:.1%} to {hi:.1%})")
    if external.get("ece") is not None:
        parts.append(f"calibration error (ECE, 10 bins) {external['ece']:.3f}")
    crop = external.get("cropped_10_per_side")
    if crop:
        parts.append(
            f"cropped 10% per side: accuracy {crop['accuracy']:.1%}, probabilities moved by "
            f"{crop['mean_probability_shift']:.3f} on average"
        )
    sub = external.get("bacterial_vs_viral")
    if sub:
        parts.append(
            f"bacterial vs viral on its {sub['n']} pneumonias: accuracy {sub['accuracy']:.1%}, AUC {sub['roc_auc']:.3f}"
        )
    return "; ".join(parts) + "." if parts else ""


def reframed_table(tm: dict) -> pd.DataFrame:
    rows = []
    for frame, m in tm["reframed"].items():
        rows.append(
            {
                "framing": charts.FRAME_WORDS.get(frame, frame),
                "ROC AUC": m["roc_auc"],
                "sensitivity": m["sensitivity"],
                "specificity": m["specificity"],
                "hard normals: specificity": m.get("hard_normal_specificity"),
                "mean probability shift": m["mean_probability_shift"],
            }
        )
    return pd.DataFrame(rows)


def reframed_section(tm: dict) -> None:
    st.subheader("Validation that contains the failure: the same films re-framed")
    # one above the other: side by side, the table's columns were cut off on an 800 px screen
    widgets.chart_with_answer(charts.reframing_figure(tm["reframed"]))
    st.dataframe(
        reframed_table(tm),
        hide_index=True,
        column_config={c: st.column_config.NumberColumn(format="%.3f") for c in reframed_table(tm).columns[1:]},
    )
    st.caption(
        "At the default operating point. Shift: mean absolute change of the probability against the film as taken."
    )


def subtype_section(art: Artifacts) -> None:
    st.subheader("Bacterial or viral (secondary)")
    sub = art.test_metrics.get("subtype")
    pred = art.predictions
    if not sub or "bacterial_probability" not in pred:
        st.info("This model gives no bacterial-vs-viral estimate.")
        return
    known = pred["subtype"].isin(["bacteria", "virus"]) & pred["bacterial_probability"].notna()
    y = (pred.loc[known, "subtype"] == "bacteria").to_numpy().astype(int)
    p = pred.loc[known, "bacterial_probability"].to_numpy()
    c1, c2 = st.columns(2)
    with c1:
        widgets.chart_with_answer(charts.subtype_roc_figure(y, p))
    with c2:
        (tn, fp), (fn, tp) = sub["confusion_matrix"]
        st.dataframe(
            pd.DataFrame({"called viral": [tn, fn], "called bacterial": [fp, tp]}, index=["viral", "bacterial"]),
        )
        lo, hi = sub["ci95"]["accuracy"]
        alo, ahi = sub["ci95"]["roc_auc"]
        st.metric("Accuracy (out of fold)", f"{sub['accuracy']:.1%}", help=f"95% CI {lo:.1%} to {hi:.1%}")
        st.metric("ROC AUC", f"{sub['roc_auc']:.3f}", help=f"95% CI {alo:.3f} to {ahi:.3f}")
    st.warning(
        f"On {sub['n']} pneumonia images. The labels come from file names and are noisy; published models "
        "with ImageNet pretraining reach about 91% accuracy. This estimate is shown only for images called "
        "pneumonia, beside and never instead of that call, and it is **no basis for prescribing**."
    )


def spread_words(tm: dict) -> str:
    spread = tm.get("ensemble_spread") or {}
    if not spread:
        return ""
    return (
        f"The members' pneumonia logits differ by a median standard deviation of {spread['median_logit_std']:.2f} "
        f"(95th percentile {spread['p95_logit_std']:.2f}); the review page flags images where they disagree."
    )
