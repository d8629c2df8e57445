"""Approximate lung fields on a frontal chest x-ray by classical image processing (no model).

Approximate by design. The aerated (dark) part of each lung is found first: thresholded dark
regions inside the body, cleaned by morphology, the largest plausible one per side. A lung that a
consolidation or effusion has whitened is only partly dark, so each side's field is the convex hull
of its own aerated lung and the other lung mirrored across the midline (the spine): a consolidated
lung is filled from its healthy twin. This assumes a roughly symmetric, upright film and takes in
the retrocardiac part of the left lung. Good enough to ask "how much of a heatmap falls on the
lungs" over many images; not a segmentation to read a single film by. It finds nothing on some hazy
films where neither lung is dark enough, only the upper or lower part of both lungs on others, and
can take in the stomach bubble or an air-filled bowel loop when they lie in the middle band.
"""

from __future__ import annotations

import cv2
import numpy as np

SIZE = 224  # the model input's side; masks are computed at this size
ROW_BAND = (0.08, 0.80)  # a lung's centroid lies in this band of the image's height
COL_BAND = (0.10, 0.90)  # ... and of its width
MIN_AREA = 0.015  # a lung covers at least this share of the image
MAX_AREA = 0.25  # ... and at most this share
MIN_HEIGHT = 0.20  # ... and spans at least this share of its height
PERCENTILES = np.arange(10, 76, 5)  # dark thresholds tried, percentiles of the central region's grey levels
OPENINGS = (9, 17, 25)  # disc diameters (px) that cut the bridges between a lung and the air outside
MIN_SPREAD = 40  # grey levels between the 5th and 95th percentile of the smoothed centre (x-rays here: >= 58)
MIDLINE_GAP = 0.03  # half-width of the strip cut at the midline so that two lungs joined by the trachea part
SPINE_BAND = (0.38, 0.62)  # the spine (brightest column) is looked for in this band of the width


def _grey(image: np.ndarray) -> np.ndarray:
    """HxW or HxWx1 pixels (uint8, or float in [0, 1]) -> SIZE x SIZE uint8."""
    img = np.asarray(image)
    if img.ndim == 3:
        img = img[..., 0]
    if img.dtype != np.uint8:
        img = np.clip(np.asarray(img, np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return cv2.resize(img, (SIZE, SIZE), interpolation=cv2.INTER_AREA) if img.shape != (SIZE, SIZE) else img


def dark_regions(blur: np.ndarray, threshold: float, opening: int) -> np.ndarray:
    """Pixels of the smoothed image darker than ``threshold``, opened with an ``opening``-pixel
    disc (bridges to the air outside the body cut) and closed, with a strip cut at the midline; uint8 0/1."""
    s = blur.shape[0]
    dark = (blur < threshold).astype(np.uint8)
    dark = cv2.morphologyEx(dark, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (opening, opening)))
    dark = cv2.morphologyEx(dark, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7)))
    gap = max(1, int(MIDLINE_GAP * s))
    dark[:, s // 2 - gap : s // 2 + gap] = 0
    return dark


def _plausible(stats: np.ndarray, centroids: np.ndarray, i: int, s: int) -> bool:
    x, y, w, h, area = stats[i]
    touches = x == 0 or y == 0 or x + w >= s or y + h >= s
    cx, cy = centroids[i] / s
    return (
        not touches
        and MIN_AREA * s * s <= area <= MAX_AREA * s * s
        and h >= MIN_HEIGHT * s
        and ROW_BAND[0] <= cy <= ROW_BAND[1]
        and COL_BAND[0] <= cx <= COL_BAND[1]
    )


def _largest_per_side(blur: np.ndarray, threshold: float, opening: int) -> list[np.ndarray | None]:
    """The largest plausible dark region left and right of the midline (None where there is none)."""
    s = blur.shape[0]
    n, labels, stats, centroids = cv2.connectedComponentsWithStats(
        dark_regions(blur, threshold, opening), connectivity=8
    )
    found: list[np.ndarray | None] = [None, None]
    for side in (0, 1):
        on_side = [
            i for i in range(1, n) if _plausible(stats, centroids, i, s) and (centroids[i][0] >= s / 2) == bool(side)
        ]
        if on_side:
            found[side] = labels == max(on_side, key=lambda i: stats[i, cv2.CC_STAT_AREA])
    return found


def aerated_lungs(image: np.ndarray) -> list[np.ndarray | None]:
    """The aerated (dark) part of each lung, [image-left, image-right] boolean SIZE x SIZE masks
    (None where nothing plausible is found): per side, the largest dark region that does not touch
    the border and lies in the middle band, over a scan of dark thresholds (percentiles of the
    central region) and openings: at a low threshold a lung stands apart from the air outside the
    body, at a high one it merges with it. A consolidated or effused part of a lung is white and left out."""
    grey = _grey(image)
    s = grey.shape[0]
    blur = cv2.GaussianBlur(grey, (0, 0), 3.0)
    lo, hi = int(0.1 * s), int(0.9 * s)
    p5, p95 = np.percentile(blur[lo:hi, lo:hi], [5, 95])
    best: list[np.ndarray | None] = [None, None]
    if p95 - p5 < MIN_SPREAD:  # blank, or noise without structure: no anatomy to find
        return best
    for t in np.percentile(blur[lo:hi, lo:hi], PERCENTILES):
        for opening in OPENINGS:
            for side, region in enumerate(_largest_per_side(blur, t, opening)):
                if region is not None and (best[side] is None or region.sum() > best[side].sum()):
                    best[side] = region
    return best


def midline(image: np.ndarray, lungs: list[np.ndarray | None]) -> float:
    """Column of the body's midline: the brightest column (the spine) of the central band over the
    rows the lungs span, averaged with the middle between the two lungs' inner edges where both are found."""
    blur = cv2.GaussianBlur(_grey(image), (0, 0), 3.0).astype(np.float32)
    s = blur.shape[0]
    rows = np.zeros(s, bool)
    for lung in lungs:
        if lung is not None:
            rows |= lung.any(axis=1)
    profile = cv2.GaussianBlur(blur[rows].mean(axis=0)[None, :], (0, 0), 3.0)[0]
    a, b = int(SPINE_BAND[0] * s), int(SPINE_BAND[1] * s)
    spine = a + float(np.argmax(profile[a:b]))
    if lungs[0] is None or lungs[1] is None:
        return spine
    between = (np.nonzero(lungs[0].any(axis=0))[0].max() + np.nonzero(lungs[1].any(axis=0))[0].min()) / 2.0
    return (spine + between) / 2.0


def _field(own: np.ndarray | None, twin: np.ndarray | None, mid: float, side: int, s: int) -> np.ndarray:
    """One side's lung field: the convex hull of its aerated lung and the other lung mirrored across
    the midline, kept off a strip at the midline; uint8 0/1."""
    points = []
    if own is not None:
        points.append(cv2.findNonZero(own.astype(np.uint8)).reshape(-1, 2))
    if twin is not None:
        p = cv2.findNonZero(twin.astype(np.uint8)).reshape(-1, 2).copy()
        p[:, 0] = np.clip(np.rint(2.0 * mid - p[:, 0]), 0, s - 1)
        points.append(p)
    field = np.zeros((s, s), np.uint8)
    cv2.fillConvexPoly(field, cv2.convexHull(np.concatenate(points).astype(np.int32)), 1)
    gap = MIDLINE_GAP * s
    cols = np.arange(s)
    field[:, (cols > mid - gap) if side == 0 else (cols < mid + gap)] = 0
    return field


def lung_mask(image: np.ndarray) -> np.ndarray:
    """Approximate lung fields, aerated or not: a SIZE x SIZE boolean mask. Each side is the convex
    hull of its aerated lung (:func:`aerated_lungs`) united with the other side's mirrored across the
    midline (:func:`midline`), so a lung whitened by consolidation is filled from its twin, and a lung
    not found at all is the mirror image of the other. Assumes a roughly symmetric, upright film; takes
    in the part of the left lung behind the heart. All False when neither lung is found, as on a blank image."""
    lungs = aerated_lungs(image)
    s = SIZE
    mask = np.zeros((s, s), bool)
    if lungs[0] is None and lungs[1] is None:
        return mask
    mid = midline(image, lungs)
    for side in (0, 1):
        mask |= _field(lungs[side], lungs[1 - side], mid, side, s).astype(bool)
    return mask


def mass_inside(cam: np.ndarray, mask: np.ndarray) -> float:
    """Share of a non-negative heatmap's mass inside ``mask`` (the heatmap is resized to the mask)."""
    heat = np.clip(np.asarray(cam, np.float32), 0, None)
    if heat.shape != mask.shape:
        heat = cv2.resize(heat, mask.shape[::-1], interpolation=cv2.INTER_LINEAR)
    total = float(heat.sum())
    return float(heat[mask].sum()) / total if total > 0 else float("nan")


def hotspot_inside(cam: np.ndarray, mask: np.ndarray) -> bool:
    """Whether the heatmap's maximum (resized to the mask) falls inside ``mask``."""
    heat = np.asarray(cam, np.float32)
    if heat.shape != mask.shape:
        heat = cv2.resize(heat, mask.shape[::-1], interpolation=cv2.INTER_LINEAR)
    return bool(mask.flat[int(np.argmax(heat))])
