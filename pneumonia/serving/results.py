"""The outcome for one file, as the page, the predict command and the reports read it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pneumonia.core.decode import XRay
from pneumonia.core.labels import label_at
from pneumonia.serving.gate import GateResult


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
