"""The review page's PACS views, shown only when a PACS is configured (PNEUMONIA_PACS_URL or
PNEUMONIA_PACS_CONFIG; never entered on the page): "Open from PACS" finds chest radiograph studies
and opens their images into the worklist beside uploads (in memory only), and "Send results to PACS"
stores the SR with the reader's read and the heatmap SC into the study."""

from __future__ import annotations

import hashlib
from datetime import datetime

import pandas as pd
import streamlit as st

from pages import identity, resources
from pneumonia.core import literal
from pneumonia.insight.report import ReaderReview
from pneumonia.pacs.browse import (
    ChestStudy,
    fetch_images,
    find_chest_studies,
    last_day,
    look_up_results,
    order_studies,
    priors,
    send_results,
    since,
    today,
)
from pneumonia.pacs.config import PacsConfig, PacsError, load_config
from pneumonia.pacs.dicomweb import InstanceRef, PacsClient, StudyQuery
from pneumonia.pacs.identity import FilmIdentity, film_identity
from pneumonia.pacs.results import ReaderRead
from pneumonia.pacs.scoring import finding_of
from pneumonia.serving.results import ImageResult

_FOUND = "pacs_found"  # session state: the studies the last search found
_LOADED = "pacs_loaded"  # session state: image SHA-256 -> {"name", "data", "identity"} opened from the PACS
_QUERY = "pacs_query"  # session state: the last search (query, and "since" for the last 24 h), for "Refresh"
_IDENTITIES = "film_identities"  # session state: image SHA-256 -> FilmIdentity (None for a file without DICOM)
_PRIORS = "pacs_priors"  # session state: study UID -> the patient's earlier chest studies
_PRIOR_OPEN = "pacs_prior_open"  # session state: study UID -> (the prior study, its scored film)
ORDER = "pacs_order"  # session state: how studies and opened films are ordered
ORDERS = {"Study time": "time", "AI probability": "probability"}


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


def quick_searches() -> tuple[StudyQuery, datetime | None] | None:
    """One click for today's studies or the last 24 hours', and a refresh of the list shown (new
    arrivals; the open films, their zoom and the reads stay)."""
    with st.container(horizontal=True, vertical_alignment="bottom"):
        on_today = st.button("Today", key="pacs_today", help="Today's chest radiographs (this workstation's date).")
        on_day = st.button("Last 24 h", key="pacs_last_day", help="Chest radiographs of the last 24 hours.")
        on_refresh = st.button("Refresh", key="pacs_refresh", help="Ask the PACS again: new arrivals show.")
        st.radio("Order", list(ORDERS), key=ORDER, horizontal=True, help="How studies and opened films are ordered.")
    if on_day:
        return last_day()
    if on_refresh and _QUERY in st.session_state:
        return st.session_state[_QUERY]
    if on_today or on_refresh or _QUERY not in st.session_state:  # a new session starts on today's studies
        return today(), None
    return None


def study_rows(studies: list[ChestStudy]) -> pd.DataFrame:
    """The studies as the reader sees them: status, time, accession, patient, age, sex, views, the AI's
    probability where the PACS already holds a result of this model."""
    audit = opened_and_read()
    rows = []
    for s in studies:
        facts = s.facts()
        rows.append(
            {
                "Status": s.status(s.uid in audit),
                "Date and time": s.when,
                "Accession": literal.plain_text(s.accession),
                "Patient": literal.plain_text(s.patient_name),
                "Patient ID": literal.plain_text(s.patient_id),
                "Age": facts["Age"],
                "Sex": facts["Sex"],
                "Views": facts["Views"],
                "Images": len(s.images),
                "AI probability": None if s.probability is None else round(100 * s.probability, 1),
                "Description": literal.plain_text(s.description),
            }
        )
    return pd.DataFrame(rows)


STUDY_COLUMNS = {
    "AI probability": st.column_config.NumberColumn(
        "AI probability",
        format="%.1f%%",
        help="The pneumonia probability of this model's result already in the PACS (the DICOM node scores "
        "arrivals); empty where the study has not been scored.",
    ),
    "Status": st.column_config.TextColumn(
        "Status", help="unread; read here (a read of this study is in the audit trail); result in the PACS"
    ),
}


def studies_table(studies: list[ChestStudy]) -> None:
    st.dataframe(study_rows(studies), hide_index=True, column_config=STUDY_COLUMNS)


def search(pacs: PacsClient, query: StudyQuery, moment: datetime | None = None) -> None:
    """Ask the PACS; keep what it found (and the query, for "Refresh") in the session."""
    st.session_state[_QUERY] = (query, moment)
    try:
        with st.spinner("Searching the PACS..."):
            found = find_chest_studies(pacs, query)
            found = since(found, moment) if moment else found
            look_up_results(pacs, found, resources.model_version())
    except PacsError as err:
        st.error(str(err))
        found = []
    else:
        if not found:
            st.info(f"No chest radiographs (CR or DX) found in the PACS for {query.in_words()}.")
    st.session_state[_FOUND] = found


def opened_and_read() -> set[str]:
    """Study UIDs of which an opened image has a saved read (this session or the audit trail)."""
    loaded = st.session_state.get(_LOADED) or {}
    shas = {sha: entry["identity"].study_uid for sha, entry in loaded.items() if entry.get("identity")}
    if not shas:
        return set()
    reviewed = set(st.session_state.get("saved_reviews") or {}) | resources.audit_log_reviewed(list(shas))
    return {uid for sha, uid in shas.items() if sha in reviewed}


def film_name(ref: InstanceRef, who: FilmIdentity | None) -> str:
    """The film's name in the worklist: modality, view and accession (never the SOP UID's tail)."""
    view = ref.view or (who.view if who else "") or "view not given"
    accession = who.accession if who and who.accession else "no accession"
    return f"{ref.modality} {view} · {accession} #{ref.number or 1}"


def look_for_priors(pacs: PacsClient, studies: list[ChestStudy]) -> None:
    """Each opened study's earlier chest studies of the same patient (once, when the study is opened)."""
    known: dict = st.session_state.setdefault(_PRIORS, {})
    for study in studies:
        if study.uid in known:
            continue
        try:
            known[study.uid] = priors(pacs, study.patient_id, study.uid)
        except PacsError as err:
            st.warning(f"The patient's earlier films could not be listed: {err}")
            known[study.uid] = []


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
        who = film_identity(data)
        loaded[hashlib.sha256(data).hexdigest()] = {"name": film_name(ref, who), "data": data, "identity": who}
    look_for_priors(pacs, studies)
    if left_out:
        st.warning(f"Opened the first {len(fetched)} images; {left_out} more were left out. Open fewer studies.")
    st.rerun()


def choose_and_open(pacs: PacsClient, found: list[ChestStudy], loaded: dict) -> None:
    """The found studies in the chosen order, "select all" or a choice, and "open"."""
    found = order_studies(found, ORDERS[st.session_state.get(ORDER, "Study time")])
    studies_table(found)
    everything = st.checkbox(f"Select all {len(found)} studies", value=True, key="pacs_select_all")
    chosen = list(range(len(found)))
    if not everything:
        chosen = st.multiselect(
            "Studies to open", chosen, default=[0], format_func=lambda i: literal.plain_text(found[i].label)
        )
    if st.button("Open the chosen studies", type="primary", disabled=not chosen):
        open_studies(pacs, [found[i] for i in chosen], loaded)


def open_from_pacs() -> list[tuple[str, bytes]]:
    """The "Open from PACS" expander; the images opened from the PACS as (name, bytes)."""
    pacs = client()
    if pacs is None:
        return []
    loaded: dict = st.session_state.setdefault(_LOADED, {})
    with st.expander("Open from PACS", expanded=not loaded):
        st.caption(f"Chest radiographs (CR, DX) from {pacs.config.shown_url}; images are held in memory only.")
        asked = quick_searches()
        query = search_form()
        if query is not None:
            asked = (query, None)
        if asked is not None:
            search(pacs, *asked)
        found: list[ChestStudy] = st.session_state.get(_FOUND) or []
        if found:
            choose_and_open(pacs, found, loaded)
        if loaded and st.button(f"Close the {len(loaded)} PACS image(s)"):
            loaded.clear()
            st.rerun()
    return [(v["name"], v["data"]) for v in loaded.values()]


def film_identities(items: list[tuple[str, bytes]]) -> dict[str, FilmIdentity]:
    """The identity of each DICOM film open (from the PACS or uploaded), by image SHA-256: read once per
    session from the header, kept in the session's memory only."""
    known: dict = st.session_state.setdefault(_IDENTITIES, {})
    loaded = st.session_state.get(_LOADED) or {}
    found = {}
    for _, data in items:
        sha = hashlib.sha256(data).hexdigest()
        if sha not in known:
            known[sha] = loaded[sha].get("identity") if sha in loaded else film_identity(data)
        if known[sha] is not None:
            found[sha] = known[sha]
    for sha in set(known) - {hashlib.sha256(d).hexdigest() for _, d in items}:
        del known[sha]
    return found


def order_by_time() -> bool:
    """The reader chose to read in study-time order (else by the AI's probability)."""
    return ORDERS[st.session_state.get(ORDER, "Study time")] == "time"


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
    refused = identity.require_role(identity.Role.READER, "send results to the PACS")  # asked when it acts
    if refused:
        st.error(refused)
        return
    point = st.session_state.get("operating_point") or resources.model_metadata().default_operating_point
    finding = finding_of(
        result, resources.model_version(), point, ReaderRead(review.reader, review.agrees, review.comment)
    )
    heat = resources.heatmap(result.xray.sha256, "gradcam", result.model_input)
    try:
        with st.spinner("Storing the results in the PACS..."):
            stored = send_results(
                pacs, entry["data"], finding, result.xray.full_pixels(), None if heat.flat else heat.cam
            )
    except (PacsError, ValueError) as err:
        st.error(str(err))
        return
    if stored:
        st.success("Stored in the study: a structured report with your read, and the heatmap as a secondary capture.")
    else:
        st.info("The PACS already holds these results (same image, model and read); nothing was stored again.")


def prior_label(study: ChestStudy) -> str:
    words = [study.when, f"accession {study.accession}" if study.accession else "", study.description]
    return literal.plain_text(" · ".join(w for w in words if w))


def open_prior(pacs: PacsClient, prior: ChestStudy, threshold: float) -> ImageResult | None:
    """The prior's first film, fetched into memory and scored as today's films are."""
    from pneumonia.serving.pipeline import score

    try:
        with st.spinner("Fetching the earlier film from the PACS..."):
            fetched, _ = fetch_images(pacs, [prior])
    except PacsError as err:
        st.error(str(err))
        return None
    if not fetched:
        st.info("The earlier study holds no chest image that can be opened.")
        return None
    ref, data = fetched[0]
    return score(resources.classifier(), [(film_name(ref, film_identity(data)), data)], threshold, batch_size=1)[0]


def priors_panel(result: ImageResult, who: FilmIdentity | None, choice) -> None:
    """The patient's earlier chest films from the PACS: pick one and see it beside today's film, with its
    date, the model's probability for it and its own window/level."""
    found = (st.session_state.get(_PRIORS) or {}).get(who.study_uid) if who is not None else None
    pacs = client() if found else None
    if pacs is None:
        return
    opened = st.session_state.setdefault(_PRIOR_OPEN, {})
    with st.expander(f"Priors: {len(found)} earlier chest stud{'y' if len(found) == 1 else 'ies'} of this patient"):
        pick = st.selectbox(
            "Earlier study",
            range(len(found)),
            format_func=lambda i: prior_label(found[i]),
            key=f"prior_{who.study_uid}",
        )
        if st.button("Open beside today's film", key=f"prior_open_{who.study_uid}"):
            film = open_prior(pacs, found[pick], choice.threshold)
            if film is not None:
                opened[who.study_uid] = (found[pick], film)
    if who.study_uid in opened:
        comparison(result, who, *opened[who.study_uid])


def film_figure(sha: str, pixels, level: int, window: int):
    """One film, no overlay, through its own window/level (not the main viewer: no zoom kept for it)."""
    from pages import widgets

    url, shape = resources.display_image(sha, level, window, pixels)
    figure = widgets.xray_viewer(url, shape, None, opacity=0.0, colorscale="Jet", revision=sha, side_by_side=False)
    figure.update_layout(meta=None, height=min(figure.layout.height, 460))
    return figure


@st.fragment
def comparison(result: ImageResult, who: FilmIdentity, prior: ChestStudy, film: ImageResult) -> None:
    """Today's film and the prior side by side, each with its date; the prior with the model's result."""
    from pneumonia.insight.report import format_probability

    today_side, prior_side = st.columns(2)
    today_side.markdown(f"**Today: {literal.markdown_literal(who.when or 'date not given')}**")
    today_side.plotly_chart(
        film_figure(
            result.xray.sha256,
            result.xray.full_pixels(),
            st.session_state.get("level", 128),
            st.session_state.get("window", 256),
        ),
        key="today_film",
    )
    prior_side.markdown(f"**Prior: {literal.markdown_literal(prior.when or 'date not given')}**")
    if film.scored:
        prior_side.caption(f"Pneumonia probability {format_probability(film.probability)}: {film.label}")
    elif film.xray is not None:
        prior_side.caption("Not scored: " + (film.reason or "outside what the model was made for") + ".")
    if film.xray is None:
        prior_side.error(f"The earlier film cannot be read: {film.error}")
        return
    with prior_side:
        level = st.slider("Prior level (centre)", 0, 255, 128, 1, key="prior_level", width=200)
        window = st.slider("Prior window (width)", 8, 256, 256, 4, key="prior_window", width=200)
        st.plotly_chart(film_figure(film.xray.sha256, film.xray.full_pixels(), level, window), key="prior_film")
