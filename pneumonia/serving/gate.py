"""Is this plausibly a frontal chest radiograph? Checked before any probability is shown.

Two learned checks, fitted on the training x-rays, plus a few plain rules for cases that need
no learning (colour, blank images, CT/MR by DICOM modality):

* appearance: reconstruction error of a PCA model of downsampled, standardised x-rays
  ("eigen-x-rays"); photographs, documents and noise reconstruct badly;
* embedding: Mahalanobis distance of the classifier's penultimate embedding to the training
  set's (Ledoit-Wolf covariance); catches what the classifier has never seen.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from pneumonia.core.decode import XRay, age_in_years

PCA_SIDE = 32
RADIOGRAPH_MODALITIES = {"CR", "DX", "DR", "RG", "PX", "OT", ""}
COLOUR_LIMIT = 12.0  # Hasler-Suesstrunk colourfulness; x-rays score ~0, photographs > 15
MIN_STD = 10.0  # 8-bit grey levels
MAX_ASPECT = 2.2
ADULT_AGE_YEARS = 18.0
LATERAL_VIEWS = {"LL", "RL", "LAT", "LATERAL", "LLD", "RLD"}
CHEST_BODY_PARTS = ("CHEST", "THORAX", "LUNG", "TORSO")


@dataclass
class GateResult:
    ok: bool
    reasons: list[str] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)

    def details(self) -> list[str]:
        """The numbers behind the decision, for a "details" toggle (the reasons stay in plain words)."""
        s = self.scores
        lines = []
        if "appearance_error" in s:
            lines.append(
                f"Appearance check (how far the image is from typical chest radiographs): "
                f"{s['appearance_error']:.2f}, where up to {s['appearance_limit']:.2f} is accepted."
            )
        if "embedding_distance" in s:
            lines.append(
                f"Familiarity check (distance from the training x-rays in the model's own features): "
                f"{s['embedding_distance']:.1f}, where up to {s['embedding_limit']:.1f} is accepted."
            )
        if "colourfulness" in s:
            lines.append(
                f"Colourfulness {s['colourfulness']:.1f} (up to {COLOUR_LIMIT:.0f} is accepted); grey-level spread "
                f"{s['std']:.1f}."
            )
        return lines


def scope_reasons(metadata: dict) -> list[str]:
    """DICOM facts that put an image outside what the model is for: adults, lateral views, other body parts."""
    reasons = []
    age = age_in_years(metadata.get("PatientAge"))
    if age is not None and age >= ADULT_AGE_YEARS:
        reasons.append(
            f"Out of scope: an adult, aged {age:.0f}. The DICOM header gives the patient's age as {age:.0f} years; "
            "the model was trained on children aged 1 to 5 and is not for adults."
        )
    view = str(metadata.get("ViewPosition", "") or "").strip().upper()
    if view in LATERAL_VIEWS:
        reasons.append(
            f"Out of scope: a lateral view, {view}. The DICOM header gives the view position as {view} (a lateral "
            "view); the model reads frontal (PA or AP) chest radiographs only."
        )
    part = str(metadata.get("BodyPartExamined", "") or "").strip().upper()
    if part and not any(word in part for word in CHEST_BODY_PARTS):
        reasons.append(
            f"Out of scope: body part {part}. The DICOM header gives the body part as {part}, not the chest."
        )
    return reasons


def appearance_vector(model_input: np.ndarray) -> np.ndarray:
    """(N, S, S, 1) model inputs -> (N, 32*32) per-image standardised thumbnails."""
    x = np.asarray(model_input, np.float32)
    thumbs = np.stack([cv2.resize(i[..., 0], (PCA_SIDE, PCA_SIDE), interpolation=cv2.INTER_AREA) for i in x])
    flat = thumbs.reshape(len(x), -1)
    flat = flat - flat.mean(1, keepdims=True)
    return flat / (flat.std(1, keepdims=True) + 1e-3)


def appearance_error(params: dict, vec: np.ndarray) -> np.ndarray:
    """Mean squared PCA reconstruction error of appearance vectors."""
    centred = vec - params["pca_mean"]
    recon = centred @ params["pca_components"].T @ params["pca_components"]
    return np.mean((centred - recon) ** 2, axis=1)


def embedding_distance(params: dict, emb: np.ndarray) -> np.ndarray:
    """Mahalanobis distance of embeddings to the training set's."""
    d = np.asarray(emb, np.float64) - params["emb_mean"]
    return np.sqrt(np.einsum("ij,jk,ik->i", d, params["emb_precision"], d))


class Gate:
    """The fitted gate (``gate.npz`` in models/, fitted by :mod:`pneumonia.training.gate_fitting`)."""

    def __init__(self, params: dict[str, np.ndarray]):
        self.params = params

    @classmethod
    def load(cls, path: str | Path) -> Gate:
        with np.load(path) as f:
            return cls({k: f[k] for k in f.files})

    def scores(self, model_inputs: np.ndarray, embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(appearance error, embedding distance) for a batch."""
        return appearance_error(self.params, appearance_vector(model_inputs)), embedding_distance(
            self.params, embeddings
        )

    def check(self, xray: XRay, model_input: np.ndarray, embedding: np.ndarray) -> GateResult:
        """Plain rules first (each gives its own reason), then the two learned checks."""
        reasons: list[str] = []
        modality = str(xray.metadata.get("Modality", "") or "").upper()
        if xray.source_format == "DICOM" and modality not in RADIOGRAPH_MODALITIES:
            reasons.append(
                f"The DICOM modality is {modality}, not a radiograph (CR or DX): only chest x-rays are read."
            )
        if xray.source_format == "DICOM":
            reasons.extend(scope_reasons(xray.metadata))
        colour = float(xray.metadata.get("colourfulness", 0.0) or 0.0)
        if colour > COLOUR_LIMIT:
            reasons.append("This is a colour image; chest radiographs are grayscale (it looks like a photograph).")
        std = float(xray.pixels.std())
        if std < MIN_STD:
            reasons.append("The image is blank or nearly uniform; there is nothing to read.")
        h, w = xray.shape
        if max(h, w) / min(h, w) > MAX_ASPECT:
            reasons.append(f"The image is {w}x{h}: far too elongated for a frontal chest radiograph.")
        app, emb = self.scores(model_input[None], embedding[None])
        scores = {
            "appearance_error": float(app[0]),
            "appearance_limit": float(self.params["appearance_limit"]),
            "embedding_distance": float(emb[0]),
            "embedding_limit": float(self.params["embedding_limit"]),
            "colourfulness": colour,
            "std": std,
        }
        if not reasons:
            if app[0] > self.params["appearance_limit"]:
                reasons.append("The image does not look like a frontal chest radiograph.")
            if emb[0] > self.params["embedding_limit"]:
                reasons.append(
                    "It is unlike the chest x-rays the model was trained on: its score would not be reliable, so "
                    "no probability is given."
                )
        return GateResult(ok=not reasons, reasons=reasons, scores=scores)
