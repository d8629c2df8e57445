"""What runs on a reader's workstation: the classifier, the chest x-ray gate, heatmaps and the
pipeline from uploaded bytes to an :class:`~pneumonia.serving.results.ImageResult`.

Imports :mod:`pneumonia.core` only, and TensorFlow only inside the functions that need it, so
importing a serving module stays fast.
"""
