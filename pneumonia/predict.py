"""Score x-ray files from the command line, one JSON object per line and file.

    python -m pneumonia.predict FILE... [--operating-point balanced] [--method gradcam] [--heatmap-dir DIR]

Uses the same code path as the review page; a bad file never stops the others.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2

from pneumonia.explain import METHODS


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+")
    p.add_argument("--model", default=None, help="model folder (default: the shipped models/)")
    p.add_argument("--operating-point", default=None, help="high_sensitivity, balanced or high_specificity")
    p.add_argument("--threshold", type=float, default=None, help="custom threshold (overrides --operating-point)")
    p.add_argument("--method", default="gradcam", choices=list(METHODS))
    p.add_argument("--heatmap-dir", default=None, help="write an overlay PNG per scored file here")
    args = p.parse_args(argv)

    from pneumonia.explain import Explainer, overlay
    from pneumonia.model import DEFAULT_MODEL_DIR, Classifier
    from pneumonia.pipeline import score_files

    clf = Classifier(args.model or DEFAULT_MODEL_DIR)
    op = args.operating_point or clf.default_operating_point
    threshold = args.threshold if args.threshold is not None else clf.threshold(op)
    explainer = Explainer(clf.model, args.method) if args.heatmap_dir else None
    for r in score_files(clf, args.files, threshold):
        row = {
            "file": r.name,
            "probability": round(r.probability, 4) if r.scored else None,
            "label": r.label,
            "threshold": round(threshold, 4),
            "operating_point": op if args.threshold is None else "custom",
            "gate": {"ok": r.gate.ok, "reasons": r.gate.reasons} if r.gate else None,
            "error": r.error,
            "notices": r.notices,
            "model_version": clf.version,
        }
        if explainer is not None and r.scored:
            heat = explainer(r.model_input)
            row["heatmap_flat"] = heat.flat
            out_dir = Path(args.heatmap_dir)
            out_dir.mkdir(parents=True, exist_ok=True)
            path = out_dir / f"{Path(r.name).stem}_{args.method.replace('+', 'p')}.png"
            cv2.imwrite(str(path), cv2.cvtColor(overlay(r.xray.pixels, heat.cam), cv2.COLOR_RGB2BGR))
            row["heatmap"] = str(path)
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
