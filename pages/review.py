"""Review page: upload chest x-rays, see the gated, calibrated probability and a heatmap."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from pages import resources, widgets
from pneumonia.core.operating_points import CUSTOM, ThresholdChoice
from pneumonia.insight import report
from pneumonia.serving.explain import COLORMAPS, METHODS, Heatmap, overlay
from pneumonia.serving.model import Classifier
from pneumonia.serving.results import ImageResult


@dataclass(frozen=True)
class ReviewSettings:
    choice: ThresholdChoice
    method: str
    colormap: str
    opacity: float


def point_label(clf: Classifier, name: str) -> str:
    return clf.operating_points[name].get("label", name) if name in clf.operating_points else "Custom threshold"


def operating_point_control(clf: Classifier) -> ThresholdChoice:
    """The operating point (or a custom threshold) with its validation figures."""
    choices = [*clf.operating_points, CUSTOM]
    name = st.selectbox(
        "Operating point",
        choices,
        index=choices.index(clf.default_operating_point),
        format_func=lambda k: point_label(clf, k),
        key="operating_point",
    )
    if name == CUSTOM:
        default = clf.resolve_threshold().threshold
        choice = clf.resolve_threshold(custom_threshold=st.slider("Threshold", 0.01, 0.99, default, 0.01))
        st.caption("A custom threshold has no validated sensitivity or specificity.")
        return choice
    choice = clf.resolve_threshold(name)
    st.caption(
        f"Threshold {choice.threshold:.3f}. On the internal validation split: sensitivity "
        f"{choice.validation_sensitivity:.1%}, specificity {choice.validation_specificity:.1%}. "
        "Expect lower on other hospitals' images."
    )
    return choice


def sidebar_settings(clf: Classifier) -> ReviewSettings:
    with st.sidebar:
        st.header("Settings")
        choice = operating_point_control(clf)
        method = st.selectbox("Heatmap method", list(METHODS), format_func=METHODS.get, key="method")
        colormap = st.selectbox("Colour map", list(COLORMAPS), key="colormap")
        opacity = st.slider("Heatmap opacity", 0.0, 1.0, 0.4, 0.05, key="opacity")
    return ReviewSettings(choice, method, colormap, opacity)


def chosen_files() -> list[tuple[str, bytes]]:
    """The uploaded files, or else the sample the reader picked: (name, bytes) each."""
    uploads = st.file_uploader(
        "Upload chest x-rays (PNG, JPEG, TIFF, BMP or DICOM; one or many)",
        accept_multiple_files=True,
        key="uploads",
        help="Files are processed in memory; only a SHA-256 of an image is stored, and only when you save a review.",
    )
    if uploads:
        return [(f.name, f.getvalue()) for f in uploads]
    sample = st.selectbox(
        "...or try a sample x-ray from the data set (Kermany et al. 2018, CC BY 4.0)",
        [None, *resources.sample_files()],
        format_func=lambda p: "Choose a sample" if p is None else p.name,
        key="sample",
    )
    return [(sample.name, sample.read_bytes())] if sample else []


def worklist(results: list[ImageResult]) -> ImageResult:
    """The batch as a sortable worklist with a CSV export; returns the result the reader opens."""
    table = report.worklist(results, include_names=True)
    st.subheader(f"Worklist ({(table['status'] == 'scored').sum()} scored of {len(results)})")
    by_item = {i + 1: r for i, r in enumerate(results)}
    thumbnails = [
        widgets.thumbnail_data_url(by_item[i].xray.pixels) if by_item[i].xray else None for i in table["item"]
    ]
    table.insert(1, "thumbnail", thumbnails)
    event = st.dataframe(
        table.drop(columns=["image_sha256", "threshold"]),
        hide_index=True,
        on_select="rerun",
        selection_mode="single-row",
        key="worklist",
        column_config={
            "thumbnail": st.column_config.ImageColumn("Image", width="small"),
            "probability": st.column_config.ProgressColumn("Probability", min_value=0.0, max_value=1.0, format="%.3f"),
            "reason": st.column_config.TextColumn("Reason", width="large"),
        },
    )
    include_names = st.checkbox("Include file names in the CSV (they may contain patient identifiers)")
    st.download_button("Download worklist CSV", report.worklist_csv(results, include_names), "worklist.csv", "text/csv")
    rows = event.selection.rows if event and event.selection else []
    default_item = int(table.iloc[rows[0] if rows else 0]["item"])
    item = st.selectbox(
        "Open image",
        list(table["item"]),
        index=list(table["item"]).index(default_item),
        format_func=lambda i: f"{i}: {by_item[i].name}",
        key=f"open_{default_item}",
    )
    return by_item[item]


def explain_why_not_scored(result: ImageResult) -> bool:
    """Say why a file was not read or not scored; True when there is nothing more to show."""
    if result.error:
        st.error(f"Cannot read **{result.name}**: {result.error}")
        return True
    if not result.scored:
        st.warning(f"**Not scored.** {result.reason}")
        st.image(result.xray.pixels, caption="The uploaded image", width=420)
        return True
    return False


def probability_metrics(clf: Classifier, result: ImageResult, choice: ThresholdChoice) -> None:
    c1, c2, c3 = st.columns(3)
    c1.metric(
        "Pneumonia probability",
        report.format_probability(result.probability),
        help="Calibrated on the validation split.",
    )
    c2.metric("Result at this operating point", result.label)
    c3.metric("Threshold", f"{choice.threshold:.3f}", help=point_label(clf, choice.operating_point))
    if choice.validated:
        st.caption(
            f"At this operating point the model had validation sensitivity {choice.validation_sensitivity:.1%} "
            f"and specificity {choice.validation_specificity:.1%}."
        )


def original_and_heatmap(result: ImageResult, settings: ReviewSettings) -> Heatmap:
    heat = resources.heatmap(result.xray.sha256, settings.method, result.model_input)
    name = METHODS[settings.method]
    blend = overlay(result.xray.pixels, heat.cam, settings.opacity if not heat.flat else 0.0, settings.colormap)
    left, right = st.columns(2)
    left.image(result.xray.pixels, caption="Original", width="stretch")
    right.image(blend, caption=f"{name}: regions that raised the pneumonia score", width="stretch")
    if heat.flat:
        st.warning(
            f"The {name} map is flat: no region stands out for this image, so no overlay is shown. Try another method."
        )
    return heat


def report_download(clf: Classifier, result: ImageResult, settings: ReviewSettings, heat: Heatmap) -> None:
    pdf = report.pdf_report(
        result,
        overlay(result.xray.pixels, heat.cam, 0.4, settings.colormap),
        model_version=clf.version,
        choice=settings.choice,
        method=METHODS[settings.method],
        heatmap_flat=heat.flat,
    )
    st.download_button(
        "Download report (PDF)", pdf, file_name=f"review-{result.xray.sha256[:12]}.pdf", mime="application/pdf"
    )


def feedback_form(clf: Classifier, result: ImageResult, settings: ReviewSettings) -> None:
    """The reader's agree/disagree read, appended to the audit trail with the image hash."""
    with st.form(f"feedback_{result.xray.sha256[:16]}", clear_on_submit=True):
        st.markdown("**Your read** (saved to the audit trail with the image hash, not the image)")
        agree = st.radio("Do you agree with the model?", ["Agree", "Disagree"], horizontal=True, key="agree")
        comment = st.text_input("Comment (optional; do not enter patient identifiers)", key="comment")
        if st.form_submit_button("Save review"):
            resources.audit_log().record(
                image_sha256=result.xray.sha256,
                model_version=clf.version,
                operating_point=settings.choice.operating_point,
                threshold=settings.choice.threshold,
                heatmap_method=settings.method,
                probability=result.probability,
                label=result.label,
                reader_agrees=agree == "Agree",
                comment=comment,
            )
            st.success("Review saved.")


def audit_trail() -> None:
    with st.expander("Audit trail (recent reviews)"):
        log = resources.audit_log()
        st.dataframe(log.recent(50), hide_index=True)
        st.download_button("Download audit trail CSV", log.to_csv(), "audit.csv", "text/csv")


clf = resources.classifier()
st.title("Review chest x-rays")
settings = sidebar_settings(clf)
items = chosen_files()
if not items:
    st.info("Upload one or more frontal chest radiographs to begin.")
    st.stop()
results = resources.score_uploads(items, settings.choice.threshold)
result = worklist(results) if len(results) > 1 else results[0]
st.divider()
st.subheader(result.name)
for note in result.notices:
    st.info(note)
if explain_why_not_scored(result):
    st.stop()
probability_metrics(clf, result, settings.choice)
heat = original_and_heatmap(result, settings)
report_download(clf, result, settings, heat)
feedback_form(clf, result, settings)
audit_trail()
