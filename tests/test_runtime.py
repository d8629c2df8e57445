"""The served graph on ONNX Runtime agrees with the trained Keras model, on the samples and on odd
inputs, and serving (probability, gate, default heatmap) never imports TensorFlow."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from pneumonia.core import calibration
from pneumonia.core.decode import read_file
from pneumonia.core.preprocess import to_model_input
from pneumonia.serving.explain import RuntimeGradcam, explainer_for
from pneumonia.serving.runtime import EMBEDDING, MEMBER_LOGITS, PATCH_EVIDENCE
from tests.conftest import ROOT


def _odd_inputs(size: int) -> np.ndarray:
    """Inputs far from a chest film: noise, blank, white, a gradient, a checkerboard."""
    rng = np.random.default_rng(7)
    ramp = np.tile(np.linspace(0, 1, size, dtype=np.float32), (size, 1))
    checker = (np.indices((size, size)).sum(0) // 16 % 2).astype(np.float32)
    odd = [rng.random((size, size)), np.zeros((size, size)), np.ones((size, size)), ramp, checker]
    return np.stack(odd).astype(np.float32)[..., None]


@pytest.fixture(scope="module")
def inputs(classifier, samples) -> np.ndarray:
    films = np.stack([to_model_input(read_file(str(p)).pixels, classifier.spec) for p in samples])
    return np.concatenate([films, _odd_inputs(classifier.spec.size)])


@pytest.fixture(scope="module")
def keras_outputs(classifier, inputs) -> dict[str, np.ndarray]:
    from pneumonia.training.runtime_export import serving_graph

    graph = serving_graph(classifier.keras_model(), classifier.metadata)
    weights = classifier.lung_inputs(inputs)[0]
    feeds = inputs if weights is None else [inputs, weights]
    return {k: np.asarray(v) for k, v in graph.predict_on_batch(feeds).items()}


def test_runtime_probabilities_equal_the_keras_model(classifier, inputs, keras_outputs):
    members = keras_outputs[MEMBER_LOGITS].reshape(len(inputs), -1, len(classifier.outputs))
    expected = calibration.apply(classifier.metadata.calibration, members[:, :, 0].mean(axis=1))
    got = np.array([p.probability for p in classifier.predict(inputs)])
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    emb = classifier.run_graph(inputs)[EMBEDDING]
    np.testing.assert_allclose(emb, keras_outputs[EMBEDDING], atol=1e-4, rtol=1e-4)


def test_runtime_heatmap_equals_tf_keras_vis_path(classifier, inputs):
    """The default heatmap from the runtime's patch evidence against Grad-CAM on the Keras model
    (the one-pass Grad-CAM that tests/test_explain.py holds equal to tf-keras-vis' own)."""
    from pneumonia.serving.explain import keras_explainer

    keras_gradcam = keras_explainer(classifier, "gradcam")
    runtime_gradcam = explainer_for(classifier, "gradcam")
    assert isinstance(runtime_gradcam, RuntimeGradcam)
    for x in inputs:
        want, got = keras_gradcam(x), runtime_gradcam(x)
        assert want.flat == got.flat
        np.testing.assert_allclose(got.cam, want.cam, atol=1e-3, rtol=0)


def test_runtime_outputs_are_what_the_metadata_records(classifier):
    runtime = classifier.metadata.runtime
    assert runtime["engine"] == "onnxruntime"
    assert set(runtime["outputs"]) == {MEMBER_LOGITS, EMBEDDING, PATCH_EVIDENCE}
    assert classifier.graph.lung_gated == bool(classifier.lung_pooling)
    assert (ROOT / "models" / runtime["file"]).stat().st_size < 20e6


def test_serving_a_film_and_its_heatmap_never_imports_tensorflow(pneumonia_sample):
    code = (
        "import sys; from pneumonia.serving.model import Classifier;"
        "from pneumonia.serving.pipeline import score_files;"
        "from pneumonia.serving.explain import explainer_for; c = Classifier();"
        f"r = score_files(c, [{str(pneumonia_sample)!r}], 0.5)[0]; h = explainer_for(c, 'gradcam')(r.model_input);"
        "assert r.scored and not h.flat;"
        "print(sorted({'tensorflow', 'keras', 'tf_keras_vis'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
