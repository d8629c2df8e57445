"""The layout of a model folder (``models/``) and the schema of its ``metadata.json``.

:mod:`pneumonia.training.artifacts` writes the folder; serving and insight read it back through
this module. The metadata is the one source of the model's layer names, input spec, calibration
and operating points; nothing in serving takes them from training's code.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from pneumonia.core.operating_points import ThresholdChoice, resolve_threshold
from pneumonia.core.preprocess import InputSpec

METADATA_FILE = "metadata.json"
MODEL_FILE = "model.keras"
RUNTIME_FILE = "model.onnx"  # the served graph for ONNX Runtime (pneumonia.training.runtime_export)
GATE_FILE = "gate.npz"
HISTORY_FILE = "history.csv"  # per-epoch training curves
RUN_FILE = "run.json"  # how the model was trained (command, config, timing)
SPLIT_FILE = "split.csv"  # which image went to which part, by patient
TEST_METRICS_FILE = "test_metrics.json"
TEST_PREDICTIONS_FILE = "test_predictions.csv"
VAL_PREDICTIONS_FILE = "val_predictions.csv"
FAILURES_FILE = "failures.npz"  # the most confident mistakes, as model inputs
EXPERIMENT_LOG_FILE = "experiments.csv"
# what a training run writes into its output folder
RUN_ARTIFACTS = (
    MODEL_FILE,
    RUNTIME_FILE,
    METADATA_FILE,
    GATE_FILE,
    HISTORY_FILE,
    TEST_METRICS_FILE,
    TEST_PREDICTIONS_FILE,
    VAL_PREDICTIONS_FILE,
    FAILURES_FILE,
    SPLIT_FILE,
)
# Metadata written before the logit and embedding layers were recorded; every model of that time
# named them so.
_LAYER_NAMES_BEFORE_THEY_WERE_RECORDED = {"logit_layer": "logit", "embedding_layer": "gap"}


@dataclass
class ModelMetadata:
    """Everything serving needs to load and use a trained model, and what the model card shows."""

    version: str
    created: str
    model_file: str
    model_sha256: str
    gate_file: str
    input_spec: InputSpec
    last_conv_layer: str  # the layer the heatmaps read
    logit_layer: str  # the linear layer before the sigmoid: calibration works on its output
    embedding_layer: str  # the penultimate embedding the gate compares with the training set's
    calibration: dict | None
    operating_points: dict[str, dict]
    default_operating_point: str
    architecture: str = ""
    parameters: int | None = None
    preprocessing: str = ""
    training: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    official_test: dict | None = None
    runtime: dict | None = None  # the exported served graph: engine, file, sha256, outputs
    extra: dict = field(default_factory=dict)  # keys this schema does not know, kept on a round trip

    @classmethod
    def from_dict(cls, raw: dict) -> ModelMetadata:
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        values = {**_LAYER_NAMES_BEFORE_THEY_WERE_RECORDED, **{k: v for k, v in raw.items() if k in known}}
        values["input_spec"] = InputSpec.from_dict(raw["input_spec"])
        return cls(**values, extra={k: v for k, v in raw.items() if k not in known})

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        out["input_spec"] = self.input_spec.to_dict()
        for optional in ("official_test", "runtime"):
            if out[optional] is None:
                del out[optional]
        return {**out, **self.extra}

    def resolve_threshold(
        self, operating_point: str | None = None, custom_threshold: float | None = None
    ) -> ThresholdChoice:
        """:func:`pneumonia.core.operating_points.resolve_threshold` over this model's points."""
        return resolve_threshold(self.operating_points, self.default_operating_point, operating_point, custom_threshold)


def read_metadata(model_dir: str | Path) -> ModelMetadata:
    """The metadata of the model in ``model_dir`` (no TensorFlow needed)."""
    return ModelMetadata.from_dict(json.loads((Path(model_dir) / METADATA_FILE).read_text()))
