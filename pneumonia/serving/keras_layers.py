"""The Keras layer the lung-gated model adds to the stock ones; imported (with TensorFlow) only where
the Keras model itself is built or loaded: training, and the tf-keras-vis heatmap methods."""

from __future__ import annotations

import keras
from keras import ops

PACKAGE = "pneumonia"


@keras.saving.register_keras_serializable(package=PACKAGE)
class NormalisedCellWeights(keras.layers.Layer):
    """Per-cell pooling weights (N, h, w, 1) scaled to average 1 over the cells, so that the spatial
    mean of weights x cell logits is the weighted mean of the cell logits. Scaling inside the graph
    keeps the score a weighted mean when a heatmap method perturbs the weights (Score-CAM masks every
    input); a film without any weight gets zeros, never all-cell pooling."""

    def call(self, weights):
        mean = ops.mean(weights, axis=(1, 2), keepdims=True)
        return ops.where(mean > 0, weights / ops.maximum(mean, 1e-12), ops.zeros_like(weights))

    def compute_output_shape(self, input_shape):
        return input_shape
