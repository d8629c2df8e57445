"""View pieces for the shipped model's evidence, shared by the performance page and the model card:
the board summary (held-out figures first), provenance, calibration where it was not fitted, subgroups,
the version history, accountability, the re-framed figures and the bacterial-vs-viral results."""

import pandas as pd
import streamlit as st

from pages import resources, widgets
from pneumonia.insight import charts
from pneumonia.insight.artifacts import Artifacts, subgroup_rows, version_history
from pneumonia.insight.external_test import (
    SPLIT_WORDS,
    HeldOut,
    alerts_in_words,
    held_out,
    held_out_rows,
    markdown_table,
)

PENDING = "Held-out measurement pending for this version"
REGULATORY = (
    "**Regulatory status:** a research tool, not a cleared or CE-marked medical device; no regulator has "
    "reviewed it. Use it only as decision support under a local governance decision, with a qualified reader "
    "making every diagnosis."
)
PURPOSE = (
    "An aid for a qualified reader of children's frontal chest x-rays (ages 1-5): the probability of pneumonia "
    "and a heatmap. Not for adults, lateral views, use without a reader, or prescribing."
)

VALIDATION_WORDS = (
    "**The training pool's figures** come from out-of-fold validation: every image of the pooled training data "
    "was scored by ensemble members that never saw that child (5 folds, grouped by patient), plain and "
    "re-framed (cropped, narrowed, zoomed out), plus the *hard normals* that the first model got wrong "
    "when cropped and that no member trained on (they also helped fit the calibration and place the "
    "operating points). Each image is scored by the one or two members that held it out, while the "
    "shipped model averages all eight, so these figures describe a smaller ensemble. These are figures **on "
    "the training pool**, optimistic beside the held-out test split's; a new site should measure its own "
    "figures (Performance > Your data)."
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
        f"On {sub['n']:,} pneumonia images of the training pool. The labels come from file names and are noisy. "
        + held_out_subtype_words(art, sub)
        + " This estimate is shown only for images called pneumonia, beside and never instead of that call, "
        "and it is **no basis for prescribing**."
    )


def held_out_subtype_words(art: Artifacts, sub: dict) -> str:
    """The held-out and training-pool bacterial-vs-viral accuracies side by side, and why they differ."""
    found = evidence(art)
    held = (found.figures.get("bacterial_vs_viral") if found else None) or {}
    if not held:
        return f"Accuracy {sub['accuracy']:.1%} on the training pool; the held-out figure is not measured."
    return (
        f"On the held-out split it was right on {held['accuracy']:.1%} of {held['n']} pneumonias against "
        f"{sub['accuracy']:.1%} on the training pool: an unexplained gap, far wider than either interval. Possible "
        "reasons (not tested): the held-out split's labels may be cleaner, and each training-pool film is scored by "
        "one or two members rather than all eight. Treat the estimate as unsettled."
    )


def spread_words(tm: dict) -> str:
    spread = tm.get("ensemble_spread") or {}
    if not spread:
        return ""
    return (
        f"The members' pneumonia logits differ by a median standard deviation of {spread['median_logit_std']:.2f} "
        f"(95th percentile {spread['p95_logit_std']:.2f}); the review page flags images where they disagree."
    )


def evidence(art: Artifacts) -> HeldOut | None:
    """This version's held-out figures (None while pending), from the model folder."""
    return held_out(art.model_dir or resources.MODELS_DIR, art.metadata)


def previous_held_out(art: Artifacts) -> HeldOut | None:
    """The newest other version's held-out figures with counts per operating point, for a pending version."""
    history = version_history(art.model_dir or resources.MODELS_DIR, art.metadata, art.test_metrics)
    for row in history:
        if not row.get("current") and row["held_out"] is not None and row["held_out"].points:
            return row["held_out"]
    return None


def _prevalence(key: str) -> float:
    percent = st.number_input(
        "Pneumonia prevalence among the children you x-ray (%)",
        1.0,
        99.0,
        10.0,
        1.0,
        format="%.0f",
        key=key,
        help="PPV and NPV depend on it: at a low prevalence most alerts are false even with a good specificity.",
    )
    return percent / 100


def held_out_table(found: HeldOut, art: Artifacts, prevalence: float) -> None:
    by_point = art.test_metrics.get("by_operating_point")
    st.markdown(markdown_table(held_out_rows(found, art.metadata.operating_points, prevalence, by_point)))
    st.caption(
        f"Wilson 95% intervals and counts on the {found.n} held-out films; PPV (with the range their intervals give) "
        "and NPV computed from them at the prevalence you set. Last column: the training pool's out-of-fold "
        "figures, optimistic beside these."
    )


def board_summary(art: Artifacts, key: str) -> None:
    """One screen for a governance board: purpose, held-out figures at every operating point with
    intervals, PPV/NPV at a prevalence the reader sets, where the films come from, regulatory status."""
    meta, found = art.metadata, evidence(art)
    st.markdown(
        f"**Model {meta.version}** (released {meta.created[:10]}). {PURPOSE} **A research tool, not a cleared "
        "medical device.**"
    )
    if found is None or not found.points:
        pending_summary(art, key)
    else:
        c1, c2 = st.columns([1, 3], vertical_alignment="bottom")
        with c1:
            prevalence = _prevalence(key)
        with c2:
            st.markdown(
                f"**On {found.n} children the model never saw** (the same hospital's held-out test split; no "
                f"second site), AUC {found.roc_auc:.3f}. "
                + alerts_in_words(found, meta.default_operating_point, prevalence)
            )
        held_out_table(found, art, prevalence)
    st.caption(REGULATORY.replace("**", ""))


def pending_summary(art: Artifacts, key: str) -> None:
    meta = art.metadata
    st.warning(
        f"**{PENDING}** ({meta.version}): not yet measured on children it never saw; the training pool's figures "
        "are optimistic and no substitute. Below: the previous version's held-out figures (that version's, not "
        "this one's)."
    )
    previous = previous_held_out(art)
    if previous is None:
        return
    st.markdown(f"**Previous version {previous.version}** on its {previous.n} held-out children:")
    table = st.container()  # filled once the prevalence below is known: the table stays on the first screen
    prevalence = _prevalence(key)
    # point names as this version words them; the training-pool column is this version's, so it is left out
    names = {name: {"label": point.get("label", "")} for name, point in meta.operating_points.items()}
    rows = [
        {k: v for k, v in r.items() if "training pool" not in k} for r in held_out_rows(previous, names, prevalence)
    ]
    table.markdown(markdown_table(rows))


def provenance_section(art: Artifacts) -> None:
    counts = art.metadata.training.get("n_images", {})
    st.markdown(f"""
### Where each figure's films come from
- **All films:** Guangzhou Women and Children's Medical Center, China; children aged 1 to 5; frontal films
  (anterior-posterior, as the data set's paper describes them) taken in routine care. Kermany D. S. et al., *Cell*
  172(5), 2018; CC BY 4.0. **There is no second site**: no figure here comes from another hospital.
- **Held-out figures:** {SPLIT_WORDS}. This project never trained, calibrated or chose thresholds on them; they
  are not in its copy of the training data, and each model version is scored on them once, after it is
  released (until then its figures are pending). The split was made by
  the data set's authors; whether any child appears in both splits was not verified here.
- **Training-pool figures ("out of fold"):** the {counts.get("pool", art.test_metrics["n"]):,} training and validation
  films, each scored by ensemble members that never saw that child; they helped choose the calibration and the
  operating points, so they are optimistic.
- **Who labelled them and how:** per the paper, low-quality or unreadable films were removed first; two expert
  physicians graded each diagnosis (normal, bacterial or viral pneumonia) and a third expert checked the
  evaluation set. That is the reference standard: a reading of the film, not a culture or clinical outcome;
  the paper reports no agreement figure between the graders.
- **Collection period:** the paper gives none. Age, sex, AP/PA projection and equipment are not in the data,
  so no result can be broken down by them.
""")


def held_out_calibration(art: Artifacts) -> None:
    """The reliability diagram where calibration was fitted beside the held-out split's, with films per bin."""
    st.subheader("Calibration: where it was fitted, and where it was not")
    found = evidence(art)
    c1, c2 = st.columns(2)
    with c1:
        widgets.chart_with_answer(
            charts.reliability_figure(art.test_metrics["calibration"]["validation"]),
            "On the training pool, where the calibration was fitted: it looks better than it is.",
        )
    with c2:
        if found is not None and found.bins:
            widgets.chart_with_answer(charts.held_out_reliability_figure(found.reliability_curve(), found.ece, found.n))
        else:
            st.info(f"{PENDING}: no held-out reliability diagram yet.")
    shifted = art.test_metrics["calibration"].get("shifted")
    if shifted:
        widgets.chart_with_answer(
            charts.shifted_reliability_figure(shifted),
            "What the calibration was fitted to carry: tightly framed films and hard normals, which are what made "
            "the held-out normals harder than the training pool's.",
        )


def subgroup_section(art: Artifacts) -> None:
    st.subheader("Results by subgroup")
    found = evidence(art)
    sub = (found.figures.get("bacterial_vs_viral") if found else None) or {}
    if sub.get("correct") is not None:
        from pneumonia.insight.external_test import percent_with_interval, wilson

        told = percent_with_interval(sub["correct"] / sub["n"], *wilson(sub["correct"], sub["n"]))
        pool = art.test_metrics.get("subtype") or {}
        st.markdown(
            f"**Held-out test split, bacterial vs viral:** told apart on {told} of its {sub['n']} pneumonias "
            f"({sub['correct']} of {sub['n']})"
            + (
                f", against {pool['accuracy']:.1%} on the training pool (why: Model performance > Technical "
                "detail > Bacterial or viral)"
                if pool
                else ""
            )
            + ". The held-out check records no other subgroup yet; those below are the training pool's."
        )
    table = subgroup_rows(art, art.test_metrics["threshold"])
    weakest = table.nsmallest(2, "value")
    st.markdown(
        "**Training pool, weakest subgroups:** "
        + "; ".join(f"{r['group']}, {r['measure']} {_ci_words(r)} ({r['count']})" for _, r in weakest.iterrows())
        + ". Not in the data, so not broken down: age, sex, AP or PA projection, equipment, site."
    )
    with st.expander(f"All {len(table)} subgroup results with counts and intervals"):
        st.markdown(markdown_table(_subgroup_words(table)))
        st.caption("Training pool, out of fold, at the default operating point; Wilson 95% intervals.")


def _ci_words(row) -> str:
    from pneumonia.insight.external_test import percent_with_interval

    return percent_with_interval(row["value"], row["95% CI low"], row["95% CI high"])


def _subgroup_words(table: pd.DataFrame) -> list[dict]:
    return [
        {
            "group": r["group"],
            "measure": r["measure"],
            "result (95% CI)": _ci_words(r),
            "films": r["count"],
        }
        for _, r in table.iterrows()
    ]


def _figures_words(figures: dict | None) -> str:
    if not figures:
        return "not recorded"
    parts = [f"AUC {figures['roc_auc']:.3f}"] if figures.get("roc_auc") is not None else []
    parts += [f"{k} {figures[k]:.1%}" for k in ("sensitivity", "specificity") if figures.get(k) is not None]
    return ", ".join(parts)


def _held_out_words(found: HeldOut | None, default_point: str) -> str:
    if found is None:
        return "pending"
    point = found.point(default_point)
    words = f"{found.n} children, AUC {found.roc_auc:.3f}" if found.roc_auc is not None else f"{found.n} children"
    if point is not None:
        words += f", sensitivity {point.sensitivity:.1%}, specificity {point.specificity:.1%} at {default_point}"
    return words + (f" ({found.figures['note']})" if found.figures.get("note") else "")


def version_history_section(art: Artifacts) -> None:
    st.subheader("Version history")
    rows = []
    for v in version_history(art.model_dir or resources.MODELS_DIR, art.metadata, art.test_metrics):
        pool = v.get("training_pool") or {}
        rows.append(
            {
                "version": v["version"] + (" (in use)" if v.get("current") else ""),
                "released": v.get("released", ""),
                "what changed": v.get("changed") or "not yet described in models/versions.json",
                "training pool": f"{_figures_words(pool)} ({pool.get('measured_on', 'not recorded')})",
                "held-out test split": _held_out_words(v["held_out"], art.metadata.default_operating_point),
            }
        )
    st.markdown(markdown_table(rows))
    st.caption("From models/versions.json and models/external_test.json; a new version is listed when it ships.")


def accountability_section() -> None:
    site = widgets.site_accountability()
    st.markdown(f"""
### Accountability
{widgets.accountability_lines(site)}

- **Developer:** the pneumonia x-ray review project (this repository); the deploying site named above answers
  for its use. Report a wrong result with the read's comment on the review page (it goes into the audit trail)
  and through the route above; the site administrator reviews them on the Monitoring page.
- **Licence:** the data set is CC BY 4.0 (Kermany et al.); the repository carries no software licence file yet, so
  reuse outside the project needs the developers' permission.
- **How to cite:** "Pneumonia chest x-ray review, model {resources.model_version()}", with Kermany D. S. et al.,
  Identifying medical diagnoses and treatable diseases by image-based deep learning, *Cell* 172(5):1122-1131, 2018.
- {REGULATORY}
""")


CHECKLIST = [
    ("Intended use, users, not-intended uses (Mitchell; TRIPOD-AI)", "Board summary; Model card: Intended use", "done"),
    (
        "Developer, owner, contact, licence, citation (Mitchell)",
        "Model card: Accountability; every page's sidebar",
        "done",
    ),
    ("Regulatory status (DECIDE-AI)", "Board summary; Accountability", "done: a research tool, not a device"),
    (
        "Data source, inclusion criteria, collection dates (CLAIM; TRIPOD-AI)",
        "Where each figure's films come from",
        "done; the paper gives no collection dates",
    ),
    (
        "Reference standard, who labelled, agreement (CLAIM)",
        "Where each figure's films come from",
        "partly: two graders and a checker; no agreement figure exists",
    ),
    (
        "Independent test set, how kept apart (CLAIM; TRIPOD-AI)",
        "Board summary; provenance",
        "same hospital, other children; not a second site",
    ),
    (
        "Performance with intervals at each operating point (CLAIM; TRIPOD-AI)",
        "Board summary",
        "done (Wilson)",
    ),
    (
        "Calibration on independent data (TRIPOD-AI)",
        "Calibration: where it was fitted, and where it was not",
        "done",
    ),
    ("Subgroups (CLAIM; TRIPOD-AI)", "Results by subgroup", "partly: no age, sex, projection or equipment"),
    ("External validation at another site (TRIPOD-AI)", "-", "NOT DONE: no second site; Your data runs a local one"),
    ("Comparison with radiologists, reader study (CLAIM; DECIDE-AI)", "-", "NOT DONE: none exists"),
    (
        "Human-AI workflow, automation bias, error handling (DECIDE-AI)",
        "Model card: Using it safely",
        "described, not studied",
    ),
    ("Post-deployment monitoring and drift (DECIDE-AI)", "Monitoring page (site administrators)", "done"),
    ("Change log, version history (Mitchell)", "Version history", "done"),
]


def checklist_section() -> None:
    st.subheader("Checklist: where each reporting item is answered")
    rows = [{"item": item, "where": where, "status": status} for item, where, status in CHECKLIST]
    st.markdown(markdown_table(rows))
    st.caption(
        "Items from model cards (Mitchell et al. 2019), CLAIM (2024 update), TRIPOD-AI (2024) and DECIDE-AI (2022). "
        "Not done, in words: there is no reader study comparing the model with radiologists, and no second site."
    )


SAFE_USE = """
### Using it safely: reader, errors, monitoring
- **Workflow:** the reader looks at the film first, then at the AI's probability and heatmap, and records whether
  they agree; the AI never reports alone.
- **Automation bias:** readers tend to follow a confident machine. At the default point about half of the
  alerts at 10% prevalence are false (board summary), and a "normal" result still misses some pneumonias: read
  every film as you would without it.
- **Errors:** disagreeing with the AI is recorded with the read; report a wrong result through the site's problem
  route (sidebar). The site administrator reviews disagreements and refusals on the Monitoring page.
- **After go-live:** the Monitoring page shows reads per week, agreement by result, the share the input check
  refused and whether the probabilities drift from the held-out split's, with an alert; export it for the board.
"""


def top_of_scale_words(art: Artifacts) -> str:
    """What a probability of 90% or more can claim: pneumonia's share among such films on the shifted
    out-of-fold set and on the held-out split (this version's, or the previous version's while pending)."""
    shifted = (art.test_metrics.get("calibration") or {}).get("shifted") or {}
    top = next((b for b in shifted.get("bins", []) if b["bin"] == "0.9-1.0"), None)
    words = []
    if top:
        words.append(f"{top['observed']:.1%} of such training-pool films had pneumonia (out of fold, re-framed)")
    found = evidence(art)
    which = "this version" if found is not None and found.bins else None
    if which is None:
        found = previous_held_out(art)
        which = f"the previous version {found.version}" if found is not None else None
    high = [b for b in (found.bins if found is not None else []) if b.get("n") and b["mean_predicted"] >= 0.9]
    if high:
        n, k = sum(b["n"] for b in high), sum(b["positives"] for b in high)
        words.append(f"{k / n:.1%} ({k} of {n}) on the held-out children, for {which}")
    return ("Films scored 90% or more: " + "; ".join(words) + ".") if words else ""
