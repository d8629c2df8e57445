"""The model and Grad-CAM, loaded in a background thread from the first moment app.py runs.

Kept apart from :mod:`pages.resources` and its imports so that app.py can start it before anything
else: TensorFlow then loads while the first page draws. ``loading()`` returns the two futures.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import streamlit as st

from pneumonia.serving.explain import Explainer, RuntimeGradcam, explainer_for
from pneumonia.serving.model import Classifier

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"


def _load_classifier() -> Classifier:
    return Classifier(MODELS_DIR)


def _load_gradcam(classifier_loading: Future) -> Explainer | RuntimeGradcam:
    """Grad-CAM traced once on a blank input, so the first reader's first heatmap does not pay for it."""
    clf = classifier_loading.result()
    gradcam = explainer_for(clf, "gradcam")
    gradcam(np.zeros((clf.spec.size, clf.spec.size, 1), np.float32))
    return gradcam


@st.cache_resource(show_spinner=False)
def loading() -> tuple[Future, Future]:
    """Starts loading the model, then Grad-CAM, in a background thread the first time app.py runs
    (:func:`start_warm_up`), so the page draws at once while the model loads. Scoring waits only for
    the model; the first heatmap for Grad-CAM as well."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model-warm-up")
    classifier_loading = pool.submit(_load_classifier)
    return classifier_loading, pool.submit(_load_gradcam, classifier_loading)


def start_warm_up() -> None:
    loading()


def model_ready() -> bool:
    return loading()[0].done()
