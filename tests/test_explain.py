"""Heatmaps from tf-keras-vis: every method, flat-map detection, and the shared model left untouched."""

from __future__ import annotations

import numpy as np
import pytest

from pneumonia.core.decode import read_file
from pneumonia.core.preprocess import to_model_input
from pneumonia.serving.explain import METHODS, Explainer, keras_explainer, overlay


def _explainer(classifier, method: str) -> Explainer:
    return keras_explainer(classifier, method)


@pytest.fixture(scope="module")
def model_input(classifier, pneumonia_sample):
    return to_model_input(read_file(str(pneumonia_sample)).pixels, classifier.spec)


@pytest.mark.parametrize("method", list(METHODS))
def test_each_method_gives_a_normalised_map(classifier, model_input, method):
    heat = _explainer(classifier, method)(model_input)
    size = classifier.spec.size
    assert heat.cam.shape == (size, size)
    assert not heat.flat
    assert heat.cam.min() == pytest.approx(0.0, abs=1e-6) and heat.cam.max() == pytest.approx(1.0, abs=1e-6)


def test_flat_map_is_detected(classifier, model_input):
    explainer = _explainer(classifier, "gradcam")
    explainer.visualizer = lambda *a, **k: np.zeros((1, 224, 224))
    heat = explainer(model_input)
    assert heat.flat and heat.cam.max() == 0


def test_explainers_do_not_modify_the_shared_model(classifier, model_input):
    before = classifier.predict(model_input[None])[0].probability
    for method in METHODS:
        _explainer(classifier, method)
    assert classifier.keras_model().get_layer("logits").activation.__name__ == "linear"
    assert classifier.predict(model_input[None])[0].probability == pytest.approx(before, abs=1e-6)


def test_unknown_method(classifier):
    with pytest.raises(ValueError, match="unknown heatmap method"):
        _explainer(classifier, "saliency")


def test_overlay_matches_the_xray(pneumonia_sample):
    px = read_file(str(pneumonia_sample)).pixels
    out = overlay(px, np.linspace(0, 1, 160 * 160).reshape(160, 160), alpha=0.5)
    assert out.shape == (*px.shape, 3) and out.dtype == np.uint8
    assert np.array_equal(overlay(px, np.ones((160, 160)), alpha=0.0)[..., 0], px)


def test_subtype_heatmap_differs_from_the_pneumonia_heatmap(classifier, model_input):
    """The heatmap can be asked what made an image look bacterial (the second logit)."""
    pneumonia = keras_explainer(classifier, "gradcam")(model_input)
    bacterial = keras_explainer(classifier, "gradcam", output_index=1)(model_input)
    assert not pneumonia.flat and not bacterial.flat
    assert not np.allclose(pneumonia.cam, bacterial.cam, atol=1e-3)


def test_one_pass_gradcam_equals_tf_keras_vis_gradcam_weighted_by_the_lungs(classifier, model_input):
    """The patch-evidence shortcut gives tf-keras-vis' own Grad-CAM map on an ungated model; on the
    lung-gated model it is that map's cells each weighted by the lung weight the score gave them
    (textbook Grad-CAM averages the gradient over all cells and would light cells the score ignores)."""
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.utils.scores import CategoricalScore

    from pneumonia.serving.explain import upsample_like_tf_keras_vis

    last = classifier.metadata.last_conv_layer
    fast = keras_explainer(classifier, "gradcam")
    assert type(fast.visualizer).__name__ == "PatchGradcam"
    library = Gradcam(classifier.keras_model(), clone=True)
    weights = classifier.lung_inputs(model_input[None])[0]
    seed = model_input[None] if weights is None else [model_input[None], weights]
    for index in (0, 1):
        fast.visualizer.output_index = index
        cams = library(
            CategoricalScore(index),
            seed,
            penultimate_layer=last,
            seek_penultimate_conv_layer=False,
            normalize_cam=False,
        )
        raw = (cams[0] if isinstance(cams, list) else cams)[0]  # one map per input of a two-input model
        if weights is not None:
            raw = raw * upsample_like_tf_keras_vis(weights[0, ..., 0], raw.shape)
        want = (raw - raw.min()) / (raw.max() - raw.min())
        got = fast(model_input).cam
        assert np.corrcoef(want.ravel(), got.ravel())[0, 1] > 0.99
