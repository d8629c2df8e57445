"""Training: patient splits, the input cache, augmentation, the network, the training loop, the
finalize steps (calibration, operating points, stress test, gate fitting, failure gallery) and the
one writer of a models/ folder.

May import :mod:`pneumonia.serving` and :mod:`pneumonia.core`; never imported by them.
"""
