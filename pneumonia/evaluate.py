"""Evaluate the shipped model on any folder in the Kaggle layout.

python -m pneumonia.evaluate --data-dir DIR --split test --out metrics.json [--predictions preds.csv]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from pneumonia.metrics import binary_metrics, bootstrap_ci, confusion, rates


def report(
    y_true: np.ndarray,
    prob: np.ndarray,
    threshold: float,
    groups: np.ndarray | None = None,
    subtypes: np.ndarray | None = None,
    n_boot: int = 1000,
) -> dict:
    """Metrics at ``threshold`` with patient-level bootstrap 95% CIs and recall per subtype."""
    out = binary_metrics(y_true, prob, threshold)
    out["ci95"] = bootstrap_ci(y_true, prob, threshold, groups=groups, n_boot=n_boot)
    if subtypes is not None:
        per = {}
        for sub in sorted(set(subtypes)):
            mask = np.asarray(subtypes) == sub
            tn, fp, fn, tp = confusion(np.asarray(y_true)[mask], np.asarray(prob)[mask], threshold)
            r = rates(tn, fp, fn, tp)
            # normals have no recall: report the rate called normal (specificity) instead
            per[sub] = {
                "n": int(mask.sum()),
                "recall" if sub != "normal" else "specificity": r["sensitivity"]
                if sub != "normal"
                else r["specificity"],
            }
        out["per_subtype"] = per
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", required=True, help="folder with SPLIT/{NORMAL,PNEUMONIA}/ images")
    p.add_argument("--split", required=True, help="sub-folder to evaluate, e.g. test")
    p.add_argument("--model", default=None, help="model folder (default: the shipped models/)")
    p.add_argument("--operating-point", default=None, help="high_sensitivity, balanced or high_specificity")
    p.add_argument("--threshold", type=float, default=None, help="custom threshold (overrides --operating-point)")
    p.add_argument("--out", required=True, help="metrics JSON file")
    p.add_argument("--predictions", default=None, help="optional per-image CSV")
    p.add_argument("--gate", action="store_true", help="also report how many images the chest x-ray gate refuses")
    args = p.parse_args(argv)

    from pneumonia.data import scan
    from pneumonia.model import DEFAULT_MODEL_DIR, Classifier
    from pneumonia.pipeline import score_files

    manifest = scan(args.data_dir, [args.split])
    clf = Classifier(args.model or DEFAULT_MODEL_DIR)
    op = args.operating_point or clf.default_operating_point
    threshold = args.threshold if args.threshold is not None else clf.threshold(op)
    results = score_files(clf, list(manifest["path"]), threshold)
    prob = np.array([r.probability if r.probability is not None else np.nan for r in results])
    failed = np.isnan(prob)
    if failed.any():
        print(f"warning: {int(failed.sum())} images could not be read and are left out")
    ok = ~failed
    groups = (manifest["split"] + "/" + manifest["patient_id"]).to_numpy()
    out = report(manifest["label"].to_numpy()[ok], prob[ok], threshold, groups[ok], manifest["subtype"].to_numpy()[ok])
    out.update(
        {
            "split": args.split,
            "data_dir": str(Path(args.data_dir).name),
            "operating_point": op if args.threshold is None else "custom",
            "model_version": clf.version,
            "unreadable": int(failed.sum()),
        }
    )
    if args.gate:
        out["gate_refused"] = int(sum(1 for r in results if r.gate is not None and not r.gate.ok))
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(json.dumps({k: out[k] for k in ("n", "accuracy", "roc_auc", "sensitivity", "specificity", "threshold")}))
    if args.predictions:
        pd.DataFrame(
            {
                "file": manifest["path"].map(lambda s: Path(s).name),
                "label": manifest["label"],
                "subtype": manifest["subtype"],
                "probability": prob,
                "predicted": (prob >= threshold).astype(int),
                "gate_ok": [r.gate.ok if r.gate is not None else None for r in results],
            }
        ).to_csv(args.predictions, index=False)


if __name__ == "__main__":
    main()
