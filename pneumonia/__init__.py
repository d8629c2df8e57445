"""Pneumonia chest x-ray review: data, model, explanation and reporting logic.

Page scripts in ``pages/`` are thin views over this package.
"""

__version__ = "1.0.0"
