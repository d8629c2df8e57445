"""Train the ensemble from scratch on a folder in the Kaggle layout and write the models/ artifacts.

python -m pneumonia.train --data-dir ../shared/data/chest_xray --out models/ [--seeds 0,1] [--folds 5]

One member per seed and patient-grouped fold; members already in OUT/members are kept (a killed
run resumes). The hard normals (models/hard_normals.csv) stay out of every fold. On a GPU machine,
``KERAS_BACKEND=jax`` trains a member in about 3 minutes; on 2 CPU cores about 100 minutes.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import shlex
import sys
from pathlib import Path

from pneumonia.training.fit import TrainingConfig

DEFAULTS = TrainingConfig()
HARD_NORMALS = Path(__file__).resolve().parents[1] / "models" / "hard_normals.csv"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False
    )
    p.add_argument("--data-dir", required=True, help="folder with SPLIT/{NORMAL,PNEUMONIA}/ images")
    p.add_argument("--out", default="models", help="artifact folder (default models/)")
    p.add_argument("--epochs", type=int, default=DEFAULTS.epochs)
    p.add_argument("--size", type=int, default=DEFAULTS.size, help="square input size in pixels")
    p.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size)
    p.add_argument("--lr", type=float, default=DEFAULTS.lr)
    p.add_argument("--label-smoothing", type=float, default=DEFAULTS.label_smoothing)
    p.add_argument("--normal-zoom", type=float, default=DEFAULTS.normal_zoom, help="extra zoom-in of normals")
    p.add_argument("--subtype-weight", type=float, default=DEFAULTS.subtype_weight)
    p.add_argument("--folds", type=int, default=DEFAULTS.folds, help="patient-grouped cross-validation folds")
    p.add_argument("--seeds", default=DEFAULTS.seeds, help="comma-separated seeds: one member per seed and fold")
    p.add_argument("--fold-seed", type=int, default=DEFAULTS.fold_seed)
    p.add_argument("--limit", type=int, default=DEFAULTS.limit, help="use only about N images (smoke tests)")
    p.add_argument("--hard-normals", default=str(HARD_NORMALS), help="patients kept out of every fold ('' = none)")
    p.add_argument(
        "--folds-from",
        default="",
        help="split.csv of an earlier run: reuse its folds (default: OUT/split.csv when resuming)",
    )
    p.add_argument("--cache-dir", default="cache")
    p.add_argument("--note", default=DEFAULTS.note, help="free text stored in the experiment log")
    p.add_argument("--experiment-log", default=None, help="CSV log of runs (default OUT/experiments.csv; '' = none)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    from pneumonia.training import artifacts
    from pneumonia.training.finalize import finalize
    from pneumonia.training.fit import load_training_data, run_record, train_members

    config = TrainingConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainingConfig)})
    command = "python -m pneumonia.train " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    out = Path(args.out)
    hard = Path(args.hard_normals) if args.hard_normals else None
    data = load_training_data(
        config, args.data_dir, hard, Path(args.cache_dir), Path(args.folds_from) if args.folds_from else None
    )
    members = train_members(data, config, out)
    run_info = run_record(config, data, command, members)
    artifacts.write_run_record(out, run_info, data.manifest)
    experiment_log = Path(args.experiment_log) if args.experiment_log else None
    finalize(data, members, config.spec, run_info, out, experiment_log)


if __name__ == "__main__":
    main()
