"""The performance page's "your data" view: a site's own results (uploaded, or scored from a folder
here), its ROC with CIs, calibration, the shipped operating points on its images, thresholds chosen
again, PPV/NPV at its prevalence, the validation report, and saving a site operating point."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import streamlit as st

from pages import identity, resources, widgets
from pages.identity import Role
from pneumonia.audit import AuditUnavailable
from pneumonia.core.literal import markdown_literal
from pneumonia.insight import site_report
from pneumonia.insight.external_test import held_out, markdown_table
from pneumonia.insight.site_validation import SiteValidation, read_results, validate
from pneumonia.serving import site_points
from pneumonia.serving.archive.run import score_archive

MAX_FOLDER_FILES = 2000  # larger archives: python -m pneumonia.score
_RESULTS = "site_results"


@st.cache_data(max_entries=4, show_spinner="Computing your site's figures...")
def site_validation(data: bytes) -> SiteValidation:
    """The site's figures, computed once per results file; a prevalence change only re-weighs PPV and NPV
    (:meth:`SiteValidation.at_prevalence`)."""
    meta = resources.model_artifacts().metadata
    found = held_out(resources.MODELS_DIR, meta)
    reference = {n: (c.sensitivity, c.specificity) for n, c in found.points.items()} if found and found.points else None
    name = "held-out test split" if reference else "training pool, held-out pending"
    return validate(
        read_results(data),
        meta.operating_points,
        meta.default_operating_point,
        meta.version,
        reference=reference,
        reference_name=name,
    )


class TooManyFiles(ValueError):
    pass


def score_folder(folder: str) -> bytes:
    """Score a small folder on this server with the loaded model; the results file's bytes."""
    bar = st.progress(0.0, text="Finding the files...")
    counts = {"done": 0, "total": 0}

    def on_start(pending: int, _already: int) -> None:
        if pending > MAX_FOLDER_FILES:
            raise TooManyFiles(
                f"The folder has {pending} images; score more than {MAX_FOLDER_FILES} with the command "
                "`python -m pneumonia.score FOLDER --out results.parquet` and upload the results here."
            )
        counts["total"] = pending

    def progress(n: int) -> None:
        counts["done"] += n
        bar.progress(counts["done"] / max(counts["total"], 1), text=f"Scored {counts['done']} of {counts['total']}")

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "results.parquet"
        score_archive(folder, out, classifier=resources.classifier(), on_start=on_start, progress=progress)
        bar.empty()
        return out.read_bytes()


def load_results() -> bytes | None:
    """The results the reader gave: an uploaded results file or a folder scored here."""
    how = st.radio(
        "Your results", ["Upload a results file", "Score a folder on this server"], horizontal=True, key="site_source"
    )
    if how == "Upload a results file":
        upload = st.file_uploader(
            "Results file of `python -m pneumonia.score` (.parquet)", type=["parquet"], key="site_upload"
        )
        return upload.getvalue() if upload else None
    folder = st.text_input(
        f"Folder on this server (up to {MAX_FOLDER_FILES} images; NORMAL/ and PNEUMONIA/ sub-folders give the truth)",
        key="site_folder",
    )
    if st.button("Score this folder", key="site_run") and folder:
        # asked when it acts: the role, then a folder under the roots the server's configuration names
        refused = identity.require_role(Role.ADMIN, "score a folder on this server")
        allowed, why = (None, refused) if refused else identity.server_folder(folder, identity.server_folder_roots())
        if allowed is None:
            st.error(why)
            return st.session_state.get(_RESULTS)
        try:
            st.session_state[_RESULTS] = score_folder(str(allowed))
        except (TooManyFiles, ValueError, OSError) as err:
            st.error(str(err))
    return st.session_state.get(_RESULTS)


def small_sample_banner(sv: SiteValidation) -> None:
    """Above every figure from fewer films than a decision needs."""
    words = site_report.small_sample_words(sv)
    if words:
        st.warning(words)


def counts_row(sv: SiteValidation) -> None:
    c = sv.counts
    cols = st.columns(5)
    cols[0].metric("Files", c["files"])
    cols[1].metric("Scored", c["scored"])
    cols[2].metric("Refused by the gate", c["refused"])
    cols[3].metric("Unreadable", c["unreadable"])
    cols[4].metric("Pneumonia / normal", f"{c['pneumonia']} / {c['normal']}", help="Labelled images of each class")


def operating_point_tables(sv: SiteValidation) -> None:
    st.subheader("The shipped operating points on your images")
    small_sample_banner(sv)
    # a Markdown table wraps at 1280 px instead of losing its PPV and NPV columns
    shipped = site_report.point_table(sv.shipped, shipped=True, reference_name=sv.reference_name)
    st.markdown(markdown_table(shipped.to_dict("records")))
    st.caption(
        f"Beside yours: the {sv.reference_name}'s figures. Yours carry 95% intervals (patient bootstrap, widened "
        f"to at least the Wilson interval of the counts). PPV and NPV at {sv.prevalence:.1%} prevalence."
    )
    if sv.enough_to_adopt:
        st.subheader("Thresholds chosen again on your images")
    else:
        st.subheader("Thresholds chosen again on your images: NOT FOR CLINICAL USE")
        st.error(
            f"**Not for clinical use.** {site_points.too_few(sv.counts['pneumonia'], sv.counts['normal'])} "
            "From this few, the thresholds below are unsettled (a few images decide them) and the review page "
            "never offers them; they are shown only to see how the model does on your images."
        )
    st.markdown(markdown_table(site_report.point_table(sv.rechosen, shipped=False).to_dict("records")))
    st.caption(
        "Chosen and measured on the same images, so they flatter: confirm them on new images before relying on them."
    )


def save_site_point(sv: SiteValidation) -> None:
    """Adopt a re-chosen threshold as a named site operating point, offered on the review page; only from
    enough images of each class (pneumonia.serving.site_points.MIN_PER_CLASS)."""
    if sv.model_version != resources.model_version():
        st.warning(f"These results come from model {sv.model_version}; site points can be saved for the model in use.")
        return
    if not sv.enough_to_adopt:
        st.info(
            f"Saving a site operating point needs at least {site_points.MIN_PER_CLASS} labelled images of each class "
            f"(here {sv.counts['pneumonia']} pneumonia and {sv.counts['normal']} normal)."
        )
        return
    rows = {r["operating point"]: r for _, r in sv.rechosen.iterrows()}
    with st.form("site_point_form"):
        st.markdown("**Adopt a threshold for your site** (the review page then offers it)")
        base = st.selectbox("Threshold chosen again on your images", list(rows), key="site_point_from")
        name = st.text_input("Name, e.g. 'Our ED, high sensitivity'", key="site_point_name")
        if st.form_submit_button("Save site operating point"):
            row = rows[base]
            refused = identity.require_role(Role.ADMIN, "save a site operating point")  # asked when it acts
            try:
                if refused:
                    raise ValueError(refused)
                site_points.save_site_point(
                    name,
                    float(row["threshold"]),
                    model_version=sv.model_version,
                    sensitivity=float(row["sensitivity"]),
                    specificity=float(row["specificity"]),
                    n_pneumonia=sv.counts["pneumonia"],
                    n_normal=sv.counts["normal"],
                    provenance=provenance(sv.counts["files"]),
                    audit=resources.audit_log(),
                )
            except (ValueError, AuditUnavailable) as err:
                st.error(str(err))
            else:
                st.success(
                    f"Saved 'Site: {markdown_literal(name.strip())}' (threshold {row['threshold']:.3f}); "
                    "the review page offers it."
                )
    retire_site_points(sv.model_version)


def provenance(rows: int) -> site_points.Provenance:
    """Who is saving or retiring now, and from which results (their SHA-256 and row count)."""
    who = identity.current_reader()
    sha = st.session_state.get("site_results_sha256", site_points.UNKNOWN_RESULTS)
    return site_points.Provenance(who.name or "unknown", who.subject, who.verified, sha, int(rows))


def retire_site_points(model_version: str) -> None:
    """The site points offered for this model, with who saved them; an administrator retires one here."""
    offered = [p for p in site_points.saved_points(model_version) if not p.get("retired")]
    if not offered or not identity.has_role(Role.ADMIN):
        return
    with st.expander("Site operating points offered now (retire one)"):
        for point in offered:
            by = point.get("saved_by", {}).get("name", "unknown")
            st.markdown(
                f"**{markdown_literal(point['name'])}**: threshold {point['threshold']:.3f}, saved by "
                f"{markdown_literal(by)} on {point.get('created', '?')[:10]}"
            )
            if st.button("Retire", key=f"retire_{point['key']}"):
                refused = identity.require_role(Role.ADMIN, "retire a site operating point")  # asked when it acts
                try:
                    if refused:
                        raise ValueError(refused)
                    site_points.retire_site_point(
                        point["key"], model_version=model_version, provenance=provenance(0), audit=resources.audit_log()
                    )
                except (ValueError, AuditUnavailable) as err:
                    st.error(str(err))
                else:
                    st.rerun()


def guided_validation() -> None:
    """The local validation a QA lead runs from this page: cases, truth, acceptance, sign-off."""
    st.markdown(
        "**A local validation, step by step.** Before relying on the model, measure it on your own children's "
        "films. Your results stand beside the held-out test split's figures; every figure from fewer films than a "
        "decision needs says so."
    )
    with st.expander("How to run it: choosing cases, who sets the truth, what result to accept", expanded=False):
        for head, text in site_report.protocol_lines(site_points.MIN_PER_CLASS):
            st.markdown(f"**{head}.** {text}")


def acceptance(sv: SiteValidation) -> str:
    """The acceptance the site sets (operating point, lowest sensitivity and specificity), and the verdict."""
    st.subheader("Your acceptance")
    c1, c2, c3 = st.columns(3)
    point = c1.selectbox(
        "Operating point you will use",
        list(sv.shipped["operating point"]),
        format_func=lambda key: str(key).replace("_", " ").capitalize(),
        key="accept_point",
    )
    se = c2.number_input("Lowest sensitivity you accept (%)", 50.0, 100.0, 95.0, 0.5, key="accept_sensitivity")
    sp = c3.number_input("Lowest specificity you accept (%)", 10.0, 100.0, 80.0, 0.5, key="accept_specificity")
    verdict = site_report.acceptance_verdict(sv, point, se / 100, sp / 100)
    met = ": MEETS" in verdict and "small sample" not in verdict
    (st.success if met else st.warning)(verdict)
    return verdict


def your_data_view() -> None:
    guided_validation()
    data = load_results()
    if not data:
        return
    try:
        sv = site_validation(data)
    except (ValueError, OSError) as err:
        st.error(f"This file cannot be read as results: {err}")
        return
    st.session_state["site_results_sha256"] = hashlib.sha256(data).hexdigest()  # the provenance of a saved point
    site_figures(sv)


@st.fragment
def site_figures(sv: SiteValidation) -> None:
    """Everything below the results: a prevalence change re-draws only this part, from the cached figures."""
    prevalence = st.number_input(
        "Pneumonia prevalence in your population (for PPV and NPV)",
        0.01,
        0.99,
        # one labelled film, or one class only: the site's prevalence is 0 or 1, outside the field's range
        min(max(float(round(sv.prevalence, 2)), 0.01), 0.99) if sv.prevalence == sv.prevalence else 0.3,
        0.01,
        key="site_prevalence",
    )
    sv = sv.at_prevalence(prevalence)
    counts_row(sv)
    if sv.metrics is None:
        st.warning("Too few labelled images of each class for sensitivity and specificity (at least 2 of each).")
        return
    c1, c2 = st.columns(2)
    with c1:
        small_sample_banner(sv)
        widgets.chart_with_answer(site_report.roc_with_band(sv))
    with c2:
        small_sample_banner(sv)
        widgets.chart_with_answer(site_report.calibration_on_site(sv))
    operating_point_tables(sv)
    verdict = acceptance(sv)
    st.download_button(
        "Download validation report for the board (PDF)",
        site_report.validation_pdf(sv, acceptance=verdict),
        "validation-report.pdf",
        "application/pdf",
    )
    save_site_point(sv)
