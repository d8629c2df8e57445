"""The shipped classifier on real x-rays: loads, scores sensibly, agrees across file formats, and the
chest x-ray gate accepts radiographs and refuses everything else."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from pneumonia.serving.pipeline import score
from tests.dicom_factory import make_dicom
from tests.helpers import encode, gray_pixels
from tests.negatives import negative_files


def test_metadata_drives_thresholds(classifier):
    ops = classifier.operating_points
    assert set(ops) == {"high_sensitivity", "balanced", "high_specificity"}
    assert ops["high_sensitivity"]["threshold"] <= ops["balanced"]["threshold"] <= ops["high_specificity"]["threshold"]
    assert classifier.default_operating_point in ops


def test_real_samples_are_accepted_and_separated(classifier, samples):
    thr = classifier.threshold(classifier.default_operating_point)
    results = score(classifier, [(p.name, p.read_bytes()) for p in samples], thr)
    assert all(r.scored for r in results), [r.reason for r in results if not r.scored]
    y = np.array([p.name.startswith("PNEUMONIA") for p in samples], int)
    prob = np.array([r.probability for r in results])
    assert ((prob > 0) & (prob < 1)).all()
    assert roc_auc_score(y, prob) >= 0.8, dict(zip([p.name for p in samples], prob.round(3)))
    assert np.mean([r.label == ("PNEUMONIA" if t else "NORMAL") for r, t in zip(results, y)]) >= 0.7


def test_same_pixels_in_every_format_give_the_same_probability(classifier, pneumonia_sample):
    px = gray_pixels(pneumonia_sample)
    twelve = px.astype(np.uint16) * 16
    files = [
        ("m2.dcm", make_dicom(twelve, "MONOCHROME2", bits=12)),
        ("m1.dcm", make_dicom(4095 - twelve, "MONOCHROME1", bits=12)),
        ("a.png", encode(px, "PNG")),
        ("b16.png", encode((px.astype(np.uint16) * 257).astype(np.uint16), "PNG")),
        ("c.jpg", encode(px, "JPEG", quality=95)),
    ]
    probs = [r.probability for r in score(classifier, files, 0.5)]
    assert max(probs) - min(probs) <= 0.02, probs


def test_a_bad_file_does_not_stop_the_others(classifier, samples):
    items = [("empty.png", b""), (samples[0].name, samples[0].read_bytes()), ("x.jpg", b"not an image")]
    results = score(classifier, items, 0.5)
    assert [r.status for r in results] == ["unreadable", "scored", "unreadable"]
    assert "empty" in results[0].error


@pytest.mark.parametrize("kind", list(negative_files()))
def test_gate_refuses_non_chest_xrays(classifier, kind):
    name, data = negative_files()[kind]
    (r,) = score(classifier, [(name, data)], 0.5)
    assert r.status == "refused", f"{kind} was accepted: {r.gate.scores}"
    assert r.reason and r.label is None
