"""One code path from uploaded bytes to a gated, calibrated result (page, CLI and evaluation)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pneumonia.core.decode import InvalidImage, load_xray
from pneumonia.core.preprocess import to_model_input
from pneumonia.serving.model import Classifier
from pneumonia.serving.results import ImageResult

PREDICT_BATCH = 16
FILES_PER_CHUNK = 64  # files read into memory at once by score_files


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


def read_error(err: OSError) -> str:
    """Why a file on disk could not be read, in words for the reader."""
    if isinstance(err, FileNotFoundError):
        return "The file was not found."
    if isinstance(err, IsADirectoryError):
        return "This is a folder, not a file."
    if isinstance(err, PermissionError):
        return "The file cannot be opened: permission denied."
    return f"The file cannot be read ({err.strerror or err})."


def score_files(clf: Classifier, paths: list[str], threshold: float) -> list[ImageResult]:
    """Like :func:`score` for files on disk, read in chunks to bound memory. A file that cannot be
    read gets its own result with the reason (not found, permission denied, ...)."""
    out: list[ImageResult] = []
    for start in range(0, len(paths), FILES_PER_CHUNK):
        readable: list[tuple[str, bytes]] = []
        unreadable: dict[int, ImageResult] = {}
        for i, path in enumerate(str(p) for p in paths[start : start + FILES_PER_CHUNK]):
            try:
                readable.append((path, Path(path).read_bytes()))
            except OSError as err:
                unreadable[i] = ImageResult(name=path, threshold=threshold, error=read_error(err))
        scored = iter(score(clf, readable, threshold))
        out.extend(unreadable.get(i) or next(scored) for i in range(len(readable) + len(unreadable)))
    return out
