"""The decision made on the lungs: the shipped model pools its cells over the lung fields, the default
heatmap is exactly the evidence that entered the score, every heatmap method stays on the lung cells,
and a film whose lungs cannot be found is refused in words instead of pooled over every cell."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from pneumonia.core.decode import read_file
from pneumonia.core.preprocess import to_model_input
from pneumonia.serving.explain import METHODS, explainer_for, upsample_like_tf_keras_vis
from pneumonia.serving.lung_fields import assess_lung_fields, cell_coverage, pooling_weights
from pneumonia.serving.pipeline import score
from pneumonia.serving.runtime import MEMBER_LOGITS, PATCH_EVIDENCE
from pneumonia.training.lung_gating import (
    HARD_NORMAL_SHARE,
    MemberFolds,
    calibration_set,
    out_of_fold,
    refit_heads,
)
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def films(classifier, samples) -> np.ndarray:
    return np.stack([to_model_input(read_file(str(p)).pixels, classifier.spec) for p in samples])


def test_the_shipped_model_is_lung_gated_and_says_how(classifier):
    pooling = classifier.lung_pooling
    assert pooling and classifier.graph.lung_gated
    segmenter = ROOT / "models" / pooling["segmenter"]
    assert hashlib.sha256(segmenter.read_bytes()).hexdigest() == pooling["segmenter_sha256"]
    limits = pooling["limits"]
    assert 0 < limits["refuse_below"] < limits["notice_below"] < limits["notice_above"] < limits["refuse_above"] < 1
    assert "lung" in classifier.metadata.architecture


def test_the_heatmap_is_the_evidence_that_made_the_score(classifier, films):
    """Each member's logit is the mean over cells of its gated evidence plus its bias, and cells with no
    lung carry no evidence: the map cannot glow where the decision did not look."""
    weights, fields = classifier.lung_inputs(films)
    out = classifier.run_graph(films, lung_weights=weights)
    bias = classifier.keras_model().get_layer("patch_logits").get_weights()[1]
    evidence = out[PATCH_EVIDENCE]
    np.testing.assert_allclose(evidence.mean(axis=(1, 2)) + bias, out[MEMBER_LOGITS], atol=1e-4)
    outside = weights[..., 0] == 0
    assert outside.any(axis=(1, 2)).all(), "every film has cells outside its lungs"
    assert np.abs(evidence[outside]).max() == 0.0
    assert all(f.refusal is None for f in fields)


@pytest.mark.parametrize("method", list(METHODS))
def test_every_heatmap_method_stays_on_the_lung_cells(classifier, films, method):
    film = films[0]
    weights = classifier.lung_inputs(film[None])[0][0, ..., 0]
    heat = explainer_for(classifier, method)(film)
    assert not heat.flat
    off_lung = upsample_like_tf_keras_vis(weights, heat.cam.shape) <= 0
    assert off_lung.mean() > 0.2
    assert heat.cam[off_lung].sum() <= 0.01 * heat.cam.sum()


def test_a_film_whose_lungs_are_implausible_is_refused_in_words_never_pooled_over_every_cell(
    classifier, pneumonia_sample
):
    """Wiring on a real film: with limits no film's fields meet (the segmenter finds lungs on every real
    chest film, so the limits are moved instead), the page's pipeline refuses the film with the lung
    reason, and the graph got zero weights (no all-cell fallback)."""
    import copy

    strict = copy.copy(classifier)
    strict.lung_pooling = {
        **classifier.lung_pooling,
        "limits": {**classifier.lung_pooling["limits"], "refuse_below": 0.99},
    }
    result = score(strict, [(pneumonia_sample.name, pneumonia_sample.read_bytes())], 0.5)[0]
    assert not result.scored and result.label is None
    assert "lung fields could not be found" in result.reason
    weights, fields = strict.lung_inputs(result.model_input[None])
    assert fields[0].refusal and weights.max() == 0.0
    assert score(classifier, [(pneumonia_sample.name, pneumonia_sample.read_bytes())], 0.5)[0].scored


def test_plausibility_of_the_fields():
    limits = {"refuse_below": 0.03, "refuse_above": 0.8, "notice_below": 0.15, "notice_above": 0.5}
    none = assess_lung_fields(np.zeros((224, 224), bool), limits)
    assert none.refusal and "could not be found" in none.refusal
    everything = assess_lung_fields(np.ones((224, 224), bool), limits)
    assert everything.refusal and "far more" in everything.refusal
    two = np.zeros((224, 224), bool)
    two[40:180, 30:100] = two[40:180, 124:194] = True  # two lungs, 39% of the image
    fine = assess_lung_fields(two, limits)
    assert fine.refusal is None and fine.notice is None and fine.regions == 2
    one = np.zeros((224, 224), bool)
    one[60:120, 40:100] = True  # one small region, 7%
    small = assess_lung_fields(one, limits)
    assert small.refusal is None and "one small lung region" in small.notice


def test_cell_weights_average_one_and_a_film_without_lung_gets_none():
    masks = np.zeros((2, 224, 224), bool)
    masks[0, :, :112] = True  # the left half: 7 of 14 columns
    coverage = cell_coverage(masks, 14)
    assert coverage.shape == (2, 14, 14) and coverage[0, :, :7].min() == 1 and coverage[0, :, 7:].max() == 0
    weights = pooling_weights(coverage, 1.0)
    assert weights.shape == (2, 14, 14, 1)
    assert weights[0].mean() == pytest.approx(1.0) and weights[0, :, 7:].max() == 0
    assert weights[1].max() == 0


def test_heads_are_refitted_on_each_members_own_training_folds_only():
    """A member's head never sees its held-out fold: labels scrambled there do not change it."""
    rng = np.random.default_rng(0)
    folds = np.repeat([0, 1, 2], 60)
    y = rng.integers(0, 2, len(folds))
    targets = np.stack([y, np.where(y == 1, rng.integers(0, 2, len(y)), -1)], 1).astype(np.float32)
    x = rng.normal(size=(len(folds), 2 * 4)).astype(np.float32) + y[:, None]
    members = MemberFolds([0, 1], folds)
    kernel, bias = refit_heads({"plain": x}, targets, members, c=1.0)
    scrambled = targets.copy()
    scrambled[folds == 0, 0] = 1 - scrambled[folds == 0, 0]
    kernel2, bias2 = refit_heads({"plain": x}, scrambled, members, c=1.0)
    np.testing.assert_allclose(kernel[0, 0, :4, 0], kernel2[0, 0, :4, 0])  # member 0 held fold 0 out
    assert not np.allclose(kernel[0, 0, 4:, 2], kernel2[0, 0, 4:, 2])  # member 1 trained on fold 0
    assert kernel[0, 0, :4, 2:].max() == 0 and kernel[0, 0, 4:, :2].max() == 0  # block-diagonal


def test_out_of_fold_averages_only_the_members_that_held_an_image_out():
    members = MemberFolds([0, 1, 0], np.array([0, 1, -1]))
    logits = np.array([[1, 10, 2, 20, 3, 30]] * 3, float)  # member m: (pneumonia, bacterial)
    z = out_of_fold(logits, members)
    np.testing.assert_allclose(z[0], [2, 20])  # fold 0: members 0 and 2
    np.testing.assert_allclose(z[1], [2, 20])  # fold 1: member 1
    np.testing.assert_allclose(z[2], [2, 20])  # hard normal: every member


def test_hard_normals_carry_their_share_of_the_normals_in_the_calibration_set():
    class OOF:
        def pneumonia(self, frame="plain"):
            return np.arange(6, dtype=float)

    y = np.array([1, 1, 0, 0, 0, 0])
    hard = np.array([False, False, False, False, False, True])
    z, labels, weights = calibration_set(y, hard, OOF())
    normals = labels == 0
    hard_weight = weights[np.tile(hard, len(z) // 6)].sum()
    assert hard_weight / weights[normals].sum() == pytest.approx(HARD_NORMAL_SHARE)
