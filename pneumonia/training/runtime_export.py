"""Export the served graph to ONNX, the format the reading station runs on (ONNX Runtime).

The served graph is the trained Keras model cut to what serving reads, in one pass:

* ``member_logits``: each member's logits (pneumonia, bacterial), which calibration works on;
* ``embedding``: the first member's last feature map averaged over space, which the gate compares
  with the training set's;
* ``patch_evidence``: each member's logit per cell of the 14x14 map before averaging, less the
  head's bias. For a patch-evidence network this is the default heatmap: Grad-CAM's map is
  ReLU(patch logit - bias) up to a constant factor (:mod:`pneumonia.serving.explain`).

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
    return keras.Model(model.input, outputs, name="served_graph")


def export_onnx(model: keras.Model, metadata: ModelMetadata, out: Path) -> dict:
    """Write ``out/model.onnx`` from the Keras model; returns the metadata's ``runtime`` record."""
    from pneumonia.serving.runtime import ServedGraph

    graph = serving_graph(model, metadata)
    size = metadata.input_spec.size
    graph.predict_on_batch(np.zeros((1, size, size, 1), np.float32))  # Keras exports only a model that ran
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

    expected = serving_graph(model, metadata).predict_on_batch(np.asarray(inputs, np.float32))
    got = ServedGraph(Path(out) / RUNTIME_FILE).run(np.asarray(inputs, np.float32))
    return {name: float(np.abs(np.asarray(expected[name]) - got[name]).max()) for name in got}


def export_model_dir(model_dir: Path, check_inputs: np.ndarray | None = None) -> ModelMetadata:
    """Export the served graph of the model in ``model_dir`` and record it in its metadata.
    ``check_inputs``: model inputs on which the file must agree with Keras (1e-4 on the logits)."""
    import keras

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
