"""What the pages load once per process and share across sessions (``st.cache_resource`` /
``st.cache_data``), and each session's own scored uploads."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import streamlit as st

from pages import warm_up, widgets
from pneumonia.audit import AuditLog, AuditUnavailable, default_url
from pneumonia.insight.artifacts import Artifacts, load_artifacts
from pneumonia.insight.eda_summary import load_summary
from pneumonia.serving import site_points
from pneumonia.serving.explain import Explainer, Heatmap, RuntimeGradcam, display_jpeg, explainer_for, window_level
from pneumonia.serving.metadata import ModelMetadata, read_metadata
from pneumonia.serving.model import Classifier
from pneumonia.serving.pipeline import score
from pneumonia.serving.results import ImageResult

ROOT = Path(__file__).resolve().parent.parent
ASSETS_DIR = ROOT / "assets"
SAMPLES_DIR = ASSETS_DIR / "samples"
MODELS_DIR = warm_up.MODELS_DIR
_SESSION_RESULTS = "scored_results"


def _wait(loading: Future, message: str):
    if loading.done():
        return loading.result()
    with st.spinner(message):
        return loading.result()


def classifier() -> Classifier:
    return _wait(warm_up.loading()[0], "Loading the model (only after the server starts; a few seconds)...")


@st.cache_data(show_spinner=False)
def model_metadata() -> ModelMetadata:
    """The shipped model's metadata (operating points, version) without loading the model."""
    return read_metadata(MODELS_DIR)


def model_version() -> str:
    """The shipped model's version, from its metadata (without loading the model)."""
    return model_metadata().version


def operating_points() -> dict[str, dict]:
    """The operating points the review page offers: the model's own, chosen on validation, then the
    ones this site saved for this model on the performance page's "your data" view."""
    return site_points.operating_points(model_metadata())


@st.cache_resource(show_spinner=False)
def _other_explainer(method: str, output_index: int = 0) -> Explainer | RuntimeGradcam:
    return explainer_for(classifier(), method, output_index)


def explainer(method: str, output_index: int = 0) -> Explainer | RuntimeGradcam:
    """Grad-CAM of the pneumonia output from the warm-up; other methods and outputs built on first use."""
    if method == "gradcam" and output_index == 0:
        return _wait(warm_up.loading()[1], "Preparing Grad-CAM...")
    return _other_explainer(method, output_index)


def explainable_outputs() -> dict[int, str]:
    """The outputs a heatmap can explain: pneumonia, and bacterial-vs-viral when the model has it."""
    outputs = model_metadata().extra.get("outputs", ["pneumonia"])
    words = {"pneumonia": "Pneumonia", "bacterial": "Bacterial rather than viral"}
    return {i: words[name] for i, name in enumerate(outputs) if name in words}


@st.cache_data(max_entries=256, show_spinner=False)
def heatmap(image_key: str, method: str, _model_input: np.ndarray, output_index: int = 0) -> Heatmap:
    """Heatmap cached by image key (e.g. its SHA-256), method and output; the array itself is not hashed."""
    return explainer(method, output_index)(_model_input)


@st.cache_resource
def _audit_log(url: str) -> AuditLog:
    return AuditLog(url)


def audit_log() -> AuditLog:
    """The audit log at the configured URL or SQLite path (one shared instance per database)."""
    return _audit_log(default_url())


@st.cache_data(show_spinner=False)
def model_artifacts() -> Artifacts:
    """The shipped model's metadata and evaluation artifacts."""
    return load_artifacts(MODELS_DIR)


@st.cache_data(show_spinner=False)
def external_test() -> dict | None:
    """The shipped model version's external measurement (official test split), or None (insight.external_test)."""
    from pneumonia.insight.external_test import external_test as read_external_test

    return read_external_test(MODELS_DIR, model_metadata())


@st.cache_data(show_spinner=False)
def data_set_summary() -> tuple[dict, dict[str, np.ndarray]]:
    """The data set summary shipped in assets/ (``python -m pneumonia.eda``)."""
    return load_summary(ASSETS_DIR)


def sample_files() -> list[Path]:
    return sorted(p for p in SAMPLES_DIR.iterdir() if p.suffix.lower() in (".jpeg", ".jpg", ".png"))


def score_uploads(items: list[tuple[str, bytes]], threshold: float) -> list[ImageResult]:
    """Score uploads once per session, keyed by content (SHA-256), with a progress bar for new ones;
    the name and the threshold are applied per call, so a rerun recomputes nothing."""
    cache: dict[str, ImageResult] = st.session_state.setdefault(_SESSION_RESULTS, {})
    keys = [hashlib.sha256(data).hexdigest() for _, data in items]
    todo = {k: item for k, item in zip(keys, items) if k not in cache}
    if todo:
        clf = classifier()
        bar = st.progress(0.0, text=f"Reading {len(todo)} image(s)...")

        def progress(done: int, total: int) -> None:
            bar.progress(done / total, text=f"Read {done} of {total} image(s)...")

        # one image per forward pass: the graph traced at load time serves, and no new batch shape is traced
        scored = score(clf, list(todo.values()), threshold, on_progress=progress, batch_size=1)
        for k, r in zip(todo, scored):
            cache[k] = r
        bar.empty()
    # drop results of files no longer uploaded, so a long session does not grow without bound
    for k in set(cache) - set(keys):
        del cache[k]
    return [dataclasses.replace(cache[k], name=name, threshold=threshold) for k, (name, _) in zip(keys, items)]


@st.cache_data(max_entries=512, show_spinner=False)
def thumbnail(image_sha256: str, _pixels: np.ndarray) -> str:
    """A small PNG data URL of an x-ray for the worklist, cached by the image's hash."""
    return widgets.thumbnail_data_url(_pixels)


@st.cache_data(max_entries=64, show_spinner=False)
def display_image(image_sha256: str, level: float, window: float, _pixels: np.ndarray) -> tuple[str, tuple[int, int]]:
    """The x-ray through a window/level as a JPEG data URL for the viewer, and its (height, width)."""
    jpeg, shape = display_jpeg(window_level(_pixels, level, window))
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode(), shape


def audit_log_reviewed(image_sha256s: list[str]) -> set[str]:
    try:
        return audit_log().reviewed(image_sha256s)
    except AuditUnavailable as error:  # the worklist still shows; which images were reviewed is unknown
        st.warning(str(error))
        return set()


@st.cache_data(max_entries=32, show_spinner=False)
def augmentation_preview(data: bytes, name: str, strength: float, n: int = 5, seed: int = 0) -> list[np.ndarray]:
    """The model input of an image, then ``n`` random training augmentations of it (uint8)."""
    from pneumonia.core.decode import load_xray
    from pneumonia.core.preprocess import to_model_input
    from pneumonia.training.augment import augmentation_preview as preview

    return preview(to_model_input(load_xray(data, name).pixels, classifier().spec), strength, n, seed)
