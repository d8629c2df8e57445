"""One code path from uploaded bytes to a gated, calibrated result (page, CLI and evaluation)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pneumonia.gate import GateResult
from pneumonia.io import InvalidImage, XRay, load_xray
from pneumonia.model import Classifier
from pneumonia.preprocess import to_model_input

PREDICT_BATCH = 16


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
        return "PNEUMONIA" if self.probability >= self.threshold else "NORMAL"

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


def score(clf: Classifier, items: list[tuple[str, bytes]], threshold: float) -> list[ImageResult]:
    """Decode, preprocess, predict (batched) and gate each (name, bytes); a bad file never stops the rest."""
    results = [ImageResult(name=name, threshold=threshold) for name, _ in items]
    ready: list[int] = []
    for i, (name, data) in enumerate(items):
        try:
            xray = load_xray(data, name)
        except InvalidImage as err:
            results[i].error = str(err)
            continue
        results[i].xray = xray
        results[i].notices = list(xray.notices)
        results[i].model_input = to_model_input(xray.pixels, clf.spec)
        ready.append(i)
    for start in range(0, len(ready), PREDICT_BATCH):
        chunk = ready[start : start + PREDICT_BATCH]
        preds = clf.predict(np.stack([results[i].model_input for i in chunk]))
        for i, pred in zip(chunk, preds):
            r = results[i]
            r.logit, r.probability = pred.logit, pred.probability
            r.gate = clf.gate.check(r.xray, r.model_input, pred.embedding)
    return results


def score_files(clf: Classifier, paths: list[str], threshold: float) -> list[ImageResult]:
    """Like :func:`score` for files on disk, read in chunks to bound memory."""
    out: list[ImageResult] = []
    for start in range(0, len(paths), 64):
        items = []
        for p in paths[start : start + 64]:
            try:
                items.append((str(p), Path(p).read_bytes()))
            except OSError as err:
                items.append((str(p), b""))
                print(f"cannot read {p}: {err.strerror}")
        out.extend(score(clf, items, threshold))
    return out
