"""The outcome for one file, as the page, the predict command and the reports read it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pneumonia.core.decode import XRay
from pneumonia.core.labels import label_at
from pneumonia.serving.gate import GateResult
from pneumonia.serving.lung_fields import LungFields

# Ensemble spread (the spread of the members' pneumonia probabilities) above which the page flags
# that the members disagree: the probability is then less settled than its value suggests.
MEMBERS_DISAGREE_SPREAD = 0.15


@dataclass
class ImageResult:
    """The outcome for one file. ``probability`` is set even when the gate refuses; whether to
    show it is the caller's decision (the page and the predict CLI hide it)."""

    name: str
    xray: XRay | None = None
    model_input: np.ndarray | None = None
    gate: GateResult | None = None
    logit: float | None = None
    probability: float | None = None
    threshold: float | None = None
    error: str | None = None
    notices: list[str] = field(default_factory=list)
    # probability that a pneumonia is bacterial rather than viral; None when the model has no such
    # output or the image was refused
    bacterial_probability: float | None = None
    ensemble_spread: float | None = None  # spread of the ensemble members' probabilities; None for one model
    # the lung fields the score was pooled over (a lung-gated model), drawn by the viewer's outline toggle
    lung_fields: LungFields | None = None
    # the served graph's gated cell evidence (14, 14, members * outputs): the default heatmap without a second pass
    patch_evidence: np.ndarray | None = None

    @property
    def scored(self) -> bool:
        return self.error is None and self.gate is not None and self.gate.ok

    @property
    def label(self) -> str | None:
        if not self.scored or self.probability is None or self.threshold is None:
            return None
        return label_at(self.probability, self.threshold)

    @property
    def status(self) -> str:
        if self.error:
            return "unreadable"
        return "scored" if self.scored else "refused"

    @property
    def reason(self) -> str:
        if self.error:
            return self.error
        return " ".join(self.gate.reasons) if self.gate and not self.gate.ok else ""

    @property
    def members_disagree(self) -> bool:
        """The ensemble's members disagree enough that the reader should know."""
        return self.scored and self.ensemble_spread is not None and self.ensemble_spread >= MEMBERS_DISAGREE_SPREAD

    @property
    def subtype_note(self) -> str:
        """ "If pneumonia: bacterial 72% / viral 28% ..." when the image is called pneumonia and the model
        gives a subtype; otherwise empty. Strictly secondary to the pneumonia result."""
        if self.label != "PNEUMONIA" or self.bacterial_probability is None:
            return ""
        b = float(self.bacterial_probability)
        return f"If pneumonia: bacterial {b:.0%} / viral {1 - b:.0%} (labels are noisy; not a basis for prescribing)"
