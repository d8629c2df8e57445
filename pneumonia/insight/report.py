"""Exports of a review: worklist CSV and a one-page PDF per image, without patient identifiers."""

from __future__ import annotations

import io
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from fpdf import FPDF

from pneumonia.core.labels import probability_in_words
from pneumonia.core.operating_points import ThresholdChoice
from pneumonia.core.png import encode_png
from pneumonia.serving.results import ImageResult

DISCLAIMER = (
    "Decision support only. This research model was trained on one hospital's pediatric chest "
    "radiographs (Kermany et al. 2018) and is not a diagnostic device. The heatmap shows what drove "
    "the model's score, not where disease is. A qualified reader makes the diagnosis."
)


@dataclass(frozen=True)
class ReaderReview:
    """The reader's own read of one image, as saved to the audit trail and printed on the report."""

    reader: str
    agrees: bool
    comment: str = ""
    accession: str = ""  # from the study (or typed by the reader), for the report only; never in the audit trail


def point_title(operating_point: str, points: dict[str, dict] | None = None) -> str:
    """A named operating point in words: "High sensitivity", not "high_sensitivity"."""
    label = (points or {}).get(operating_point, {}).get("label", "")
    if label:
        return label.split(" (")[0]
    return "Custom threshold" if operating_point == "custom" else operating_point.replace("_", " ").capitalize()


def threshold_sentence(result: ImageResult, choice: ThresholdChoice, title: str) -> str:
    """The probability and the operating point in one sentence, so "84% - NORMAL" never stands unexplained."""
    p, t = format_probability(result.probability), f"{choice.threshold:.1%}"
    verdict = "at or above" if result.label == "PNEUMONIA" else "below"
    return (
        f"The model gives a probability of pneumonia of {p}. The operating point ({title}) is a cut-off on "
        f"that probability: images at or above {t} are called PNEUMONIA. This one is {verdict} it, so it is "
        f"called {result.label}."
    )


def duplicates(results: list[ImageResult]) -> dict[int, list[int]]:
    """For each item (1-based) whose pixels also appear under another item, the other items."""
    by_pixels: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(results):
        if r.xray is not None and r.xray.pixels_sha256:
            by_pixels[r.xray.pixels_sha256].append(i + 1)
    return {i: [j for j in group if j != i] for group in by_pixels.values() if len(group) > 1 for i in group}


IMAGE_MAX_HEIGHT_MM = 110  # on the one-page A4 report


def format_probability(p: float) -> str:
    """As every view words a probability (:func:`pneumonia.core.labels.probability_in_words`)."""
    return probability_in_words(p)


def probability_percent(p: float | None) -> float | None:
    """The probability in percent for a sortable table column, kept between 1 and 99 as
    :func:`format_probability` words it (a 0.9996 never reads as 100% or 99.96%)."""
    if p is None or p != p:
        return None
    return round(min(max(float(p) * 100.0, 1.0), 99.0), 1)


def _read_words(review) -> str:
    if review is None:
        return ""
    return "agree" if review.agrees else "disagree"


IDENTITY_COLUMNS = ("accession", "patient", "patient_id", "age_sex", "study_time", "view")


def identity_cells(identity: dict | None) -> dict[str, str]:
    """The worklist's identity columns from a film's identity (pneumonia.pacs.identity.FilmIdentity.as_dict())."""
    i = identity or {}
    return {
        "accession": i.get("accession", ""),
        "patient": i.get("patient_name", ""),
        "patient_id": i.get("patient_id", ""),
        "age_sex": " ".join(p for p in (i.get("age", ""), i.get("sex", "")) if p),
        "study_time": f"{i.get('study_date', '')} {i.get('study_time', '')}".strip(),
        "view": i.get("view", ""),
    }


def worklist(
    results: list[ImageResult],
    include_names: bool = False,
    reviewed: set[str] | frozenset = frozenset(),
    reviews: dict | None = None,
    identities: dict[str, dict] | None = None,
) -> pd.DataFrame:
    """One row per file, scored first by descending probability, then refused and unreadable.
    ``reviewed``: image hashes that have a saved review (the "reviewed" column); ``reviews``: the
    saved reads by image hash (:class:`ReaderReview`), for the "reader_read" column (agree/disagree).
    ``identities``: image hash -> the film's identity (accession, patient ...), shown only with
    ``include_names`` (patient identifiers, as file names may be)."""
    same_pixels = duplicates(results)
    rows = []
    for i, r in enumerate(results):
        who = identity_cells((identities or {}).get(r.xray.sha256) if r.xray else None) if identities else {}
        rows.append(
            {
                "item": i + 1,
                **({"file": r.name, **who} if include_names else {}),
                "image_sha256": r.xray.sha256 if r.xray else "",
                "status": r.status,
                "probability": round(r.probability, 6) if r.scored else None,  # 0.99996 must not read 1.0
                "label": r.label,
                "threshold": round(r.threshold, 4) if r.threshold is not None else None,
                "bacterial_if_pneumonia": round(r.bacterial_probability, 4) if r.subtype_note else None,
                "members_disagree": r.members_disagree,
                "duplicate_of": ", ".join(str(j) for j in same_pixels.get(i + 1, [])),
                "reviewed": bool(r.xray) and r.xray.sha256 in reviewed,
                "reader_read": _read_words((reviews or {}).get(r.xray.sha256)) if r.xray else "",
                "reason": r.reason,
            }
        )
    df = pd.DataFrame(rows)
    order = {"scored": 0, "refused": 1, "unreadable": 2}
    df["_order"] = df["status"].map(order)
    df["_p"] = -df["probability"].fillna(-1.0)
    return df.sort_values(["_order", "_p", "item"]).drop(columns=["_order", "_p"]).reset_index(drop=True)


def worklist_csv(
    results: list[ImageResult],
    include_names: bool = False,
    reviewed: set[str] | frozenset = frozenset(),
    reviews: dict | None = None,
    identities: dict[str, dict] | None = None,
) -> bytes:
    """The worklist as CSV; file names and the films' identities only with ``include_names``."""
    from pneumonia.core.literal import csv_safe_frame

    table = worklist(results, include_names, reviewed, reviews, identities if include_names else None)
    return csv_safe_frame(table).to_csv(index=False).encode()


def _png(rgb_or_gray: np.ndarray, max_side: int = 900) -> io.BytesIO:
    return io.BytesIO(encode_png(rgb_or_gray, max_side))


def _line(pdf: FPDF, height: float, text: str) -> None:
    pdf.cell(0, height, text, new_x="LMARGIN", new_y="NEXT")


SCALE_FADES_BELOW = 0.3  # as the screen's colour scale (pages.widgets.fading_colorscale): transparent at 0


def colour_scale_strip(colormap: str, width: int = 256) -> np.ndarray:
    """The heatmap's colour scale, least to most, as an RGB strip (the same OpenCV map as the overlay),
    fading to white at its low end as the screen's colour bar does (no tint where there is little)."""
    import cv2

    from pneumonia.serving.explain import COLORMAPS

    ramp = np.linspace(0, 255, width).astype(np.uint8)[None, :]
    bgr = cv2.applyColorMap(np.repeat(ramp, 8, axis=0), COLORMAPS.get(colormap, cv2.COLORMAP_JET))
    alpha = np.minimum(1.0, np.linspace(0.0, 1.0, width) / SCALE_FADES_BELOW)[None, :, None]
    rgb = bgr[..., ::-1].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
    return np.round(rgb).astype(np.uint8)


def _colour_scale(pdf: FPDF, colormap: str, x: float, width: float) -> None:
    """A colour bar under the overlay: what its colours mean."""
    y = pdf.get_y()
    pdf.image(_png(colour_scale_strip(colormap)), x=x, y=y, w=width, h=3)
    pdf.set_xy(x, y + 3.5)
    pdf.set_font("Helvetica", "", 7)
    pdf.cell(width / 2, 3, "least")
    pdf.cell(width / 2, 3, "most", align="R")
    pdf.set_xy(x, y + 6.5)
    pdf.cell(width, 3, "raised the score (what drove the model, not where disease is)", align="C")
    pdf.set_xy(pdf.l_margin, y + 10)


def _images(
    pdf: FPDF, result: ImageResult, overlay_rgb: np.ndarray, method: str, heatmap_flat: bool, colormap: str = "jet"
) -> None:
    """The original and the heatmap overlay side by side, with captions and the overlay's colour scale."""
    h, wd = result.xray.full_pixels().shape[:2]
    w = min(90, IMAGE_MAX_HEIGHT_MM * wd / h)  # a tall image must leave room for the findings and the read
    y0 = pdf.get_y()
    pdf.image(_png(result.xray.full_pixels()), x=10, y=y0, w=w)
    pdf.image(_png(overlay_rgb), x=110, y=y0, w=w)
    pdf.set_y(y0 + w * h / wd + 2)
    pdf.set_font("Helvetica", "I", 8)
    pdf.cell(100, 4, "Original")
    _line(pdf, 4, f"{method} heatmap" + (" (flat: no localised evidence)" if heatmap_flat else ""))
    if not heatmap_flat:
        _colour_scale(pdf, colormap, 110, w)


def _findings(pdf: FPDF, result: ImageResult, choice: ThresholdChoice, title: str) -> None:
    """Probability, the result at the operating point with its validation figures, and notices."""
    pdf.set_font("Helvetica", "B", 12)
    _line(pdf, 7, f"Pneumonia probability (calibrated): {format_probability(result.probability)}")
    _line(pdf, 7, f"Result at operating point '{title}' (threshold {result.threshold:.1%}): {result.label}")
    pdf.set_font("Helvetica", "", 9)
    pdf.multi_cell(0, 4.5, threshold_sentence(result, choice, title), new_x="LMARGIN", new_y="NEXT")
    if choice.validated:
        _line(
            pdf,
            5,
            f"Validation sensitivity {choice.validation_sensitivity:.1%}, specificity "
            f"{choice.validation_specificity:.1%} at this point (out-of-fold validation; expect lower on "
            "other hospitals' images).",
        )
    if result.members_disagree:
        _line(pdf, 5, f"Caution: the ensemble's members disagree (spread {result.ensemble_spread:.2f}).")
    if result.subtype_note:
        _line(pdf, 5, result.subtype_note + ".")
    for note in result.notices:
        pdf.multi_cell(0, 4.5, f"Note: {note}", new_x="LMARGIN", new_y="NEXT")


def _latin1(text: str) -> str:
    """Text in the PDF's core font (Latin-1), on one line (no tab, CR or LF): other characters become '?'.
    fpdf2 draws it as it is (no Markdown or HTML: ``markdown`` stays off)."""
    from pneumonia.core.literal import plain_text

    return plain_text(text).encode("latin-1", "replace").decode("latin-1")


def _study_section(pdf: FPDF, identity: dict[str, str] | None) -> None:
    """Whose film this is, from the study's DICOM header (the reader asked for this report)."""
    if not identity:
        return
    pdf.set_font("Helvetica", "", 10)
    words = "  |  ".join(f"{k}: {v}" for k, v in identity.items())
    pdf.multi_cell(0, 5, _latin1(words), new_x="LMARGIN", new_y="NEXT")


def _reader_section(pdf: FPDF, review: ReaderReview | None) -> None:
    """The reader's own read: agree/disagree, comment, accession or study reference."""
    pdf.set_font("Helvetica", "B", 11)
    _line(pdf, 7, "Reader's review")
    pdf.set_font("Helvetica", "", 10)
    if review is None:
        _line(pdf, 6, "No review saved for this image yet.")
        return
    _line(pdf, 6, _latin1(f"Accession / study reference: {review.accession.strip() or '(not given)'}"))
    _line(pdf, 6, _latin1(f"Reader: {review.reader}  |  {'Agrees' if review.agrees else 'Disagrees'} with the model"))
    if review.comment.strip():
        pdf.multi_cell(0, 5, _latin1(f"Comment: {review.comment.strip()}"), new_x="LMARGIN", new_y="NEXT")


def pdf_report(
    result: ImageResult,
    overlay_rgb: np.ndarray,
    *,
    model_version: str,
    choice: ThresholdChoice,
    method: str,
    heatmap_flat: bool,
    review: ReaderReview | None = None,
    points: dict[str, dict] | None = None,
    colormap: str = "jet",
    identity: dict[str, str] | None = None,
) -> bytes:
    """A one-page PDF: image, overlay with its colour scale, probability, operating point, the reader's
    review, model version, time, disclaimer. ``points``: the model's operating points, to name the one
    in force in words; ``colormap``: the overlay's colour map (explain.COLORMAPS); ``identity``: the
    study's patient, accession, date ... (label -> words) for the header, from the film's DICOM."""
    if not result.scored or result.xray is None:
        raise ValueError("only scored images have a report")
    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(False)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 15)
    _line(pdf, 9, "Chest x-ray review: pneumonia model output")
    pdf.set_font("Helvetica", "", 9)
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    _line(pdf, 5, f"Generated {when}  |  model {model_version}  |  image SHA-256 {result.xray.sha256[:16]}...")
    _study_section(pdf, identity)
    pdf.ln(3)
    _images(pdf, result, overlay_rgb, method, heatmap_flat, colormap)
    pdf.ln(4)
    _findings(pdf, result, choice, point_title(choice.operating_point, points))
    pdf.ln(3)
    _reader_section(pdf, review)
    pdf.ln(3)
    pdf.set_font("Helvetica", "", 8)
    pdf.multi_cell(0, 4, DISCLAIMER)
    return bytes(pdf.output())
