"""Process-wide resources and per-session scoring cache for the Streamlit pages.

The classifier, visualizers and audit log are loaded once per process (``st.cache_resource``)
and shared by all sessions; each session keeps only its own results.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
from pathlib import Path

import numpy as np
import streamlit as st
from PIL import Image

from pneumonia.audit import AuditLog, default_path
from pneumonia.explain import Explainer, Heatmap
from pneumonia.model import Classifier
from pneumonia.pipeline import ImageResult, score

ROOT = Path(__file__).resolve().parent.parent
SAMPLES_DIR = ROOT / "assets" / "samples"
MODELS_DIR = ROOT / "models"
_SESSION_KEY = "scored_results"


@st.cache_resource(show_spinner="Loading the model...")
def classifier() -> Classifier:
    return Classifier(MODELS_DIR)


@st.cache_resource(show_spinner="Preparing the heatmap method...")
def explainer(method: str) -> Explainer:
    return Explainer(classifier().model, method)


@st.cache_resource
def _audit_log(path: str) -> AuditLog:
    return AuditLog(path)


def audit_log() -> AuditLog:
    """The audit log at the configured path (one shared instance per path)."""
    return _audit_log(str(default_path()))


def sample_files() -> list[Path]:
    return sorted(p for p in SAMPLES_DIR.iterdir() if p.suffix.lower() in (".jpeg", ".jpg", ".png"))


def score_items(items: list[tuple[str, bytes]], threshold: float) -> list[ImageResult]:
    """Score uploads once per session (keyed by name and content); the threshold is applied per call."""
    cache: dict[str, ImageResult] = st.session_state.setdefault(_SESSION_KEY, {})
    keys = [f"{name}:{hashlib.sha256(data).hexdigest()}" for name, data in items]
    todo = [(k, item) for k, item in zip(keys, items) if k not in cache]
    if todo:
        with st.spinner(f"Scoring {len(todo)} image(s)..."):
            for k, r in zip([k for k, _ in todo], score(classifier(), [item for _, item in todo], threshold)):
                cache[k] = r
    # drop results of files no longer uploaded, so a long session does not grow without bound
    for k in set(cache) - set(keys):
        del cache[k]
    return [dataclasses.replace(cache[k], threshold=threshold) for k in keys]


@st.cache_data(max_entries=256, show_spinner=False)
def heatmap(_result_key: str, method: str, _model_input: np.ndarray) -> Heatmap:
    """Heatmap cached by image hash and method (the array itself is not hashed)."""
    return explainer(method)(_model_input)


def thumbnail_data_url(pixels: np.ndarray, side: int = 72) -> str:
    img = Image.fromarray(pixels)
    img.thumbnail((side, side))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


@st.cache_data(max_entries=32, show_spinner=False)
def augmentation_preview(data: bytes, name: str, strength: float, n: int = 5, seed: int = 0) -> list[np.ndarray]:
    """The model input of an image, then ``n`` random training augmentations of it (uint8)."""
    import tensorflow as tf

    from pneumonia.augment import make_augmenter
    from pneumonia.io import load_xray
    from pneumonia.preprocess import to_model_input

    x = to_model_input(load_xray(data, name).pixels, classifier().spec)
    tf.random.set_seed(seed)
    batch = np.repeat(x[None], n, axis=0)
    aug, _, _ = make_augmenter(strength)(tf.constant(batch), tf.zeros((n, 1)), tf.ones((n,)))
    images = [x, *np.asarray(aug)]
    return [np.uint8(np.clip(i[..., 0], 0, 1) * 255) for i in images]
