"""Fit the chest x-ray gate (:mod:`pneumonia.serving.gate`) on training x-rays, with limits set on
held-out validation x-rays."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from sklearn.covariance import LedoitWolf
from sklearn.decomposition import PCA

from pneumonia.serving.gate import Gate, appearance_error, appearance_vector, embedding_distance
from pneumonia.serving.model import forward

if TYPE_CHECKING:
    import keras

PCA_COMPONENTS = 40
# The limits are this quantile of the validation x-rays' scores, times a margin.
ACCEPT_QUANTILE = 0.995
MARGIN = 1.25


def fit_gate(
    train_inputs: np.ndarray, train_embeddings: np.ndarray, val_inputs: np.ndarray, val_embeddings: np.ndarray
) -> dict[str, np.ndarray]:
    """Gate parameters: models fitted on training x-rays, limits set on held-out validation x-rays
    (in-sample scores are optimistic and would set the limits too tight)."""
    vec = appearance_vector(train_inputs)
    pca = PCA(n_components=min(PCA_COMPONENTS, len(vec) // 2), random_state=0).fit(vec)
    lw = LedoitWolf().fit(np.asarray(train_embeddings, np.float64))
    params = {
        "pca_mean": pca.mean_.astype(np.float32),
        "pca_components": pca.components_.astype(np.float32),
        "emb_mean": lw.location_.astype(np.float64),
        "emb_precision": lw.precision_.astype(np.float64),
    }
    app = appearance_error(params, appearance_vector(val_inputs))
    emb = embedding_distance(params, val_embeddings)
    params["appearance_limit"] = np.float64(np.quantile(app, ACCEPT_QUANTILE) * MARGIN)
    params["embedding_limit"] = np.float64(np.quantile(emb, ACCEPT_QUANTILE) * MARGIN)
    return params


def acceptance_rate(params: dict[str, np.ndarray], inputs: np.ndarray, embeddings: np.ndarray) -> float:
    """Share of ``inputs`` that pass both learned checks of the gate."""
    app, dist = Gate(params).scores(inputs, embeddings)
    return float(((app <= params["appearance_limit"]) & (dist <= params["embedding_limit"])).mean())


def fit_gate_on_parts(fwd: keras.Model, x_all: np.ndarray, parts: dict[str, np.ndarray]) -> tuple[dict, dict]:
    """Gate parameters fitted on the training part, and its acceptance on validation and internal test."""
    inputs = {k: x_all[parts[k]].astype(np.float32) for k in ("train", "val", "test")}
    embeddings = {k: forward(fwd, v)[1] for k, v in inputs.items()}
    params = fit_gate(inputs["train"], embeddings["train"], inputs["val"], embeddings["val"])
    acceptance = {
        name: {"n": int(len(inputs[k])), "accepted": acceptance_rate(params, inputs[k], embeddings[k])}
        for name, k in (("val", "val"), ("internal_test", "test"))
    }
    return params, acceptance
