"""Dataset page: what the training data looks like, from the summary shipped in assets/."""

import streamlit as st

from pages import resources, widgets
from pneumonia.insight import charts


def summary_charts(summary: dict, arrays: dict) -> None:
    rows = [
        (charts.counts_by_split(summary), charts.patients_by_split(summary)),
        (charts.subtype_counts(summary), charts.images_per_patient(summary)),
        (charts.size_scatter(summary), charts.intensity_histograms(summary)),
        (charts.mean_images(arrays),),
    ]
    for row in rows:
        for col, figure_and_answer in zip(st.columns(len(row)), row):
            with col:
                widgets.chart_with_answer(figure_and_answer)


def samples_by_class(samples: list) -> None:
    st.subheader("Samples per class and subtype")
    for group in ("NORMAL_normal", "PNEUMONIA_bacteria", "PNEUMONIA_virus"):
        row = [p for p in samples if p.name.startswith(group)]
        st.markdown(f"**{group.replace('_', ' / ')}**")
        for col, path in zip(st.columns(4), row):
            col.image(str(path), caption=path.name.split("_", 2)[-1], width="stretch")
    st.caption(
        "Normal lungs are dark and clear; bacterial pneumonia tends to show focal consolidation, viral a "
        "more diffuse interstitial pattern."
    )


def augmentation(samples: list) -> None:
    st.subheader("Training augmentation")
    sample = st.selectbox("Sample", samples, format_func=lambda p: p.name, key="aug_sample")
    strength = st.slider("Augmentation strength", 0.0, 2.0, 1.0, 0.25, key="aug_strength")
    previews = resources.augmentation_preview(sample.read_bytes(), sample.name, strength)
    for i, (col, img) in enumerate(zip(st.columns(len(previews)), previews)):
        col.image(img, caption="model input" if i == 0 else f"augmented #{i}", width="stretch")
    st.caption(
        "Training sees each image with random rotation (up to ~11 degrees), shift, zoom, gamma, contrast, "
        "brightness, blur and noise, and never mirrored: the heart sits on the left."
    )


st.title("The data set")
st.markdown(
    "Pediatric chest radiographs (children aged 1-5) from Guangzhou Women and Children's Medical Center, "
    "published by Kermany et al., *Cell* 2018 (CC BY 4.0). The figures below are computed by "
    "`python -m pneumonia.eda` from the copy of the data used here (the training pool); the data set's own "
    "624-image held-out test split (the same hospital, other children) is not part of it."
)
summary_charts(*resources.data_set_summary())
samples = resources.sample_files()
samples_by_class(samples)
augmentation(samples)
