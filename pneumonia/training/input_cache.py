"""The training input cache: a data set decoded once into model-ready arrays on disk, keyed by
its files and the input spec."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from pneumonia.core.decode import read_file
from pneumonia.core.preprocess import InputSpec, to_model_input

DEFAULT_CACHE_DIR = Path("cache")
log = logging.getLogger(__name__)


def fingerprint(manifest: pd.DataFrame) -> str:
    """SHA-256 over the relative file names and labels: identifies the training data."""
    h = hashlib.sha256()
    for name, label in sorted(zip(manifest["path"].map(lambda p: "/".join(Path(p).parts[-3:])), manifest["label"])):
        h.update(f"{name}:{label}\n".encode())
    return h.hexdigest()


def load_arrays(manifest: pd.DataFrame, spec: InputSpec, cache_dir: Path = DEFAULT_CACHE_DIR) -> np.ndarray:
    """Model inputs for every manifest row (float16 to halve memory), decoded once and cached."""
    key = hashlib.sha256((fingerprint(manifest) + json.dumps(spec.to_dict(), sort_keys=True)).encode()).hexdigest()
    path = Path(cache_dir) / f"inputs-{key[:16]}.npy"
    if path.exists():
        return np.load(path)
    t0 = time.time()
    out = np.empty((len(manifest), spec.size, spec.size, 1), np.float16)
    for i, p in enumerate(manifest["path"]):
        out[i] = to_model_input(read_file(p).pixels, spec)
        if (i + 1) % 1000 == 0:
            log.info("decoded %d/%d images (%.0f s)", i + 1, len(manifest), time.time() - t0)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, out)
    log.info("cached %d images in %.0f s -> %s", len(manifest), time.time() - t0, path)
    return out
