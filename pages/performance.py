"""Model performance page: the board summary on the held-out test split first (every operating point with
intervals, PPV/NPV at a prevalence the reader sets), calibration where it was not fitted, subgroups, the
published results; the training pool's out-of-fold detail folded below; and the "your data" view of a
site's own results (pages/your_data.py)."""

import numpy as np
import streamlit as st

from pages import resources, validation_views, widgets
from pages.your_data import your_data_view
from pneumonia.core.metrics import predictive_values_at_prevalence
from pneumonia.insight import charts
from pneumonia.insight.artifacts import Artifacts, comparison_table, heatmap_sentence, metrics_table, stress_sample
from pneumonia.insight.external_test import expectation_words, markdown_table, wilson
from pneumonia.serving.explain import METHODS, overlay

STRESS_WORDS = {
    "identity": "no change",
    "contrast_low": "lower contrast",
    "contrast_high": "higher contrast",
    "gamma_0.7": "gamma 0.7 (lighter mid-greys)",
    "gamma_1.4": "gamma 1.4 (darker mid-greys)",
    "brighter": "brighter",
    "darker": "darker",
    "blur": "blurred",
    "noise": "noisier",
    "low_resolution": "lower resolution",
    "crop_8pct": "cropped 8% per side",
}
RATE_COLUMNS = {
    "roc_auc": st.column_config.NumberColumn("ROC AUC", format="%.3f"),
    "accuracy": st.column_config.NumberColumn("accuracy", format="%.3f"),
    "sensitivity": st.column_config.NumberColumn("sensitivity", format="%.3f"),
    "specificity": st.column_config.NumberColumn("specificity", format="%.3f"),
    "mean_probability_shift": st.column_config.NumberColumn("mean probability shift", format="%.3f"),
    "ece": st.column_config.NumberColumn("ECE", format="%.3f", help="Expected calibration error (10 bins)"),
}


def n_out_of_fold(art: Artifacts) -> tuple[int, int, int]:
    """Films in the out-of-fold figures, the pool the Dataset page counts, and the hard normals between them."""
    counts = art.metadata.training.get("n_images", {})
    return art.test_metrics["n"], counts.get("pool", art.test_metrics["n"]), counts.get("hard_normals", 0)


def _rates(m: dict) -> dict:
    return {k: m.get(k) for k in ("accuracy", "roc_auc", "sensitivity", "specificity")} | {"ece": m.get("ece")}


def metrics_at_default(art: Artifacts) -> None:
    tm = art.test_metrics
    default = art.metadata.operating_points[art.metadata.default_operating_point]
    st.markdown(
        f"**On the training pool (out of fold) at the default operating point** ({default['label'].split(' (')[0]}, "
        f"threshold {tm['threshold']:.1%}): optimistic beside the held-out figures above."
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
    st.markdown("**Threshold explorer, on the training pool's out-of-fold films** (optimistic)")
    c1, c2 = st.columns([2, 1])
    with c2:
        # in percent to one decimal, so the default point is exactly the 64.8% the other pages show
        percent = st.slider(
            "Threshold", 1.0, 99.0, float(round(default_threshold * 100, 1)), 0.1, format="%.1f%%", key="threshold"
        )
        threshold = default_threshold if abs(percent - default_threshold * 100) < 0.05 else percent / 100
        prevalence = st.number_input(
            "Prevalence of pneumonia in your population",
            0.01,
            0.99,
            0.10,
            0.01,
            key="prevalence",
            help="Share of the children you scan who have pneumonia; PPV and NPV depend on it.",
        )
    fig, r = charts.confusion_matrix_figure(y, p, threshold)
    ppv_at, npv_at = predictive_values_at_prevalence(r["sensitivity"], r["specificity"], prevalence)
    with c1:
        st.plotly_chart(fig, width="stretch")
    with c2:
        for label, k, n in (
            ("Sensitivity", r["tp"], r["tp"] + r["fn"]),
            ("Specificity", r["tn"], r["tn"] + r["fp"]),
            ("PPV (these films)", r["tp"], r["tp"] + r["fp"]),
            ("NPV (these films)", r["tn"], r["tn"] + r["fn"]),
        ):
            st.metric(label, f"{k / n:.1%}" if n else "no films")
            st.caption(_interval_words(k, n))
        st.metric(f"PPV / NPV at {prevalence:.0%} prevalence", f"{ppv_at:.1%} / {npv_at:.1%}")
        st.caption(held_out_at(threshold, prevalence))
    n = r["fn"] + r["tp"] + r["fp"] + r["tn"]
    share = (r["tp"] + r["fn"]) / max(n, 1)
    st.caption(
        f"At {threshold:.1%} the model misses {r['fn']} of {r['fn'] + r['tp']} pneumonia films and flags "
        f"{r['fp']} of {r['fp'] + r['tn']} normal ones: the {n:,} out-of-fold films. The Dataset page's "
        f"{n + HARD_NORMALS:,} also count the {HARD_NORMALS} hard normals, reported apart. Intervals: Wilson 95%. "
        f"PPV and NPV 'these films' hold at this pool's pneumonia share ({share:.0%}); at your prevalence they are "
        "the last figure."
    )


def held_out_at(threshold: float, prevalence: float) -> str:
    """At a shipped point, the held-out split's PPV and NPV beside the training pool's; elsewhere, why not."""
    found = validation_views.evidence(resources.model_artifacts())
    point = next((c for c in (found.points.values() if found else []) if abs(c.threshold - threshold) < 5e-4), None)
    if point is None:
        return (
            "Training pool's figures (optimistic). The held-out split was measured at the shipped operating points "
            "only: see the board summary at the top."
        )
    pv = point.predictive_values(prevalence)
    return (
        f"Training pool's figures (optimistic). At this shipped point the held-out split gives PPV {pv['ppv']:.1%} "
        f"({pv['ppv_low']:.1%}-{pv['ppv_high']:.1%}) and NPV {pv['npv']:.1%}: expect those."
    )


def _interval_words(k: int, n: int) -> str:
    if n == 0:
        return "no films at this threshold"
    lo, hi = wilson(k, n)
    return f"95% CI {lo * 100:.1f}-{hi * 100:.1f}% ({k:,} of {n:,}, Wilson)"


def curves_and_calibration(art: Artifacts, y: np.ndarray, p: np.ndarray) -> None:
    tm, ops = art.test_metrics, art.metadata.operating_points
    c1, c2 = st.columns(2)
    with c1:
        widgets.chart_with_answer(charts.roc_figure(y, p, ops))
    with c2:
        widgets.chart_with_answer(charts.pr_figure(y, p, ops))
    st.markdown("**Operating points on the training pool** (chosen there, with re-framed copies; optimistic):")
    widgets.operating_point_table(ops, tm["by_operating_point"])
    widgets.chart_with_answer(charts.subtype_recall_figure(tm["per_subtype"]))
    widgets.chart_with_answer(charts.history_figure(art.history))


def stress_test(tm: dict) -> None:
    rows = [{"change": STRESS_WORDS.get(k, k.replace("_", " ")), **v} for k, v in tm["stress"].items()]
    st.dataframe(rows, hide_index=True, column_config=RATE_COLUMNS)
    worst = min(tm["stress"].items(), key=lambda kv: kv[1]["specificity"])
    framing = min(
        ((k, m) for k, m in tm["reframed"].items() if k != "plain"), key=lambda kv: kv[1]["specificity"], default=None
    )
    harder = (
        f" Framing is harder still: {charts.FRAME_WORDS.get(framing[0], framing[0])}, specificity "
        f"{framing[1]['specificity']:.1%} (re-framing section above)."
        if framing and framing[1]["specificity"] < worst[1]["specificity"]
        else ""
    )
    sample = stress_sample(tm)
    films = (
        f"{sum(sample)} out-of-fold films ({sample[0]} pneumonia, {sample[1]} normal)"
        if sample
        else "out-of-fold films"
    )
    st.caption(
        f"On a random sample of {films}, each changed as shown; read each row against "
        "'no change' (the same sample as taken), which differs from the headline figures above (all "
        f"{tm['n']:,} films) by sampling alone. Of these changes the hardest for specificity is "
        f"{STRESS_WORDS.get(worst[0], worst[0])} ({worst[1]['specificity']:.1%}).{harder}"
    )


def failure_gallery(failures: dict, n_hard_normals: int, model_version: str) -> None:
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
                caption=f"{failures['kind'][i]}: probability {failures['probability'][i]:.1%} ({failures['files'][i]})",
            )
    st.caption(
        "False positives are normal images the model scored highest; false negatives are pneumonia images it "
        "scored lowest. "
        + (
            heatmap_sentence(method, n_hard_normals, model_version)
            or "Heatmaps show what drove the score, not where disease is."
        )
    )


def beside_published(art: Artifacts, external: dict | None) -> None:
    st.subheader("Beside the published results")
    table = comparison_table(art.test_metrics, external)
    shown = table[["source", "accuracy", "roc_auc", "sensitivity", "specificity", "split"]].copy()
    for column in ("accuracy", "roc_auc", "sensitivity", "specificity"):
        shown[column] = [f"{v:.3f}" if v is not None and v == v else "not published" for v in shown[column]]
    st.markdown(markdown_table(shown.rename(columns={"roc_auc": "ROC AUC"}).to_dict("records")))
    pending = "" if external is not None else " This version's held-out row is pending."
    st.caption(
        "The published figures are on the data set's own 624-image test split, like this model's held-out row; "
        "the training-pool row is out of fold and not comparable with them." + pending
    )


st.title("Model performance")
view = st.radio(
    "Show", ["Shipped model", "Your data"], horizontal=True, key="performance_view", label_visibility="collapsed"
)
if view == "Your data":
    your_data_view()
    st.stop()
art = resources.model_artifacts()
external = resources.external_test()
HARD_NORMALS = n_out_of_fold(art)[2]
y, p = art.predictions["label"].to_numpy(), art.predictions["probability"].to_numpy()
validation_views.board_summary(art, key="performance_prevalence")
if external is not None:
    st.markdown(expectation_words(external, art.test_metrics))
validation_views.held_out_calibration(art)
validation_views.subgroup_section(art)
beside_published(art, external)
st.subheader("Technical detail")
with st.expander("On the training pool (out of fold): metrics, threshold explorer, curves, operating points"):
    st.markdown(validation_views.VALIDATION_WORDS)
    metrics_at_default(art)
    # the metadata is the one source of the operating points (test_metrics.json records the same threshold)
    threshold_explorer(y, p, art.metadata.operating_points[art.metadata.default_operating_point]["threshold"])
    curves_and_calibration(art, y, p)
with st.expander("Re-framed films: the same films cropped, narrowed and zoomed out"):
    validation_views.reframed_section(art.test_metrics)
with st.expander("Bacterial or viral (secondary)"):
    validation_views.subtype_section(art)
with st.expander("Stress test: pixel-level changes to the same films"):
    stress_test(art.test_metrics)
with st.expander("Most confident mistakes, with heatmaps"):
    failure_gallery(art.failures, HARD_NORMALS, art.metadata.version)
if art.experiments is not None:
    with st.expander("Experiment log (models/experiments.csv)"):
        st.dataframe(art.experiments, hide_index=True)
