"""The lung-field reference and segmenter (issue 19): plausible fields on real x-rays, agreement with
the hand traces, no TensorFlow at serving, and the heatmap measures built on them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from pneumonia.core.decode import read_file
from pneumonia.core.preprocess import InputSpec, to_model_input
from pneumonia.insight.heatmap_measures import hotspot_at_edge, hotspot_inside, mass_inside
from pneumonia.serving.lung_fields import MODEL_INPUT_SIZE, default_segmenter, lung_field_mask, lung_outline
from pneumonia.training.lung_segmenter import (
    GROUPS,
    augmented_batch,
    dice,
    film_fields,
    film_input,
    patient_split,
    polygon_mask,
    read_traces,
    sample_film_names,
    trace_problems,
)

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = sorted((ROOT / "assets" / "samples").glob("*.jpeg"))
TRACES = ROOT / "assets" / "lung_fields" / "traces.jsonl"
RESULTS = ROOT / "bench" / "results" / "lung_segmenter.json"
DATA = ROOT.parent / "shared" / "data" / "chest_xray"
# Dice floors, set below what the shipped segmenter measured (bench/results/lung_segmenter.json): 0.88 mean on
# the 28 held-out traced films (lowest 0.68), 0.88 on the ten sample x-rays (lowest 0.83). A retrained model
# that falls below them on the same films is worse than the one these tests were written for.
HELD_OUT_DICE_FLOOR = 0.85
SAMPLE_DICE_FLOOR = 0.85
FILM_DICE_FLOOR = 0.60  # no single held-out film far off


def _input(path: Path) -> np.ndarray:
    return to_model_input(read_file(str(path)).pixels, InputSpec(size=MODEL_INPUT_SIZE))


@pytest.mark.parametrize("path", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_a_chest_xray_gets_two_lungs_of_plausible_size(path):
    mask = lung_field_mask(_input(path))
    assert mask.shape == (MODEL_INPUT_SIZE, MODEL_INPUT_SIZE) and mask.dtype == bool
    assert 0.12 <= mask.mean() <= 0.50
    n, _, stats, centroids = cv2.connectedComponentsWithStats(mask.astype(np.uint8))
    assert n - 1 == 2, "two lungs"
    assert sorted(c[0] < MODEL_INPUT_SIZE / 2 for c in centroids[1:]) == [False, True], "one each side"
    shares = stats[1:, cv2.CC_STAT_AREA] / mask.size
    assert all(0.04 <= s <= 0.30 for s in shares)
    rows = np.nonzero(mask.any(axis=1))[0] / MODEL_INPUT_SIZE
    assert rows.min() < 0.35 and rows.max() > 0.65, "apex to diaphragm spans the middle of the film"


def test_the_segmenter_agrees_with_the_held_out_hand_traces():
    """Dice on the traced films the segmenter never saw (patient-disjoint), through the serving code."""
    if not DATA.exists():
        pytest.skip(f"the shared data set is not at {DATA}")
    held = {f["file"] for f in json.loads(RESULTS.read_text())["held_out"]["per_film"]}
    films = [f for f in read_traces(TRACES) if f.file in held]
    assert len(films) >= 10
    masks = default_segmenter().masks(np.stack([film_input(DATA, f) for f in films]))
    scores = [dice(m, film_fields(f)) for m, f in zip(masks, films)]
    assert np.mean(scores) >= HELD_OUT_DICE_FLOOR and min(scores) >= FILM_DICE_FLOOR, scores


def test_the_segmenter_agrees_with_the_traces_of_the_sample_xrays():
    """The repo's sample x-rays are traced in the reference and never trained on (their patients are
    always held out): a Dice check that needs no data set."""
    traced = {f.file: f for f in read_traces(TRACES)}
    names = sample_film_names(ROOT / "assets" / "samples")
    assert names <= set(traced), "every sample x-ray is traced"
    assert not names & set(json.loads(RESULTS.read_text())["training"]["files"]), "none was trained on"
    scores = []
    for path in SAMPLES:
        label, _, original = path.name.split("_", 2)
        scores.append(dice(lung_field_mask(_input(path)), film_fields(traced[f"train/{label}/{original}"])))
    assert np.mean(scores) >= SAMPLE_DICE_FLOOR and min(scores) >= FILM_DICE_FLOOR, scores


def test_the_segmenter_runs_without_tensorflow():
    code = (
        "import sys, numpy as np; from pneumonia.serving.lung_fields import lung_field_mask; "
        "m = lung_field_mask(np.full((224, 224, 1), 0.5, np.float32)); "
        "print(m.shape, sorted({'tensorflow', 'keras', 'tf2onnx'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "(224, 224) []", out.stdout + out.stderr


def test_the_outline_is_a_closed_polygon_per_lung_in_fractions():
    mask = lung_field_mask(_input(SAMPLES[0]))
    outlines = lung_outline(mask)
    assert len(outlines) == 2
    for p in outlines:
        assert (p[0] == p[-1]).all() and len(p) >= 8
        assert p.min() >= 0 and p.max() <= 1
    redrawn = polygon_mask(outlines)
    assert dice(redrawn, mask) > 0.95


def test_the_reference_traces_are_valid_and_patient_disjoint_split():
    lines = [json.loads(line) for line in TRACES.read_text().splitlines() if line.strip()]
    assert all(not trace_problems(d) for d in lines)
    films = read_traces(TRACES)
    assert len({f.file for f in films}) == len(films)
    counts = {g: sum(f.group == g for f in films) for g in GROUPS}
    assert counts["pneumonia"] >= 60 and counts["normal"] >= 40 and counts["hard_normal"] >= 20, counts
    train, held = patient_split(films)
    assert not {films[i].patient_id for i in train} & {films[i].patient_id for i in held}
    assert all(any(films[i].group == g for i in held) for g in GROUPS)


def test_augmentation_moves_film_and_field_together():
    """The film's own bright square and its mask stay on each other after any random re-framing."""
    image = np.zeros((1, 128, 128), np.float32)
    image[0, 40:90, 30:70] = 1.0
    x, y = augmented_batch(image, image.copy(), np.random.default_rng(1), copies=8)
    for xi, yi in zip(x[..., 0], y[..., 0]):
        assert dice(xi > 0.5, yi > 0.5) > 0.85


def test_mass_and_hotspot_inside_a_mask():
    mask = np.zeros((MODEL_INPUT_SIZE, MODEL_INPUT_SIZE), bool)
    mask[:, : MODEL_INPUT_SIZE // 2] = True
    cam = np.zeros((14, 14), np.float32)
    cam[7, 2] = 1.0
    assert mass_inside(cam, mask) > 0.95
    assert hotspot_inside(cam, mask)
    assert not hotspot_inside(cam[:, ::-1], mask)
    assert np.isnan(mass_inside(np.zeros((14, 14)), mask))
    assert hotspot_at_edge(np.eye(1, 100, 5).reshape(1, 100)) and not hotspot_at_edge(
        np.eye(1, 100, 30).reshape(1, 100)
    )


def test_the_viewer_outline_lies_on_the_image_in_pixels():
    """pages.lung_outline draws one faint line per lung on each image of the viewer's figure, in the
    viewer's pixel coordinates of the film as shown (not the squashed model input)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from pages.lung_outline import add_outline, outline_fractions

    xray = read_file(str(SAMPLES[0]))
    h, w = xray.pixels.shape
    figure = make_subplots(rows=1, cols=2)
    for col in (1, 2):
        figure.add_trace(go.Image(z=np.zeros((h, w, 3), np.uint8)), row=1, col=col)
    add_outline(figure, outline_fractions(xray.sha256, _input(SAMPLES[0])), (h, w))
    lines = [t for t in figure.data if isinstance(t, go.Scatter)]
    assert len(lines) == 4 and all(t.hoverinfo == "skip" for t in lines)  # two lungs on each image
    for t in lines:
        assert min(t.x) >= -0.5 and max(t.x) <= w and min(t.y) >= -0.5 and max(t.y) <= h


def test_the_review_page_draws_the_lung_outline_when_asked():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "pages" / "review.py"), default_timeout=180).run()
    at.selectbox(key="sample").select_index(1).run()
    assert not at.exception, [e.value for e in at.exception]

    def outlined() -> bool:
        return "lung outline (AI-estimated)" in at.get("plotly_chart")[0].proto.spec

    assert not outlined()
    at.checkbox(key="lung_outline").check().run()
    assert not at.exception, [e.value for e in at.exception]
    assert outlined()
    at.checkbox(key="lung_outline").uncheck().run()
    assert not outlined()
