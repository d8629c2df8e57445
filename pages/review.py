"""Review page: upload chest x-rays, see the gated, calibrated probability and a heatmap."""

import streamlit as st

from pneumonia import app_state, report
from pneumonia.explain import COLORMAPS, METHODS, overlay
from pneumonia.operating_points import POINTS

clf = app_state.classifier()
ops = clf.operating_points

st.title("Review chest x-rays")
st.caption(report.DISCLAIMER)

with st.sidebar:
    st.header("Settings")
    choices = [*POINTS, "custom"]
    op = st.selectbox(
        "Operating point",
        choices,
        index=choices.index(clf.default_operating_point),
        format_func=lambda k: POINTS.get(k, "Custom threshold"),
        key="operating_point",
    )
    if op == "custom":
        threshold = st.slider("Threshold", 0.01, 0.99, float(ops[clf.default_operating_point]["threshold"]), 0.01)
        sens = spec = None
        st.caption("A custom threshold has no validated sensitivity or specificity.")
    else:
        threshold = float(ops[op]["threshold"])
        sens, spec = ops[op]["validation_sensitivity"], ops[op]["validation_specificity"]
        st.caption(
            f"Threshold {threshold:.3f}. On the internal validation split: sensitivity {sens:.1%}, "
            f"specificity {spec:.1%}. Expect lower on other hospitals' images."
        )
    method = st.selectbox("Heatmap method", list(METHODS), format_func=METHODS.get, key="method")
    colormap = st.selectbox("Colour map", list(COLORMAPS), key="colormap")
    opacity = st.slider("Heatmap opacity", 0.0, 1.0, 0.4, 0.05, key="opacity")
    st.caption(f"Model {clf.version}")

uploads = st.file_uploader(
    "Upload chest x-rays (PNG, JPEG, TIFF, BMP or DICOM; one or many)",
    accept_multiple_files=True,
    key="uploads",
    help="Files are processed in memory; only a SHA-256 of an image is stored, and only when you save a review.",
)
if uploads:
    items = [(f.name, f.getvalue()) for f in uploads]
else:
    samples = app_state.sample_files()
    sample = st.selectbox(
        "...or try a sample x-ray from the data set (Kermany et al. 2018, CC BY 4.0)",
        [None, *samples],
        format_func=lambda p: "Choose a sample" if p is None else p.name,
        key="sample",
    )
    items = [(sample.name, sample.read_bytes())] if sample else []

if not items:
    st.info("Upload one or more frontal chest radiographs to begin.")
    st.stop()

results = app_state.score_items(items, threshold)
table = report.worklist(results, include_names=True)

if len(results) > 1:
    st.subheader(f"Worklist ({(table['status'] == 'scored').sum()} scored of {len(results)})")
    by_item = {i + 1: r for i, r in enumerate(results)}
    table.insert(
        1,
        "thumbnail",
        [app_state.thumbnail_data_url(by_item[i].xray.pixels) if by_item[i].xray else None for i in table["item"]],
    )
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
    default_item = int(table.iloc[rows[0]]["item"]) if rows else int(table.iloc[0]["item"])
    item = st.selectbox(
        "Open image",
        list(table["item"]),
        index=list(table["item"]).index(default_item),
        format_func=lambda i: f"{i}: {by_item[i].name}",
        key=f"open_{default_item}",
    )
    result = by_item[item]
else:
    result = results[0]

st.divider()
st.subheader(result.name)
for note in result.notices:
    st.info(note)
if result.error:
    st.error(f"Cannot read **{result.name}**: {result.error}")
    st.stop()
if not result.scored:
    st.warning(f"**Not scored.** {result.reason}")
    st.image(result.xray.pixels, caption="The uploaded image", width=420)
    st.stop()

c1, c2, c3 = st.columns(3)
c1.metric(
    "Pneumonia probability", report.format_probability(result.probability), help="Calibrated on the validation split."
)
c2.metric("Result at this operating point", result.label)
c3.metric("Threshold", f"{threshold:.3f}", help=POINTS.get(op, "Custom threshold"))
if sens is not None:
    st.caption(f"At this operating point the model had validation sensitivity {sens:.1%} and specificity {spec:.1%}.")

heat = app_state.heatmap(f"{result.xray.sha256}", method, result.model_input)
blend = overlay(result.xray.pixels, heat.cam, opacity if not heat.flat else 0.0, colormap)
left, right = st.columns(2)
left.image(result.xray.pixels, caption="Original", width="stretch")
right.image(blend, caption=f"{METHODS[method]}: regions that raised the pneumonia score", width="stretch")
if heat.flat:
    st.warning(
        f"The {METHODS[method]} map is flat: no region stands out for this image, so no overlay is shown. "
        "Try another method."
    )

st.download_button(
    "Download report (PDF)",
    report.pdf_report(
        result,
        overlay(result.xray.pixels, heat.cam, 0.4, colormap),
        model_version=clf.version,
        operating_point=op,
        sensitivity=sens,
        specificity=spec,
        method=METHODS[method],
        heatmap_flat=heat.flat,
    ),
    file_name=f"review-{result.xray.sha256[:12]}.pdf",
    mime="application/pdf",
)

with st.form(f"feedback_{result.xray.sha256[:16]}", clear_on_submit=True):
    st.markdown("**Your read** (saved to the audit trail with the image hash, not the image)")
    agree = st.radio("Do you agree with the model?", ["Agree", "Disagree"], horizontal=True, key="agree")
    comment = st.text_input("Comment (optional; do not enter patient identifiers)", key="comment")
    if st.form_submit_button("Save review"):
        app_state.audit_log().record(
            image_sha256=result.xray.sha256,
            model_version=clf.version,
            operating_point=op,
            threshold=threshold,
            heatmap_method=method,
            probability=result.probability,
            label=result.label,
            reader_agrees=agree == "Agree",
            comment=comment,
        )
        st.success("Review saved.")

with st.expander("Audit trail (recent reviews)"):
    log = app_state.audit_log()
    st.dataframe(log.recent(50), hide_index=True)
    st.download_button("Download audit trail CSV", log.to_csv(), "audit.csv", "text/csv")
