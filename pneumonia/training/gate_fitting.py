"""Fit the chest x-ray gate (:mod:`pneumonia.serving.gate`) on training x-rays, with limits set on
held-out validation x-rays."""

from __future__ import annotations

import numpy as np
from sklearn.covariance import LedoitWolf
from sklearn.decomposition import PCA

from pneumonia.serving.gate import Gate, appearance_error, appearance_vector, embedding_distance

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
