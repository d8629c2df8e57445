"""The review page's PACS views, shown only when a PACS is configured (PNEUMONIA_PACS_URL or
PNEUMONIA_PACS_CONFIG; never entered on the page): "Open from PACS" finds chest radiograph studies
and opens their images into the worklist beside uploads (in memory only), and "Send results to PACS"
stores the SR with the reader's read and the heatmap SC into the study."""

from __future__ import annotations

import hashlib

import pandas as pd
import streamlit as st

from pages import resources
from pneumonia.insight.report import ReaderReview
from pneumonia.pacs.browse import ChestStudy, fetch_images, find_chest_studies, send_results
from pneumonia.pacs.config import PacsConfig, PacsError, load_config
from pneumonia.pacs.dicomweb import PacsClient, StudyQuery
from pneumonia.pacs.results import ReaderRead
from pneumonia.pacs.scoring import finding_of
from pneumonia.serving.results import ImageResult

_FOUND = "pacs_found"  # session state: the studies the last search found
_LOADED = "pacs_loaded"  # session state: image SHA-256 -> {"name", "data"} opened from the PACS


@st.cache_resource(show_spinner=False)
def _client(config: PacsConfig) -> PacsClient:
    return PacsClient(config)


def client() -> PacsClient | None:
    """The configured PACS, or None when there is none (then no PACS view is shown)."""
    try:
        config = load_config()
    except PacsError as err:
        st.error(f"The PACS settings cannot be used: {err}")
        return None
    return None if config is None else _client(config)


def search_form() -> StudyQuery | None:
    with st.form("pacs_search"):
        left, mid, right = st.columns(3)
        accession = left.text_input("Accession number")
        patient = mid.text_input("Patient ID")
        dates = right.date_input("Study dates (from, to)", value=(), format="YYYY-MM-DD")
        if not st.form_submit_button("Search the PACS"):
            return None
    if not (accession.strip() or patient.strip() or dates):
        st.error("Give an accession number, a patient ID or a study date range.")
        return None
    lo, hi = (list(dates) + [None, None])[:2] if dates else (None, None)
    return StudyQuery(accession.strip() or None, patient.strip() or None, lo, hi or lo)


def studies_table(studies: list[ChestStudy]) -> None:
    rows = [
        {"Date": s.date, "Accession": s.accession, "Description": s.description, "Images": len(s.images), **s.facts()}
        for s in studies
    ]
    st.dataframe(pd.DataFrame(rows), hide_index=True)


def search(pacs: PacsClient, query: StudyQuery) -> None:
    try:
        with st.spinner("Searching the PACS..."):
            found = find_chest_studies(pacs, query)
    except PacsError as err:
        st.error(str(err))
        found = []
    else:
        if not found:
            st.info(f"No chest radiographs (CR or DX) found in the PACS for {query.in_words()}.")
    st.session_state[_FOUND] = found


def open_studies(pacs: PacsClient, studies: list[ChestStudy], loaded: dict) -> None:
    bar = st.progress(0.0, text="Fetching images from the PACS...")
    try:
        fetched, left_out = fetch_images(
            pacs, studies, lambda done, n: bar.progress(done / n, f"Fetched {done} of {n}")
        )
    except PacsError as err:
        bar.empty()
        st.error(str(err))
        return
    bar.empty()
    for ref, data in fetched:
        name = f"PACS {ref.modality} {ref.view or 'view not given'} #{ref.number or '?'} ({ref.sop[-6:]}).dcm"
        loaded[hashlib.sha256(data).hexdigest()] = {"name": name, "data": data}
    if left_out:
        st.warning(f"Opened the first {len(fetched)} images; {left_out} more were left out. Open fewer studies.")
    st.rerun()


def open_from_pacs() -> list[tuple[str, bytes]]:
    """The "Open from PACS" expander; the images opened from the PACS as (name, bytes)."""
    pacs = client()
    if pacs is None:
        return []
    loaded: dict = st.session_state.setdefault(_LOADED, {})
    with st.expander("Open from PACS", expanded=not loaded):
        st.caption(f"Chest radiographs (CR, DX) from {pacs.config.shown_url}; images are held in memory only.")
        query = search_form()
        if query is not None:
            search(pacs, query)
        found: list[ChestStudy] = st.session_state.get(_FOUND) or []
        if found:
            studies_table(found)
            chosen = st.multiselect(
                "Studies to open", range(len(found)), default=[0], format_func=lambda i: found[i].label
            )
            if st.button("Open the chosen studies", type="primary", disabled=not chosen):
                open_studies(pacs, [found[i] for i in chosen], loaded)
        if loaded and st.button(f"Close the {len(loaded)} PACS image(s)"):
            loaded.clear()
            st.rerun()
    return [(v["name"], v["data"]) for v in loaded.values()]


def send_to_pacs(result: ImageResult, review: ReaderReview | None) -> None:
    """After the reader's read: store the SR (with the read) and the heatmap SC into the study."""
    entry = (st.session_state.get(_LOADED) or {}).get(result.xray.sha256) if result.xray else None
    pacs = client() if entry else None
    if pacs is None:
        return
    if review is None:
        st.caption("Save your read to send the result, with your read, to the PACS.")
        return
    if not st.button("Send results to PACS", key=f"pacs_send_{result.xray.sha256[:16]}"):
        return
    point = st.session_state.get("operating_point") or resources.model_metadata().default_operating_point
    finding = finding_of(
        result, resources.model_version(), point, ReaderRead(review.reader, review.agrees, review.comment)
    )
    heat = resources.heatmap(result.xray.sha256, "gradcam", result.model_input)
    try:
        with st.spinner("Storing the results in the PACS..."):
            stored = send_results(pacs, entry["data"], finding, result.xray.pixels, None if heat.flat else heat.cam)
    except (PacsError, ValueError) as err:
        st.error(str(err))
        return
    if stored:
        st.success("Stored in the study: a structured report with your read, and the heatmap as a secondary capture.")
    else:
        st.info("The PACS already holds these results (same image, model and read); nothing was stored again.")
