"""Model performance page: metrics with CIs, threshold explorer, curves, calibration, failures."""

import numpy as np
import streamlit as st

from pneumonia import app_state, charts, performance
from pneumonia.explain import METHODS, overlay
from pneumonia.metrics import predictive_values_at_prevalence

art = st.cache_data(performance.load)(app_state.MODELS_DIR)
tm, meta, preds = art.test_metrics, art.metadata, art.predictions
y, p = preds["label"].to_numpy(), preds["probability"].to_numpy()
ops = meta["operating_points"]

st.title("Model performance")
st.warning(
    f"All figures on this page come from the **internal test split**: {tm['n']} images of patients held out of "
    "the Kaggle *train* folder. This split flatters: models that scored validation AUC 0.99+ here reached only "
    "0.93-0.96 on the official test split from a later period. Read these as an upper bound."
)

st.subheader(
    f"Metrics at the default operating point ({meta['default_operating_point']}, threshold {tm['threshold']:.3f})"
)
st.dataframe(
    performance.metrics_table(tm),
    hide_index=True,
    column_config={c: st.column_config.NumberColumn(format="%.3f") for c in ("value", "95% CI low", "95% CI high")},
)
st.caption(
    "95% intervals from 1,000 bootstrap resamples of patients (not images), so correlated images of one "
    "child do not narrow them."
)

st.subheader("Threshold explorer")
c1, c2 = st.columns([2, 1])
with c2:
    threshold = st.slider("Threshold", 0.01, 0.99, float(round(tm["threshold"], 2)), 0.01, key="threshold")
    prevalence = st.number_input("Prevalence of pneumonia in your population", 0.01, 0.99, 0.30, 0.01, key="prevalence")
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

c1, c2 = st.columns(2)
with c1:
    fig, answer = charts.roc_figure(y, p, ops)
    st.plotly_chart(fig, width="stretch")
    st.caption(answer)
with c2:
    fig, answer = charts.pr_figure(y, p, ops)
    st.plotly_chart(fig, width="stretch")
    st.caption(answer)

st.subheader("Operating points (chosen on validation, with stressed copies)")
st.dataframe(
    [
        {
            "operating point": k,
            "threshold": v["threshold"],
            "validation sensitivity": v["validation_sensitivity"],
            "validation specificity": v["validation_specificity"],
            "internal test sensitivity": tm["by_operating_point"][k]["sensitivity"],
            "internal test specificity": tm["by_operating_point"][k]["specificity"],
        }
        for k, v in ops.items()
    ],
    hide_index=True,
)

c1, c2 = st.columns(2)
with c1:
    fig, answer = charts.reliability_figure(tm["calibration"]["internal_test"])
    st.plotly_chart(fig, width="stretch")
    st.caption(answer + " (internal test; calibration was fitted on validation.)")
with c2:
    fig, answer = charts.subtype_recall_figure(tm["per_subtype"])
    st.plotly_chart(fig, width="stretch")
    st.caption(answer)

fig, answer = charts.history_figure(art.history)
st.plotly_chart(fig, width="stretch")
st.caption(answer)

st.subheader("Stress test (internal test under image changes, default threshold)")
st.dataframe([{"perturbation": k, **v} for k, v in tm["stress"].items()], hide_index=True)
worst = min(tm["stress"].items(), key=lambda kv: kv[1]["specificity"])
st.caption(
    f"The hardest change for specificity is {worst[0]} ({worst[1]['specificity']:.1%}); this is how the "
    "model may behave on images processed differently from the training hospital's."
)

st.subheader("Most confident mistakes")
method = st.selectbox("Heatmap", list(METHODS), format_func=METHODS.get, key="failure_method")
f = art.failures
cols = st.columns(4)
for i in range(len(f["kind"])):
    pixels = f["inputs"][i][..., 0]
    heat = app_state.heatmap(f"failure-{f['files'][i]}", method, pixels[..., None].astype(np.float32) / 255.0)
    with cols[i % 4]:
        st.image(
            overlay(pixels, heat.cam, 0.0 if heat.flat else 0.4),
            width="stretch",
            caption=f"{f['kind'][i]}: p={f['probability'][i]:.2f} ({f['files'][i]})",
        )
st.caption(
    "False positives are normal images the model scored highest; false negatives are pneumonia images it "
    "scored lowest. Heatmaps show what drove the score, not where disease is."
)

st.subheader("Beside the published results")
st.dataframe(performance.comparison_table(tm), hide_index=True)
st.caption(
    "The published figures are on the official 624-image test split; ours above are on the internal split, "
    "which is easier. They are not directly comparable; the official-split result is reported in the "
    "model card when measured."
)

if art.experiments is not None:
    with st.expander("Experiment log (models/experiments.csv)"):
        st.dataframe(art.experiments, hide_index=True)
