"""The served graph on ONNX Runtime: the model's answers without TensorFlow.

``bench/runtimes.py`` measured ONNX Runtime, OpenVINO and LiteRT on this graph (README, "Serving
runtime"); ONNX Runtime was the fastest to start and to score one image, and agrees with the Keras
model (tests/test_runtime.py).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

RUNTIME_ENGINE = "onnxruntime"
MEMBER_LOGITS = "member_logits"  # (N, members * outputs)
EMBEDDING = "embedding"  # (N, D): the gate's embedding
PATCH_EVIDENCE = "patch_evidence"  # (N, 14, 14, members * outputs): logit per cell less the bias, times its weight
LUNG_WEIGHTS = "lung_weights"  # second input of a lung-gated graph: (N, 14, 14, 1) pooling weight per cell


def _session_options(threads: int | None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # one process per core in the archive engines: ``threads`` 1 there; all cores at the reading station
    options.intra_op_num_threads = threads or max(1, len(os.sched_getaffinity(0)))
    options.inter_op_num_threads = 1
    return options


class ServedGraph:
    """One ONNX Runtime session over ``model.onnx``. ``run`` is safe from several threads (ONNX
    Runtime's ``run`` is thread-safe); the lock only keeps two large batches from fighting for cores."""

    def __init__(self, path: str | Path, threads: int | None = None):
        import onnxruntime as ort

        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(
                f"The model's runtime file {path.name} is missing from {path.parent}; "
                "export it with `python -m pneumonia.finalize --export-runtime MODEL_DIR`."
            )
        self.session = ort.InferenceSession(
            str(path), sess_options=_session_options(threads), providers=["CPUExecutionProvider"]
        )
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.input_name = next(n for n in self.input_names if n != LUNG_WEIGHTS)
        self.output_names = [o.name for o in self.session.get_outputs()]
        self._lock = threading.Lock()

    @property
    def lung_gated(self) -> bool:
        """The graph pools its cells with per-cell weights given as a second input."""
        return LUNG_WEIGHTS in self.input_names

    def run(self, batch: np.ndarray, lung_weights: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Every output of the graph for a batch of model inputs (N, S, S, 1) float32 (and, for a
        lung-gated graph, the cells' pooling weights (N, h, w, 1))."""
        feeds = {self.input_name: np.ascontiguousarray(batch, dtype=np.float32)}
        if self.lung_gated:
            if lung_weights is None:
                raise ValueError("this model pools over the lung fields: it needs the cells' lung weights")
            feeds[LUNG_WEIGHTS] = np.ascontiguousarray(lung_weights, dtype=np.float32)
        with self._lock:
            values = self.session.run(self.output_names, feeds)
        return dict(zip(self.output_names, values))
