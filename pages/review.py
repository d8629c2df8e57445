"""Review page: upload chest x-rays, see the gated, calibrated probability and a heatmap."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import streamlit as st
from streamlit.runtime.scriptrunner import add_script_run_ctx, get_script_run_ctx

from pages import (
    film_stepper,
    identity,
    lung_outline,
    pacs_views,
    reads,
    resources,
    validation_views,
    widgets,
    window_drag,
)
from pages.identity import Role
from pneumonia.audit import AuditUnavailable
from pneumonia.core.decode import dicom_context
from pneumonia.core.literal import csv_safe_frame, markdown_literal
from pneumonia.core.operating_points import CUSTOM, ThresholdChoice, resolve_threshold
from pneumonia.insight import report
from pneumonia.pacs.identity import FilmIdentity
from pneumonia.serving.explain import COLORMAPS, METHODS, PLOTLY_COLORSCALES, overlay
from pneumonia.serving.results import ImageResult

_OPEN = "open_image"  # session state: SHA-256 of the image open below the worklist
_ORDER = "worklist_order"  # session state: the worklist's items in J/K order
_CONTROLS = "viewer_controls"  # session state: the viewer's last control settings


def operating_point_control(points: dict[str, dict], default: str) -> ThresholdChoice:
    """The operating point (or a custom threshold) with what it does, in words. ``points``: every
    point offered (the model's, and any others resources.operating_points() adds)."""
    choices = [*points, CUSTOM]
    name = st.selectbox(
        "Operating point",
        choices,
        index=choices.index(default),
        format_func=lambda k: report.point_title(k, points),
        key="operating_point",
        help="A cut-off on the pneumonia probability: images at or above it are called PNEUMONIA.",
    )
    if name == CUSTOM:
        start = resolve_threshold(points, default).threshold
        cutoff = st.slider("Threshold", 0.01, 0.99, round(start, 2), 0.01, key="custom_threshold")
        st.caption("A custom threshold has no validated sensitivity or specificity.")
        return resolve_threshold(points, default, custom_threshold=cutoff)
    choice = resolve_threshold(points, default, name)
    where = points[name].get("validated_on", "the training pool's out-of-fold films (optimistic)")
    if choice.validated:
        st.caption(
            f"Cut-off {choice.threshold:.1%}. On {where} this point found {choice.validation_sensitivity:.1%} of "
            f"pneumonias (sensitivity) and cleared {choice.validation_specificity:.1%} of normals (specificity). "
            "Expect lower on children it never saw (Model performance: the held-out figures) and on other "
            "hospitals' images."
        )
    with st.expander("How the operating points differ"):
        widgets.operating_point_table(points)
        st.caption("A lower cut-off misses fewer pneumonias and raises more false alarms.")
    return choice


def sidebar_settings() -> ThresholdChoice:
    with st.sidebar:
        identity.reader_field()  # signed-in reader, or a typed name marked unverified
        return operating_point_control(resources.operating_points(), resources.model_metadata().default_operating_point)


def chosen_files() -> list[tuple[str, bytes]]:
    """The uploaded files and the images opened from the PACS, or else the sample the reader picked: (name, bytes)."""
    uploads = st.file_uploader(
        "Upload chest x-rays (PNG, JPEG, TIFF, BMP or DICOM; one or many)",
        accept_multiple_files=True,
        key="uploads",
        help="Files are processed in memory; only a SHA-256 of an image is stored, and only when you save a review.",
    )
    from_pacs = pacs_views.open_from_pacs()  # empty unless a PACS is configured
    if uploads or from_pacs:
        return [(f.name, f.getvalue()) for f in uploads or []] + from_pacs
    sample = st.selectbox(
        "...or try a sample x-ray from the data set (Kermany et al. 2018, CC BY 4.0)",
        [None, *resources.sample_files()],
        format_func=lambda p: "Choose a sample" if p is None else p.name,
        key="sample",
    )
    return [(sample.name, sample.read_bytes())] if sample else []


def saved_reviews() -> dict[str, report.ReaderReview]:
    return reads.session_reviews()


def identity_rows(identities: dict[str, FilmIdentity]) -> dict[str, dict]:
    return {sha: who.as_dict() for sha, who in identities.items()}


def worklist_table(results: list[ImageResult], identities: dict[str, FilmIdentity] | None = None):
    """The worklist as the reader sees it: the result first (readable at 800 px), whose film it is
    (accession, patient, age and sex, study time, view: for DICOM films), words instead of empty cells,
    the reviewed flag, and notes (why not scored, duplicates, disagreeing members). In study-time order
    when the reader chose it in "Open from PACS", else by probability."""
    shas = [r.xray.sha256 for r in results if r.xray]
    reviewed = set(saved_reviews()) | resources.audit_log_reviewed(shas)
    who = identity_rows(identities or {})
    table = report.worklist(results, include_names=True, reviewed=reviewed, identities=who or None)
    if who and pacs_views.order_by_time():
        table = table.sort_values(["study_time", "item"], kind="stable").reset_index(drop=True)
    by_item = {i + 1: r for i, r in enumerate(results)}
    rows = [by_item[i] for i in table["item"]]
    table["thumbnail"] = [resources.thumbnail(r.xray.sha256, r.xray.pixels) if r.xray else None for r in rows]
    # a number, so that sorting the column sorts probabilities (as text ">99%" sorted below "2%")
    table["probability_percent"] = [report.probability_percent(r.probability) if r.scored else None for r in rows]
    table["label"] = [r.label or ("not scored" if r.xray else "unreadable") for r in rows]
    table["notes"] = [row_notes(r, dup) for r, dup in zip(rows, table["duplicate_of"])]
    # the columns a reader sorts and reads first; the bacterial estimate beside the result, notes last
    columns = ["item", "thumbnail", "probability_percent", "label", "bacterial_if_pneumonia", "reviewed"]
    if table["bacterial_if_pneumonia"].isna().all():
        columns.remove("bacterial_if_pneumonia")
    if who:
        columns += [c for c in report.IDENTITY_COLUMNS if table[c].astype(bool).any()]
    return table, by_item, [*columns, "file", "notes"]


def row_notes(result: ImageResult, duplicate_of: str) -> str:
    notes = [widgets.short_reason(result.reason)] if result.reason else []
    if duplicate_of:
        notes.append(f"same pixels as #{duplicate_of}")
    if result.members_disagree:
        notes.append("members disagree")
    return "; ".join(notes)


_TABLE_GENERATION = "worklist_generation"  # bumped to clear a clicked cell that no longer marks the open image


def table_key() -> str:
    return f"worklist_{st.session_state.get(_TABLE_GENERATION, 0)}"


def select_row(order: list[str]) -> None:
    """A click on any cell of a row opens that row's image (positions in the table as sent, whatever
    the reader's sort)."""
    cells = st.session_state[table_key()].selection.cells
    if cells:
        st.session_state[_OPEN] = order[cells[0][0]]


def follow_stepper(order: list[str]) -> None:
    """Open the film the browser's J/K (or Previous/Next) counted to: a position, so presses merged
    while the page was busy still land on the right film (pages/film_stepper.py)."""
    wanted = film_stepper.wanted_position()
    if wanted is None or not order:
        return
    st.session_state[_OPEN] = order[wanted % len(order)]
    selection = st.session_state.get(table_key())
    if selection is not None and selection.selection.cells:  # the highlighted cell would now mislead
        st.session_state[_TABLE_GENERATION] = st.session_state.get(_TABLE_GENERATION, 0) + 1


def worklist(results: list[ImageResult], identities: dict[str, FilmIdentity] | None = None) -> ImageResult:
    """The batch as a sortable worklist with a CSV export and keyboard navigation; returns the open result."""
    table, by_item, columns = worklist_table(results, identities)
    keys = [f"{i}" for i in table["item"]]
    st.session_state[_ORDER] = keys
    if st.session_state.get(_OPEN) not in keys:
        st.session_state[_OPEN] = keys[0]
    st.subheader(f"Worklist ({(table['status'] == 'scored').sum()} scored of {len(results)})")
    table["open"] = ["▶" if k == st.session_state[_OPEN] else "" for k in keys]
    # one key while the reader works, so a sort they chose stays; a click on any cell opens its row
    st.dataframe(
        table,
        hide_index=True,
        column_order=["open", *columns],
        on_select=lambda: select_row(keys),
        selection_mode="single-cell",
        key=table_key(),
        column_config=widgets.WORKLIST_COLUMNS | IDENTITY_COLUMNS,
    )
    film_stepper.film_stepper(len(keys), keys.index(st.session_state[_OPEN]), lambda: follow_stepper(keys))
    export_worklist(results, set(table.loc[table["reviewed"], "image_sha256"]), identity_rows(identities or {}))
    return by_item[int(st.session_state[_OPEN])]


IDENTITY_COLUMNS = {
    "accession": st.column_config.TextColumn("Accession", width=110),
    "patient": st.column_config.TextColumn("Patient", width=150),
    "patient_id": st.column_config.TextColumn("Patient ID", width=100),
    "age_sex": st.column_config.TextColumn("Age, sex", width=110),
    "study_time": st.column_config.TextColumn("Study time", width=130),
    "view": st.column_config.TextColumn("View", width=50),
}


@st.fragment
def export_worklist(results: list[ImageResult], reviewed: set[str], identities: dict[str, dict]) -> None:
    """The CSV export in its own fragment: ticking "include file names" keeps the panel open. Patient
    identifiers (file names, accession, patient) only when the reader ticks the box."""
    with st.expander("Export the worklist"):
        include_names = st.checkbox(
            "Include file names in the CSV, and for DICOM films the accession, patient, age, sex and study "
            "time (patient identifiers)",
            key="export_names",
        )
        shas = [r.xray.sha256 for r in results if r.xray]
        st.download_button(
            "Download worklist CSV",
            lambda: report.worklist_csv(
                results, include_names, reviewed, reads.reviews_of(shas, reviewed), identities or None
            ),
            "worklist.csv",
            "text/csv",
            on_click="ignore",
        )


def image_header(result: ImageResult, results: list[ImageResult], who: FilmIdentity | None = None) -> None:
    st.subheader(markdown_literal(result.name))  # a file name is shown as written: no Markdown image or link
    if who is not None:  # whose film this is, as the reader's PACS viewer shows it (screen only)
        st.markdown(f"**{markdown_literal(who.header_line())}**")
    context = dicom_context(result.xray.metadata) if result.xray and result.xray.source_format == "DICOM" else {}
    if context:
        st.caption("DICOM: " + markdown_literal(" · ".join(f"{k} {v}" for k, v in context.items())))
    same = report.duplicates(results).get(results.index(result) + 1) if result in results else None
    if same:
        st.warning(f"Duplicate: the same pixels were uploaded as item(s) {', '.join(map(str, same))}.")
    for note in result.notices if result.scored else []:  # "interpret with care" means nothing unscored
        st.info(note)


def explain_why_not_scored(result: ImageResult) -> bool:
    """Say why a file was not read or not scored; True when there is nothing more to show."""
    if result.error:
        st.error(f"Cannot read **{markdown_literal(result.name)}**: {markdown_literal(result.error)}")
        return True
    if not result.scored:
        st.warning("**Not scored.** " + " ".join(result.gate.reasons))
        with st.expander("Details"):
            for line in result.gate.details():
                st.caption(line)
        st.image(result.xray.full_pixels(), caption="The uploaded image", width=420)
        return True
    return False


def probability_panel(result: ImageResult, choice: ThresholdChoice) -> None:
    points = resources.operating_points()
    title = markdown_literal(report.point_title(choice.operating_point, points))  # a site point is named by a person
    with st.container(horizontal=True, gap="large"):  # wraps onto two lines on a narrow screen
        probability = report.format_probability(result.probability)
        st.metric("Pneumonia probability", probability, help="Calibrated on validation.", width="content")
        st.metric("Result", result.label, help=f"At the operating point {title}.", width="content")
        st.metric("Threshold", f"{choice.threshold:.1%}", help=f"The cut-off of {title}.", width="content")
    st.markdown(report.threshold_sentence(result, choice, title))
    if result.probability >= 0.9:  # what the top of the scale can honestly claim
        st.caption(validation_views.top_of_scale_words(resources.model_artifacts()))
    if result.members_disagree:
        st.warning(
            f"**Members disagree.** The ensemble's models differ on this image (spread {result.ensemble_spread:.2f}): "
            "the probability is less settled than its value suggests."
        )
    if result.subtype_note:
        st.caption(result.subtype_note + ".")


def viewer_controls(result: ImageResult) -> dict:
    """The viewer's own controls: heatmap on/off, method, what it explains, colour map, opacity,
    layout, window/level."""
    outputs = resources.explainable_outputs() if result.label == "PNEUMONIA" else {0: "Pneumonia"}
    with st.container(horizontal=True, gap="medium", vertical_alignment="bottom"):
        show = st.toggle("Heatmap", value=True, key="show_heatmap")
        method = st.selectbox("Heatmap method", list(METHODS), format_func=METHODS.get, key="method", width=170)
        output = st.selectbox(
            "Explain",
            list(outputs),
            format_func=outputs.get,
            key="explain_output",
            width=210,
            help="What the heatmap shows evidence for. Bacterial vs viral is secondary and no basis for prescribing.",
        )
        colormap = st.selectbox("Colour map", list(COLORMAPS), key="colormap", width=120)
        layout = st.segmented_control("Layout", ["Side by side", "One image"], default="Side by side", key="layout")
    with st.container(horizontal=True, gap="medium"):
        opacity = st.slider("Opacity", 0.0, 1.0, 0.4, 0.05, key="opacity", disabled=not show, width=200)
        level = st.slider(
            "Level (centre)", 0, 255, 128, 1, key="level", help="Window/level on the grey levels.", width=200
        )
        window = st.slider("Window (width)", 8, 256, 256, 4, key="window", width=200)
        outline = st.checkbox(lung_outline.LABEL, key="lung_outline", help=lung_outline.HELP)
        invert = st.toggle("Invert", key="invert", help="White and black swapped, as a PACS viewer's invert.")
    return {
        "invert": invert,
        "show": show,
        "method": method,
        "output": output if output in outputs else 0,
        "colormap": colormap,
        "opacity": opacity,
        "level": level,
        "window": window,
        "side_by_side": layout != "One image",
        "outline": outline,
    }


@st.fragment
def viewer(result: ImageResult) -> None:
    """Window/level, zoom/pan and the heatmap overlay; reruns on its own, not with the whole page.
    The film comes first and its controls under it, so the film and the result fit one screen."""
    film, under = st.container(), st.container()
    with under:
        c = viewer_controls(result)
    st.session_state[_CONTROLS] = c  # for preparing the neighbouring films
    window_drag.window_drag(c["level"], c["window"])  # right-drag on the film sets window/level
    figure, heat, target = viewer_parts_saying_why(result, c)
    with film:
        st.plotly_chart(figure, width="stretch", key="viewer", config={"displaylogo": False, "scrollZoom": True})
        st.caption(viewer_caption(result, c, target))
        if heat is not None and heat.flat:
            st.warning(
                f"The {METHODS[c['method']]} map is flat: no region stands out for this image. Try another method."
            )


# measured on the 2-core reading station while busy (load 11): Grad-CAM 0.06-0.1 s a film on the serving
# runtime; Grad-CAM++ 9.9 s to load TensorFlow and the Keras model, then 0.8-1.5 s a film; LayerCAM
# 0.6-1.4 s; Faster-ScoreCAM 1.2-1.9 s (README, "Heatmap methods")
SLOWER_METHODS = (
    "{method} runs on the full Keras model in TensorFlow: its first map loads TensorFlow (about 10 s), "
    "later films take about 1 s each (the next and previous films are prepared while you read). "
    "Grad-CAM runs on the serving runtime in about 0.1 s."
)


def viewer_parts_saying_why(result: ImageResult, c: dict):
    """:func:`viewer_parts`, with a word while a slower heatmap method works (TensorFlow's first load)."""
    wait_for_worker(result, c)
    if not c["show"] or c["method"] == "gradcam":
        return viewer_parts(result, c)
    with st.spinner(SLOWER_METHODS.format(method=METHODS[c["method"]])):
        return viewer_parts(result, c)


def viewer_parts(result: ImageResult, c: dict):
    """The viewer's figure (cached by content), the heatmap it shows and what the map explains, in words."""
    heat = resources.heatmap(result.xray.sha256, c["method"], result.model_input, c["output"]) if c["show"] else None
    pixels = result.xray.full_pixels()
    if c.get("invert"):
        url, shape = resources.display_image(result.xray.sha256 + "-inverted", c["level"], c["window"], 255 - pixels)
    else:
        url, shape = resources.display_image(result.xray.sha256, c["level"], c["window"], pixels)
    cam = heat.cam if heat is not None and not heat.flat else None
    target = "the bacterial (rather than viral) score" if c["output"] == 1 else "the pneumonia score"
    used = result.lung_fields.mask if result.lung_fields is not None else None  # the fields the score read
    outline = lung_outline.outline_fractions(result.xray.sha256, result.model_input, used) if c.get("outline") else None
    return viewer_figure(result.xray.sha256, url, shape, c, target, _cam=cam, _outline=outline), heat, target


_NEIGHBOURS = "neighbour_generation"  # session state: {"now": n}, the latest neighbour preparation asked for
WAIT_FOR_NEIGHBOUR_S = 30  # a step waits this long at most for the worker already building its film


@st.cache_resource(show_spinner=False)
def neighbour_pool() -> tuple[ThreadPoolExecutor, dict]:
    """One worker for the whole server: it builds neighbouring films while the page waits for the reader;
    and the films it is building (key -> future), so a step to one of them waits instead of building twice."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="neighbour-films"), {}


def film_key(result: ImageResult, c: dict) -> tuple:
    return result.xray.sha256, c["show"], c["method"], c["output"], c["level"], c["window"], c.get("invert", False)


def wait_for_worker(result: ImageResult, c: dict) -> None:
    """If the background worker is building this very film, let it finish (the caches then hold it)."""
    future = neighbour_pool()[1].get(film_key(result, c))
    if future is not None and not future.done():
        try:
            future.result(timeout=WAIT_FOR_NEIGHBOUR_S)
        except Exception:  # the step builds the film itself, and says why if it cannot
            return


def prepare_neighbours(results: list[ImageResult], result: ImageResult) -> None:
    """Build the next and previous films' heatmap, display image and figure for the controls as they are,
    in a background worker after this one is on screen (the page's run ends at once, so the next key
    press starts a run at once), into the same content-keyed caches a J/K step reads."""
    order = [int(k) for k in st.session_state.get(_ORDER, [])]
    controls = st.session_state.get(_CONTROLS)
    if len(order) < 2 or sorted(order) != list(range(1, len(results) + 1)) or controls is None or result not in results:
        return
    i = order.index(results.index(result) + 1)
    latest = st.session_state.setdefault(_NEIGHBOURS, {"now": 0})
    latest["now"] += 1
    pool, building = neighbour_pool()
    for k, item in enumerate(dict.fromkeys([order[(i + 1) % len(order)], order[i - 1]])):
        neighbour = results[item - 1]
        if neighbour.scored and neighbour.xray:
            outputs = resources.explainable_outputs() if neighbour.label == "PNEUMONIA" else {0: "Pneumonia"}
            c = {**controls, "output": controls["output"] if controls["output"] in outputs else 0}
            key = film_key(neighbour, c)
            if key not in building or building[key].done():
                building[key] = pool.submit(_prepare, get_script_run_ctx(), neighbour, c, latest, latest["now"], k)
    for key in [key for key, future in building.items() if future.done()]:
        building.pop(key, None)


def _prepare(ctx, film: ImageResult, controls: dict, latest: dict, generation: int, rank: int) -> None:
    """The worker's job: skipped once the reader has moved on two films (a newer job was asked for)."""
    add_script_run_ctx(threading.current_thread(), ctx)  # the caches know whose session asks
    if latest["now"] - generation > 1 or (rank and latest["now"] != generation):
        return
    try:
        viewer_parts(film, controls)
    except Exception:  # best effort: a J/K step builds what is missing itself, and says why
        return


@st.cache_resource(max_entries=64, show_spinner=False)
def viewer_figure(image_sha256: str, url: str, shape: tuple, c: dict, target: str, _cam, _outline=None):
    """The viewer's figure, built once per image and control setting (the cam follows from the image,
    method and output in ``c``, the lung outline from the image): a J/K step or a control set back costs
    no figure build."""
    figure = widgets.xray_viewer(
        url,
        shape,
        _cam,
        opacity=c["opacity"],
        colorscale=PLOTLY_COLORSCALES[c["colormap"]],
        revision=image_sha256,
        side_by_side=c["side_by_side"],
        target=target,
    )
    figure.update_layout(margin={"t": 58})  # the chart's toolbar sits above the panels' titles, not over them
    return lung_outline.add_outline(figure, _outline, shape) if _outline else figure


def viewer_caption(result: ImageResult, c: dict, target: str) -> str:
    """What the viewer shows, in the words that fit the controls and the image's result."""
    moving = "both images move together; " if c["side_by_side"] else ""
    navigation = (
        f"Scroll or drag to zoom and pan ({moving}double-click to reset); drag with the right button for window/level."
    )
    if not c["show"]:
        return f"Heatmap off. {navigation}"
    words = f"{METHODS[c['method']]}: regions that raised {target}, not where disease is."
    if result.lung_fields is not None:
        words += (
            " The score is read from the lung fields only (the outline toggle shows them), and the map shows only "
            "the evidence that entered it: cells of about 16 px on the lungs, so at a lung's edge it may spill a "
            "little past the outline."
        )
    if c["method"] != "gradcam":
        words += " Slower than Grad-CAM (TensorFlow, about 1 s a film; the neighbours are prepared while you read)."
    if c["output"] == 0 and result.label == "NORMAL":
        words += (
            " For an image called NORMAL the map shows where the little evidence there was sits; it is not a finding."
        )
    return f"{words} {navigation}"


def review_form(
    result: ImageResult, choice: ThresholdChoice, who: FilmIdentity | None = None
) -> report.ReaderReview | None:
    """The reader's agree/disagree read, appended to the audit trail; stays filled in after saving. For a
    DICOM film the accession comes from the study (the form says whose film it is)."""
    saved, earlier = reads.review_of(result.xray.sha256)
    key = result.xray.sha256[:16]
    with st.form(f"review_{key}"):
        st.markdown("**Your read** (saved to the audit trail with the image hash, not the image)")
        if who is not None:
            st.caption(f"For {markdown_literal(who.header_line())}")
        options = ["Agree", "Disagree"]
        # nothing chosen until the reader chooses: a default would record agreement nobody gave
        index = None if saved is None else (0 if saved.agrees else 1)
        agree = st.radio("Do you agree with the model?", options, index=index, horizontal=True)
        comment = st.text_input("Comment (optional; no patient identifiers)", value=saved.comment if saved else "")
        study_accession = who.accession if who is not None else ""
        accession = st.text_input(
            "Accession or study reference (printed on the PDF only, never stored)",
            value=(saved.accession if saved and saved.accession else study_accession),
            help="Filled in from the study's DICOM header where it has one.",
        )
        if st.form_submit_button("Save review"):
            if agree is None:
                st.error("Choose Agree or Disagree first.")
            elif save_review(result, choice, agree == "Agree", comment, accession):
                st.rerun()  # so the worklist's "reviewed" column shows it at once
    if saved is not None:
        when = " in an earlier session (from the audit trail)" if earlier else ""
        verdict = "agrees" if saved.agrees else "disagrees"
        st.success(f"Review saved by {markdown_literal(saved.reader)}{when}: {verdict} with the model.")
    return saved


def save_review(
    result: ImageResult, choice: ThresholdChoice, agrees: bool, comment: str, accession: str
) -> report.ReaderReview | None:
    reader = identity.current_reader()
    if not reader.may_record:
        st.error(reader.refusal)
        return None
    try:
        resources.audit_log().record(
            image_sha256=result.xray.sha256,
            model_version=resources.model_version(),
            operating_point=choice.operating_point,
            threshold=choice.threshold,
            heatmap_method=st.session_state.get("method", "gradcam"),
            probability=result.probability,
            label=result.label,
            reader_agrees=agrees,
            comment=comment,
            reader=reader.name,
            reader_id=reader.subject,
            reader_verified=reader.verified,
        )
    except AuditUnavailable as err:  # the database is down: say so, the read is not saved
        st.error(str(err))
        return None
    review = report.ReaderReview(reader.name, agrees, comment.strip(), accession.strip())
    saved_reviews()[result.xray.sha256] = review
    return review


def report_download(
    result: ImageResult, choice: ThresholdChoice, review: report.ReaderReview | None, who: FilmIdentity | None = None
) -> None:
    """Build the PDF only when asked for, then offer it; a DICOM film's PDF carries its study's accession,
    patient and date (the reader asked for this report), the read's accession otherwise."""
    if not st.button("Prepare report (PDF)", key=f"prepare_{result.xray.sha256[:16]}"):
        return
    method = st.session_state.get("method", "gradcam")
    heat = resources.heatmap(result.xray.sha256, method, result.model_input)
    pdf = report.pdf_report(
        result,
        overlay(result.xray.full_pixels(), heat.cam, 0.4, st.session_state.get("colormap", "jet")),
        model_version=resources.model_version(),
        choice=choice,
        method=METHODS[method],
        heatmap_flat=heat.flat,
        review=review,
        points=resources.operating_points(),
        colormap=st.session_state.get("colormap", "jet"),
        identity=who.fields() if who is not None else None,
    )
    st.download_button(
        "Download report (PDF)",
        lambda: pdf,  # deferred: held by the server only from this session's click to its browser's download
        file_name=f"review-{result.xray.sha256[:12]}.pdf",
        mime="application/pdf",
        on_click="ignore",
    )


def audit_rows(log, whole: bool, limit: int, me: identity.Reader, searched: int = 5000) -> pd.DataFrame:
    """The newest audit rows: all of them for a site administrator, else only this reader's own (among
    the newest ``searched``: the panel is drawn on every run)."""
    rows = log.recent(limit if whole else max(searched, limit))
    if not whole:
        rows = rows[rows["reader_id"] == me.subject] if me.subject else rows[rows["reader"] == me.name]
    return rows.head(limit).copy()


def audit_csv(log, whole: bool, me: identity.Reader) -> bytes:
    """The CSV the button downloads, made when clicked; no cell can start a spreadsheet formula."""
    return csv_safe_frame(audit_rows(log, whole, 100_000, me, 100_000)).to_csv(index=False).encode()


def audit_trail() -> None:
    """Readers see their own reviews, site administrators the whole trail, viewers nothing (roles checked
    in the run that draws it: the CSV button exists only in a session that has the role)."""
    roles = identity.current_roles()
    if not roles & {Role.READER, Role.ADMIN}:
        return
    whole = Role.ADMIN in roles
    with st.expander("Audit trail (recent reviews)" if whole else "Your recent reviews (audit trail)"):
        me = identity.current_reader()
        try:
            log = resources.audit_log()
            recent = audit_rows(log, whole, 50, me)
        except AuditUnavailable as err:  # the database is down: say so instead of a traceback
            st.error(str(err))
            return
        recent["time"] = recent["time"].str.replace("T", " ").str[:16]  # stored in UTC, to the second
        recent["probability"] = recent["probability"].map(report.probability_percent)  # as the worklist shows it
        st.dataframe(recent, hide_index=True, column_config=widgets.AUDIT_COLUMNS, column_order=widgets.AUDIT_ORDER)
        csv = lambda: audit_csv(log, whole, me)  # noqa: E731 - deferred: made by this session's click only
        st.download_button("Download audit trail CSV", csv, "audit.csv", "text/csv", on_click="ignore")


@st.fragment
def reading_room(
    results: list[ImageResult], choice: ThresholdChoice, identities: dict[str, FilmIdentity] | None = None
) -> None:
    """The worklist and the open image: J/K, a row click, a saved read or a PDF rerun only this part,
    not the upload and the sidebar."""
    identities = identities or {}
    result = worklist(results, identities) if len(results) > 1 else results[0]
    who = identities.get(result.xray.sha256) if result.xray else None
    controls = st.session_state.get(_CONTROLS)
    if result.scored and result.xray and controls is not None:  # the film's figure built before its title is
        viewer_parts_saying_why(
            result, {**controls, "output": 0 if result.label != "PNEUMONIA" else controls["output"]}
        )
    st.divider()
    image_header(result, results, who)
    if explain_why_not_scored(result):
        return
    probability_panel(result, choice)
    viewer(result)
    pacs_views.priors_panel(result, who, choice)
    review = review_form(result, choice, who)
    pacs_views.send_to_pacs(result, review)
    report_download(result, choice, review, who)
    prepare_neighbours(results, result)


st.title("Review chest x-rays")
choice = sidebar_settings()
items = chosen_files()
if not items:
    st.info("Upload one or more frontal chest radiographs to begin.")
    st.stop()
results = resources.score_uploads(items, choice.threshold)
reading_room(results, choice, pacs_views.film_identities(items))
audit_trail()
