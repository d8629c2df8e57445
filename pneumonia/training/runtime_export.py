"""Export the served graph to ONNX, the format the reading station runs on (ONNX Runtime).

The served graph is the trained Keras model cut to what serving reads, in one pass:

* ``member_logits``: each member's logits (pneumonia, bacterial), which calibration works on;
* ``embedding``: the first member's last feature map averaged over space, which the gate compares
  with the training set's;
* ``patch_evidence``: each member's logit per cell of the 14x14 map before averaging, less the
  head's bias; for a lung-gated model times the cell's pooling weight, so it is exactly the evidence
  that entered the score. For a patch-evidence network this is the default heatmap: Grad-CAM's map is
  ReLU(patch evidence) up to a constant factor (:mod:`pneumonia.serving.explain`).

A lung-gated model takes the cells' lung weights as a second input (``lung_weights``).

TensorFlow stays what trains the model and what the optional tf-keras-vis methods run on.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pneumonia.serving.explain import patch_logit_layer
from pneumonia.serving.metadata import RUNTIME_FILE, ModelMetadata
from pneumonia.serving.runtime import EMBEDDING, MEMBER_LOGITS, PATCH_EVIDENCE, RUNTIME_ENGINE

if TYPE_CHECKING:
    import keras

# ONNX opset: 17 is read by every ONNX Runtime of the last three years and by OpenVINO
OPSET = 17


def serving_graph(model: keras.Model, metadata: ModelMetadata) -> keras.Model:
    """The Keras model cut to the outputs serving reads (names above), one forward pass."""
    import keras

    embedding = model.get_layer(metadata.embedding_layer).output
    if len(embedding.shape) == 4:
        embedding = keras.layers.GlobalAveragePooling2D(name="embedding_mean")(embedding)
    outputs = {MEMBER_LOGITS: model.get_layer(metadata.logit_layer).output, EMBEDDING: embedding}
    head = patch_logit_layer(model, metadata.last_conv_layer)
    if head is not None:
        bias = np.asarray(head.get_weights()[1], np.float32)
        outputs[PATCH_EVIDENCE] = keras.ops.subtract(head.output, bias)
        pooling = metadata.extra.get("lung_pooling")
        if pooling:
            weights = model.get_layer(pooling["weights_layer"]).output
            outputs[PATCH_EVIDENCE] = keras.ops.multiply(outputs[PATCH_EVIDENCE], weights)
    return keras.Model(model.inputs, outputs, name="served_graph")


def example_inputs(model: keras.Model, images: np.ndarray) -> list[np.ndarray] | np.ndarray:
    """The model's inputs for ``images``: with uniform lung weights for a lung-gated model."""
    images = np.asarray(images, np.float32)
    if len(model.inputs) == 1:
        return images
    grid = model.inputs[1].shape[1:]
    return [images, np.ones((len(images), *grid), np.float32)]


def export_onnx(model: keras.Model, metadata: ModelMetadata, out: Path) -> dict:
    """Write ``out/model.onnx`` from the Keras model; returns the metadata's ``runtime`` record."""
    from pneumonia.serving.runtime import ServedGraph

    graph = serving_graph(model, metadata)
    size = metadata.input_spec.size
    # Keras exports only a model that ran
    graph.predict_on_batch(example_inputs(model, np.zeros((1, size, size, 1), np.float32)))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    target = out / RUNTIME_FILE
    # written beside and renamed into place: a reader never sees half a file
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        part = Path(tmp) / RUNTIME_FILE
        graph.export(str(part), format="onnx", verbose=False, opset_version=OPSET)
        part.replace(target)
    return {
        "engine": RUNTIME_ENGINE,
        "file": RUNTIME_FILE,
        "sha256": hashlib.sha256(target.read_bytes()).hexdigest(),
        "outputs": sorted(ServedGraph(target).output_names),
        "opset": OPSET,
        "exported_from": metadata.model_sha256,
    }


def check_agreement(model: keras.Model, metadata: ModelMetadata, out: Path, inputs: np.ndarray) -> dict:
    """Largest absolute difference per output between the Keras graph and the exported file."""
    from pneumonia.serving.runtime import ServedGraph

    feeds = example_inputs(model, inputs)
    if isinstance(feeds, list):  # lung weights that are not uniform: one vertical band of cells
        feeds[1][:, :, : feeds[1].shape[2] // 2] = 0.0
    expected = serving_graph(model, metadata).predict_on_batch(feeds)
    graph = ServedGraph(Path(out) / RUNTIME_FILE)
    got = graph.run(feeds[0], feeds[1]) if isinstance(feeds, list) else graph.run(feeds)
    return {name: float(np.abs(np.asarray(expected[name]) - got[name]).max()) for name in got}


def export_model_dir(model_dir: Path, check_inputs: np.ndarray | None = None) -> ModelMetadata:
    """Export the served graph of the model in ``model_dir`` and record it in its metadata.
    ``check_inputs``: model inputs on which the file must agree with Keras (1e-4 on the logits)."""
    import keras

    import pneumonia.serving.keras_layers  # noqa: F401 - the lung-gated model's layer
    from pneumonia.serving.metadata import read_metadata
    from pneumonia.training import artifacts

    model_dir = Path(model_dir)
    metadata = read_metadata(model_dir)
    model = keras.models.load_model(model_dir / metadata.model_file, compile=False)
    metadata.runtime = export_onnx(model, metadata, model_dir)
    if check_inputs is not None:
        worst = check_agreement(model, metadata, model_dir, check_inputs)
        if worst[MEMBER_LOGITS] > 1e-4:
            raise RuntimeError(f"the exported graph disagrees with the Keras model: {worst}")
        metadata.runtime["agreement_max_abs"] = worst
    artifacts.write_metadata(model_dir, metadata)
    return metadata
