"""The shipped classifier: model file, metadata, calibration, operating points and gate, loaded once."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pneumonia.core import calibration
from pneumonia.core.operating_points import ThresholdChoice
from pneumonia.serving import lung_fields
from pneumonia.serving.lung_fields import LungFields
from pneumonia.serving.metadata import RUNTIME_FILE, ModelMetadata, read_metadata
from pneumonia.serving.runtime import EMBEDDING, MEMBER_LOGITS, PATCH_EVIDENCE, ServedGraph

if TYPE_CHECKING:
    import keras

DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[2] / "models"


@dataclass
class Prediction:
    logit: float  # the ensemble's pneumonia logit (mean over members)
    probability: float  # calibrated
    embedding: np.ndarray
    bacterial_probability: float | None = None  # calibrated; bacterial rather than viral, if pneumonia
    ensemble_spread: float | None = None  # std of the members' calibrated pneumonia probabilities
    patch_evidence: np.ndarray | None = None  # (14, 14, members * outputs): the default heatmap's source
    lung_fields: LungFields | None = None  # the fields the score was pooled over (lung-gated models)


@dataclass
class EnsembleLogits:
    """Per-member logits split into the outputs the metadata names."""

    pneumonia: np.ndarray  # (N, K)
    bacterial: np.ndarray | None  # (N, K), None for a model without the subtype output

    @classmethod
    def from_raw(cls, raw: np.ndarray, outputs: list[str]) -> EnsembleLogits:
        members = raw.reshape(len(raw), raw.shape[1] // len(outputs), len(outputs))
        bacterial = members[:, :, outputs.index("bacterial")] if "bacterial" in outputs else None
        return cls(members[:, :, outputs.index("pneumonia")], bacterial)


class Classifier:
    """Loads ``models/`` once; layer names, thresholds and calibration come from the metadata, not code."""

    def __init__(self, model_dir: str | Path = DEFAULT_MODEL_DIR, threads: int | None = None):
        from pneumonia.serving.gate import Gate

        self.model_dir = Path(model_dir)
        self.metadata: ModelMetadata = read_metadata(self.model_dir)
        runtime_file = (self.metadata.runtime or {}).get("file", RUNTIME_FILE)
        # the served graph on ONNX Runtime: no TensorFlow at the reading station unless a
        # tf-keras-vis heatmap is asked for (keras_model())
        self.graph: ServedGraph = ServedGraph(self.model_dir / runtime_file, threads=threads)
        self.spec = self.metadata.input_spec
        self.gate = Gate.load(self.model_dir / self.metadata.gate_file)
        # a lung-gated model pools its cells over the lung fields that the segmenter finds
        self.lung_pooling: dict | None = self.metadata.extra.get("lung_pooling")
        self.segmenter = None
        if self.lung_pooling:
            self.segmenter = lung_fields.LungSegmenter(self.model_dir / self.lung_pooling["segmenter"], threads=threads)
        self._keras_model: keras.Model | None = None
        self._keras_lock = threading.Lock()

    def keras_model(self) -> keras.Model:
        """The trained Keras model, loaded (with TensorFlow) on first use: only the tf-keras-vis
        heatmap methods need it."""
        with self._keras_lock:
            if self._keras_model is None:
                import keras

                import pneumonia.serving.keras_layers  # noqa: F401 - registers the lung-gated model's layer

                self._keras_model = keras.models.load_model(self.model_dir / self.metadata.model_file, compile=False)
            return self._keras_model

    @property
    def version(self) -> str:
        return str(self.metadata.version)

    @property
    def operating_points(self) -> dict[str, dict]:
        return self.metadata.operating_points

    @property
    def default_operating_point(self) -> str:
        return self.metadata.default_operating_point

    def resolve_threshold(
        self, operating_point: str | None = None, custom_threshold: float | None = None
    ) -> ThresholdChoice:
        return self.metadata.resolve_threshold(operating_point, custom_threshold)

    def threshold(self, operating_point: str) -> float:
        return self.resolve_threshold(operating_point).threshold

    def lung_inputs(self, batch: np.ndarray) -> tuple[np.ndarray | None, list[LungFields | None]]:
        """The cells' pooling weights (N, grid, grid, 1) and each film's assessed lung fields; for a
        model without lung gating (None, [None, ...]). A film whose fields are refused gets zero weights."""
        if not self.lung_pooling:
            return None, [None] * len(batch)
        if not len(batch):
            return np.zeros((0, self.lung_pooling["grid"], self.lung_pooling["grid"], 1), np.float32), []
        masks = self.segmenter.masks(batch)
        fields = [lung_fields.assess_lung_fields(m, self.lung_pooling["limits"]) for m in masks]
        coverage = lung_fields.cell_coverage(masks, int(self.lung_pooling["grid"]))
        weights = lung_fields.pooling_weights(coverage, float(self.lung_pooling["power"]))
        weights[[f.refusal is not None for f in fields]] = 0.0
        return weights, fields

    def run_graph(
        self, batch: np.ndarray, batch_size: int = 64, lung_weights: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        """The served graph's outputs for model inputs, in chunks of ``batch_size`` (a lung-gated graph:
        with the cells' weights, from the segmenter when not given)."""
        batch = np.asarray(batch, np.float32)
        if not len(batch):
            batch = np.zeros((1, self.spec.size, self.spec.size, 1), np.float32)
            return {k: v[:0] for k, v in self.run_graph(batch, batch_size).items()}
        parts = []
        for i in range(0, len(batch), batch_size):
            chunk = batch[i : i + batch_size]
            weights = None if lung_weights is None else lung_weights[i : i + batch_size]
            if self.lung_pooling and weights is None:  # chunk by chunk: the masks' memory stays bounded
                weights = self.lung_inputs(chunk)[0]
            parts.append(self.graph.run(chunk, weights))
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def predict(self, batch: np.ndarray) -> list[Prediction]:
        """Calibrated probabilities (and embeddings for the gate) for a batch of model inputs."""
        batch = np.asarray(batch, np.float32)
        weights, fields = self.lung_inputs(batch)
        out = self.run_graph(batch, lung_weights=weights)
        split = EnsembleLogits.from_raw(out[MEMBER_LOGITS], self.outputs)
        pneumonia = split.pneumonia.mean(axis=1)
        probs = calibration.apply(self.metadata.calibration, pneumonia)
        members = calibration.apply(self.metadata.calibration, split.pneumonia)
        spread = members.std(axis=1) if split.pneumonia.shape[1] > 1 else [None] * len(probs)
        if split.bacterial is None:
            bacterial = [None] * len(probs)
        else:
            bacterial = calibration.apply(self.metadata.extra.get("subtype_calibration"), split.bacterial.mean(axis=1))
        patches = out.get(PATCH_EVIDENCE, [None] * len(probs))
        return [
            Prediction(float(lo), float(p), e, None if b is None else float(b), None if s is None else float(s), pe, lf)
            for lo, p, e, b, s, pe, lf in zip(pneumonia, probs, out[EMBEDDING], bacterial, spread, patches, fields)
        ]

    @property
    def outputs(self) -> list[str]:
        """What each member's logits mean, in order (older single-output models: pneumonia only)."""
        return list(self.metadata.extra.get("outputs", ["pneumonia"]))
