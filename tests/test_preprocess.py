"""One preprocessing function serves training and inference alike."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pneumonia.core.decode import load_xray, read_file
from pneumonia.core.preprocess import InputSpec, to_model_input
from pneumonia.training.input_cache import load_arrays


def test_shape_range_and_squash(samples):
    spec = InputSpec(size=96)
    x = to_model_input(read_file(str(samples[0])).pixels, spec)
    assert x.shape == (96, 96, 1) and x.dtype == np.float32
    assert x.min() >= 0.0 and x.max() <= 1.0
    # a wide image is squashed, not cropped or padded: the left and right edges survive
    wide = np.zeros((100, 300), np.uint8)
    wide[:, :10] = 255
    assert to_model_input(wide, spec)[:, 0, 0].mean() > 0.9


def test_clahe_changes_contrast_only_when_asked(samples):
    px = read_file(str(samples[0])).pixels
    plain = to_model_input(px, InputSpec(size=128))
    clahe = to_model_input(px, InputSpec(size=128, clahe=True))
    assert not np.allclose(plain, clahe)
    assert np.corrcoef(plain.ravel(), clahe.ravel())[0, 1] > 0.8


def test_rejects_non_grayscale():
    with pytest.raises(ValueError):
        to_model_input(np.zeros((10, 10, 3), np.uint8), InputSpec())


def test_training_cache_equals_inference_path(samples, tmp_path):
    """The training cache and an upload produce the same model input for the same file."""
    spec = InputSpec(size=64)
    manifest = pd.DataFrame({"path": [str(p) for p in samples[:3]], "label": [0, 0, 1]})
    cached = load_arrays(manifest, spec, tmp_path)
    assert load_arrays(manifest, spec, tmp_path) is not None  # second call reads the cache file
    assert len(list(tmp_path.glob("*.npy"))) == 1
    for i, p in enumerate(samples[:3]):
        upload = to_model_input(load_xray(p.read_bytes(), p.name).pixels, spec)
        np.testing.assert_allclose(cached[i].astype(np.float32), upload, atol=1e-3)  # float16 storage
