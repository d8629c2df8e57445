"""Monitoring after go-live, for site administrators: reads per week, reader agreement with the AI by
result, the share the input check refused, and drift of the probabilities from the held-out test split's,
with an alert; exported for the board (pneumonia.insight.monitoring)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import streamlit as st

from pages import identity, resources, widgets
from pneumonia.audit import AuditUnavailable
from pneumonia.insight import charts, monitoring
from pneumonia.insight.external_test import held_out, markdown_table
from pneumonia.insight.site_validation import read_results


def reference() -> tuple[tuple, str]:
    """The held-out split's distributions for this version, else the training pool's, named as what they are."""
    art = resources.model_artifacts()
    found = held_out(resources.MODELS_DIR, art.metadata)
    if found is not None and found.bins:
        return monitoring.reference_from_held_out(found), "held-out test split"
    return monitoring.reference_from_predictions(art.predictions), "training pool (held-out measurement pending)"


def period() -> tuple:
    today = datetime.now(UTC).date()
    chosen = st.date_input("Period (UTC)", (today - timedelta(weeks=12), today), key="monitoring_period")
    return chosen if isinstance(chosen, tuple) and len(chosen) == 2 else (chosen[0], chosen[0])


def scored_results() -> pd.DataFrame | None:
    files = st.file_uploader(
        "Results files of `python -m pneumonia.score` for this period (for the share the input check refused)",
        type=["parquet"],
        accept_multiple_files=True,
        key="monitoring_results",
    )
    if not files:
        return None
    try:
        return pd.concat([read_results(f.getvalue()) for f in files], ignore_index=True)
    except (ValueError, OSError) as err:
        st.error(f"A results file cannot be read: {err}")
        return None


def show(m: monitoring.Monitoring) -> None:
    if m.weekly.empty:
        st.info(f"No reads recorded from {m.first_day} to {m.last_day}.")
        return
    widgets.chart_with_answer(charts.weekly_reads_figure(m.weekly))
    st.markdown("**Reader agreement with the AI, by its result** (this model version):")
    rows = [
        {"AI result": r["AI result"], "reads": r["reads"], "reader agreed": r["reader agreed"]}
        | {"share (95% CI)": f"{r['share']:.1%} ({r['95% CI low']:.1%}-{r['95% CI high']:.1%})" if r["reads"] else "-"}
        for _, r in m.agreement.iterrows()
    ]
    st.markdown(markdown_table(rows))
    if m.refused:
        r = m.refused
        st.markdown(
            f"**Refused by the input check:** {r['refused']} of {r['files']} files ({r['share']:.1%}, 95% CI "
            f"{r['low']:.1%}-{r['high']:.1%}); unreadable {r['unreadable']}."
        )
    else:
        st.caption("Upload the period's results files above for the share the input check refused.")
    words = monitoring.drift_words(m.drift)
    {"alert": st.error, "watch": st.warning, "stable": st.success}.get(m.drift["state"], st.info)(words)
    if m.drift["n"]:
        widgets.chart_with_answer(charts.drift_figure(m.drift))


st.title("Monitoring after go-live")
if not identity.has_role(identity.Role.ADMIN):
    st.warning("Monitoring is for site administrators. Ask the administrator if you need it.")
    st.stop()
st.caption("From the audit trail (reads, agreement, probabilities) and the site's scored results (refusals).")
first, last = period()
results = scored_results()
try:
    audit = resources.audit_log().between(first, last)
except (AuditUnavailable, ValueError) as err:
    st.error(str(err))
    st.stop()
ref, ref_name = reference()
report = monitoring.monitor(audit, resources.model_version(), ref, ref_name, results, (str(first), str(last)))
show(report)
c1, c2 = st.columns(2)
c1.download_button("Export for the board (CSV)", monitoring.monitoring_csv(report), "monitoring.csv", "text/csv")
site = widgets.site_accountability()["owner"]
pdf = monitoring.monitoring_pdf(report, "" if site == widgets.NOT_SET else site)
c2.download_button("Export for the board (PDF)", pdf, "monitoring.pdf", "application/pdf")
