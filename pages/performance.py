"""Model performance page: metrics with CIs, threshold explorer, curves, calibration, failures; and
the "your data" view of a site's own results (pages/your_data.py)."""

import numpy as np
import streamlit as st

from pages import resources, validation_views, widgets
from pages.your_data import your_data_view
from pneumonia.core.metrics import predictive_values_at_prevalence
from pneumonia.insight import charts
from pneumonia.insight.artifacts import Artifacts, comparison_table, metrics_table
from pneumonia.serving.explain import METHODS, overlay


def metrics_at_default(art: Artifacts) -> None:
    tm = art.test_metrics
    default = art.metadata.operating_points[art.metadata.default_operating_point]
    st.subheader(
        f"Metrics at the default operating point ({default['label'].split(' (')[0]}, threshold {tm['threshold']:.3f})"
    )
    st.dataframe(
        metrics_table(tm),
        hide_index=True,
        column_config={c: st.column_config.NumberColumn(format="%.3f") for c in ("value", "95% CI low", "95% CI high")},
    )
    st.caption(
        "95% intervals from 1,000 bootstrap resamples of patients (not images), so correlated images of one "
        "child do not narrow them."
    )


def threshold_explorer(y: np.ndarray, p: np.ndarray, default_threshold: float) -> None:
    st.subheader("Threshold explorer")
    c1, c2 = st.columns([2, 1])
    with c2:
        threshold = st.slider("Threshold", 0.01, 0.99, float(round(default_threshold, 2)), 0.01, key="threshold")
        prevalence = st.number_input(
            "Prevalence of pneumonia in your population", 0.01, 0.99, 0.30, 0.01, key="prevalence"
        )
    fig, r = charts.confusion_matrix_figure(y, p, threshold)
    ppv_at, npv_at = predictive_values_at_prevalence(r["sensitivity"], r["specificity"], prevalence)
    with c1:
        st.plotly_chart(fig, width="stretch")
    with c2:
        st.metric("Sensitivity", f"{r['sensitivity']:.1%}")
        st.metric("Specificity", f"{r['specificity']:.1%}")
        st.metric("PPV / NPV (this split)", f"{r['precision']:.1%} / {r['npv']:.1%}")
        st.metric(f"PPV / NPV at {prevalence:.0%} prevalence", f"{ppv_at:.1%} / {npv_at:.1%}")
    st.caption(
        f"At {threshold:.2f} the model misses {r['fn']} of {r['fn'] + r['tp']} pneumonia images and flags "
        f"{r['fp']} of {r['fp'] + r['tn']} normal ones."
    )


def curves_and_calibration(art: Artifacts, y: np.ndarray, p: np.ndarray) -> None:
    tm, ops = art.test_metrics, art.metadata.operating_points
    c1, c2 = st.columns(2)
    with c1:
        widgets.chart_with_answer(charts.roc_figure(y, p, ops))
    with c2:
        widgets.chart_with_answer(charts.pr_figure(y, p, ops))
    st.subheader("Operating points (chosen on out-of-fold validation, with re-framed copies)")
    widgets.operating_point_table(ops, tm["by_operating_point"])
    c1, c2 = st.columns(2)
    with c1:
        widgets.chart_with_answer(
            charts.reliability_figure(tm["calibration"]["validation"]),
            "(out-of-fold validation, films as taken; calibration was fitted on them and their re-framed copies.)",
        )
    with c2:
        widgets.chart_with_answer(charts.subtype_recall_figure(tm["per_subtype"]))
    widgets.chart_with_answer(charts.history_figure(art.history))


def stress_test(tm: dict) -> None:
    st.subheader("Stress test (out-of-fold images under image changes, default threshold)")
    st.dataframe([{"perturbation": k, **v} for k, v in tm["stress"].items()], hide_index=True)
    worst = min(tm["stress"].items(), key=lambda kv: kv[1]["specificity"])
    st.caption(
        f"The hardest change for specificity is {worst[0]} ({worst[1]['specificity']:.1%}); this is how the "
        "model may behave on images processed differently from the training hospital's."
    )


def failure_gallery(failures: dict) -> None:
    st.subheader("Most confident mistakes")
    method = st.selectbox("Heatmap", list(METHODS), format_func=METHODS.get, key="failure_method")
    cols = st.columns(4)
    for i in range(len(failures["kind"])):
        pixels = failures["inputs"][i][..., 0]
        key = f"failure-{failures['files'][i]}"
        heat = resources.heatmap(key, method, pixels[..., None].astype(np.float32) / 255.0)
        with cols[i % 4]:
            st.image(
                overlay(pixels, heat.cam, 0.0 if heat.flat else 0.4),
                width="stretch",
                caption=f"{failures['kind'][i]}: p={failures['probability'][i]:.2f} ({failures['files'][i]})",
            )
    st.caption(
        "False positives are normal images the model scored highest; false negatives are pneumonia images it "
        "scored lowest. Heatmaps show what drove the score, not where disease is."
    )


def beside_published(art: Artifacts) -> None:
    st.subheader("Beside the published results")
    st.dataframe(comparison_table(art.test_metrics), hide_index=True)
    st.caption(
        "The published figures are on the official 624-image test split; ours above are out-of-fold on the "
        "pooled training data. They are not directly comparable; the official-split result is reported in "
        "the model card when measured."
    )
    if art.experiments is not None:
        with st.expander("Experiment log (models/experiments.csv)"):
            st.dataframe(art.experiments, hide_index=True)


st.title("Model performance")
view = st.radio("Show", ["Shipped model (validation)", "Your data"], horizontal=True, key="performance_view")
if view == "Your data":
    your_data_view()
    st.stop()
art = resources.model_artifacts()
y, p = art.predictions["label"].to_numpy(), art.predictions["probability"].to_numpy()
st.info(validation_views.VALIDATION_WORDS)
metrics_at_default(art)
validation_views.reframed_section(art.test_metrics)
threshold_explorer(y, p, art.test_metrics["threshold"])
curves_and_calibration(art, y, p)
validation_views.subtype_section(art)
stress_test(art.test_metrics)
failure_gallery(art.failures)
beside_published(art)
