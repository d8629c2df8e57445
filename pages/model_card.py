"""Model card: intended use, data, training, metrics and known limitations."""

import streamlit as st

from pages import resources, widgets
from pneumonia.insight.artifacts import metrics_table
from pneumonia.insight.eda_summary import squashed_share

art = resources.model_artifacts()
meta, tm = art.metadata, art.test_metrics
train = meta.training
cal = tm["calibration"]["internal_test"]
squashed = squashed_share(resources.data_set_summary()[0])  # the same figure the Dataset page shows

st.title("Model card")
st.markdown(f"""
**Model** {meta.version} &nbsp;·&nbsp; {meta.architecture}, {meta.parameters:,} parameters,
input {meta.input_spec.size}x{meta.input_spec.size} grayscale &nbsp;·&nbsp; created {meta.created}
&nbsp;·&nbsp; file SHA-256 `{meta.model_sha256[:16]}...`

### Intended use
- An **aid to a qualified reader** reviewing frontal (PA/AP) chest radiographs of **pediatric patients aged 1 to 5**:
  it gives a calibrated probability of pneumonia and a heatmap of what drove the score. It is not a replacement
  for the reader and not a diagnostic device.
- Trained on **one hospital's population** (Guangzhou Women and Children's Medical Center).

### Not intended for
- Adults, lateral views, CT or MR, or any image the input check refuses.
- Triage without a reader, screening decisions, or telling bacterial from viral pneumonia.
- Other hospitals' images without a local validation first.

### Data
- {meta.data["source"]}. Kermany D. S. et al., *Cell* 172(5), 2018; Mendeley Data doi:10.17632/rscbjbr9sj.2.
- Here: 8-bit grayscale copies with the shorter side at 320 px; {squashed:.0%} exist only as 224x224 **squashed** copies
  (aspect ratio lost), so every image is squashed to a square before the model sees it.
- Split: {meta.data["split"]}: {train["n_images"]["train"]} training, {train["n_images"]["val"]} validation,
  {train["n_images"]["test"]} internal test images. No patient is in two parts.
- Training data fingerprint (SHA-256 of file names and labels): `{meta.data["fingerprint_sha256"]}`

### Training
- From scratch (no pretrained weights). `{train["command"]}`
- {train["epochs_run"]} epochs ({train["seconds_per_epoch"]} s each on 2 CPU cores, {train["train_seconds"] / 60:.0f}
  minutes); weights of epoch {train["best_epoch"]} kept by early stopping on validation AUC (validation images
  plus stressed copies).
- Augmentation: rotation, shift, zoom, gamma, contrast, brightness, blur, noise; no mirroring. Balanced class
  weights; label smoothing; AdamW with cosine decay.
- Preprocessing: {meta.preprocessing}.
- Calibration: Platt scaling on the logit, fitted on validation (a={meta.calibration["a"]:.3f},
  b={meta.calibration["b"]:.3f}).
- Operating points chosen on validation pooled with stressed copies (contrast, gamma, blur, noise, resolution,
  crop), because thresholds chosen on the clean internal split did not transfer to the official test split.
""")

st.markdown("### Metrics (internal test split, patient-held-out; not the official test split)")
st.dataframe(metrics_table(tm), hide_index=True)
st.markdown(
    f"Calibration on the internal test: ECE {cal['before']['ece']:.3f} before, {cal['after']['ece']:.3f} "
    f"after; Brier {cal['before']['brier']:.3f} before, {cal['after']['brier']:.3f} after."
)
widgets.operating_point_table(meta.operating_points)
official = meta.official_test
if official:
    st.markdown(
        f"**Official test split** ({official['n']} images): accuracy {official['accuracy']:.1%}, "
        f"AUC {official['roc_auc']:.3f}, sensitivity {official['sensitivity']:.1%}, "
        f"specificity {official['specificity']:.1%}."
    )
else:
    st.markdown(
        "**Official test split**: not yet measured for this model. Expect it to be lower than the internal "
        "figures above."
    )

st.markdown("""
### Known limitations
- **Distribution shift between hospitals and periods.** The internal split flatters: models scoring validation
  AUC 0.99+ here scored 0.93-0.96 on the official test split, and their validation thresholds lost specificity.
- **Adult images.** An adult-trained CNN reached only AUC 0.82 on this pediatric set (PLOS ONE 2024); expect the
  reverse shift, this pediatric model on adults, to hurt as well. Do not use it on adults.
- **Squashed copies.** Most training images lost their aspect ratio; the model sees squashed anatomy and may
  rely on cues that differ in properly proportioned images.
- **Burned-in markers and labels** (L/R letters, text) are present in many images and can act as shortcuts.
- **Heatmaps are not localisation.** Grad-CAM family maps show what raised the score at 1/32 of the input
  resolution; they are not a segmentation of disease and can highlight non-lung regions.
- **Input check.** The chest x-ray gate rejects photographs, documents, blank images, noise and CT/MR by modality,
  but an unusual radiograph (other body part, adult) may still pass it.
""")
