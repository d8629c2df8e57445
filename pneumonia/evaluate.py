"""Evaluate the shipped model on any folder in the Kaggle layout.

python -m pneumonia.evaluate --data-dir DIR --split test --out metrics.json [--predictions preds.csv]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from pneumonia.serving.results import ImageResult

SUMMARY_KEYS = ("n", "accuracy", "roc_auc", "sensitivity", "specificity", "threshold")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", required=True, help="folder with SPLIT/{NORMAL,PNEUMONIA}/ images")
    p.add_argument("--split", required=True, help="sub-folder to evaluate, e.g. test")
    p.add_argument("--model", default=None, help="model folder (default: the shipped models/)")
    p.add_argument("--operating-point", default=None, help="high_sensitivity, balanced or high_specificity")
    p.add_argument("--threshold", type=float, default=None, help="custom threshold (overrides --operating-point)")
    p.add_argument("--out", required=True, help="metrics JSON file")
    p.add_argument("--predictions", default=None, help="optional per-image CSV")
    p.add_argument("--gate", action="store_true", help="also report how many images the chest x-ray gate refuses")
    return p


def probabilities(results: list[ImageResult]) -> np.ndarray:
    """Each file's probability, NaN where it could not be read."""
    import numpy as np

    return np.array([r.probability if r.probability is not None else np.nan for r in results])


def predictions_table(manifest: pd.DataFrame, results: list[ImageResult], threshold: float) -> pd.DataFrame:
    import pandas as pd

    prob = probabilities(results)
    return pd.DataFrame(
        {
            "file": manifest["path"].map(lambda s: Path(s).name),
            "label": manifest["label"],
            "subtype": manifest["subtype"],
            "probability": prob,
            "predicted": (prob >= threshold).astype(int),
            "gate_ok": [r.gate.ok if r.gate is not None else None for r in results],
        }
    )


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)

    import numpy as np

    from pneumonia.core.kaggle_layout import scan
    from pneumonia.core.metrics import metrics_with_ci
    from pneumonia.serving.model import DEFAULT_MODEL_DIR, Classifier
    from pneumonia.serving.pipeline import score_files

    manifest = scan(args.data_dir, [args.split])
    clf = Classifier(args.model or DEFAULT_MODEL_DIR)
    try:
        choice = clf.resolve_threshold(args.operating_point, args.threshold)
    except ValueError as err:
        parser.error(str(err))
    results = score_files(clf, list(manifest["path"]), choice.threshold)
    prob = probabilities(results)
    failed = np.isnan(prob)  # files that could not be read
    ok = ~failed
    if failed.any():
        print(f"warning: {int(failed.sum())} images could not be read and are left out")
    groups = (manifest["split"] + "/" + manifest["patient_id"]).to_numpy()
    y, subtypes = manifest["label"].to_numpy(), manifest["subtype"].to_numpy()
    out = metrics_with_ci(y[ok], prob[ok], choice.threshold, groups=groups[ok], subtypes=subtypes[ok])
    out.update(
        {
            "split": args.split,
            "data_dir": str(Path(args.data_dir).name),
            "operating_point": choice.operating_point,
            "model_version": clf.version,
            "unreadable": int(failed.sum()),
        }
    )
    if args.gate:
        out["gate_refused"] = int(sum(1 for r in results if r.gate is not None and not r.gate.ok))
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(json.dumps({k: out[k] for k in SUMMARY_KEYS}))
    if args.predictions:
        predictions_table(manifest, results, choice.threshold).to_csv(args.predictions, index=False)


if __name__ == "__main__":
    main()
