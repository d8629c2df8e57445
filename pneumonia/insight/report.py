"""Exports of a review: worklist CSV and a one-page PDF per image, without patient identifiers."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from fpdf import FPDF

from pneumonia.core.operating_points import ThresholdChoice
from pneumonia.core.png import encode_png
from pneumonia.serving.results import ImageResult

DISCLAIMER = (
    "Decision support only. This research model was trained on one hospital's pediatric chest "
    "radiographs (Kermany et al. 2018) and is not a diagnostic device. The heatmap shows what drove "
    "the model's score, not where disease is. A qualified reader makes the diagnosis."
)


def format_probability(p: float) -> str:
    """A percentage that never claims certainty: calibrated scores of 0.9996 show as '>99.9%'."""
    if p >= 0.999:
        return ">99.9%"
    if p <= 0.001:
        return "<0.1%"
    return f"{p:.1%}"


def worklist(results: list[ImageResult], include_names: bool = False) -> pd.DataFrame:
    """One row per file, scored first by descending probability, then refused and unreadable."""
    rows = []
    for i, r in enumerate(results):
        rows.append(
            {
                "item": i + 1,
                **({"file": r.name} if include_names else {}),
                "image_sha256": r.xray.sha256 if r.xray else "",
                "status": r.status,
                "probability": round(r.probability, 4) if r.scored else None,
                "label": r.label,
                "threshold": round(r.threshold, 4) if r.threshold is not None else None,
                "reason": r.reason,
            }
        )
    df = pd.DataFrame(rows)
    order = {"scored": 0, "refused": 1, "unreadable": 2}
    df["_order"] = df["status"].map(order)
    df["_p"] = -df["probability"].fillna(-1.0)
    return df.sort_values(["_order", "_p", "item"]).drop(columns=["_order", "_p"]).reset_index(drop=True)


def worklist_csv(results: list[ImageResult], include_names: bool = False) -> bytes:
    return worklist(results, include_names).to_csv(index=False).encode()


def _png(rgb_or_gray: np.ndarray, max_side: int = 900) -> io.BytesIO:
    return io.BytesIO(encode_png(rgb_or_gray, max_side))


def _line(pdf: FPDF, height: float, text: str) -> None:
    pdf.cell(0, height, text, new_x="LMARGIN", new_y="NEXT")


def _images(pdf: FPDF, result: ImageResult, overlay_rgb: np.ndarray, method: str, heatmap_flat: bool) -> None:
    """The original and the heatmap overlay side by side, with captions."""
    w = 90
    y0 = pdf.get_y()
    h, wd = result.xray.shape
    pdf.image(_png(result.xray.pixels), x=10, y=y0, w=w)
    pdf.image(_png(overlay_rgb), x=110, y=y0, w=w)
    pdf.set_y(y0 + w * h / wd + 2)
    pdf.set_font("Helvetica", "I", 8)
    pdf.cell(100, 4, "Original")
    _line(pdf, 4, f"{method} heatmap" + (" (flat: no localised evidence)" if heatmap_flat else ""))


def _findings(pdf: FPDF, result: ImageResult, choice: ThresholdChoice) -> None:
    """Probability, the result at the operating point with its validation figures, and notices."""
    pdf.set_font("Helvetica", "B", 12)
    _line(pdf, 7, f"Pneumonia probability (calibrated): {format_probability(result.probability)}")
    _line(
        pdf,
        7,
        f"Result at operating point '{choice.operating_point}' (threshold {result.threshold:.3f}): {result.label}",
    )
    pdf.set_font("Helvetica", "", 10)
    if choice.validated:
        _line(
            pdf,
            6,
            f"Validation sensitivity {choice.validation_sensitivity:.1%}, specificity "
            f"{choice.validation_specificity:.1%} at this point (internal split; expect lower on other "
            "hospitals' images).",
        )
    for note in result.notices:
        _line(pdf, 5, f"Note: {note}")


def pdf_report(
    result: ImageResult,
    overlay_rgb: np.ndarray,
    *,
    model_version: str,
    choice: ThresholdChoice,
    method: str,
    heatmap_flat: bool,
) -> bytes:
    """A one-page PDF: image, overlay, probability, operating point, model version, time, disclaimer."""
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
    pdf.ln(3)
    _images(pdf, result, overlay_rgb, method, heatmap_flat)
    pdf.ln(4)
    _findings(pdf, result, choice)
    pdf.ln(4)
    pdf.set_font("Helvetica", "", 8)
    pdf.multi_cell(0, 4, DISCLAIMER)
    return bytes(pdf.output())
