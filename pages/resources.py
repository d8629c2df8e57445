"""What the pages load once per process and share across sessions (``st.cache_resource`` /
``st.cache_data``), and each session's own scored uploads."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import streamlit as st

from pneumonia.audit import AuditLog, default_path
from pneumonia.insight.artifacts import Artifacts, load_artifacts
from pneumonia.insight.eda_summary import load_summary
from pneumonia.serving.explain import Explainer, Heatmap
from pneumonia.serving.metadata import read_metadata
from pneumonia.serving.model import Classifier
from pneumonia.serving.pipeline import score
from pneumonia.serving.results import ImageResult

ROOT = Path(__file__).resolve().parent.parent
ASSETS_DIR = ROOT / "assets"
SAMPLES_DIR = ASSETS_DIR / "samples"
MODELS_DIR = ROOT / "models"
_SESSION_RESULTS = "scored_results"


@st.cache_resource(show_spinner="Loading the model...")
def classifier() -> Classifier:
    return Classifier(MODELS_DIR)


@st.cache_data(show_spinner=False)
def model_version() -> str:
    """The shipped model's version, from its metadata (without loading the model)."""
    return read_metadata(MODELS_DIR).version


@st.cache_resource(show_spinner="Preparing the heatmap method...")
def explainer(method: str) -> Explainer:
    clf = classifier()
    return Explainer(clf.model, method, last_conv_layer=clf.metadata.last_conv_layer)


@st.cache_data(max_entries=256, show_spinner=False)
def heatmap(image_key: str, method: str, _model_input: np.ndarray) -> Heatmap:
    """Heatmap cached by image key (e.g. its SHA-256) and method; the array itself is not hashed."""
    return explainer(method)(_model_input)


@st.cache_resource
def _audit_log(path: str) -> AuditLog:
    return AuditLog(path)


def audit_log() -> AuditLog:
    """The audit log at the configured path (one shared instance per path)."""
    return _audit_log(str(default_path()))


@st.cache_data(show_spinner=False)
def model_artifacts() -> Artifacts:
    """The shipped model's metadata and evaluation artifacts."""
    return load_artifacts(MODELS_DIR)


@st.cache_data(show_spinner=False)
def data_set_summary() -> tuple[dict, dict[str, np.ndarray]]:
    """The data set summary shipped in assets/ (``python -m pneumonia.eda``)."""
    return load_summary(ASSETS_DIR)


def sample_files() -> list[Path]:
    return sorted(p for p in SAMPLES_DIR.iterdir() if p.suffix.lower() in (".jpeg", ".jpg", ".png"))


def score_uploads(items: list[tuple[str, bytes]], threshold: float) -> list[ImageResult]:
    """Score uploads once per session (keyed by name and content); the threshold is applied per call."""
    cache: dict[str, ImageResult] = st.session_state.setdefault(_SESSION_RESULTS, {})
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


@st.cache_data(max_entries=32, show_spinner=False)
def augmentation_preview(data: bytes, name: str, strength: float, n: int = 5, seed: int = 0) -> list[np.ndarray]:
    """The model input of an image, then ``n`` random training augmentations of it (uint8)."""
    from pneumonia.core.decode import load_xray
    from pneumonia.core.preprocess import to_model_input
    from pneumonia.training.augment import augmentation_preview as preview

    return preview(to_model_input(load_xray(data, name).pixels, classifier().spec), strength, n, seed)
