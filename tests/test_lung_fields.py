"""The approximate lung-field masks: plausible on real chest x-rays, empty where there is no chest."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from pneumonia.core.decode import read_file
from pneumonia.core.preprocess import InputSpec, to_model_input
from pneumonia.insight.lung_fields import SIZE, hotspot_inside, lung_mask, mass_inside

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
