"""The CNN architecture: a flat Functional Keras 3 model sized for a 2-core CPU."""

from __future__ import annotations

import keras
from keras import layers

# Recorded in the model's metadata, from which serving reads them.
LAST_CONV_LAYER = "last_conv_act"
LOGIT_LAYER = "logit"
EMBEDDING_LAYER = "gap"


def build_model(size: int = 160, widths: tuple[int, ...] = (48, 96, 192, 320), dropout: float = 0.3) -> keras.Model:
    """Residual separable-conv CNN (Xception-style), flat so tf-keras-vis reaches every layer.

    The output is the sigmoid of a named linear ``logit`` layer, so calibration can work on
    logits and Grad-CAM can replace the sigmoid with a linear activation.
    """
    inputs = keras.Input(shape=(size, size, 1), name="image")
    x = layers.Conv2D(32, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.Activation("relu", name="stem_act")(x)
    for i, width in enumerate(widths):
        residual = x
        x = layers.Activation("relu", name=f"b{i}_act1")(x) if i else x
        x = layers.SeparableConv2D(width, 3, padding="same", use_bias=False, name=f"b{i}_sep1")(x)
        x = layers.BatchNormalization(name=f"b{i}_bn1")(x)
        x = layers.Activation("relu", name=f"b{i}_act2")(x)
        x = layers.SeparableConv2D(width, 3, padding="same", use_bias=False, name=f"b{i}_sep2")(x)
        x = layers.BatchNormalization(name=f"b{i}_bn2")(x)
        x = layers.MaxPooling2D(3, strides=2, padding="same", name=f"b{i}_pool")(x)
        residual = layers.Conv2D(width, 1, strides=2, padding="same", use_bias=False, name=f"b{i}_proj")(residual)
        x = layers.add([x, residual], name=f"b{i}_add")
    x = layers.SeparableConv2D(widths[-1] + 64, 3, padding="same", use_bias=False, name="last_conv")(x)
    x = layers.BatchNormalization(name="last_conv_bn")(x)
    x = layers.Activation("relu", name=LAST_CONV_LAYER)(x)
    x = layers.GlobalAveragePooling2D(name=EMBEDDING_LAYER)(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    logit = layers.Dense(1, name=LOGIT_LAYER)(x)
    outputs = layers.Activation("sigmoid", name="probability")(logit)
    return keras.Model(inputs, outputs, name="pneumonia_cnn")
