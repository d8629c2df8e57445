"""Score x-ray files from the command line, one JSON object per line and file.

    python -m pneumonia.predict FILE... [--operating-point balanced] [--method gradcam] [--heatmap-dir DIR]
        [--heatmap-raw]

Uses the same code path as the review page; a bad file never stops the others.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pneumonia.serving.explain import METHODS

if TYPE_CHECKING:
    from pneumonia.core.operating_points import ThresholdChoice
    from pneumonia.serving.explain import Explainer, RuntimeGradcam
    from pneumonia.serving.results import ImageResult


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+")
    p.add_argument("--model", default=None, help="model folder (default: the shipped models/)")
    p.add_argument("--operating-point", default=None, help="high_sensitivity, balanced or high_specificity")
    p.add_argument("--threshold", type=float, default=None, help="custom threshold (overrides --operating-point)")
    p.add_argument("--method", default="gradcam", choices=list(METHODS))
    p.add_argument("--heatmap-dir", default=None, help="write an overlay PNG per scored file here")
    p.add_argument(
        "--heatmap-raw",
        action="store_true",
        help="with --heatmap-dir, also write each map as <stem>_<method>.npy: float32 at the model input's "
        "resolution (224x224, the film squashed to a square as the model sees it), scaled to 0..1 as overlaid",
    )
    return p


def subtype_field(r: ImageResult) -> dict | None:
    """``{"bacterial": p, "viral": 1 - p}`` for a scored image (secondary to the pneumonia call:
    meaningful only if it is pneumonia); None where the image was refused or the model has no subtype."""
    if not r.scored or r.bacterial_probability is None:
        return None
    return {"bacterial": round(r.bacterial_probability, 4), "viral": round(1 - r.bacterial_probability, 4)}


def result_row(r: ImageResult, choice: ThresholdChoice, model_version: str) -> dict:
    """The JSON object printed for one file."""
    return {
        "file": r.name,
        "probability": round(r.probability, 4) if r.scored else None,
        "label": r.label,
        "threshold": round(choice.threshold, 4),
        "operating_point": choice.operating_point,
        "subtype": subtype_field(r),
        "ensemble_spread": round(r.ensemble_spread, 4) if r.scored and r.ensemble_spread is not None else None,
        "gate": {"ok": r.gate.ok, "reasons": r.gate.reasons} if r.gate else None,
        "error": r.error,
        "notices": r.notices,
        "model_version": model_version,
    }


def write_heatmap(explainer: Explainer | RuntimeGradcam, r: ImageResult, heatmap_dir: Path, raw: bool = False) -> dict:
    """Write the overlay PNG of a scored file (and with ``raw`` the map itself as .npy); returns the
    row's heatmap fields."""
    import numpy as np

    from pneumonia.core.png import encode_png
    from pneumonia.serving.explain import RuntimeGradcam, overlay

    if isinstance(explainer, RuntimeGradcam) and r.patch_evidence is not None:
        heat = explainer(r.model_input, r.patch_evidence)  # the scoring pass's evidence: no second pass
    else:
        heat = explainer(r.model_input)
    heatmap_dir.mkdir(parents=True, exist_ok=True)
    path = heatmap_dir / f"{Path(r.name).stem}_{explainer.method.replace('+', 'p')}.png"
    path.write_bytes(encode_png(overlay(r.xray.pixels, heat.cam)))
    fields = {"heatmap_flat": heat.flat, "heatmap": str(path)}
    if raw:
        np.save(path.with_suffix(".npy"), np.asarray(heat.cam, np.float32))
        fields["heatmap_raw"] = str(path.with_suffix(".npy"))
    return fields


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.heatmap_raw and not args.heatmap_dir:
        parser.error("--heatmap-raw needs --heatmap-dir, the folder the maps are written to")

    from pneumonia.serving.explain import explainer_for
    from pneumonia.serving.model import DEFAULT_MODEL_DIR, Classifier
    from pneumonia.serving.pipeline import score_files

    clf = Classifier(args.model or DEFAULT_MODEL_DIR)
    try:
        choice = clf.resolve_threshold(args.operating_point, args.threshold)
    except ValueError as err:
        parser.error(str(err))
    explainer = None
    if args.heatmap_dir:
        explainer = explainer_for(clf, args.method)
    for r in score_files(clf, args.files, choice.threshold):
        row = result_row(r, choice, clf.version)
        if explainer is not None and r.scored:
            row.update(write_heatmap(explainer, r, Path(args.heatmap_dir), args.heatmap_raw))
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
