"""The networks: one ensemble member (a patch-evidence CNN) and the merged ensemble that ships.

A member reads the x-ray through three residual separable-conv blocks (stride 16, so each cell of
its 14x14 map sees about a third of the image, not the whole child), scores every cell with a
1x1 convolution, and averages the cells' logits: a multiple-instance "local evidence, pooled"
design. The global shape of the child, which carried the tight-framing shortcut, is not what the
head sees.

Each member has two logits: [pneumonia vs normal, bacterial vs viral]. The merged ensemble is ONE
flat Functional model (tf-keras-vis needs flat graphs): every member's trunk, their last maps
concatenated into ``last_conv_act``, a block-diagonal 1x1 ``patch_logits`` layer (each member's
own head), ``member_logits`` (N, 2K) and ``logits`` (N, 2), the members' mean.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

# Recorded in the model's metadata, from which serving reads them.
LAST_CONV_LAYER = "last_conv_act"
PATCH_LOGIT_LAYER = "patch_logits"
MEMBER_LOGIT_LAYER = "member_logits"
LOGIT_LAYER = "logits"
EMBEDDING_LAYER = "m0_last_conv_act"  # the gate averages this map over space
OUTPUTS = ("pneumonia", "bacterial")
WIDTHS = (48, 96, 192)


def member_trunk(inputs, prefix: str = "") -> keras.KerasTensor:
    """Stem and residual separable-conv blocks up to the named ReLU map (stride 16)."""
    x = layers.Conv2D(32, 3, strides=2, padding="same", use_bias=False, name=f"{prefix}stem_conv")(inputs)
    x = layers.BatchNormalization(name=f"{prefix}stem_bn")(x)
    x = layers.Activation("relu", name=f"{prefix}stem_act")(x)
    for i, width in enumerate(WIDTHS):
        residual = x
        x = layers.Activation("relu", name=f"{prefix}b{i}_act1")(x) if i else x
        x = layers.SeparableConv2D(width, 3, padding="same", use_bias=False, name=f"{prefix}b{i}_sep1")(x)
        x = layers.BatchNormalization(name=f"{prefix}b{i}_bn1")(x)
        x = layers.Activation("relu", name=f"{prefix}b{i}_act2")(x)
        x = layers.SeparableConv2D(width, 3, padding="same", use_bias=False, name=f"{prefix}b{i}_sep2")(x)
        x = layers.BatchNormalization(name=f"{prefix}b{i}_bn2")(x)
        x = layers.MaxPooling2D(3, strides=2, padding="same", name=f"{prefix}b{i}_pool")(x)
        residual = layers.Conv2D(width, 1, strides=2, padding="same", use_bias=False, name=f"{prefix}b{i}_proj")(
            residual
        )
        x = layers.add([x, residual], name=f"{prefix}b{i}_add")
    x = layers.SeparableConv2D(WIDTHS[-1] + 64, 3, padding="same", use_bias=False, name=f"{prefix}last_conv")(x)
    x = layers.BatchNormalization(name=f"{prefix}last_conv_bn")(x)
    return layers.Activation("relu", name=f"{prefix}{LAST_CONV_LAYER}")(x)


def build_member(size: int = 224, dropout: float = 0.3) -> keras.Model:
    """One member: trunk, dropout, a logit per patch, the patches' mean -> logits (N, 2)."""
    inputs = keras.Input(shape=(size, size, 1), name="image")
    x = member_trunk(inputs)
    x = layers.Dropout(dropout, name="dropout")(x)
    x = layers.Conv2D(len(OUTPUTS), 1, name=PATCH_LOGIT_LAYER)(x)
    logits = layers.GlobalAveragePooling2D(name=LOGIT_LAYER)(x)
    return keras.Model(inputs, logits, name="pneumonia_member")


def _copy_trunk_weights(member: keras.Model, merged: keras.Model, prefix: str) -> None:
    for layer in member.layers:
        if layer.weights and layer.name != PATCH_LOGIT_LAYER:
            merged.get_layer(prefix + layer.name).set_weights(layer.get_weights())


def _block_diagonal_head(members: list[keras.Model]) -> list[np.ndarray]:
    kernels = [m.get_layer(PATCH_LOGIT_LAYER).get_weights() for m in members]
    channels, n_out = kernels[0][0].shape[2], len(OUTPUTS)
    kernel = np.zeros((1, 1, channels * len(members), n_out * len(members)), np.float32)
    bias = np.zeros(n_out * len(members), np.float32)
    for i, (k, b) in enumerate(kernels):
        kernel[:, :, i * channels : (i + 1) * channels, i * n_out : (i + 1) * n_out] = k
        bias[i * n_out : (i + 1) * n_out] = b
    return [kernel, bias]


def merge_members(members: list[keras.Model], size: int = 224) -> keras.Model:
    """The members as one flat Functional model with the same outputs as their mean."""
    k, n_out = len(members), len(OUTPUTS)
    inputs = keras.Input(shape=(size, size, 1), name="image")
    maps = [member_trunk(inputs, prefix=f"m{i}_") for i in range(k)]
    stacked = layers.Concatenate(name=LAST_CONV_LAYER)(maps) if k > 1 else maps[0]
    patches = layers.Conv2D(n_out * k, 1, name=PATCH_LOGIT_LAYER)(stacked)
    member_logits = layers.GlobalAveragePooling2D(name=MEMBER_LOGIT_LAYER)(patches)
    logits = layers.Dense(n_out, use_bias=False, trainable=False, name=LOGIT_LAYER)(member_logits)
    merged = keras.Model(inputs, logits, name="pneumonia_ensemble")
    for i, member in enumerate(members):
        _copy_trunk_weights(member, merged, f"m{i}_")
    merged.get_layer(PATCH_LOGIT_LAYER).set_weights(_block_diagonal_head(members))
    mean = np.tile(np.eye(n_out, dtype=np.float32), (k, 1)) / k
    merged.get_layer(LOGIT_LAYER).set_weights([mean])
    return merged
