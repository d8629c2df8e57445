"""The approximate lung-field masks: plausible on real chest x-rays, empty where there is no chest."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from pneumonia.core.decode import read_file
from pneumonia.core.preprocess import InputSpec, to_model_input
from pneumonia.insight.lung_fields import SIZE, aerated_lungs, hotspot_inside, lung_mask, mass_inside

SAMPLES = Path(__file__).resolve().parent.parent / "assets" / "samples"


@pytest.mark.parametrize(
    "name",
    [
        "NORMAL_normal_IM-0261-0001.jpeg",
        "NORMAL_normal_NORMAL2-IM-0851-0001.jpeg",
        "PNEUMONIA_bacteria_person279_bacteria_1315.jpeg",
    ],
)
def test_a_chest_xray_gets_two_lungs_of_plausible_size(name):
    x = to_model_input(read_file(str(SAMPLES / name)).pixels, InputSpec(size=SIZE))
    mask = lung_mask(x)
    assert mask.shape == (SIZE, SIZE) and mask.dtype == bool
    assert 0.10 <= mask.mean() <= 0.60
    n, _, stats, centroids = cv2.connectedComponentsWithStats(mask.astype(np.uint8))
    assert n - 1 == 2
    assert {bool(c[0] < SIZE / 2) for c in centroids[1:]} == {True, False}  # one lung each side


def test_a_whitened_lung_is_filled_from_its_twin():
    """A consolidation whitening the lower two-thirds of one lung: that side's field stays about as
    large as the other's and most of its own before (the aerated part alone shrinks below 60%)."""
    x = to_model_input(read_file(str(SAMPLES / "NORMAL_normal_IM-0261-0001.jpeg")).pixels, InputSpec(size=SIZE))
    left = aerated_lungs(x)[0]
    rows = np.nonzero(left.any(axis=1))[0]
    cut = rows.min() + (rows.max() - rows.min()) // 3
    consolidated = x.copy()
    consolidated[cut:][left[cut:]] = 0.85
    assert aerated_lungs(consolidated)[0] is None or aerated_lungs(consolidated)[0].sum() < 0.6 * left.sum()
    mask = lung_mask(consolidated)
    half = SIZE // 2
    assert mask[:, :half].sum() >= 0.7 * mask[:, half:].sum()
    assert mask[:, :half].sum() >= 0.65 * lung_mask(x)[:, :half].sum()


@pytest.mark.parametrize("value", [0, 128, 255])
def test_a_blank_image_gets_no_lungs(value):
    assert lung_mask(np.full((300, 260), value, np.uint8)).sum() == 0


def test_noise_gets_little_or_no_lung():
    noise = np.random.default_rng(0).integers(0, 256, (SIZE, SIZE), dtype=np.uint8)
    assert lung_mask(noise).mean() < 0.05


def test_mass_and_hotspot_inside_a_mask():
    mask = np.zeros((SIZE, SIZE), bool)
    mask[:, : SIZE // 2] = True
    cam = np.zeros((14, 14), np.float32)
    cam[7, 2] = 1.0
    assert mass_inside(cam, mask) > 0.95
    assert hotspot_inside(cam, mask)
    assert not hotspot_inside(cam[:, ::-1], mask)
    assert np.isnan(mass_inside(np.zeros((14, 14)), mask))
