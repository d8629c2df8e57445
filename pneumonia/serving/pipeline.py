"""One code path from uploaded bytes to a gated, calibrated result (page, CLI and evaluation)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from pneumonia.core.decode import InvalidImage, XRay, age_in_years, dicom_context, load_xray
from pneumonia.core.preprocess import to_model_input
from pneumonia.serving.gate import ADULT_AGE_YEARS
from pneumonia.serving.model import Classifier
from pneumonia.serving.results import ImageResult

# one image per forward pass: on ONNX Runtime a single image costs the least per image (29 ms of CPU on
# one thread, against 42 ms at 16, cache-bound), and no graph is traced per batch shape
PREDICT_BATCH = 1
DECODE_THREADS = 2
FILES_PER_CHUNK = 64
# JPEG DCT scaling keeps each side at least twice the model input's: probabilities move by 8e-5 on
# average and at most 4.5e-3 over 200 films at 2000 px (bench/decode_scale.py), decoding 3-6x faster
DECODE_SIDE_PER_INPUT_SIDE = 2  # files read into memory at once by score_files
TRAINED_AGE_YEARS = (1, 5)  # the training population's ages (Kermany et al. 2018)


def score(
    clf: Classifier,
    items: list[tuple[str, bytes]],
    threshold: float,
    on_progress: Callable[[int, int], None] | None = None,
    batch_size: int = PREDICT_BATCH,
) -> list[ImageResult]:
    """Decode, preprocess, predict and gate each (name, bytes); a bad file never stops the rest.
    ``on_progress(done, total)`` is called after each file is decoded; ``batch_size`` images go through
    the runtime per forward pass."""
    results = [ImageResult(name=name, threshold=threshold) for name, _ in items]
    ready: list[int] = []
    # decoding and resizing release the GIL for most of their time: a few threads read a batch faster
    with ThreadPoolExecutor(max_workers=DECODE_THREADS) as pool:
        decoded = pool.map(lambda item: _decode(item, clf), items)
        for i, (xray, model_input, error) in enumerate(decoded):
            results[i].xray, results[i].model_input, results[i].error = xray, model_input, error
            if xray is not None:
                results[i].notices = list(xray.notices)
                ready.append(i)
            if on_progress:
                on_progress(i + 1, len(items))
    for start in range(0, len(ready), batch_size):
        chunk = ready[start : start + batch_size]
        preds = clf.predict(np.stack([results[i].model_input for i in chunk]))
        for i, pred in zip(chunk, preds):
            _fill_prediction(clf, results[i], pred)
    return results


def _decode(item: tuple[str, bytes], clf: Classifier) -> tuple[XRay | None, np.ndarray | None, str | None]:
    """(x-ray, model input, None), or (None, None, why the file cannot be read)."""
    name, data = item
    try:
        # a large JPEG decodes at a reduced scale, enough for the model input; full_pixels() for the viewer
        xray = load_xray(data, name, reduce_to=DECODE_SIDE_PER_INPUT_SIDE * clf.spec.size)
    except InvalidImage as err:
        return None, None, str(err)
    return xray, to_model_input(xray.pixels, clf.spec), None


def _fill_prediction(clf: Classifier, result: ImageResult, pred: object) -> None:
    """Probability and gate from one prediction; the subtype and ensemble spread when the model gives them."""
    result.logit, result.probability = pred.logit, pred.probability
    result.gate = clf.gate.check(result.xray, result.model_input, pred.embedding)
    result.lung_fields = getattr(pred, "lung_fields", None)
    result.patch_evidence = getattr(pred, "patch_evidence", None)
    if result.lung_fields is not None and result.lung_fields.refusal:
        # scored from the lungs or not at all: never from every cell of a film whose lungs are not found
        result.gate.ok = False
        result.gate.reasons.append(result.lung_fields.refusal)
    elif result.lung_fields is not None and result.lung_fields.notice:
        result.notices.append(result.lung_fields.notice)
    if result.gate.ok:
        bacterial = getattr(pred, "bacterial_probability", None)
        spread = getattr(pred, "ensemble_spread", None)
        result.bacterial_probability = None if bacterial is None else float(bacterial)
        result.ensemble_spread = None if spread is None else float(spread)
    result.notices.extend(age_notices(result.xray.metadata))


def age_notices(metadata: dict) -> list[str]:
    """A notice for a child outside the ages the model was trained on (adults are refused by the gate)."""
    age = age_in_years(metadata.get("PatientAge"))
    if age is None or TRAINED_AGE_YEARS[0] <= age < TRAINED_AGE_YEARS[1] + 1 or age >= ADULT_AGE_YEARS:
        return []
    return [
        f"The DICOM header gives the patient's age as {dicom_context(metadata)['Age']}; the model was trained on "
        "children aged 1 to 5. Interpret with extra care."
    ]


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
