"""Evaluate the shipped model on any folder in the Kaggle layout, or on an archive run's results.

python -m pneumonia.evaluate --data-dir DIR --split test --out metrics.json [--predictions preds.csv]
python -m pneumonia.evaluate --results results.parquet --out metrics.json

``--results`` reads the rows of ``python -m pneumonia.score`` (labelled by a ``label`` column or by
NORMAL/PNEUMONIA folders) and gives the same JSON as evaluating the folder, without the model.
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
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--data-dir", help="folder with SPLIT/{NORMAL,PNEUMONIA}/ images")
    source.add_argument("--results", help="results parquet of `python -m pneumonia.score` (no model run needed)")
    p.add_argument("--split", help="sub-folder of --data-dir to evaluate, e.g. test")
    p.add_argument("--model", default=None, help="model folder (default: the shipped models/)")
    p.add_argument("--operating-point", default=None, help="high_sensitivity, balanced or high_specificity")
    p.add_argument("--threshold", type=float, default=None, help="custom threshold (overrides --operating-point)")
    p.add_argument("--out", required=True, help="metrics JSON file")
    p.add_argument("--predictions", default=None, help="optional per-image CSV")
    p.add_argument("--gate", action="store_true", help="also report how many images the chest x-ray gate refuses")
    return p


def probabilities(results: list[ImageResult], field: str = "probability") -> np.ndarray:
    """Each file's probability (or ``bacterial_probability``), NaN where there is none."""
    import numpy as np

    values = [getattr(r, field, None) for r in results]
    return np.array([v if v is not None else np.nan for v in values], dtype=float)


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
            "bacterial_probability": probabilities(results, "bacterial_probability"),
        }
    )


def evaluate_results_file(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict:
    """The --results path: the metrics JSON from a results parquet, thresholds from the model's metadata."""
    from pneumonia.insight.site_validation import evaluate_results, labelled, read_results
    from pneumonia.serving import site_points
    from pneumonia.serving.archive.store import read_spec
    from pneumonia.serving.metadata import read_metadata
    from pneumonia.serving.model import DEFAULT_MODEL_DIR

    meta = read_metadata(args.model or DEFAULT_MODEL_DIR)
    try:
        choice = site_points.resolve(meta, args.operating_point, args.threshold)
    except ValueError as err:
        parser.error(str(err))
    spec = read_spec(args.results)
    extra = spec.extra if spec else {}
    version = spec.model_version if spec else str(meta.version)
    if version != str(meta.version):
        print(f"warning: the results were scored by model {version}; thresholds are those of model {meta.version}")
    results = read_results(args.results)
    data = labelled(results, extra.get("input_name", ""))
    if not len(data.y):
        parser.error(
            "the results have no labelled, readable rows (truth comes from a label column or NORMAL/PNEUMONIA)"
        )
    if data.unreadable:
        print(f"warning: {data.unreadable} images could not be read and are left out")
    out = evaluate_results(data, choice.threshold)
    out.update(
        {
            "split": extra.get("input_name", ""),
            "data_dir": extra.get("input_parent", ""),
            "operating_point": choice.operating_point,
            "model_version": version,
            "unreadable": data.unreadable,
        }
    )
    if args.gate:
        out["gate_refused"] = data.refused
    if args.predictions:
        results_predictions(results, choice.threshold).to_csv(args.predictions, index=False)
    return out


def results_predictions(results: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """The --predictions table from a results file (labelled rows, as the folder path writes it)."""
    import pandas as pd

    rows = results[results["truth"].notna()]
    prob = rows["probability_ungated"].astype(float)
    return pd.DataFrame(
        {
            "file": rows["file"].map(lambda s: Path(s).name),
            "label": rows["truth"].astype(int),
            "probability": prob,
            "predicted": (prob >= threshold).astype(int),
            "gate_ok": rows["gate_ok"],
        }
    )


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.results:
        out = evaluate_results_file(args, parser)
        Path(args.out).write_text(json.dumps(out, indent=2))
        print(json.dumps({k: out[k] for k in SUMMARY_KEYS}))
        return
    if not args.split:
        parser.error("--split is required with --data-dir")

    import numpy as np

    from pneumonia.core.kaggle_layout import scan
    from pneumonia.core.metrics import metrics_with_ci, subtype_summary
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
    out["subtype"] = subtype_summary(subtypes[ok], probabilities(results, "bacterial_probability")[ok])
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
