"""Pneumonia chest x-ray review: decoding, the model, explanation, training and reporting logic.

Layers (imports run downward only; ``lint-imports`` checks it):
``predict``/``evaluate``/``train``/``eda``/``finalize`` (command-line faces) >
``insight`` | ``training`` > ``serving`` > ``core`` | ``audit``.
Page scripts in ``pages/`` are thin views over this package.
"""

import os

__version__ = "1.0.0"

# TensorFlow's environment, set here once: every module that imports TensorFlow is inside this
# package, so this runs first. Only C++ warnings and errors reach stderr.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
