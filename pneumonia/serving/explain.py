"""Class-activation heatmaps from tf-keras-vis, with flat-map detection and overlays."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from pneumonia.serving.runtime import PATCH_EVIDENCE

if TYPE_CHECKING:
    import keras

METHODS = {
    "gradcam": "Grad-CAM",
    "gradcam++": "Grad-CAM++",
    "scorecam": "Faster-ScoreCAM",
    "layercam": "LayerCAM",
}
COLORMAPS = {
    "jet": cv2.COLORMAP_JET,
    "inferno": cv2.COLORMAP_INFERNO,
    "viridis": cv2.COLORMAP_VIRIDIS,
    "turbo": cv2.COLORMAP_TURBO,
}
FLAT_RANGE = 1e-6  # a map whose raw range is below this carries no information
SCORECAM_MAX_N = 16  # Faster-ScoreCAM: only the 16 strongest channels are masked


@dataclass
class Heatmap:
    cam: np.ndarray  # HxW in [0, 1] at model-input resolution (zeros when flat)
    flat: bool
    method: str


def patch_logit_layer(model: keras.Model, last_conv_layer: str):
    """The 1x1 convolution that scores each cell of ``last_conv_layer`` when the model averages those
    scores into its logits (a patch-evidence model); None for any other head."""
    import keras

    source = model.get_layer(last_conv_layer).output
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D) and layer.kernel_size == (1, 1) and layer.input is source:
            return layer
    return None


class PatchGradcam:
    """Grad-CAM in one forward pass for a patch-evidence model: where the logit is the spatial mean
    of a 1x1 convolution of the last map (averaged over members), Grad-CAM's channel weights are that
    convolution's kernel divided by the map's size, so the map is ReLU(patch logit - bias), up to a
    constant factor. For a lung-gated model the cells enter the score weighted by their lung weights,
    and so does each cell's evidence here: the map is the weighted evidence that made the score (the
    textbook mean gradient would light cells the score ignores). Same result as tf-keras-vis' Gradcam
    on an ungated model (tests/test_explain.py compares them), without gradients or a model clone."""

    def __init__(self, model: keras.Model, head, n_outputs: int, output_index: int, weights_layer: str | None = None):
        import keras

        outputs = [head.output] + ([model.get_layer(weights_layer).output] if weights_layer else [])
        self.view = keras.Model(model.inputs, outputs)
        self.bias = np.asarray(head.get_weights()[1], np.float32)
        self.n_outputs, self.output_index = n_outputs, output_index

    def __call__(self, _score, inputs, **_kwargs) -> np.ndarray:
        out = self.view.predict_on_batch(inputs)
        patches = np.asarray(out[0] if isinstance(out, list | tuple) else out, np.float32) - self.bias
        if isinstance(out, list | tuple) and len(out) > 1:
            patches = patches * np.asarray(out[1], np.float32)
        mean = patches[..., self.output_index :: self.n_outputs].mean(axis=-1)
        size = np.shape(inputs[0] if isinstance(inputs, list) else inputs)[1:3]
        return np.stack([upsample_like_tf_keras_vis(np.maximum(m, 0), size) for m in mean])


def upsample_like_tf_keras_vis(cell_map: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A cell grid (h, w) brought to ``size`` as tf-keras-vis does it: a linear spline over the grid's
    corners (scipy's zoom, order 1)."""
    from scipy.ndimage import zoom

    return zoom(cell_map, (size[0] / cell_map.shape[0], size[1] / cell_map.shape[1]), order=1)


def normalised_heatmap(raw: np.ndarray, method: str) -> Heatmap:
    """A raw map scaled to [0, 1], or flagged flat (zeros) when it carries no information."""
    cam = np.nan_to_num(np.asarray(raw, np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(cam.min()), float(cam.max())
    if hi - lo < FLAT_RANGE:
        return Heatmap(np.zeros(cam.shape, np.float32), True, method)
    return Heatmap(((cam - lo) / (hi - lo)).astype(np.float32), False, method)


def evidence_heatmap(patch_evidence: np.ndarray, size: int, n_outputs: int, output_index: int = 0) -> Heatmap:
    """Grad-CAM of a patch-evidence model from the patch evidence its forward pass already gives
    (see :class:`PatchGradcam`): ReLU of the members' mean evidence for the chosen output, upsampled."""
    mean = np.asarray(patch_evidence, np.float32)[..., output_index::n_outputs].mean(axis=-1)
    return normalised_heatmap(upsample_like_tf_keras_vis(np.maximum(mean, 0), (size, size)), "gradcam")


class RuntimeGradcam:
    """The default heatmap on the serving runtime: no TensorFlow, no gradients, one forward pass
    (about as cheap as the probability itself). Same call as :class:`Explainer`."""

    method = "gradcam"

    def __init__(self, classifier, output_index: int = 0):
        self.classifier, self.output_index = classifier, output_index
        self.n_outputs = len(classifier.outputs)

    def __call__(self, model_input: np.ndarray, patch_evidence: np.ndarray | None = None) -> Heatmap:
        """The map of one model input; from ``patch_evidence`` when the scoring pass already gave it
        (``ImageResult.patch_evidence``: the same forward pass, not run twice)."""
        size = np.shape(model_input)[0]
        if patch_evidence is None:
            patch_evidence = self.classifier.run_graph(np.asarray(model_input, np.float32)[None])[PATCH_EVIDENCE][0]
        return evidence_heatmap(patch_evidence, size, self.n_outputs, self.output_index)


def explainer_for(classifier, method: str = "gradcam", output_index: int = 0):
    """The heatmap for ``method``: Grad-CAM of a patch-evidence model on the serving runtime; any other
    method (or a model without patch evidence) through tf-keras-vis on the Keras model, which imports
    TensorFlow the first time a reader asks for one."""
    if method not in METHODS:
        raise ValueError(f"unknown heatmap method {method!r}; choose from {', '.join(METHODS)}")
    runtime = classifier.metadata.runtime or {}
    if method == "gradcam" and PATCH_EVIDENCE in runtime.get("outputs", []):
        return RuntimeGradcam(classifier, output_index)
    return keras_explainer(classifier, method, output_index)


def keras_explainer(classifier, method: str = "gradcam", output_index: int = 0) -> Explainer:
    """``method`` through tf-keras-vis on the classifier's Keras model, explaining the score the runtime
    gives: for a lung-gated model with each film's own lung weights as the second input."""
    pooling = getattr(classifier, "lung_pooling", None) or {}
    return Explainer(
        classifier.keras_model(),
        method,
        last_conv_layer=classifier.metadata.last_conv_layer,
        output_index=output_index,
        lung_weights=(lambda x: classifier.lung_inputs(x)[0]) if pooling else None,
        weights_layer=pooling.get("weights_layer"),
    )


class Explainer:
    """One tf-keras-vis visualizer; the library clones the model (clone=True) so the shared
    classifier is never modified. Calls are serialised: Streamlit sessions share one instance.

    ``last_conv_layer`` comes from the model's metadata (``ModelMetadata.last_conv_layer``).
    """

    def __init__(
        self,
        model: keras.Model,
        method: str = "gradcam",
        *,
        last_conv_layer: str,
        output_index: int = 0,
        lung_weights=None,
        weights_layer: str | None = None,
    ):
        from tf_keras_vis.gradcam import Gradcam
        from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
        from tf_keras_vis.layercam import Layercam
        from tf_keras_vis.scorecam import Scorecam
        from tf_keras_vis.utils.model_modifiers import ReplaceToLinear

        if method not in METHODS:
            raise ValueError(f"unknown heatmap method {method!r}; choose from {', '.join(METHODS)}")
        cls = {"gradcam": Gradcam, "gradcam++": GradcamPlusPlus, "scorecam": Scorecam, "layercam": Layercam}[method]
        self.n_outputs = int(model.output.shape[-1])
        head = patch_logit_layer(model, last_conv_layer) if method == "gradcam" else None
        if head is not None:
            self.visualizer = PatchGradcam(model, head, self.n_outputs, output_index, weights_layer)
        else:
            # Linear output: gradients of the logit, not of a saturated sigmoid.
            self.visualizer = cls(model, model_modifier=ReplaceToLinear(), clone=True)
        self.method = method
        # a lung-gated model's second input: model inputs (N, S, S, 1) -> the cells' weights
        self.lung_weights = lung_weights
        self.last_conv_layer = last_conv_layer
        # which logit the map explains: 0 = pneumonia, 1 = bacterial (rather than viral)
        self.output_index = output_index
        self._lock = threading.Lock()

    def __call__(self, model_input: np.ndarray) -> Heatmap:
        from tf_keras_vis.utils.scores import BinaryScore, CategoricalScore

        kwargs = {"max_N": SCORECAM_MAX_N} if self.method == "scorecam" else {}
        seed = np.asarray(model_input, np.float32)[None]
        weights = None
        if self.lung_weights is not None:  # the same gated score the runtime gives
            weights = self.lung_weights(seed)
            seed = [seed, weights]
        with self._lock:
            raw = self.visualizer(
                # evidence for the chosen output: a logit of a multi-output model, or the single output
                CategoricalScore(self.output_index) if self.n_outputs > 1 else BinaryScore(True),
                seed,
                penultimate_layer=self.last_conv_layer,
                # use the named ReLU output itself: by default the library walks back to the
                # conv layer before it, whose signed pre-activation output zeroes Grad-CAM++
                seek_penultimate_conv_layer=False,
                normalize_cam=False,
                **kwargs,
            )
        if isinstance(raw, list):  # one map per input of a two-input model: the image's
            raw = raw[0]
        raw = np.asarray(raw)[0]
        if weights is not None and not isinstance(self.visualizer, PatchGradcam):
            # a CAM method's channel weights are global, so its map would light cells the gated score
            # never read: each cell's part is its lung weight times the method's local evidence
            raw = raw * upsample_like_tf_keras_vis(weights[0, ..., 0], raw.shape[:2])
        return normalised_heatmap(raw, self.method)


def overlay(pixels: np.ndarray, cam: np.ndarray, alpha: float = 0.4, colormap: str = "jet") -> np.ndarray:
    """RGB uint8 image: the heatmap resized to the x-ray and blended over it."""
    h, w = pixels.shape[:2]
    heat = cv2.resize(np.clip(cam, 0, 1).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    coloured = cv2.applyColorMap(np.uint8(np.clip(heat, 0, 1) * 255), COLORMAPS[colormap])
    coloured = cv2.cvtColor(coloured, cv2.COLOR_BGR2RGB)
    base = cv2.cvtColor(pixels, cv2.COLOR_GRAY2RGB)
    return cv2.addWeighted(coloured, float(alpha), base, 1.0 - float(alpha), 0)


# Plotly's names for the same colour maps, for the interactive viewer's overlay and colour bar.
PLOTLY_COLORSCALES = {"jet": "Jet", "inferno": "Inferno", "viridis": "Viridis", "turbo": "Turbo"}


def window_level(pixels: np.ndarray, level: float, window: float) -> np.ndarray:
    """Grey levels mapped through a display window: ``level`` is its centre, ``window`` its width
    (8-bit grey levels); below the window is black, above it white. Identity at level 127.5, window 255."""
    lo = float(level) - float(window) / 2.0
    lut = np.clip((np.arange(256, dtype=np.float32) - lo) / max(float(window), 1.0) * 255.0 + 0.5, 0, 255)
    return cv2.LUT(pixels, lut.astype(np.uint8))


def display_jpeg(pixels: np.ndarray, max_side: int = 1536, quality: int = 92) -> tuple[bytes, tuple[int, int]]:
    """A JPEG for on-screen viewing (at most ``max_side`` px), with the (height, width) it has."""
    h, w = pixels.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale < 1.0:
        pixels = cv2.resize(pixels, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("could not encode the display image")
    return buf.tobytes(), pixels.shape[:2]
