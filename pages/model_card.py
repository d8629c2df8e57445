"""Model card: a board summary on the held-out test split first, then provenance, calibration where it
was not fitted, subgroups, accountability, version history, safe use, the reporting checklist and known
limitations; technical detail (architecture, training, Platt constants, hashes) folded at the end."""

import streamlit as st

from pages import resources, validation_views
from pneumonia.insight.artifacts import heatmap_sentence, metrics_table
from pneumonia.insight.eda_summary import squashed_share
from pneumonia.serving.explain import METHODS

art = resources.model_artifacts()
meta, tm = art.metadata, art.test_metrics
train = meta.training
hard_normals = train.get("n_images", {}).get("hard_normals", 0)

st.title("Model card")
validation_views.board_summary(art, key="card_prevalence")
validation_views.provenance_section(art)
validation_views.held_out_calibration(art)
validation_views.subgroup_section(art)

st.markdown("### What the heatmap means")
if meta.extra.get("lung_pooling"):
    st.markdown(
        "The score is pooled over the lung fields only, so every map shows only evidence on the lungs: a cell "
        "outside them carried no weight in the score and is not lit."
    )
for method, name in METHODS.items():
    sentence = heatmap_sentence(method, hard_normals, meta.version)
    if sentence:
        st.markdown(f"- **{name}, in plain words:** {sentence}")

st.markdown("""
### Intended use
- An **aid to a qualified reader** reviewing frontal chest radiographs of **children aged 1 to 5**: a calibrated
  probability of pneumonia and a heatmap of what drove the score. Not a replacement for the reader, not a device.
- Trained on **one hospital's population** (Guangzhou Women and Children's Medical Center).

### Not intended for
- Adults, lateral views, CT or MR, or any image the input check refuses.
- Triage without a reader, or screening decisions.
- Another hospital's images without a local validation first (Model performance > Your data guides one).
- Prescribing: the bacterial-vs-viral estimate is secondary and **no basis for antibiotics**.
""")
validation_views.accountability_section()
validation_views.version_history_section(art)
st.markdown(validation_views.SAFE_USE)
validation_views.checklist_section()

st.markdown("""
### Known limitations
- **One hospital, one period.** Every figure comes from one hospital; the held-out split is other children of the
  same hospital, not another site. Expect another hospital's figures to differ: validate locally before use.
- **No reader study.** Nobody has measured whether readers are more accurate, or faster, with the model than
  without it, or how it compares with radiologists; the figures here are the model's alone.
- **Adult images.** An adult-trained CNN reached only AUC 0.82 on this pediatric set (PLOS ONE 2024); expect the
  reverse, this pediatric model on adults, to fail as well. DICOM files of adults are refused.
- **Squashed copies.** Most training images lost their aspect ratio; the model sees squashed anatomy.
- **Burned-in markers and labels** (L/R letters, text) are in many images; corner erasing in training reduces,
  but does not remove, their weight.
- **Heatmaps are not localisation** (see What the heatmap means).
- **Bacterial vs viral** (see Results by subgroup): the labels come from file names and are noisy; never a basis
  for prescribing.
- **Input check.** It refuses photographs, documents, blank images, noise and CT/MR, but an unusual radiograph
  (another body part) may still pass it.
""")

with st.expander("Technical detail: architecture, training, calibration constants, hashes, training-pool metrics"):
    squashed = squashed_share(resources.data_set_summary()[0])  # the same figure the Dataset page shows
    cal = tm["calibration"]["validation"]
    st.markdown(f"""
{meta.architecture}; {meta.parameters:,} parameters, input {meta.input_spec.size}x{meta.input_spec.size} grayscale;
file SHA-256 `{meta.model_sha256[:16]}...`; training data fingerprint `{meta.data["fingerprint_sha256"][:16]}...`

- Data here: 8-bit grayscale copies with the shorter side at 320 px; {squashed:.0%} exist only as 224x224
  **squashed** copies, so every image is squashed to a square before the model sees it.
- Split: {meta.data["split"]}: {train["n_images"]["pool"]:,} images, of which {hard_normals} are *hard normals*
  (the normals the first model scored highest when cropped; their patients are in no fold).
- From scratch (no pretrained weights): `{train["command"]}`; {len(train.get("members", []))} members, one per
  (seed, fold), {train["epochs_run"]} epochs each ({train["train_seconds"] / 60:.0f} minutes on one GPU).
- Preprocessing: {meta.preprocessing}.
- Calibration: Platt scaling of the members' mean logit, fitted out of fold on the films as taken and cropped
  (a={meta.calibration["a"]:.3f}, b={meta.calibration["b"]:.3f}); ECE on the training pool {cal["before"]["ece"]:.3f}
  before, {cal["after"]["ece"]:.3f} after. Operating points chosen on the same re-framed out-of-fold validation.
""")
    st.markdown("**Training pool, out of fold, at the default operating point** (optimistic; not the headline):")
    st.dataframe(
        metrics_table(tm),
        hide_index=True,
        column_config={c: st.column_config.NumberColumn(format="%.3f") for c in ("value", "95% CI low", "95% CI high")},
    )
    st.markdown(validation_views.VALIDATION_WORDS)
